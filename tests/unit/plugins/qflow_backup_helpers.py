# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Local test helpers for the backup/backup_info/report tests (no shared conftest needed).

Importing this module puts <repo>/.collections on sys.path (creating the
.collections/ansible_collections/qflow/ops -> ../../.. symlink when missing), so that
``ansible_collections.qflow.ops`` resolves to this checkout.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import sqlite3
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.path.join(REPO, '.collections')


def _bootstrap():
    if os.path.basename(os.path.dirname(os.path.dirname(REPO))) == 'ansible_collections':
        return  # already inside an ansible_collections tree (ansible-test)
    link = os.path.join(COLLECTIONS, 'ansible_collections', 'qflow', 'ops')
    if not os.path.lexists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.join('..', '..', '..'), link)
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)


_bootstrap()

from ansible.module_utils import basic  # noqa: E402

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

SECRET = 'QFLOW_JWT_SECRET=s3cr3t-jwt-value-7f1c9e'
BATCH = 10


class ModuleExit(Exception):
    def __init__(self, kind, result):
        super(ModuleExit, self).__init__(kind)
        self.kind = kind
        self.result = result


def run_module(module, args, check_mode=False, diff=False):
    """Run module.main() with args; return (kind, result) where kind is 'exit' or 'fail'."""
    args = dict(args)
    args['_ansible_check_mode'] = check_mode
    args['_ansible_diff'] = diff

    def exit_json(self, **kwargs):
        kwargs.setdefault('changed', False)
        raise ModuleExit('exit', kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs['msg'] = msg
        kwargs['failed'] = True
        raise ModuleExit('fail', kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    mp.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    try:
        with patch_module_args(args):
            try:
                module.main()
            except ModuleExit as exc:
                return exc.kind, exc.result
    finally:
        mp.undo()
    raise AssertionError('module returned without exit_json/fail_json')


def make_db(path, batches=5):
    """WAL-mode SQLite db with a table of rows inserted BATCH at a time (one transaction per batch)."""
    conn = sqlite3.connect(path)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('CREATE TABLE IF NOT EXISTS executions (id INTEGER PRIMARY KEY, batch INTEGER, payload TEXT)')
    conn.execute('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)')
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('qflow_version', '1.4.2')")
    conn.commit()
    for batch in range(batches):
        insert_batch(conn, batch)
    return conn


def insert_batch(conn, batch):
    with conn:
        conn.executemany('INSERT INTO executions (batch, payload) VALUES (?, ?)', [(batch, 'x' * 200) for dummy in range(BATCH)])


def make_node(tmp_path):
    """A fake node: data dir with a live WAL db (connection kept open) and a small file, config and env files."""
    data = tmp_path / 'var' / 'lib' / 'qflow'
    data.mkdir(parents=True)
    (data / 'flows').mkdir()
    (data / 'flows' / 'flow-1.json').write_text('{"id": "flow-1"}\n')
    conn = make_db(str(data / 'state.db'))
    etc = tmp_path / 'etc' / 'qflow'
    etc.mkdir(parents=True)
    (etc / 'qflow-config.yaml').write_text('qflow:\n  engine:\n    maxConcurrentFlows: 100\n')
    (etc / 'qflow.env').write_text('NODE_ID=qflow-node-1\n%s\nQFLOW_PORT=8080\n' % SECRET)
    os.chmod(str(etc / 'qflow.env'), 0o600)
    return {
        'data_dir': str(data),
        'config_path': str(etc / 'qflow-config.yaml'),
        'env_path': str(etc / 'qflow.env'),
        'backup_dir': str(tmp_path / 'backups'),
        'conn': conn,
    }


def module_args(node, **extra):
    args = dict((k, node[k]) for k in ('data_dir', 'config_path', 'env_path', 'backup_dir'))
    args['node_id'] = 'qflow-node-1'
    args.update(extra)
    return args


def dir_state(path):
    """Snapshot of a directory: {name: bytes or None for dirs}."""
    state = {}
    if not os.path.isdir(path):
        return state
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isdir(full):
            state[name] = None
        else:
            with open(full, 'rb') as handle:
                state[name] = handle.read()
    return state
