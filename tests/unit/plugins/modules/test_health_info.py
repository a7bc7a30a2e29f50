# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

from qflow_stub_http import Route, envelope, error_envelope, free_port, run_module, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.modules import health_info

TOKEN = 'dG9rZW4tdGhhdC1tdXN0LW5ldmVyLWxlYWs='
CHECKS = {'flowParser': True, 'executionEngine': True, 'validationPipeline': True, 'eventEmitter': True,
          'storage': True, 'config': True}


def node_routes(ready_status=200, checks=None):
    checks = dict(CHECKS, **(checks or {}))
    if ready_status == 200:
        ready = Route(200, envelope({'status': 'ready', 'checks': checks}))
    else:
        ready = Route(503, error_envelope('NOT_READY', 'Service not ready', {'checks': checks}))
    return {
        '/health': Route(200, envelope({'status': 'healthy', 'timestamp': 'x', 'version': '0.1.0', 'uptime': 123.456,
                                        'nodeId': 'node-1'})),
        '/health/live': Route(200, envelope({'status': 'alive'})),
        '/health/ready': ready,
        '/api/v1/system/info': Route(200, envelope({'name': 'qflow', 'version': '0.1.0', 'uptime': 12.0,
                                                    'nodeVersion': 'python-3.11', 'platform': 'linux'})),
    }


def test_healthy_node(stub_server):
    srv = stub_server(node_routes())
    result, failed = run_module(health_info, {'api_url': srv.url, 'api_token': TOKEN})
    assert not failed
    assert result['changed'] is False
    assert result['healthy'] is True and result['ready'] is True and result['live'] is True
    assert result['failing_checks'] == []
    assert result['checks'] == CHECKS
    assert result['status'] == 'healthy' and result['version'] == '0.1.0' and result['node_id'] == 'node-1'
    assert result['uptime_seconds'] == 123.5
    assert result['response_time_ms'] >= 0
    assert result['http_status'] == {'health': 200, 'live': 200, 'ready': 200}
    # health endpoints get no token; the token proves itself on the authenticated system info route
    assert [r['path'] for r in srv.requests if 'authorization' in r['headers']] == ['/api/v1/system/info']
    assert result['system']['version'] == '0.1.0' and result['system']['platform'] == 'linux'
    assert TOKEN not in json.dumps(result)


def test_no_token_skips_the_authenticated_call(stub_server):
    srv = stub_server(node_routes())
    result, failed = run_module(health_info, {'api_url': srv.url})
    assert not failed and result['system'] is None
    assert '/api/v1/system/info' not in [r['path'] for r in srv.requests]


def test_refused_token_fails_with_code_and_hint(stub_server):
    routes = node_routes()
    routes['/api/v1/system/info'] = Route(401, error_envelope('INVALID_TOKEN', 'Invalid token signature'))
    srv = stub_server(routes)
    result, failed = run_module(health_info, {'api_url': srv.url, 'api_token': TOKEN})
    assert failed
    assert '401 INVALID_TOKEN' in result['msg'] and 'api_token' in result['msg']
    assert TOKEN not in json.dumps(result)


def test_not_ready_503(stub_server):
    srv = stub_server(node_routes(503, {'storage': False, 'config': {'status': 'error'}}))
    result, failed = run_module(health_info, {'api_url': srv.url, 'retries': 2})
    assert not failed
    assert result['healthy'] is True and result['ready'] is False
    assert result['failing_checks'] == ['config', 'storage']
    assert len([r for r in srv.requests if r['plain_path'] == '/health/ready']) == 1


def test_unhealthy_status(stub_server):
    routes = node_routes()
    routes['/health'] = Route(500, error_envelope('INTERNAL_ERROR', 'boom'))
    srv = stub_server(routes)
    result, failed = run_module(health_info, {'api_url': srv.url})
    assert not failed
    assert result['healthy'] is False and result['status'] == '500 INTERNAL_ERROR'


def test_unwrapped_documented_shape(stub_server):
    srv = stub_server({
        '/health': Route(200, {'status': 'healthy', 'version': '1.0.0', 'uptime': 5}),
        '/health/live': Route(200, {'status': 'alive'}),
        '/health/ready': Route(200, {'status': 'ready', 'checks': {'ipfs': 'ok', 'database': 'down'}}),
    })
    result, failed = run_module(health_info, {'api_url': srv.url})
    assert not failed and result['healthy'] is True and result['failing_checks'] == ['database']


def test_connection_refused_fails_with_cause():
    port = free_port()
    result, failed = run_module(health_info, {'api_url': 'http://127.0.0.1:%d' % port, 'retries': 0,
                                              'api_token': TOKEN})
    assert failed
    assert result['msg'].startswith('Cannot reach the Qflow API at http://127.0.0.1:%d/health: ' % port)
    assert 'Connection refused' in result['msg'] and 'api_url' in result['msg']
    assert TOKEN not in json.dumps(result)


def test_hanging_node_fails_with_timeout(stub_server):
    routes = node_routes()
    routes['/health/live'] = Route(200, envelope({'status': 'alive'}), delay=3)
    srv = stub_server(routes)
    result, failed = run_module(health_info, {'api_url': srv.url, 'timeout': 1})
    assert failed
    assert 'did not answer within the timeout of 1 s' in result['msg'] and '/health/live' in result['msg']


def test_garbage_fails(stub_server):
    srv = stub_server({'/health': Route(200, 'OK'), '/health/live': Route(200, 'OK'), '/health/ready': Route(200, 'OK')})
    result, failed = run_module(health_info, {'api_url': srv.url})
    assert failed
    assert 'not JSON' in result['msg'] and "'OK'" in result['msg'] and srv.url in result['msg']


def test_rate_limited_fails(stub_server):
    routes = node_routes()
    routes['/health'] = Route(429, error_envelope('RATE_LIMIT_EXCEEDED', 'Too many requests'))
    srv = stub_server(routes)
    result, failed = run_module(health_info, {'api_url': srv.url})
    assert failed and 'answered 429 RATE_LIMIT_EXCEEDED' in result['msg'] and result['status'] == 429


def test_env_fallback(stub_server, monkeypatch):
    srv = stub_server(node_routes())
    monkeypatch.setenv('QFLOW_API_URL', srv.url)
    monkeypatch.setenv('QFLOW_TIMEOUT', '3')
    result, failed = run_module(health_info, {})
    assert not failed and result['healthy'] is True
