# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helpers for the backup/backup_info/report tests: a fake node and a module runner that returns (kind, result).

``ansible_collections.qflow.ops`` is made importable by tests/unit/conftest.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sqlite3

from qflow_module_runner import run_module as _run_module

SECRET = 'QFLOW_JWT_SECRET=s3cr3t-jwt-value-7f1c9e'
BATCH = 10


def run_module(module, args, check_mode=False, diff=False):
    """Run module.main() with args; return (kind, result) where kind is 'exit' or 'fail'."""
    result, failed = _run_module(module, args, check_mode=check_mode, diff=diff)
    result.pop('_warnings', None)
    return ('fail' if failed else 'exit'), result


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
