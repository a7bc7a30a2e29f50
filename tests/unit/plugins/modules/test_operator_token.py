# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.operator_token: the token verifies with the contract's algorithm (re-implemented here)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import datetime
import hashlib
import hmac
import json
import os

import pytest

from qflow_module_runner import run_module

from ansible_collections.qflow.ops.plugins.modules import operator_token

SECRET = 'jwt-secret-value-0123456789abcdef-for-the-tests'
PREVIOUS = 'previous-jwt-secret-value-0123456789abcdef'
ENV = ('# qflow node env\n'
       'NODE_ID=qflow-node-1\n'
       'export QFLOW_JWT_SECRET="%s"\n'
       'QFLOW_JWT_SECRET_PREVIOUS=%s\n'
       'QFLOW_PORT=8080\n' % (SECRET, PREVIOUS))


def parse(text):
    """The contract's timestamps: ISO 8601 UTC with milliseconds and a Z (JavaScript toISOString())."""
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc)


def verify(token, secret, now=None):
    """Contract §3.1, independently of the module: base64 JSON, HMAC-SHA256 over the |-joined fields, not expired."""
    payload = json.loads(base64.b64decode(token, validate=True).decode('utf-8'))
    assert set(payload) == {'identity', 'signature', 'timestamp', 'expiresAt', 'permissions', 'nonce'}
    message = '|'.join([payload['identity'], payload['timestamp'], payload['expiresAt'],
                        ','.join(payload['permissions']), payload['nonce']])
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, payload['signature']):
        raise ValueError('bad signature')
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if parse(payload['expiresAt']) <= now:
        raise ValueError('expired')
    return payload, parse(payload['timestamp']), parse(payload['expiresAt'])


@pytest.fixture
def env(tmp_path):
    path = tmp_path / 'qflow.env'
    path.write_text(ENV)
    os.chmod(str(path), 0o600)
    return str(path)


def snapshot(path):
    directory = os.path.dirname(path)
    return sorted((name, open(os.path.join(directory, name), 'rb').read()) for name in os.listdir(directory))


def assert_nothing_leaks(res):
    """The token only under 'token'; the secrets nowhere."""
    rest = dict((k, v) for k, v in res.items() if k != 'token')
    dumped = json.dumps(rest)
    assert SECRET not in dumped and PREVIOUS not in dumped
    if res.get('token'):
        assert res['token'] not in dumped
        assert res['token'][:24] not in dumped
    assert SECRET not in json.dumps(res)


@pytest.mark.parametrize('check_mode', [False, True])
def test_issued_token_verifies_with_the_contract_algorithm(env, check_mode):
    before = snapshot(env)
    res, failed = run_module(operator_token, {'env_path': env}, check_mode=check_mode)
    assert not failed and res['changed'] is False, res
    payload, issued, expires = verify(res['token'], SECRET)
    assert payload['identity'] == 'squid:ops:qflow-ops' == res['identity']
    assert payload['permissions'] == ['*'] == res['permissions']
    assert (expires - issued) == datetime.timedelta(hours=1)
    assert abs((issued - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 60
    assert res['expires_at'] == payload['expiresAt'] and res['issued_at'] == payload['timestamp']
    assert len(payload['nonce']) == 16 and int(payload['nonce'], 16) >= 0
    assert res['fingerprint'] == 'sha256:' + hashlib.sha256(res['token'].encode()).hexdigest()[:12]
    assert res['secret_fingerprint'] == 'sha256:' + hashlib.sha256(SECRET.encode()).hexdigest()[:12]
    with pytest.raises(ValueError):
        verify(res['token'], PREVIOUS)
    assert_nothing_leaks(res)
    assert snapshot(env) == before


def test_options_and_fresh_nonce(env):
    args = {'env_path': env, 'identity': 'squid:ops:game-day', 'permissions': ['flow:read', 'admin:*'], 'ttl': '90m'}
    first, failed = run_module(operator_token, args)
    assert not failed
    payload, issued, expires = verify(first['token'], SECRET)
    assert payload['identity'] == 'squid:ops:game-day' and payload['permissions'] == ['flow:read', 'admin:*']
    assert expires - issued == datetime.timedelta(minutes=90)
    second, failed = run_module(operator_token, args)
    assert not failed and second['changed'] is False and second['token'] != first['token']
    assert json.loads(base64.b64decode(second['token']))['nonce'] != payload['nonce']
    assert first['msg'].startswith('issued a token for squid:ops:game-day (%s)' % first['fingerprint'])


def test_missing_env_file(tmp_path):
    path = str(tmp_path / 'absent.env')
    res, failed = run_module(operator_token, {'env_path': path})
    assert failed and 'does not exist' in res['msg'] and 'qflow_env_path' in res['msg'], res
    assert 'no token was issued' in res['msg'] and 'token' not in res
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('content', ['NODE_ID=x\n', 'QFLOW_JWT_SECRET=\n', '# QFLOW_JWT_SECRET=commented\n'])
def test_missing_key(tmp_path, content):
    path = tmp_path / 'qflow.env'
    path.write_text(content)
    before = snapshot(str(path))
    res, failed = run_module(operator_token, {'env_path': str(path)})
    assert failed and 'has no QFLOW_JWT_SECRET' in res['msg'] and 'qflow.ops.secret' in res['msg'], res
    assert 'token' not in res and snapshot(str(path)) == before


def test_unreadable_env_file(env):
    if os.geteuid() == 0:
        pytest.skip('root reads any file')
    os.chmod(env, 0)
    try:
        res, failed = run_module(operator_token, {'env_path': env})
    finally:
        os.chmod(env, 0o600)
    assert failed and 'cannot read env file' in res['msg'] and 'become' in res['msg'], res
    assert 'token' not in res


@pytest.mark.parametrize('ttl', ['0', '0s', '31d', 'soon', '-5m'])
def test_bad_ttl(env, ttl):
    before = snapshot(env)
    res, failed = run_module(operator_token, {'env_path': env, 'ttl': ttl})
    assert failed and res['msg'].startswith('ttl') and 'no token was issued' in res['msg'], res
    assert 'token' not in res and snapshot(env) == before


@pytest.mark.parametrize('args,text', [
    ({'identity': 'squid:ops|admin'}, 'must not contain "|"'),
    ({'identity': '  '}, 'identity must not be empty'),
    ({'permissions': []}, 'at least one permission'),
    ({'permissions': ['flow:read,flow:execute']}, 'is invalid'),
    ({'permissions': ['*', '']}, 'is invalid'),
])
def test_bad_claims(env, args, text):
    res, failed = run_module(operator_token, dict(args, env_path=env))
    assert failed and text in res['msg'] and 'no token was issued' in res['msg'], res
    assert 'token' not in res
    assert_nothing_leaks(res)
