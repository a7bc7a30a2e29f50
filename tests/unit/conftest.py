# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make ``ansible_collections.qflow.ops`` importable from this checkout for plain ``pytest``.

Puts <repo>/.collections on sys.path and creates the symlink
.collections/ansible_collections/qflow/ops -> ../../.. when it is missing. Under ``ansible-test units``
the collection is already importable and nothing is changed.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
COLLECTIONS = os.path.join(REPO, '.collections')
PLUGIN_TESTS = os.path.join(HERE, 'plugins')


def _bootstrap():
    # tests/unit/plugins holds shared helpers (qflow_stub_http, ...)
    if PLUGIN_TESTS not in sys.path:
        sys.path.insert(0, PLUGIN_TESTS)
    if os.path.basename(os.path.dirname(os.path.dirname(REPO))) == 'ansible_collections':
        return  # already inside an ansible_collections tree (ansible-test)
    if not os.path.isfile(os.path.join(REPO, 'galaxy.yml')):
        return
    link = os.path.join(COLLECTIONS, 'ansible_collections', 'qflow', 'ops')
    if not os.path.lexists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.join('..', '..', '..'), link)
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)


_bootstrap()
