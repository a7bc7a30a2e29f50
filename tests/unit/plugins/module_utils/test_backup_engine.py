# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the private backup engine (plugins/module_utils/_backup.py)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import io
import json
import os
import sqlite3
import stat
import sys
import tarfile
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import qflow_backup_helpers as h  # noqa: E402  (puts the collection on sys.path)

from ansible_collections.qflow.ops.plugins.module_utils import _backup as engine  # noqa: E402


def _members(path):
    with tarfile.open(path, 'r:gz') as tar:
        return dict((m.name, tar.extractfile(m).read()) for m in tar.getmembers())


def test_consistent_copy_while_a_writer_commits(tmp_path):
    node = h.make_node(tmp_path)
    stop = threading.Event()
    written = {'batches': 0}

    def writer():
        conn = sqlite3.connect(os.path.join(node['data_dir'], 'state.db'), timeout=30, check_same_thread=False)
        batch = 1000
        while not stop.is_set():
            h.insert_batch(conn, batch)
            batch += 1
            written['batches'] += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written['batches'] < 20:  # the writer is really running
            stop.wait(0.01)
        results = [engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1', verify=True)
                   for dummy in range(3)]
    finally:
        stop.set()
        thread.join()

    assert written['batches'] > 20
    for result in results:
        assert result['verified'] is True
        db = _members(result['path'])['data/state.db']
        copy = tmp_path / ('copy-%s.db' % result['id'])
        copy.write_bytes(db)
        conn = sqlite3.connect(str(copy))
        assert conn.execute('PRAGMA integrity_check').fetchall() == [('ok',)]
        count = conn.execute('SELECT count(*) FROM executions').fetchone()[0]
        # a consistent snapshot holds whole transactions only: every batch has exactly BATCH rows
        assert count % h.BATCH == 0 and count >= 5 * h.BATCH
        assert conn.execute('SELECT count(*) FROM (SELECT batch FROM executions GROUP BY batch HAVING count(*) != ?)',
                            (h.BATCH,)).fetchone()[0] == 0
        conn.close()
    ids = [r['id'] for r in results]
    assert len(set(ids)) == 3  # same second: ids get a suffix


def test_archive_layout_manifest_modes(tmp_path):
    node = h.make_node(tmp_path)
    # a stale -wal/-shm pair must never be archived
    assert os.path.exists(os.path.join(node['data_dir'], 'state.db-wal'))
    result = engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1', env_path=node['env_path'])
    assert os.path.basename(result['path']) == 'qflow-backup-%s.tar.gz' % result['id']
    assert result['id'].startswith('qflow-node-1-')
    members = _members(result['path'])
    assert sorted(members) == ['config/qflow-config.yaml', 'data/flows/flow-1.json', 'data/state.db', 'manifest.json']
    manifest = json.loads(members['manifest.json'])
    assert manifest['format'] == 1 and manifest['id'] == result['id'] and manifest['node_id'] == 'qflow-node-1'
    assert manifest['qflow_version'] == '1.4.2'
    assert sorted(f['path'] for f in manifest['files']) == sorted(n for n in members if n != 'manifest.json')
    assert stat.S_IMODE(os.stat(node['backup_dir']).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(result['path']).st_mode) == 0o600
    cat_path = os.path.join(node['backup_dir'], 'catalog.json')
    assert stat.S_IMODE(os.stat(cat_path).st_mode) == 0o600
    catalog = json.loads(open(cat_path).read())
    entry = catalog['backups'][0]
    assert catalog['format'] == 1
    assert entry['status'] == 'completed' and entry['verified'] is True and entry['verified_at']
    assert entry['sha256'] == engine.sha256_file(result['path']) and entry['files'] == 3
    assert not [n for n in os.listdir(node['backup_dir']) if n.startswith('.tmp-')]
    assert result['excluded'] and 'include_env_file=false' in result['excluded'][0]


def test_env_file_excluded_by_default_and_included_on_request(tmp_path):
    node = h.make_node(tmp_path)
    default = engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1', env_path=node['env_path'])
    raw = open(default['path'], 'rb').read()
    secret = h.SECRET.split('=', 1)[1].encode()
    assert secret not in raw and secret not in gzip.decompress(raw)
    assert 'config/qflow.env' not in _members(default['path'])

    included = engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1',
                                    env_path=node['env_path'], include_env_file=True)
    members = _members(included['path'])
    assert secret in members['config/qflow.env']
    assert stat.S_IMODE(os.stat(included['path']).st_mode) == 0o600
    assert secret not in json.dumps(included['manifest']).encode()


def test_verify_detects_flipped_truncated_and_tampered(tmp_path):
    node = h.make_node(tmp_path)
    result = engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1')
    good = open(result['path'], 'rb').read()
    name = os.path.basename(result['path'])
    assert engine.verify_archive(result['path'], result['sha256']) == {'ok': True, 'errors': [], 'checked_files': 3}

    flipped = bytearray(good)
    for offset in (len(good) // 2, len(good) // 2 + 1, len(good) // 2 + 7):
        flipped[offset] ^= 0xFF
    open(result['path'], 'wb').write(bytes(flipped))
    check = engine.verify_archive(result['path'], result['sha256'])
    assert check['ok'] is False and all(name in e for e in check['errors'])
    assert any('sha256' in e for e in check['errors'])

    open(result['path'], 'wb').write(good[:len(good) // 2])
    check = engine.verify_archive(result['path'], result['sha256'])
    assert check['ok'] is False and any('truncated' in e and name in e for e in check['errors'])

    # the same checks without a catalog checksum still find the damage inside the archive
    check = engine.verify_archive(result['path'])
    assert check['ok'] is False and any('truncated' in e for e in check['errors'])


def test_verify_reports_tampered_member_and_extra_member(tmp_path):
    node = h.make_node(tmp_path)
    result = engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1')
    members = _members(result['path'])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        for member_name, data in members.items():
            if member_name == 'config/qflow-config.yaml':
                data = b'qflow:\n  engine:\n    maxConcurrentFlows: 100000\n'
            info = tarfile.TarInfo(member_name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo('data/intruder.sh')
        info.size = 3
        tar.addfile(info, io.BytesIO(b'rm\n'))
    open(result['path'], 'wb').write(buf.getvalue())
    check = engine.verify_archive(result['path'], result['sha256'])
    assert check['ok'] is False
    assert any('config/qflow-config.yaml' in e and 'manifest' in e for e in check['errors'])
    assert any('data/intruder.sh' in e for e in check['errors'])
    assert check['checked_files'] == 2


def test_verify_runs_integrity_check_on_databases(tmp_path):
    node = h.make_node(tmp_path)
    result = engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1')
    members = _members(result['path'])
    db = bytearray(members['data/state.db'])
    page = int.from_bytes(bytes(db[16:18]), 'big')
    db[page:2 * page] = b'\x55' * page  # overwrite the second page (a b-tree page) with garbage
    members['data/state.db'] = bytes(db)
    manifest = json.loads(members['manifest.json'])
    for item in manifest['files']:  # a consistent manifest, so only the SQLite check can catch it
        if item['path'] == 'data/state.db':
            item['sha256'] = engine.hashlib.sha256(members['data/state.db']).hexdigest()
    members['manifest.json'] = json.dumps(manifest).encode()
    with tarfile.open(result['path'], 'w:gz') as tar:
        for member_name, data in members.items():
            info = tarfile.TarInfo(member_name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    check = engine.verify_archive(result['path'])
    assert check['ok'] is False
    assert any('data/state.db' in e for e in check['errors'])


def test_interrupted_tar_leaves_nothing(tmp_path, monkeypatch):
    node = h.make_node(tmp_path)
    engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1')
    before = h.dir_state(node['backup_dir'])

    real = engine._write_archive

    def half_then_crash(tmp_archive, *args):
        real(tmp_archive, *args)
        with open(tmp_archive, 'r+b') as handle:
            handle.truncate(100)
        raise IOError(28, 'No space left on device')

    monkeypatch.setattr(engine, '_write_archive', half_then_crash)
    with pytest.raises(engine.BackupError) as err:
        engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1')
    assert 'No space left' in str(err.value) and 'nothing was kept' in str(err.value)
    assert h.dir_state(node['backup_dir']) == before


def test_failed_catalog_update_removes_published_archive(tmp_path, monkeypatch):
    node = h.make_node(tmp_path)
    engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1')
    before = h.dir_state(node['backup_dir'])

    def boom(*args):
        raise OSError(13, 'Permission denied')

    monkeypatch.setattr(engine, 'write_catalog', boom)
    with pytest.raises(engine.BackupError):
        engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1')
    assert h.dir_state(node['backup_dir']) == before


def test_orphaned_and_missing(tmp_path):
    node = h.make_node(tmp_path)
    first = engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1')
    second = engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1')
    os.unlink(first['path'])
    stray = os.path.join(node['backup_dir'], 'qflow-backup-qflow-node-1-20200101T000000Z.tar.gz')
    open(stray, 'wb').write(b'x')
    listing = engine.list_backups(node['backup_dir'])
    by_id = dict((b['id'], b) for b in listing['backups'])
    assert by_id[first['id']]['status'] == 'missing'
    assert by_id[second['id']]['status'] == 'completed'
    assert listing['orphaned'] == [os.path.basename(stray)]
    assert engine.latest_completed(listing['backups'])['id'] == second['id']
    assert engine.verify_entry(node['backup_dir'], by_id[first['id']])['ok'] is False


def test_bad_catalog_and_bad_node_id(tmp_path):
    node = h.make_node(tmp_path)
    os.makedirs(node['backup_dir'])
    open(os.path.join(node['backup_dir'], 'catalog.json'), 'w').write('{not json')
    with pytest.raises(engine.BackupError) as err:
        engine.list_backups(node['backup_dir'])
    assert 'catalog.json' in str(err.value) and 'move it aside' in str(err.value)
    with pytest.raises(engine.BackupError) as err:
        engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], '../evil')
    assert 'node_id' in str(err.value)


def test_backup_dir_inside_data_dir_is_not_archived(tmp_path):
    node = h.make_node(tmp_path)
    inner = os.path.join(node['data_dir'], 'backups')
    engine.create_backup(inner, node['data_dir'], node['config_path'], 'qflow-node-1')
    second = engine.create_backup(inner, node['data_dir'], node['config_path'], 'qflow-node-1')
    assert not [n for n in _members(second['path']) if n.startswith('data/backups')]
    assert 'data/backups (the backup dir)' in second['skipped_files']


def test_verify_large_database_member_through_temp_file(tmp_path, monkeypatch):
    node = h.make_node(tmp_path)
    result = engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], 'qflow-node-1')
    monkeypatch.setattr(engine, 'MAX_IN_MEMORY_DB', 1)
    spools = []
    real_mkdtemp = engine.tempfile.mkdtemp

    def mkdtemp(**kwargs):
        spools.append(real_mkdtemp(**kwargs))
        return spools[-1]

    monkeypatch.setattr(engine.tempfile, 'mkdtemp', mkdtemp)
    assert engine.verify_archive(result['path'], result['sha256'])['ok'] is True
    assert len(spools) == 1 and not os.path.exists(spools[0])
