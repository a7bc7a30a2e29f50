# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.secret, run through main() on a temp env file."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os
import stat

import pytest

from qflow_module_runner import run_module

from ansible_collections.qflow.ops.plugins.module_utils import _secret as engine
from ansible_collections.qflow.ops.plugins.modules import secret

OLD_JWT = 'old-jwt-secret-value-0123456789abcdef-XYZ'
OLD_ENC = 'short-enc'
ENV = ('# qflow node env\n'
       'NODE_ID=qflow-node-1\n'
       'QFLOW_JWT_SECRET=%s\n'
       '\n'
       '# keep me\n'
       'QFLOW_ENCRYPTION_KEY=%s\n'
       'QFLOW_DATA_DIR=/var/lib/qflow\n'
       'QFLOW_PORT=8080\n' % (OLD_JWT, OLD_ENC)).encode('utf-8')


@pytest.fixture
def env(tmp_path):
    path = tmp_path / 'qflow.env'
    path.write_bytes(ENV)
    os.chmod(str(path), 0o600)
    return str(path)


def read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def values(path):
    return engine.parse_env(read(path).decode('utf-8'))[1]


def listing(path):
    return sorted(os.listdir(os.path.dirname(path)))


def assert_no_secret(result, *secrets):
    dumped = json.dumps(result)
    for value in secrets:
        assert value and value not in dumped, 'a secret value leaked into the result'


def test_present_four_steps(env):
    args = {'env_path': env, 'state': 'present'}

    # 1. check: changed (the encryption key is too short), nothing written
    res, failed = run_module(secret, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True, res
    assert res['rotated'] == ['QFLOW_ENCRYPTION_KEY']
    assert 'min_length' in res['reasons']['QFLOW_ENCRYPTION_KEY']
    assert res['fingerprints']['QFLOW_ENCRYPTION_KEY'] == {'before': engine.fingerprint(OLD_ENC), 'after': None}
    assert res['fingerprints']['QFLOW_JWT_SECRET']['before'] == res['fingerprints']['QFLOW_JWT_SECRET']['after']
    assert read(env) == ENV and listing(env) == ['qflow.env']
    assert 'QFLOW_ENCRYPTION_KEY=<redacted %s>' % engine.fingerprint(OLD_ENC) in res['diff']['before']
    assert_no_secret(res, OLD_JWT, OLD_ENC)

    # 2. real: new key, everything else byte for byte, backup of the old file, sidecar
    res, failed = run_module(secret, args, diff=True)
    assert not failed and res['changed'] is True and res['restart_required'] is True, res
    new = values(env)
    assert new['QFLOW_JWT_SECRET'] == OLD_JWT and len(new['QFLOW_ENCRYPTION_KEY']) == 64
    assert read(env) == ENV.replace(OLD_ENC.encode(), new['QFLOW_ENCRYPTION_KEY'].encode())
    assert res['fingerprints']['QFLOW_ENCRYPTION_KEY']['after'] == engine.fingerprint(new['QFLOW_ENCRYPTION_KEY'])
    assert read(res['backup_file']) == ENV and stat.S_IMODE(os.stat(res['backup_file']).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(env).st_mode) == 0o600
    meta = json.loads(read(res['meta_path']).decode())
    assert meta['QFLOW_ENCRYPTION_KEY']['fingerprint'] == engine.fingerprint(new['QFLOW_ENCRYPTION_KEY'])
    assert stat.S_IMODE(os.stat(res['meta_path']).st_mode) == 0o600
    assert_no_secret(res, OLD_JWT, OLD_ENC, new['QFLOW_ENCRYPTION_KEY'])
    after_first = read(env)
    files = listing(env)

    # 3. check again: no change; 4. real again: no change, same bytes, no new backup
    for check in (True, False):
        res, failed = run_module(secret, args, check_mode=check, diff=True)
        assert not failed and res['changed'] is False and res['rotated'] == [], res
        assert res['backup_file'] is None and res['diff']['before'] == res['diff']['after']
        assert read(env) == after_first and listing(env) == files
        assert_no_secret(res, OLD_JWT, new['QFLOW_ENCRYPTION_KEY'])


def test_present_appends_missing_key_keeps_lines(tmp_path):
    path = tmp_path / 'qflow.env'
    path.write_bytes(b'NODE_ID=n1\n# comment\nQFLOW_PORT=8080')  # no final newline
    os.chmod(str(path), 0o640)
    res, failed = run_module(secret, {'env_path': str(path), 'backup': False})
    assert not failed and res['rotated'] == ['QFLOW_JWT_SECRET', 'QFLOW_ENCRYPTION_KEY'] and res['backup_file'] is None
    data = read(str(path)).decode()
    assert data.startswith('NODE_ID=n1\n# comment\nQFLOW_PORT=8080\nQFLOW_JWT_SECRET=')
    assert set(values(str(path))) == {'NODE_ID', 'QFLOW_PORT', 'QFLOW_JWT_SECRET', 'QFLOW_ENCRYPTION_KEY'}
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o640
    assert sorted(os.listdir(str(tmp_path))) == ['qflow.env', 'qflow.env.meta.json']


def test_rotated_max_age_four_steps(env):
    args = {'env_path': env, 'state': 'rotated', 'max_age': '7d'}

    res, failed = run_module(secret, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True and res['rotated'] == ['QFLOW_JWT_SECRET', 'QFLOW_ENCRYPTION_KEY'], res
    assert all('age unknown' in r for r in res['reasons'].values())
    assert '<new value>' in res['diff']['after']
    assert read(env) == ENV and listing(env) == ['qflow.env']
    assert_no_secret(res, OLD_JWT, OLD_ENC)

    res, failed = run_module(secret, args, diff=True)
    assert not failed and res['changed'] is True, res
    new = values(env)
    assert new['QFLOW_JWT_SECRET'] != OLD_JWT and new['QFLOW_ENCRYPTION_KEY'] != OLD_ENC
    assert read(env) == ENV.replace(OLD_JWT.encode(), new['QFLOW_JWT_SECRET'].encode()).replace(
        OLD_ENC.encode(), new['QFLOW_ENCRYPTION_KEY'].encode()) + (
        'QFLOW_JWT_SECRET_PREVIOUS=%s\nQFLOW_ENCRYPTION_KEY_PREVIOUS=%s\n' % (OLD_JWT, OLD_ENC)).encode()
    assert 'QFLOW_JWT_SECRET_PREVIOUS=<redacted %s>' % engine.fingerprint(OLD_JWT) in res['diff']['after']
    assert read(res['backup_file']) == ENV
    for name in engine.SECRET_NAMES:
        assert res['fingerprints'][name]['after'] == engine.fingerprint(new[name])
        assert res['fingerprints'][name]['after'] in res['diff']['after']
    assert_no_secret(res, OLD_JWT, OLD_ENC, new['QFLOW_JWT_SECRET'], new['QFLOW_ENCRYPTION_KEY'])
    after_first, files = read(env), listing(env)
    meta_bytes = read(res['meta_path'])

    for check in (True, False):
        res, failed = run_module(secret, args, check_mode=check, diff=True)
        assert not failed and res['changed'] is False and res['rotated'] == [], res
        assert read(env) == after_first and listing(env) == files and read(res['meta_path']) == meta_bytes
        assert_no_secret(res, new['QFLOW_JWT_SECRET'], new['QFLOW_ENCRYPTION_KEY'])


def test_keep_previous_false_writes_only_the_new_values(env):
    res, failed = run_module(secret, {'env_path': env, 'state': 'rotated', 'keep_previous': False}, diff=True)
    assert not failed and res['changed'] is True, res
    new = values(env)
    assert read(env) == ENV.replace(OLD_JWT.encode(), new['QFLOW_JWT_SECRET'].encode()).replace(
        OLD_ENC.encode(), new['QFLOW_ENCRYPTION_KEY'].encode())
    assert 'PREVIOUS' not in res['diff']['after']


def test_keep_previous_false_removes_the_previous_value_of_an_earlier_rotation(env):
    """Revoke-all: after a graceful rotation, a rotation without grace leaves only the new value valid."""
    args = {'env_path': env, 'state': 'rotated', 'names': ['QFLOW_JWT_SECRET']}
    res, failed = run_module(secret, args)
    first = values(env)['QFLOW_JWT_SECRET']
    assert not failed and values(env)['QFLOW_JWT_SECRET_PREVIOUS'] == OLD_JWT
    res, failed = run_module(secret, dict(args, keep_previous=False), check_mode=True, diff=True)
    assert not failed and res['changed'] is True and values(env)['QFLOW_JWT_SECRET'] == first  # check mode
    assert 'QFLOW_JWT_SECRET_PREVIOUS=<unset>' in res['diff']['after']
    res, failed = run_module(secret, dict(args, keep_previous=False), diff=True)
    assert not failed and res['changed'] is True, res
    now = values(env)
    assert 'QFLOW_JWT_SECRET_PREVIOUS' not in now and now['QFLOW_JWT_SECRET'] not in (first, OLD_JWT)
    text = read(env).decode()
    assert 'PREVIOUS' not in text and OLD_JWT not in text and first not in text
    assert 'QFLOW_JWT_SECRET_PREVIOUS=<unset>' in res['diff']['after']
    assert_no_secret(res, OLD_JWT, first, now['QFLOW_JWT_SECRET'])


def test_second_rotation_replaces_the_previous_value(env):
    args = {'env_path': env, 'state': 'rotated', 'names': ['QFLOW_JWT_SECRET']}
    res, failed = run_module(secret, args)
    first = values(env)['QFLOW_JWT_SECRET']
    assert not failed and values(env)['QFLOW_JWT_SECRET_PREVIOUS'] == OLD_JWT
    res, failed = run_module(secret, args, diff=True)
    assert not failed and res['changed'] is True
    now = values(env)
    assert now['QFLOW_JWT_SECRET_PREVIOUS'] == first and now['QFLOW_JWT_SECRET'] not in (first, OLD_JWT)
    text = read(env).decode()
    assert text.count('QFLOW_JWT_SECRET_PREVIOUS=') == 1 and OLD_JWT not in text
    assert_no_secret(res, OLD_JWT, first, now['QFLOW_JWT_SECRET'])


def test_rotated_when_older_than_max_age(env):
    res, failed = run_module(secret, {'env_path': env, 'state': 'rotated', 'names': ['QFLOW_JWT_SECRET']})
    assert not failed and res['rotated'] == ['QFLOW_JWT_SECRET']
    first = values(env)['QFLOW_JWT_SECRET']
    assert values(env)['QFLOW_ENCRYPTION_KEY'] == OLD_ENC  # not named, not touched
    meta_file = res['meta_path']
    meta = json.loads(read(meta_file).decode())
    meta['QFLOW_JWT_SECRET']['rotated_at'] = '2026-01-01T00:00:00.000Z'
    with open(meta_file, 'w') as handle:
        json.dump(meta, handle)
    res, failed = run_module(secret, {'env_path': env, 'state': 'rotated', 'names': ['QFLOW_JWT_SECRET'], 'max_age': '7d'})
    assert not failed and res['changed'] is True and 'older than max_age' in res['reasons']['QFLOW_JWT_SECRET'], res
    assert values(env)['QFLOW_JWT_SECRET'] != first
    assert_no_secret(res, first, values(env)['QFLOW_JWT_SECRET'])


def test_rotated_without_max_age_always_changes(env):
    seen = set()
    for attempt in range(2):
        res, failed = run_module(secret, {'env_path': env, 'state': 'rotated', 'names': ['QFLOW_JWT_SECRET']})
        assert not failed and res['changed'] is True, attempt
        seen.add(values(env)['QFLOW_JWT_SECRET'])
    assert len(seen) == 2 and OLD_JWT not in seen


def test_no_log_values_registered(env, monkeypatch):
    captured = {}
    original = engine.plan

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        captured['hide'] = list(out['hide'])
        return out
    monkeypatch.setattr(engine, 'plan', spy)
    res, failed = run_module(secret, {'env_path': env, 'state': 'rotated'})
    assert not failed
    new = values(env)
    assert set(captured['hide']) == {OLD_JWT, OLD_ENC, new['QFLOW_JWT_SECRET'], new['QFLOW_ENCRYPTION_KEY']}


def test_missing_env_file(tmp_path):
    path = str(tmp_path / 'nope.env')
    res, failed = run_module(secret, {'env_path': path, 'state': 'rotated'})
    assert failed and 'does not exist' in res['msg'] and path in res['msg']
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('bad', ['7days', 'soon', '-1d'])
def test_bad_max_age(env, bad):
    res, failed = run_module(secret, {'env_path': env, 'state': 'rotated', 'max_age': bad})
    assert failed and res['msg'].startswith('max_age:') and 'nothing was changed' in res['msg'], res
    assert read(env) == ENV and listing(env) == ['qflow.env']


def test_length_too_small_for_min_length(env):
    res, failed = run_module(secret, {'env_path': env, 'length': 16, 'min_length': 40})
    assert failed and 'min_length' in res['msg']
    assert read(env) == ENV


def test_quoted_and_export_lines(tmp_path):
    path = tmp_path / 'qflow.env'
    long_value = 'q' * 40
    path.write_bytes(('export QFLOW_JWT_SECRET="%s"\nQFLOW_ENCRYPTION_KEY = \'%s\'\n' % (long_value, long_value)).encode())
    res, failed = run_module(secret, {'env_path': str(path)})
    assert not failed and res['changed'] is False
    res, failed = run_module(secret, {'env_path': str(path), 'state': 'rotated', 'names': ['QFLOW_ENCRYPTION_KEY']})
    assert not failed and res['changed'] is True
    text = read(str(path)).decode()
    assert text.startswith('export QFLOW_JWT_SECRET="%s"\nQFLOW_ENCRYPTION_KEY = ' % long_value)
    assert long_value not in text.splitlines()[1]


def test_fingerprint_format():
    assert engine.fingerprint('abc') == 'sha256:ba7816bf8f01'
    assert engine.redacted('abc') == '<redacted sha256:ba7816bf8f01>'
    assert engine.human_age(datetime.timedelta(days=8, hours=3).total_seconds()) == '8d03h'
