# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.config, run through main() on a temp config file."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import stat

import pytest
import yaml

import qflow_module_runner
from qflow_module_runner import run_module

from ansible_collections.qflow.ops.plugins.module_utils import _config as engine
from ansible_collections.qflow.ops.plugins.modules import config

ORIGINAL = b"""# qflow node config (comments are kept in the backup)
qflow:
  engine:
    maxConcurrentFlows: 100
    maxMemoryMB: 2048
  logging:
    level: info
    maxFileSize: 100MB
    maxFiles: 10
  validation:
    cache:
      enabled: true
"""
JWT = 's3cr3t-jwt-value-7f1c9e'


@pytest.fixture
def node(tmp_path):
    etc = tmp_path / 'etc'
    etc.mkdir()
    path = etc / 'qflow-config.yaml'
    path.write_bytes(ORIGINAL)
    os.chmod(str(path), 0o640)
    return {'root': str(tmp_path), 'path': str(path), 'backup_dir': str(etc / 'config-backups')}


def tree(root):
    """Every file under root: relative path -> (bytes, mode)."""
    out = {}
    for base, dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(base, name)
            with open(full, 'rb') as handle:
                out[os.path.relpath(full, root)] = (handle.read(), stat.S_IMODE(os.stat(full).st_mode))
    return out


def backups(node):
    return engine.list_backups(node['backup_dir'])


def read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def test_four_step_settings(node):
    args = {'path': node['path'], 'settings': {'engine.maxConcurrentFlows': 200, 'logging.level': 'warn'}}

    # 1. check mode: changed, diff, nothing written (not even the backup dir)
    res, failed = run_module(config, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True, res
    assert read(node['path']) == ORIGINAL and not os.path.exists(node['backup_dir'])
    assert res['changed_keys'] == ['engine.maxConcurrentFlows', 'logging.level']
    assert 'maxConcurrentFlows: 100' in res['diff']['before'] and 'maxConcurrentFlows: 200' in res['diff']['after']
    assert res['diff']['before_header'] == res['diff']['after_header'] == node['path']
    assert res['valid'] is True and res['errors'] == [] and engine.BACKUP_ID_RE.match(res['backup_id'])

    # 2. real run: backup of the old bytes (0600), new file atomically written with the old mode
    res, failed = run_module(config, args, diff=True)
    assert not failed and res['changed'] is True, res
    assert backups(node) == [res['backup_id']]
    assert res['backup_path'] == os.path.join(node['backup_dir'], 'qflow-config.%s.yaml' % res['backup_id'])
    assert read(res['backup_path']) == ORIGINAL and stat.S_IMODE(os.stat(res['backup_path']).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(node['backup_dir']).st_mode) == 0o700
    written = read(node['path'])
    assert yaml.safe_load(written) == {'qflow': {'engine': {'maxConcurrentFlows': 200, 'maxMemoryMB': 2048},
                                                 'logging': {'level': 'warn', 'maxFileSize': '100MB', 'maxFiles': 10},
                                                 'validation': {'cache': {'enabled': True}}}}
    assert written.decode('utf-8') == res['diff']['after']
    assert stat.S_IMODE(os.stat(node['path']).st_mode) == 0o640
    assert res['changed_keys'] == ['engine.maxConcurrentFlows', 'logging.level']
    assert not [n for n in os.listdir(os.path.dirname(node['path'])) if '.tmp-' in n]
    state = tree(node['root'])

    # 3. check mode again: no change
    res, failed = run_module(config, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is False and res['backup_id'] is None and res['changed_keys'] == []
    assert res['diff']['before'] == res['diff']['after']
    assert tree(node['root']) == state

    # 4. real run again: no change, nothing written
    res, failed = run_module(config, args)
    assert not failed and res['changed'] is False and res['backup_id'] is None
    assert tree(node['root']) == state


def test_content_replaces_and_reformatting_alone_is_no_change(node):
    same = yaml.safe_load(ORIGINAL)
    res, failed = run_module(config, {'path': node['path'], 'content': same})
    assert not failed and res['changed'] is False
    assert read(node['path']) == ORIGINAL  # comment kept: nothing written

    new = {'qflow': {'engine': {'maxConcurrentFlows': 50}}}
    res, failed = run_module(config, {'path': node['path'], 'content': new})
    assert not failed and res['changed'] is True
    assert yaml.safe_load(read(node['path'])) == new
    assert res['changed_keys'] == ['engine.maxConcurrentFlows', 'engine.maxMemoryMB', 'logging.level', 'logging.maxFileSize',
                                   'logging.maxFiles', 'validation.cache.enabled']


def test_content_creates_a_missing_file_settings_do_not(node, tmp_path):
    path = str(tmp_path / 'etc' / 'new.yaml')
    res, failed = run_module(config, {'path': path, 'settings': {'engine.maxConcurrentFlows': 5}})
    assert failed and path in res['msg'] and 'does not exist' in res['msg']
    assert not os.path.exists(path)

    content = {'qflow': {'engine': {'maxConcurrentFlows': 5}}}
    res, failed = run_module(config, {'path': path, 'content': content}, check_mode=True)
    assert not failed and res['changed'] is True and res['backup_id'] is None and not os.path.exists(path)
    assert res['diff']['before'] == ''
    res, failed = run_module(config, {'path': path, 'content': content})
    assert not failed and res['changed'] is True and res['backup_id'] is None
    assert yaml.safe_load(read(path)) == content and stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert not os.path.exists(node['backup_dir'])
    res, failed = run_module(config, {'path': path, 'content': content})
    assert not failed and res['changed'] is False


@pytest.mark.parametrize('settings, expected', [
    ({'engine.maxConcurrentFlows': 'lots'}, "qflow.engine.maxConcurrentFlows: expected an integer from 1 to 100000, got 'lots'"),
    ({'engine.maxConcurentFlows': 200}, 'qflow.engine.maxConcurentFlows: unknown key (did you mean maxConcurrentFlows?)'),
    ({'engine.maxMemoryMB': 10}, 'qflow.engine.maxMemoryMB: expected an integer from 64 to 1048576, got 10'),
    ({'monitoring.samplingRate': 2}, 'qflow.monitoring.samplingRate: expected a number from 0 to 1, got 2'),
    ({'networking.apiPort': 0}, 'qflow.networking.apiPort: expected an integer from 1 to 65535, got 0'),
    ({'logging.level': 'verbose'}, "qflow.logging.level: expected one of debug, info, warn, error, got 'verbose'"),
    ({'logging': 'info'}, "qflow.logging: expected a mapping, got 'info'"),
])
def test_bad_input_fails_and_changes_nothing(node, settings, expected):
    run_module(config, {'path': node['path'], 'settings': {'engine.maxConcurrentFlows': 150}})  # one backup exists
    state = tree(node['root'])
    for check_mode in (True, False):
        res, failed = run_module(config, {'path': node['path'], 'settings': settings}, check_mode=check_mode)
        assert failed and expected in res['msg'], res['msg']
        assert 'nothing was written' in res['msg'] and node['path'] in res['msg']
        assert res['errors'] == [expected] and res['valid'] is False and res['changed'] is False
        assert tree(node['root']) == state


def test_all_errors_are_reported_together(node):
    state = tree(node['root'])
    res, failed = run_module(config, {'path': node['path'], 'settings': {
        'engine.maxConcurrentFlows': 'lots', 'engine.maxConcurentFlows': 1, 'validation.timeoutPerLayer': 50}})
    assert failed and len(res['errors']) == 3 and '(3 errors)' in res['msg']
    for error in res['errors']:
        assert error in res['msg']
    assert tree(node['root']) == state


def test_existing_invalid_keys_are_reported_as_such(node):
    with open(node['path'], 'ab') as handle:
        handle.write(b'  storage:\n    backend: sqlite\n')
    state = tree(node['root'])
    res, failed = run_module(config, {'path': node['path'], 'settings': {'engine.maxConcurrentFlows': 200}})
    assert failed and 'qflow.storage.backend: unknown key' in res['msg'] and '1 of them already in the current file' in res['msg']
    assert tree(node['root']) == state
    # removing the key with null repairs it
    res, failed = run_module(config, {'path': node['path'], 'settings': {'storage.backend': None}})
    assert not failed and res['changed'] is True and res['changed_keys'] == ['storage.backend']
    # rolling back to the invalid file is allowed (recovery), with a warning
    res, failed = run_module(config, {'path': node['path'], 'state': 'rolled_back', 'backup_id': res['backup_id']})
    assert not failed and res['changed'] is True and res['valid'] is False
    assert res['errors'] == ['qflow.storage.backend: unknown key (known keys here: ipfsApiUrl, enableEncryption, compressionLevel)']
    assert any('is not valid' in w for w in res['_warnings'])
    assert tree(node['root'])[os.path.relpath(node['path'], node['root'])][0] == state[os.path.relpath(node['path'], node['root'])][0]


def test_unparsable_file(node):
    with open(node['path'], 'wb') as handle:
        handle.write(b'qflow:\n  security:\n    jwtSecret: %s: oops\n' % JWT.encode())
    res, failed = run_module(config, {'path': node['path'], 'state': 'validated'})
    assert failed and 'does not parse as YAML: mapping values are not allowed here at line 3' in res['msg']
    assert JWT not in json.dumps(res)  # no snippet of the file in the message
    with open(node['path'], 'wb') as handle:
        handle.write(b'qflow: [unclosed\n')
    state = tree(node['root'])
    res, failed = run_module(config, {'path': node['path'], 'settings': {'engine.maxConcurrentFlows': 200}})
    assert failed and 'does not parse as YAML' in res['msg'] and node['path'] in res['msg']
    res, failed = run_module(config, {'path': node['path'], 'state': 'validated'})
    assert failed and res['valid'] is False and 'does not parse as YAML' in res['msg']
    assert tree(node['root']) == state
    # content replaces it, with a backup of the broken bytes
    res, failed = run_module(config, {'path': node['path'], 'content': {'qflow': {}}})
    assert not failed and res['changed'] is True and read(res['backup_path']) == b'qflow: [unclosed\n'


def test_validated_never_writes(node):
    state = tree(node['root'])
    res, failed = run_module(config, {'path': node['path'], 'state': 'validated'})
    assert not failed and res['valid'] is True and res['errors'] == [] and res['changed'] is False
    res, failed = run_module(config, {'path': node['path'], 'state': 'validated', 'content': {'qflow': {'dao': {'enableSubnets': 'y'}}}})
    assert failed and res['errors'] == ["qflow.dao.enableSubnets: expected a boolean (true or false), got 'y'"]
    assert res['msg'].startswith('content: invalid config (1 error)')
    res, failed = run_module(config, {'path': node['path'], 'state': 'validated', 'settings': {'engine.maxConcurrentFlows': 0}})
    assert failed and 'qflow.engine.maxConcurrentFlows' in res['msg']
    res, failed = run_module(config, {'path': node['path'] + '.missing', 'state': 'validated'})
    assert failed and 'does not exist' in res['msg']
    assert tree(node['root']) == state


def test_rollback(node):
    res, failed = run_module(config, {'path': node['path'], 'settings': {'engine.maxConcurrentFlows': 200}})
    first = res['backup_id']
    changed_bytes = read(node['path'])

    # check mode predicts, writes nothing
    state = tree(node['root'])
    res, failed = run_module(config, {'path': node['path'], 'state': 'rolled_back', 'backup_id': first}, check_mode=True, diff=True)
    assert not failed and res['changed'] is True and res['changed_keys'] == ['engine.maxConcurrentFlows']
    assert 'maxConcurrentFlows: 200' in res['diff']['before'] and 'maxConcurrentFlows: 100' in res['diff']['after']
    assert tree(node['root']) == state

    res, failed = run_module(config, {'path': node['path'], 'state': 'rolled_back', 'backup_id': first})
    assert not failed and res['changed'] is True and res['restored_id'] == first and res['valid'] is True
    assert read(node['path']) == ORIGINAL  # byte for byte, comment included
    assert stat.S_IMODE(os.stat(node['path']).st_mode) == 0o640
    assert res['backup_id'] != first and read(res['backup_path']) == changed_bytes
    assert backups(node) == [first, res['backup_id']]
    state = tree(node['root'])

    res, failed = run_module(config, {'path': node['path'], 'state': 'rolled_back', 'backup_id': 'qflow-config.%s.yaml' % first})
    assert not failed and res['changed'] is False and res['backup_id'] is None
    assert tree(node['root']) == state


def test_rollback_to_a_missing_backup_names_it_and_lists_the_available(node):
    res, failed = run_module(config, {'path': node['path'], 'state': 'rolled_back', 'backup_id': '20200101T000000Z'})
    assert failed and '20200101T000000Z' in res['msg'] and 'there are no backups in %s' % node['backup_dir'] in res['msg']
    made = run_module(config, {'path': node['path'], 'settings': {'engine.maxConcurrentFlows': 200}})[0]['backup_id']
    state = tree(node['root'])
    res, failed = run_module(config, {'path': node['path'], 'state': 'rolled_back', 'backup_id': '20200101T000000Z'})
    assert failed and 'backup 20200101T000000Z not found' in res['msg'] and 'available: %s' % made in res['msg']
    res, failed = run_module(config, {'path': node['path'], 'state': 'rolled_back', 'backup_id': '../qflow-config.yaml'})
    assert failed and 'is not a config backup id' in res['msg']
    assert tree(node['root']) == state
    res, failed = run_module(config, {'path': node['path'], 'state': 'rolled_back'})
    assert failed and 'backup_id' in res['msg']


def test_backups_in_the_same_second_and_keep_backups(node):
    ids = []
    for value in range(101, 106):
        res, failed = run_module(config, {'path': node['path'], 'settings': {'engine.maxConcurrentFlows': value}, 'keep_backups': 3})
        assert not failed, res
        ids.append(res['backup_id'])
    assert len(set(ids)) == 5
    assert backups(node) == ids[-3:]
    res, failed = run_module(config, {'path': node['path'], 'settings': {'engine.maxConcurrentFlows': 1}, 'keep_backups': 3},
                             check_mode=True)
    assert res['removed_backups'] == [ids[-3]] and backups(node) == ids[-3:]
    res, failed = run_module(config, {'path': node['path'], 'settings': {'engine.maxConcurrentFlows': 1}, 'keep_backups': -1})
    assert failed and 'keep_backups' in res['msg']


def test_secrets_are_masked(node, monkeypatch):
    seen = {}
    real_exit = qflow_module_runner._exit_json

    def exit_json(self, **kwargs):
        seen['no_log_values'] = set(self.no_log_values)
        return real_exit(self, **kwargs)

    monkeypatch.setattr(qflow_module_runner, '_exit_json', exit_json)
    other = 'another-secret-4411'
    res, failed = run_module(config, {'path': node['path'], 'settings': {'security.jwt.secret': JWT, 'security.jwtSecret': other}},
                             diff=True)
    assert not failed and res['changed'] is True
    assert JWT in seen['no_log_values'] and other in seen['no_log_values']
    dumped = json.dumps(res)
    assert JWT not in dumped and other not in dumped
    assert 'secret: \'********\'' in res['diff']['after'] and 'jwtSecret: \'********\'' in res['diff']['after']
    assert res['changed_keys'] == ['security.jwt.secret', 'security.jwtSecret']
    assert JWT in read(node['path']).decode('utf-8')  # the file itself holds the real value

    res, failed = run_module(config, {'path': node['path'], 'settings': {'logging.level': 'debug'}}, diff=True)
    assert JWT not in json.dumps(res) and JWT in seen['no_log_values']
    res, failed = run_module(config, {'path': node['path'], 'state': 'rolled_back', 'backup_id': res['backup_id']}, diff=True)
    assert not failed and JWT not in json.dumps(res) and JWT in seen['no_log_values']


def test_missing_pyyaml(node, monkeypatch):
    monkeypatch.setattr(engine, 'HAS_YAML', False)
    res, failed = run_module(config, {'path': node['path'], 'state': 'validated'})
    assert failed and 'PyYAML' in res['msg']


def test_settings_and_content_are_mutually_exclusive(node):
    res, failed = run_module(config, {'path': node['path'], 'settings': {'a': 1}, 'content': {'qflow': {}}})
    assert failed and 'mutually exclusive' in res['msg']
    res, failed = run_module(config, {'path': node['path']})
    assert failed and 'settings' in res['msg'] and 'content' in res['msg']


def test_write_failure_keeps_the_old_file(node, monkeypatch):
    def broken(path, data, mode=0o600):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(engine, 'write_atomic', broken)
    res, failed = run_module(config, {'path': node['path'], 'settings': {'engine.maxConcurrentFlows': 200}})
    assert failed and 'No space left on device' in res['msg'] and 'the old file is unchanged' in res['msg']
    assert read(node['path']) == ORIGINAL
