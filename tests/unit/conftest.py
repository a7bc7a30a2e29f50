# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests import ``ansible_collections.qflow.ops`` through pytest-ansible (run from the checkout, it injects
collections/ansible_collections/qflow/ops on sys.path and in Ansible's collection finder; under
``ansible-test units`` the collection is importable already). This file only adds tests/unit/plugins, the shared
test helpers (qflow_stub_http, qflow_module_runner, ...), to sys.path."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sys

PLUGIN_TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'plugins')
if PLUGIN_TESTS not in sys.path:
    sys.path.insert(0, PLUGIN_TESTS)
