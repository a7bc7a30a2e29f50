# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.backup and qflow.ops.backup_info, run through main()."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import io
import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import qflow_backup_helpers as h  # noqa: E402  (puts the collection on sys.path)

from ansible_collections.qflow.ops.plugins.module_utils import _backup as engine  # noqa: E402
from ansible_collections.qflow.ops.plugins.modules import backup, backup_info  # noqa: E402


def test_four_step_with_max_age(tmp_path):
    node = h.make_node(tmp_path)
    args = h.module_args(node, max_age='24h')

    kind, res = h.run_module(backup, args, check_mode=True, diff=True)
    assert kind == 'exit' and res['changed'] is True
    assert not os.path.exists(node['backup_dir'])  # check mode writes nothing, not even the dir
    assert res['diff']['before'] == {'latest_backup': None, 'count': 0}
    assert res['diff']['after']['count'] == 1 and res['diff']['after']['latest_backup'].startswith('qflow-node-1-')

    kind, res = h.run_module(backup, args, diff=True)
    assert kind == 'exit' and res['changed'] is True, res
    made = res['backup']
    assert made['verified'] is True and made['verified_at'] and made['files'] == 3
    assert os.path.isfile(made['path']) and made['sha256'] == engine.sha256_file(made['path'])
    catalog = json.load(open(os.path.join(node['backup_dir'], 'catalog.json')))
    assert [b['id'] for b in catalog['backups']] == [made['id']] and catalog['backups'][0]['verified'] is True
    assert res['diff'] == {'before': {'latest_backup': None, 'count': 0}, 'after': {'latest_backup': made['id'], 'count': 1}}
    state = h.dir_state(node['backup_dir'])

    kind, res = h.run_module(backup, args, check_mode=True, diff=True)
    assert kind == 'exit' and res['changed'] is False
    assert made['id'] in res['skipped_reason'] and 'max_age 24h' in res['skipped_reason']
    assert res['diff']['before'] == res['diff']['after']

    kind, res = h.run_module(backup, args)
    assert kind == 'exit' and res['changed'] is False and 'backup' not in res
    assert h.dir_state(node['backup_dir']) == state


def test_without_max_age_every_run_creates(tmp_path):
    node = h.make_node(tmp_path)
    ids = [h.run_module(backup, h.module_args(node))[1]['backup']['id'] for dummy in range(2)]
    assert len(set(ids)) == 2


def test_unverified_or_old_backup_does_not_satisfy_max_age(tmp_path):
    node = h.make_node(tmp_path)
    kind, res = h.run_module(backup, h.module_args(node, verify=False))
    assert kind == 'exit' and res['backup']['verified'] is False
    kind, res = h.run_module(backup, h.module_args(node, max_age='24h'), check_mode=True)
    assert res['changed'] is True
    kind, res = h.run_module(backup, h.module_args(node, max_age='24h'))
    assert res['changed'] is True
    kind, res = h.run_module(backup, h.module_args(node, max_age='0s'), check_mode=True)
    assert res['changed'] is True
    # a verified backup of another node in the same dir does not count either
    kind, res = h.run_module(backup, h.module_args(node, node_id='qflow-node-2', max_age='24h'), check_mode=True)
    assert res['changed'] is True


def test_missing_data_dir_fails_and_writes_nothing(tmp_path):
    node = h.make_node(tmp_path)
    missing = str(tmp_path / 'nope' / 'qflow')
    for check_mode in (True, False):
        kind, res = h.run_module(backup, h.module_args(node, data_dir=missing), check_mode=check_mode)
        assert kind == 'fail' and missing in res['msg'] and 'nothing was written' in res['msg']
        assert not os.path.exists(node['backup_dir'])
    kind, res = h.run_module(backup, h.module_args(node, config_path=str(tmp_path / 'none.yaml')))
    assert kind == 'fail' and str(tmp_path / 'none.yaml') in res['msg']
    assert not os.path.exists(node['backup_dir'])


def test_bad_max_age_and_node_id(tmp_path):
    node = h.make_node(tmp_path)
    kind, res = h.run_module(backup, h.module_args(node, max_age='one day'))
    assert kind == 'fail' and 'max_age' in res['msg']
    kind, res = h.run_module(backup, h.module_args(node, node_id='a/b'))
    assert kind == 'fail' and 'node_id' in res['msg']


def test_env_file_excluded_by_default_included_when_asked(tmp_path):
    node = h.make_node(tmp_path)
    secret = h.SECRET.split('=', 1)[1]
    kind, res = h.run_module(backup, h.module_args(node))
    assert secret not in json.dumps(res)
    with tarfile.open(res['backup']['path'], 'r:gz') as tar:
        names = tar.getnames()
        blob = b''.join(tar.extractfile(m).read() for m in tar.getmembers())
    assert 'config/qflow.env' not in names and secret.encode() not in blob
    kind, res = h.run_module(backup, h.module_args(node, include_env_file=True))
    assert secret not in json.dumps(res)
    with tarfile.open(res['backup']['path'], 'r:gz') as tar:
        assert secret.encode() in tar.extractfile('config/qflow.env').read()


def test_interrupted_backup_leaves_dir_and_catalog_unchanged(tmp_path, monkeypatch):
    node = h.make_node(tmp_path)
    h.run_module(backup, h.module_args(node))
    before = h.dir_state(node['backup_dir'])
    real_rename = os.rename

    def rename(src, dst):
        if dst.endswith('.tar.gz'):
            raise OSError(5, 'Input/output error')
        return real_rename(src, dst)

    monkeypatch.setattr(engine.os, 'rename', rename)
    kind, res = h.run_module(backup, h.module_args(node))
    monkeypatch.undo()
    assert kind == 'fail' and 'Input/output error' in res['msg'] and 'no partial archive' in res['msg']
    assert h.dir_state(node['backup_dir']) == before


def _make_two(tmp_path):
    node = h.make_node(tmp_path)
    first = h.run_module(backup, h.module_args(node))[1]['backup']
    second = h.run_module(backup, h.module_args(node))[1]['backup']
    return node, first, second


def test_info_lists_newest_first_and_verifies_latest(tmp_path):
    node, first, second = _make_two(tmp_path)
    kind, res = h.run_module(backup_info, {'backup_dir': node['backup_dir']})
    assert kind == 'exit' and res['changed'] is False
    assert [b['id'] for b in res['backups']] == [second['id'], first['id']]
    assert res['latest']['id'] == second['id'] and res['count'] == 2 and res['orphaned'] == []
    assert res['latest_age_seconds'] >= 0 and res['verification'] == {}
    kind, res = h.run_module(backup_info, {'backup_dir': node['backup_dir'], 'verify': True})
    assert list(res['verification']) == [second['id']] and res['verification'][second['id']]['ok'] is True
    kind, res = h.run_module(backup_info, {'backup_dir': node['backup_dir'], 'verify_all': True})
    assert sorted(res['verification']) == sorted([first['id'], second['id']]) and res['verification_failed'] == []


def test_info_never_writes(tmp_path):
    node, first, dummy = _make_two(tmp_path)
    open(first['path'], 'ab').write(b'junk')
    before = h.dir_state(node['backup_dir'])
    kind, res = h.run_module(backup_info, {'backup_dir': node['backup_dir'], 'verify_all': True})
    assert res['verification_failed'] == [first['id']]
    assert h.dir_state(node['backup_dir']) == before


def test_info_verify_flipped_bytes(tmp_path):
    node, first, dummy = _make_two(tmp_path)
    data = bytearray(open(first['path'], 'rb').read())
    data[len(data) // 2] ^= 0xFF
    open(first['path'], 'wb').write(bytes(data))
    kind, res = h.run_module(backup_info, {'backup_dir': node['backup_dir'], 'backup_id': first['id'], 'verify': True})
    check = res['verification'][first['id']]
    assert check['ok'] is False and any(os.path.basename(first['path']) in e for e in check['errors'])
    assert res['count'] == 1 and res['backups'][0]['id'] == first['id']


def test_info_verify_truncated(tmp_path):
    node, dummy, second = _make_two(tmp_path)
    data = open(second['path'], 'rb').read()
    open(second['path'], 'wb').write(data[:len(data) // 3])
    kind, res = h.run_module(backup_info, {'backup_dir': node['backup_dir'], 'verify': True})
    check = res['verification'][second['id']]
    assert check['ok'] is False
    assert any(os.path.basename(second['path']) in e and 'truncated' in e for e in check['errors'])


def test_info_verify_tampered_member(tmp_path):
    node, dummy, second = _make_two(tmp_path)
    with tarfile.open(second['path'], 'r:gz') as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(second['path'], 'w:gz') as tar:
        for name, data in members:  # old manifest kept, one member changed
            if name == 'data/flows/flow-1.json':
                data = b'{"id": "flow-1", "owner": "attacker"}\n'
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    kind, res = h.run_module(backup_info, {'backup_dir': node['backup_dir'], 'backup_id': second['id'], 'verify': True})
    errors = res['verification'][second['id']]['errors']
    assert any('data/flows/flow-1.json' in e and 'manifest' in e for e in errors)
    assert res['verification_failed'] == [second['id']]


def test_info_missing_orphaned_unknown(tmp_path):
    node, first, second = _make_two(tmp_path)
    os.unlink(second['path'])
    open(os.path.join(node['backup_dir'], 'qflow-backup-qflow-node-1-20200101T000000Z.tar.gz'), 'wb').write(b'x')
    kind, res = h.run_module(backup_info, {'backup_dir': node['backup_dir']})
    statuses = dict((b['id'], b['status']) for b in res['backups'])
    assert statuses == {first['id']: 'completed', second['id']: 'missing'}
    assert res['latest']['id'] == first['id']
    assert res['orphaned'] == ['qflow-backup-qflow-node-1-20200101T000000Z.tar.gz']

    kind, res = h.run_module(backup_info, {'backup_dir': node['backup_dir'], 'backup_id': 'qflow-node-1-19990101T000000Z'})
    assert kind == 'fail'
    assert 'qflow-node-1-19990101T000000Z' in res['msg'] and first['id'] in res['msg'] and second['id'] in res['msg']


def test_info_missing_backup_dir_is_not_an_error(tmp_path):
    kind, res = h.run_module(backup_info, {'backup_dir': str(tmp_path / 'none'), 'verify': True})
    assert kind == 'exit'
    assert res['backups'] == [] and res['latest'] is None and res['latest_age_seconds'] is None and res['count'] == 0
    assert not os.path.exists(str(tmp_path / 'none'))
    kind, res = h.run_module(backup_info, {'backup_dir': str(tmp_path / 'none'), 'backup_id': 'x'})
    assert kind == 'fail' and 'lists no backups' in res['msg']
