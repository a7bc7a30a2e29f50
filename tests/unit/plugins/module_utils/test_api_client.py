# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import time

import pytest

from qflow_stub_http import RawServer, Route, envelope, error_envelope, free_port, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.module_utils._api import (
    QflowApiError,
    QflowClient,
    QflowHttpError,
    api_argument_spec,
    fetch,
)

TOKEN = 'c2VjcmV0LXRva2VuLXZhbHVlLTEyMzQ1'


def client(url, **kw):
    params = dict(api_url=url, api_token=TOKEN, validate_certs=True, ca_path=None, timeout=5, retries=2)
    params.update(kw)
    return QflowClient(params)


def test_argument_spec_has_env_fallbacks():
    spec = api_argument_spec()
    assert spec['api_token']['no_log'] is True
    assert spec['api_url']['fallback'][1] == ['QFLOW_API_URL']
    assert spec['api_token']['fallback'][1] == ['QFLOW_API_TOKEN']
    assert spec['validate_certs']['fallback'][1] == ['QFLOW_VALIDATE_CERTS']
    assert spec['ca_path']['fallback'][1] == ['QFLOW_CA_PATH']
    assert spec['timeout']['fallback'][1] == ['QFLOW_TIMEOUT']
    assert spec['retries']['default'] == 2


def test_get_returns_data_and_sends_headers(stub_server):
    srv = stub_server({'/api/v1/system/info': Route(200, envelope({'nodeId': 'n1'}))})
    c = client(srv.url)
    assert c.get('/api/v1/system/info', query={'verbose': True, 'skip': None}) == {'nodeId': 'n1'}
    req = srv.requests[-1]
    assert req['headers']['authorization'] == 'Bearer ' + TOKEN
    assert len(req['headers']['x-request-id']) == 36
    assert req['path'] == '/api/v1/system/info?verbose=true'
    assert c.last_response_time_ms is not None and c.last_response_time_ms >= 0


def test_api_url_with_api_v1_suffix_is_tolerated(stub_server):
    srv = stub_server({'/health': Route(200, envelope({'status': 'healthy'}))})
    c = client(srv.url + '/api/v1/')
    assert c.get('/health', auth=False) == {'status': 'healthy'}
    assert 'authorization' not in srv.requests[-1]['headers']


def test_post_put_delete_send_json(stub_server):
    srv = stub_server({
        'POST /api/v1/flows': Route(201, envelope({'flow': {'id': 'f1'}, 'warnings': []})),
        'PUT /api/v1/flows/f1': Route(200, envelope({'id': 'f1'})),
        'DELETE /api/v1/flows/f1': Route(200, envelope({'deleted': True})),
    })
    c = client(srv.url)
    assert c.post('/api/v1/flows', {'id': 'f1'}) == {'flow': {'id': 'f1'}, 'warnings': []}
    assert json.loads(srv.requests[-1]['body'].decode()) == {'id': 'f1'}
    assert srv.requests[-1]['headers']['content-type'] == 'application/json'
    assert c.put('/api/v1/flows/f1', {'id': 'f1'}) == {'id': 'f1'}
    assert c.delete('/api/v1/flows/f1') == {'deleted': True}


def test_401_envelope_message(stub_server):
    answer = error_envelope('INVALID_TOKEN', 'Invalid signature', request_id='abc-123')
    srv = stub_server({'/api/v1/system/info': Route(401, answer)})
    with pytest.raises(QflowApiError) as exc:
        client(srv.url).get('/api/v1/system/info')
    e = exc.value
    assert e.status == 401 and e.code == 'INVALID_TOKEN' and e.request_id == 'abc-123'
    assert str(e) == ('Qflow API GET /api/v1/system/info answered 401 INVALID_TOKEN: Invalid signature '
                      '(requestId abc-123). Check api_token / QFLOW_API_TOKEN (expired, or signed with another '
                      'QFLOW_JWT_SECRET?).')
    assert TOKEN not in str(e)


def test_403_names_required_permission(stub_server):
    srv = stub_server({'/api/v1/flows': Route(403, error_envelope('INSUFFICIENT_PERMISSIONS', 'Insufficient permissions',
                                                                  {'required': ['flow:admin'], 'available': ['flow:read']}))})
    with pytest.raises(QflowApiError) as exc:
        client(srv.url).get('/api/v1/flows')
    assert "required ['flow:admin']" in str(exc.value)
    assert exc.value.details == {'required': ['flow:admin'], 'available': ['flow:read']}


def test_string_error_shape_billing_429(stub_server):
    body = {'success': False, 'error': 'QUOTA_EXCEEDED', 'message': 'Quota exceeded', 'requestId': 'q1'}
    srv = stub_server({'/api/v1/flows': Route(429, body)})
    with pytest.raises(QflowApiError) as exc:
        client(srv.url, retries=0).get('/api/v1/flows')
    assert exc.value.code == 'QUOTA_EXCEEDED'
    assert 'answered 429 QUOTA_EXCEEDED: Quota exceeded (requestId q1)' in str(exc.value)


def test_500_hint_points_to_logs(stub_server):
    srv = stub_server({'POST /api/v1/flows': Route(500, error_envelope('INTERNAL_ERROR', 'boom'))})
    with pytest.raises(QflowApiError) as exc:
        client(srv.url).post('/api/v1/flows', {})
    assert 'answered 500 INTERNAL_ERROR: boom' in str(exc.value)
    assert 'logs_info' in str(exc.value)
    assert len(srv.requests) == 1  # POST never retried


def test_connection_refused_message():
    port = free_port()
    with pytest.raises(QflowHttpError) as exc:
        client('http://127.0.0.1:%d' % port, retries=0).get('/health', auth=False)
    msg = str(exc.value)
    assert msg.startswith('Cannot reach the Qflow API at http://127.0.0.1:%d/health: ' % port)
    assert 'Connection refused' in msg
    assert 'Check that the qflow service is running and that api_url' in msg
    assert exc.value.kind == 'connection'


def test_connection_refused_is_retried_for_get(monkeypatch):
    calls = []
    import ansible_collections.qflow.ops.plugins.module_utils._api as api

    def fake_open_url(url, **kwargs):
        calls.append(kwargs['method'])
        raise api.URLError(ConnectionRefusedError(111, 'Connection refused'))

    monkeypatch.setattr(api, 'open_url', fake_open_url)
    monkeypatch.setattr(api.time, 'sleep', lambda s: None)
    with pytest.raises(QflowHttpError):
        client('http://127.0.0.1:1', retries=2).get('/api/v1/flows')
    assert calls == ['GET', 'GET', 'GET']
    calls[:] = []
    with pytest.raises(QflowHttpError):
        client('http://127.0.0.1:1', retries=2).post('/api/v1/flows', {})
    assert calls == ['POST']


def test_timeout_message_names_the_timeout(stub_server):
    srv = stub_server({'/health': Route(200, envelope({'status': 'healthy'}), delay=3)})
    start = time.time()
    with pytest.raises(QflowHttpError) as exc:
        client(srv.url, timeout=1, retries=2).get('/health', auth=False)
    assert time.time() - start < 2.5  # timeouts are not retried
    assert exc.value.kind == 'timeout'
    assert 'did not answer within the timeout of 1 s' in str(exc.value)
    assert srv.url + '/health' in str(exc.value)


def test_garbage_body_message(stub_server):
    srv = stub_server({'/api/v1/system/info': Route(200, '<html>Welcome to nginx</html>', content_type='text/html')})
    with pytest.raises(QflowHttpError) as exc:
        client(srv.url).get('/api/v1/system/info')
    msg = str(exc.value)
    assert exc.value.kind == 'garbage'
    assert 'GET /api/v1/system/info' in msg and srv.url in msg
    assert "'<html>Welcome to nginx</html>'" in msg
    assert 'not JSON' in msg


def test_not_http_at_all():
    raw = RawServer(b'SSH-2.0-OpenSSH_9.2\r\n')
    try:
        with pytest.raises(QflowHttpError) as exc:
            client(raw.url, retries=0, timeout=2).get('/health', auth=False)
        assert raw.url in str(exc.value)
    finally:
        raw.close()


def test_retries_on_502_for_get_only(stub_server):
    srv = stub_server({
        '/api/v1/flows': [Route(502, 'Bad Gateway'), Route(503, 'Service Unavailable'), Route(200, envelope([]))],
        'POST /api/v1/flows': [Route(502, 'Bad Gateway'), Route(201, envelope({}))],
    })
    c = client(srv.url, retries=2)
    assert c.get('/api/v1/flows') == []
    assert [r['method'] for r in srv.requests] == ['GET', 'GET', 'GET']
    with pytest.raises(QflowHttpError) as exc:
        c.post('/api/v1/flows', {})
    assert 'Bad Gateway' in str(exc.value)
    assert [r['method'] for r in srv.requests].count('POST') == 1


def test_retries_exhausted_reports_last_status(stub_server):
    srv = stub_server({'/api/v1/flows': Route(504, error_envelope('GATEWAY', 'upstream'))})
    with pytest.raises(QflowApiError) as exc:
        client(srv.url, retries=1).get('/api/v1/flows')
    assert exc.value.status == 504
    # a Qflow envelope on 504 is an answer, so it is not retried
    assert len(srv.requests) == 1


def test_request_raw_returns_503_not_ready(stub_server):
    details = {'checks': {'storage': False, 'config': True}}
    srv = stub_server({'/health/ready': Route(503, error_envelope('NOT_READY', 'Service not ready', details))})
    resp = client(srv.url, retries=2).request_raw('/health/ready')
    assert resp.status == 503 and not resp.success
    assert resp.error == ('NOT_READY', 'Service not ready', details)
    assert len(srv.requests) == 1  # envelope 503 not retried
    assert 'authorization' not in srv.requests[0]['headers']


def test_token_never_in_messages(stub_server):
    # the server echoes the token back in a garbage body and in an error message
    srv = stub_server({
        '/a': Route(200, 'oops token=%s' % TOKEN),
        '/b': Route(401, error_envelope('INVALID_TOKEN', 'bad token %s' % TOKEN)),
    })
    c = client(srv.url)
    for path in ('/a', '/b'):
        with pytest.raises(Exception) as exc:
            c.get(path)
        assert TOKEN not in str(exc.value)
        assert '********' in str(exc.value)


def test_fetch_returns_any_status(stub_server):
    srv = stub_server({'/metrics': Route(500, 'broken')})
    resp = fetch(srv.url + '/metrics', what='The Qflow metrics endpoint')
    assert resp.status == 500 and resp.body == b'broken'


def test_url_userinfo_and_query_hidden_in_messages():
    port = free_port()
    with pytest.raises(QflowHttpError) as exc:
        fetch('http://user:pw@127.0.0.1:%d/x?token=abc' % port, what='The Qflow API')
    assert 'pw@' not in str(exc.value) and 'token=abc' not in str(exc.value)
