# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helper: run a module's main() in-process and catch what it returns."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
from unittest import mock

from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args  # ansible-core >= 2.19
except ImportError:  # pragma: no cover - older cores
    import contextlib
    from ansible.module_utils.common.text.converters import to_bytes

    @contextlib.contextmanager
    def patch_module_args(args=None):
        old = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': args or {}}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = old


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super(ModuleExit, self).__init__(result.get('msg', ''))
        self.result = result
        self.failed = failed


def _exit_json(self, **kwargs):
    kwargs.setdefault('changed', False)
    raise ModuleExit(kwargs, False)


def _fail_json(self, msg, **kwargs):
    kwargs['msg'] = msg
    kwargs['failed'] = True
    raise ModuleExit(kwargs, True)


def run_module(module, args, check_mode=False, diff=False):
    """Run ``module.main()`` with ``args``; return (result, failed). Warnings are collected in result['_warnings']."""
    args = dict(args)
    args['_ansible_check_mode'] = check_mode
    args['_ansible_diff'] = diff
    warnings = []
    with patch_module_args(args):
        with mock.patch.object(basic.AnsibleModule, 'exit_json', _exit_json), \
                mock.patch.object(basic.AnsibleModule, 'fail_json', _fail_json), \
                mock.patch.object(basic.AnsibleModule, 'warn', lambda self, w: warnings.append(w)):
            try:
                module.main()
            except ModuleExit as e:
                e.result['_warnings'] = warnings
                return e.result, e.failed
    raise AssertionError('module did not call exit_json or fail_json')
