# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.node_mode against a stub node with the operating-mode routes (contract extension)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from qflow_stub_http import Route, envelope, error_envelope, free_port, run_module, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.modules import node_mode

ADMIN = 'YWRtaW4tdG9rZW4tdGhhdC1tdXN0LW5ldmVyLWxlYWs='
READER = 'cmVhZGVyLXRva2VuLXRoYXQtbXVzdC1uZXZlci1sZWFr'
MODES = ('emergency', 'lockdown', 'isolation')


class FakeModes(object):
    """The operating modes of the plan (A1): GET lists, PUT switches (admin only), unchanged PUT keeps since/by."""

    def __init__(self, lockdown=False):
        self.modes = dict((m, dict(enabled=False, reason=None, since=None, by=None)) for m in MODES)
        if lockdown:
            self.modes['lockdown'] = dict(enabled=True, reason='INC-1', since='2026-11-27T01:00:00.000Z', by='squid:ops:x')
        self.puts = []

    def routes(self):
        routes = {'GET /api/v1/system/modes': self.get}
        for mode in MODES + ('bogus',):
            routes['PUT /api/v1/system/modes/%s' % mode] = self.put
        return routes

    @staticmethod
    def _token(req):
        return req['headers'].get('authorization', '').replace('Bearer ', '')

    def get(self, req):
        if self.modes['lockdown']['enabled'] and self._token(req) != ADMIN:
            return Route(403, error_envelope('LOCKDOWN_ACTIVE', 'Security lockdown: only admin tokens are accepted'))
        return Route(200, envelope({'modes': json.loads(json.dumps(self.modes))}))

    def put(self, req):
        mode = req['plain_path'].rsplit('/', 1)[1]
        if self._token(req) != ADMIN:
            return Route(403, error_envelope('INSUFFICIENT_PERMISSIONS', 'Insufficient permissions',
                                             {'required': ['admin:*'], 'available': ['flow:read']}))
        if mode not in self.modes:
            return Route(400, error_envelope('UNKNOWN_MODE', 'Unknown mode: %s' % mode, {'known': list(MODES)}))
        body = json.loads(req['body'] or b'{}')
        self.puts.append((mode, body))
        current = self.modes[mode]
        changed = current['enabled'] != body['enabled']
        if changed:
            current.update(enabled=body['enabled'], reason=body.get('reason'),
                           since='2026-11-27T03:12:45.123Z', by='squid:ops:lab-operator')
        return Route(200, envelope(dict(current, mode=mode, changed=changed)))


def node(stub_server, **kwargs):
    fake = FakeModes(**kwargs)
    return fake, stub_server(fake.routes())


def args_for(srv, **kwargs):
    args = dict(api_url=srv.url, api_token=ADMIN, retries=0)
    args.update(kwargs)
    return args


def mutations(srv):
    return [(r['method'], r['plain_path']) for r in srv.requests if r['method'] != 'GET']


def assert_no_token(res):
    dumped = json.dumps(res)
    assert ADMIN not in dumped and READER not in dumped


def test_enable_emergency_four_steps(stub_server):
    fake, srv = node(stub_server)
    args = args_for(srv, mode='emergency', state='enabled', reason='INC-2026-1127 P0')

    res, failed = run_module(node_mode, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True, res
    assert res['mode'] == 'emergency' and res['enabled'] is True
    assert res['diff'] == {'before': {'emergency': {'enabled': False, 'reason': None}},
                           'after': {'emergency': {'enabled': True, 'reason': 'INC-2026-1127 P0'}}}
    assert res['modes']['emergency'] == {'enabled': True, 'reason': 'INC-2026-1127 P0', 'since': None, 'by': None}
    assert res['msg'].startswith('would enable emergency mode')
    assert mutations(srv) == [] and fake.modes['emergency']['enabled'] is False

    res, failed = run_module(node_mode, args, diff=True)
    assert not failed and res['changed'] is True, res
    assert fake.puts == [('emergency', {'enabled': True, 'reason': 'INC-2026-1127 P0'})]
    assert res['modes']['emergency'] == fake.modes['emergency'] and res['modes']['emergency']['by'] == 'squid:ops:lab-operator'
    assert res['modes']['lockdown']['enabled'] is False and res['modes']['isolation']['enabled'] is False
    assert res['diff']['after'] == {'emergency': {'enabled': True, 'reason': 'INC-2026-1127 P0'}}
    assert_no_token(res)

    res, failed = run_module(node_mode, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is False and res['msg'] == 'emergency mode is already enabled'
    assert res['diff']['before'] == res['diff']['after']

    res, failed = run_module(node_mode, args, diff=True)
    assert not failed and res['changed'] is False
    assert len(fake.puts) == 1 and mutations(srv) == [('PUT', '/api/v1/system/modes/emergency')]


@pytest.mark.parametrize('mode', ['lockdown', 'isolation'])
def test_disable_four_steps(stub_server, mode):
    fake, srv = node(stub_server)
    fake.modes[mode] = dict(enabled=True, reason='INC-7', since='2026-11-27T01:00:00.000Z', by='squid:ops:x')
    args = args_for(srv, mode=mode, state='disabled')

    res, failed = run_module(node_mode, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True and res['enabled'] is False, res
    assert res['diff'] == {'before': {mode: {'enabled': True, 'reason': 'INC-7'}},
                           'after': {mode: {'enabled': False, 'reason': None}}}
    assert mutations(srv) == [] and fake.modes[mode]['enabled'] is True

    res, failed = run_module(node_mode, args, diff=True)
    assert not failed and res['changed'] is True, res
    assert fake.puts == [(mode, {'enabled': False})] and fake.modes[mode]['enabled'] is False

    for check in (True, False):
        res, failed = run_module(node_mode, args, check_mode=check, diff=True)
        assert not failed and res['changed'] is False and res['enabled'] is False
    assert len(fake.puts) == 1


def test_already_enabled_with_another_reason_is_left_alone(stub_server):
    fake, srv = node(stub_server)
    fake.modes['emergency'] = dict(enabled=True, reason='INC-1', since='2026-11-27T01:00:00.000Z', by='squid:ops:x')
    res, failed = run_module(node_mode, args_for(srv, mode='emergency', state='enabled', reason='INC-2'))
    assert not failed and res['changed'] is False and res['modes']['emergency']['reason'] == 'INC-1'
    assert mutations(srv) == []


def test_unknown_mode_is_refused_before_any_request(stub_server):
    fake, srv = node(stub_server)
    res, failed = run_module(node_mode, args_for(srv, mode='panic', state='enabled', reason='x'))
    assert failed and 'panic' in res['msg'] and 'emergency' in res['msg'], res
    assert srv.requests == [] and fake.puts == []


@pytest.mark.parametrize('reason', [None, '', '   '])
def test_enabled_without_reason_is_refused_before_any_request(stub_server, reason):
    fake, srv = node(stub_server)
    args = args_for(srv, mode='lockdown', state='enabled')
    if reason is not None:
        args['reason'] = reason
    res, failed = run_module(node_mode, args)
    assert failed and res['changed'] is False, res
    assert 'state=enabled needs reason' in res['msg'] and 'nothing was sent' in res['msg']
    assert srv.requests == [] and fake.modes['lockdown']['enabled'] is False


def test_old_node_without_the_extension(stub_server):
    srv = stub_server({})  # every path answers 404 NOT_FOUND, like a node without the modes
    res, failed = run_module(node_mode, args_for(srv, mode='isolation', state='enabled', reason='INC-9'))
    assert failed and res['changed'] is False, res
    assert '404 NOT_FOUND' in res['msg'] and 'contract extension' in res['msg']
    assert 'docs/qflow-node-contract.md' in res['msg'] and 'by hand' in res['msg']
    assert res['status'] == 404 and res['code'] == 'NOT_FOUND'
    assert mutations(srv) == []
    assert_no_token(res)


def test_non_admin_token_gets_a_clear_403(stub_server):
    fake, srv = node(stub_server)
    res, failed = run_module(node_mode, args_for(srv, api_token=READER, mode='emergency', state='enabled', reason='INC-3'))
    assert failed and res['changed'] is False, res
    assert 'INSUFFICIENT_PERMISSIONS' in res['msg'] and 'admin token' in res['msg'] and 'operator_token' in res['msg']
    assert fake.puts == [] and fake.modes['emergency']['enabled'] is False
    assert_no_token(res)


def test_lockdown_refuses_a_non_admin_token_on_read(stub_server):
    fake, srv = node(stub_server, lockdown=True)
    res, failed = run_module(node_mode, args_for(srv, api_token=READER, mode='lockdown', state='disabled'))
    assert failed and res['changed'] is False and 'LOCKDOWN_ACTIVE' in res['msg'] and 'admin' in res['msg'], res
    assert mutations(srv) == [] and fake.modes['lockdown']['enabled'] is True
    res, failed = run_module(node_mode, args_for(srv, mode='lockdown', state='disabled'))
    assert not failed and res['changed'] is True and fake.modes['lockdown']['enabled'] is False


def test_expired_token_points_to_operator_token(stub_server):
    srv = stub_server({'GET /api/v1/system/modes': Route(401, error_envelope('INVALID_TOKEN', 'Invalid token signature'))})
    res, failed = run_module(node_mode, args_for(srv, mode='emergency', state='disabled'))
    assert failed and 'INVALID_TOKEN' in res['msg'] and 'qflow.ops.operator_token' in res['msg'], res
    assert mutations(srv) == []


def test_unreachable_node():
    url = 'http://127.0.0.1:%d' % free_port()
    res, failed = run_module(node_mode, dict(api_url=url, api_token=ADMIN, retries=0, mode='emergency',
                                             state='enabled', reason='INC-4'))
    assert failed and res['changed'] is False, res
    assert 'Cannot reach the Qflow API' in res['msg'] and 'were not read' in res['msg']
    assert_no_token(res)


def test_node_that_accepts_the_put_but_does_not_switch(stub_server):
    fake, srv = node(stub_server)
    routes = fake.routes()
    routes['PUT /api/v1/system/modes/emergency'] = Route(200, envelope({'mode': 'emergency', 'enabled': True,
                                                                        'changed': True}))
    srv.routes = routes
    res, failed = run_module(node_mode, args_for(srv, mode='emergency', state='enabled', reason='INC-5'))
    assert failed and res['changed'] is True and 'still reports emergency mode disabled' in res['msg'], res


def test_node_without_the_requested_mode(stub_server):
    srv = stub_server({'GET /api/v1/system/modes': Route(200, envelope({'modes': {
        'emergency': {'enabled': False, 'reason': None, 'since': None, 'by': None}}}))})
    res, failed = run_module(node_mode, args_for(srv, mode='isolation', state='enabled', reason='INC-6'))
    assert failed and 'but not isolation' in res['msg'] and 'nothing was changed' in res['msg'], res
    assert mutations(srv) == []


def test_garbage_modes_answer(stub_server):
    srv = stub_server({'GET /api/v1/system/modes': Route(200, envelope(['emergency']))})
    res, failed = run_module(node_mode, args_for(srv, mode='emergency', state='enabled', reason='INC-6'))
    assert failed and 'instead of {modes' in res['msg'], res
    assert mutations(srv) == []
