# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.backup state=restored and state=test_restored, run through main()."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import io
import json
import os
import sqlite3
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import qflow_backup_helpers as h  # noqa: E402  (puts the collection on sys.path)

from ansible_collections.qflow.ops.plugins.module_utils import _backup as engine  # noqa: E402
from ansible_collections.qflow.ops.plugins.modules import backup  # noqa: E402

# the tables of the node's state.db (lab/qflow_lab/node/store.py)
SCHEMA = """
CREATE TABLE IF NOT EXISTS flows (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, owner TEXT, category TEXT, visibility TEXT,
    tags TEXT, doc TEXT NOT NULL, created_at TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS ownership (
    flow_id TEXT PRIMARY KEY, owner TEXT, created TEXT, last_modified TEXT, history TEXT);
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, flow_id TEXT, status TEXT, triggered_by TEXT, start_ms INTEGER, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS permissions (
    flow_id TEXT, granted_to TEXT, permission TEXT, doc TEXT NOT NULL, PRIMARY KEY (flow_id, granted_to, permission));
CREATE TABLE IF NOT EXISTS subnets (id TEXT PRIMARY KEY, seq INTEGER, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT);
"""


def make_node(tmp_path):
    """A fake node whose state.db has the real schema; the connection stays open (a running node)."""
    data = tmp_path / 'var' / 'lib' / 'qflow'
    data.mkdir(parents=True)
    (data / 'flows').mkdir()
    (data / 'flows' / 'flow-1.json').write_text('{"id": "flow-1"}\n')
    conn = sqlite3.connect(str(data / 'state.db'), isolation_level=None)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.executescript(SCHEMA)
    with conn:
        conn.execute('BEGIN')
        for i in range(3):
            conn.execute('INSERT INTO flows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
                         ('flow-%d' % i, i + 1, 'alice', 'etl', 'private', '[]', '{"id": "flow-%d"}' % i, 't0', 't0'))
            conn.execute('INSERT INTO ownership VALUES (?, ?, ?, ?, ?)', ('flow-%d' % i, 'alice', 't0', 't0', '[]'))
            conn.execute('INSERT INTO permissions VALUES (?, ?, ?, ?)', ('flow-%d' % i, 'bob', 'read', '{}'))
        for i in range(5):
            conn.execute('INSERT INTO executions VALUES (?, ?, ?, ?, ?, ?)', ('ex-%d' % i, 'flow-0', 'completed', 'alice', i, '{}'))
        conn.execute("INSERT INTO subnets VALUES ('s1', 1, '{}')")
        conn.execute("INSERT INTO kv VALUES ('qflow_version', '1.4.2')")
    etc = tmp_path / 'etc' / 'qflow'
    etc.mkdir(parents=True)
    (etc / 'qflow-config.yaml').write_text('qflow:\n  engine:\n    maxConcurrentFlows: 100\n')
    return {'data_dir': str(data), 'config_path': str(etc / 'qflow-config.yaml'), 'env_path': str(etc / 'qflow.env'),
            'backup_dir': str(tmp_path / 'backups'), 'conn': conn, 'db': str(data / 'state.db')}


def rows(db, table):
    conn = sqlite3.connect(db)
    try:
        return sorted(conn.execute('SELECT * FROM %s' % table).fetchall())
    finally:
        conn.close()


def tables(db):
    return dict((t, rows(db, t)) for t in ('flows', 'ownership', 'permissions', 'executions', 'subnets', 'kv'))


def tree_state(path):
    """{relative path: bytes} of every file below path (SQLite -wal included; not the -shm index any reader updates)."""
    state = {}
    for root, dummy, files in os.walk(path):
        for name in files:
            if name.endswith('-shm'):
                continue
            full = os.path.join(root, name)
            with open(full, 'rb') as handle:
                state[os.path.relpath(full, path)] = handle.read()
    return state


def node_state(node):
    with open(node['config_path'], 'rb') as handle:
        return tree_state(node['data_dir']), handle.read()


def take_backup(node):
    kind, res = h.run_module(backup, h.module_args(node))
    assert kind == 'exit' and res['changed'] is True, res
    return res['backup']


def catalog(node):
    with open(os.path.join(node['backup_dir'], 'catalog.json')) as handle:
        return json.load(handle)['backups']


def test_whole_restore_four_steps(tmp_path):
    node = make_node(tmp_path)
    made = take_backup(node)
    original = tables(node['db'])
    node['conn'].execute("DELETE FROM flows WHERE id='flow-1'")
    node['conn'].execute("INSERT INTO executions VALUES ('ex-new', 'flow-2', 'running', 'bob', 9, '{}')")
    node['conn'].close()  # whole restore: the node is stopped
    with open(node['config_path'], 'w') as handle:
        handle.write('qflow:\n  engine:\n    maxConcurrentFlows: 5\n')
    with open(os.path.join(node['data_dir'], 'flows', 'flow-9.json'), 'w') as handle:
        handle.write('{"id": "flow-9"}\n')
    args = h.module_args(node, state='restored', backup_id=made['id'])

    before_node = node_state(node)
    before_backups = h.dir_state(node['backup_dir'])
    kind, res = h.run_module(backup, args, check_mode=True, diff=True)
    assert kind == 'exit' and res['changed'] is True, res
    assert res['safety_backup_id'] is None and res['backup_id'] == made['id']
    assert res['restored']['config'] is True and res['restored']['files'] == ['data/state.db']
    assert res['restored']['removed'] == ['data/flows/flow-9.json']
    assert res['diff']['before']['config_sha256'] != res['diff']['after']['config_sha256']
    assert res['diff']['after']['files']['data/flows/flow-9.json'] is None
    assert node_state(node) == before_node and h.dir_state(node['backup_dir']) == before_backups

    kind, res = h.run_module(backup, args, diff=True)
    assert kind == 'exit' and res['changed'] is True, res
    safety = res['safety_backup_id']
    entries = dict((e['id'], e) for e in catalog(node))
    assert safety in entries and entries[safety]['kind'] == 'safety' and entries[safety]['verified'] is True
    assert tables(node['db']) == original
    assert open(node['config_path']).read() == 'qflow:\n  engine:\n    maxConcurrentFlows: 100\n'
    assert not os.path.exists(os.path.join(node['data_dir'], 'flows', 'flow-9.json'))
    assert os.path.exists(os.path.join(node['data_dir'], 'flows', 'flow-1.json'))
    assert not [n for n in os.listdir(node['data_dir']) if n.startswith(engine.TEMP_PREFIX)]
    assert not [n for n in os.listdir(node['backup_dir']) if n.startswith('qflow-restore-')]
    # the safety backup holds the state before the restore
    with tarfile.open(os.path.join(node['backup_dir'], entries[safety]['file'])) as tar:
        assert b'maxConcurrentFlows: 5' in tar.extractfile('config/qflow-config.yaml').read()
        assert 'data/flows/flow-9.json' in tar.getnames()

    after_node = node_state(node)
    after_backups = h.dir_state(node['backup_dir'])
    kind, res = h.run_module(backup, args, check_mode=True, diff=True)
    assert kind == 'exit' and res['changed'] is False, res
    assert res['restored'] == {'parts': ['config', 'data'], 'config': False, 'files': [], 'removed': [], 'tables': {}}
    assert res['diff'] == {'before': {}, 'after': {}}

    kind, res = h.run_module(backup, args)
    assert kind == 'exit' and res['changed'] is False and res['safety_backup_id'] is None, res
    assert node_state(node) == after_node and h.dir_state(node['backup_dir']) == after_backups


def test_whole_restore_over_a_damaged_database_keeps_it_as_evidence(tmp_path):
    """Data corruption: the state being replaced cannot get a safety backup; its bytes are kept instead."""
    node = make_node(tmp_path)
    made = take_backup(node)
    original = tables(node['db'])
    node['conn'].close()  # the node is stopped
    with open(node['db'], 'r+b') as handle:  # damage the database past its header
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(size // 2)
        handle.write(os.urandom(min(8192, size // 2)))
        handle.seek(100)
        handle.write(os.urandom(100))
    damaged = open(node['db'], 'rb').read()
    args = h.module_args(node, state='restored', backup_id=made['id'])

    kind, res = h.run_module(backup, args, check_mode=True)
    assert kind == 'exit' and res['changed'] is True and 'damaged_copy' not in res, res
    assert open(node['db'], 'rb').read() == damaged

    kind, res = h.run_module(backup, args)
    assert kind == 'exit' and res['changed'] is True, res
    assert res['safety_backup_id'] is None and res['damaged_copy'].endswith('.tar.gz'), res
    assert 'the replaced state was damaged' in res['msg']
    assert tables(node['db']) == original
    assert os.stat(res['damaged_copy']).st_mode & 0o777 == 0o600
    with tarfile.open(res['damaged_copy']) as tar:
        assert tar.extractfile('data/state.db').read() == damaged
    assert os.path.basename(res['damaged_copy']) not in json.dumps(catalog(node))

    kind, res = h.run_module(backup, args)
    assert kind == 'exit' and res['changed'] is False, res


def test_flows_only_restore_four_steps_online(tmp_path):
    node = make_node(tmp_path)
    made = take_backup(node)
    original = tables(node['db'])
    conn = node['conn']  # the node keeps running: its connection stays open
    conn.execute("DELETE FROM flows WHERE id='flow-1'")
    conn.execute("DELETE FROM ownership WHERE flow_id='flow-1'")
    conn.execute("UPDATE flows SET owner='mallory' WHERE id='flow-2'")
    conn.execute("INSERT INTO flows VALUES ('flow-x', 9, 'eve', 'etl', 'public', '[]', '{}', 't1', 't1')")
    conn.execute("INSERT INTO executions VALUES ('ex-new', 'flow-2', 'running', 'bob', 9, '{}')")
    conn.execute("INSERT INTO kv VALUES ('readiness_probe', '1')")
    with open(node['config_path'], 'a') as handle:
        handle.write('# local change\n')
    changed = tables(node['db'])
    config = open(node['config_path']).read()
    args = h.module_args(node, state='restored', backup_id='latest', restore_parts=['flows'])

    before_backups = h.dir_state(node['backup_dir'])
    kind, res = h.run_module(backup, args, check_mode=True, diff=True)
    assert kind == 'exit' and res['changed'] is True, res
    assert res['backup_id'] == made['id'] and res['restored']['parts'] == ['flows']
    assert res['restored']['tables'] == {'flows': {'rows_before': 3, 'rows_after': 3}, 'ownership': {'rows_before': 2, 'rows_after': 3}}
    assert res['restored']['files'] == [] and res['restored']['config'] is False
    assert res['diff']['before']['tables']['ownership']['rows'] == 2
    assert tables(node['db']) == changed and h.dir_state(node['backup_dir']) == before_backups

    kind, res = h.run_module(backup, args, diff=True)
    assert kind == 'exit' and res['changed'] is True and res['safety_backup_id'], res
    now = tables(node['db'])
    for table in ('flows', 'ownership', 'permissions'):
        assert now[table] == original[table]
    for table in ('executions', 'kv', 'subnets'):  # other tables untouched
        assert now[table] == changed[table]
    assert ('ex-new', 'flow-2', 'running', 'bob', 9, '{}') in now['executions']
    assert open(node['config_path']).read() == config
    # the live connection of the node sees the restored rows
    assert conn.execute("SELECT owner FROM flows WHERE id='flow-2'").fetchone() == ('alice',)
    # latest still means the scheduled backup, not the safety backup taken by the restore
    kind, res = h.run_module(backup, args, check_mode=True)
    assert kind == 'exit' and res['changed'] is False and res['backup_id'] == made['id'], res

    after = tree_state(node['backup_dir'])
    kind, res = h.run_module(backup, args)
    assert kind == 'exit' and res['changed'] is False and res['safety_backup_id'] is None, res
    assert tree_state(node['backup_dir']) == after and tables(node['db']) == now


def test_executions_restore_and_data_supersedes_tables(tmp_path):
    node = make_node(tmp_path)
    made = take_backup(node)
    node['conn'].execute("DELETE FROM executions")
    node['conn'].execute("DELETE FROM flows WHERE id='flow-0'")
    kind, res = h.run_module(backup, h.module_args(node, state='restored', backup_id=made['id'], restore_parts=['executions']))
    assert kind == 'exit' and res['changed'] is True and list(res['restored']['tables']) == ['executions'], res
    assert len(rows(node['db'], 'executions')) == 5 and len(rows(node['db'], 'flows')) == 2
    kind, res = h.run_module(backup, h.module_args(node, state='restored', backup_id=made['id'], restore_parts=['data', 'flows']),
                             check_mode=True)
    assert kind == 'exit' and res['restored']['parts'] == ['data'], res


def test_corrupted_or_truncated_archive_is_refused(tmp_path):
    node = make_node(tmp_path)
    made = take_backup(node)
    node['conn'].execute("DELETE FROM flows")
    node['conn'].close()
    before = node_state(node)
    blob = open(made['path'], 'rb').read()

    with open(made['path'], 'wb') as handle:  # truncated
        handle.write(blob[:len(blob) // 2])
    for state, extra in (('restored', {}), ('restored', {'restore_parts': ['flows']}), ('test_restored', {})):
        for check_mode in (True, False):
            kind, res = h.run_module(backup, h.module_args(node, state=state, backup_id=made['id'], **extra), check_mode=check_mode)
            assert kind == 'fail', res
            assert engine.archive_name(made['id']) in res['msg'] and 'nothing was changed' in res['msg']
            assert node_state(node) == before

    # a member altered inside a well-formed archive whose catalog checksum was updated: the member is named
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(made['path'], 'w:gz') as tar:
        for info, data in members:
            if info.name == 'data/flows/flow-1.json':
                data = data.replace(b'flow-1', b'flow-X')
            tar.addfile(info, io.BytesIO(data))
    entries = catalog(node)
    entries[0]['sha256'] = engine.sha256_file(made['path'])
    engine.write_catalog(node['backup_dir'], {'format': 1, 'backups': entries})
    kind, res = h.run_module(backup, h.module_args(node, state='restored', backup_id=made['id']))
    assert kind == 'fail' and 'data/flows/flow-1.json' in res['msg'], res
    assert node_state(node) == before
    assert [e['id'] for e in catalog(node)] == [made['id']]  # no safety backup was taken


def test_unknown_backup_id_lists_known_ids(tmp_path):
    node = make_node(tmp_path)
    made = take_backup(node)
    before = node_state(node)
    backups = h.dir_state(node['backup_dir'])
    for state in ('restored', 'test_restored'):
        kind, res = h.run_module(backup, h.module_args(node, state=state, backup_id='qflow-node-1-19990101T000000Z'))
        assert kind == 'fail' and 'unknown backup_id qflow-node-1-19990101T000000Z' in res['msg'], res
        assert made['id'] in res['msg'] and 'nothing was changed' in res['msg']
    kind, res = h.run_module(backup, h.module_args(node, state='restored', backup_id='latest', node_id='other-node'))
    assert kind == 'fail' and 'no completed backup of node other-node' in res['msg'] and made['id'] in res['msg']
    kind, res = h.run_module(backup, h.module_args(node, state='restored'))
    assert kind == 'fail' and 'backup_id' in res['msg']
    assert node_state(node) == before and h.dir_state(node['backup_dir']) == backups
    empty = dict(node, backup_dir=str(tmp_path / 'none'))
    kind, res = h.run_module(backup, h.module_args(empty, state='restored', backup_id='latest'))
    assert kind == 'fail' and 'does not exist' in res['msg'] and not os.path.exists(empty['backup_dir'])


def test_test_restored_compares_counts_and_leaves_node_untouched(tmp_path):
    node = make_node(tmp_path)
    made = take_backup(node)
    node['conn'].execute("DELETE FROM executions")  # the live node differs: the test restore compares with the archive
    before = node_state(node)
    target = str(tmp_path / 'scratch')

    kind, res = h.run_module(backup, h.module_args(node, state='test_restored', backup_id='latest', restore_target=target),
                             check_mode=True)
    assert kind == 'exit' and res['changed'] is False and res['comparison']['files_ok'] is True, res
    assert not os.path.exists(target) and res['restore_target'] is None

    for dummy in range(2):  # a second run replaces the earlier test restore
        kind, res = h.run_module(backup, h.module_args(node, state='test_restored', backup_id=made['id'], restore_target=target))
        assert kind == 'exit' and res['changed'] is False, res
        comparison = res['comparison']
        assert comparison['files_ok'] is True and comparison['errors'] == []
        assert comparison['tables']['executions'] == {'archived_rows': 5, 'restored_rows': 5}
        assert comparison['tables']['flows'] == {'archived_rows': 3, 'restored_rows': 3}
        assert res['restore_target'] == target and os.path.isfile(os.path.join(target, 'data', 'state.db'))
        assert os.path.isfile(os.path.join(target, 'config', 'qflow-config.yaml'))
    assert node_state(node) == before

    kind, res = h.run_module(backup, h.module_args(node, state='test_restored', backup_id=made['id']))
    assert kind == 'exit' and res['restore_target'] is None and res['comparison']['errors'] == [], res
    assert node_state(node) == before

    for bad in (node['data_dir'], os.path.join(node['data_dir'], 'sub'), str(tmp_path)):
        kind, res = h.run_module(backup, h.module_args(node, state='test_restored', backup_id=made['id'], restore_target=bad))
        assert kind == 'fail' and 'restore_target' in res['msg'], res
    os.makedirs(str(tmp_path / 'busy'))
    open(str(tmp_path / 'busy' / 'keep.txt'), 'w').close()
    kind, res = h.run_module(backup, h.module_args(node, state='test_restored', backup_id=made['id'], restore_target=str(tmp_path / 'busy')))
    assert kind == 'fail' and 'not empty' in res['msg'] and os.path.exists(str(tmp_path / 'busy' / 'keep.txt'))
    assert node_state(node) == before


def test_manifest_records_row_counts(tmp_path):
    node = make_node(tmp_path)
    made = take_backup(node)
    with tarfile.open(made['path']) as tar:
        manifest = json.loads(tar.extractfile('manifest.json').read().decode('utf-8'))
    assert manifest['tables']['data/state.db']['executions'] == 5
    assert engine.verify_archive(made['path'], made['sha256'])['ok'] is True


def test_restore_onto_empty_node_without_sources(tmp_path):
    node = make_node(tmp_path)
    made = take_backup(node)
    node['conn'].close()
    fresh = dict(node, data_dir=str(tmp_path / 'fresh' / 'data'), config_path=str(tmp_path / 'fresh' / 'etc' / 'qflow-config.yaml'))
    os.makedirs(os.path.dirname(fresh['config_path']))
    kind, res = h.run_module(backup, h.module_args(fresh, state='restored', backup_id=made['id']))
    assert kind == 'exit' and res['changed'] is True, res
    assert tables(os.path.join(fresh['data_dir'], 'state.db')) == tables(node['db'])
    assert open(fresh['config_path']).read() == open(node['config_path']).read()
    kind, res = h.run_module(backup, h.module_args(fresh, state='restored', backup_id=made['id']))
    assert kind == 'exit' and res['changed'] is False, res


def test_whole_restore_refused_while_the_database_is_open(tmp_path):
    node = make_node(tmp_path)
    made = take_backup(node)
    node['conn'].execute("DELETE FROM flows")  # the node is still running (connection open)
    before = node_state(node)
    backups = h.dir_state(node['backup_dir'])
    kind, res = h.run_module(backup, h.module_args(node, state='restored', backup_id=made['id']))
    assert kind == 'fail' and 'stop the node' in res['msg'] and 'nothing was changed' in res['msg'], res
    assert node_state(node) == before and h.dir_state(node['backup_dir']) == backups
    kind, res = h.run_module(backup, h.module_args(node, state='restored', backup_id=made['id']), check_mode=True)
    assert kind == 'exit' and res['restored']['files'] == ['data/state.db'], res
