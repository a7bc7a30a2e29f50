# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.notify: a stub HTTP server as the webhook, a tiny SMTP sink as the mail server."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys
import time

import pytest

from qflow_smtp_sink import smtp_sink  # noqa: F401 pylint: disable=unused-import
from qflow_stub_http import RawServer, Route, free_port, run_module, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.module_utils import _notify as engine
from ansible_collections.qflow.ops.plugins.modules import notify

HOOK_PATH = '/services/T0QFLOW01/B0QFLOW02/XxSecretHookTokenXx42'
TOKEN_PART = 'XxSecretHookTokenXx42'


def hook(server, path=HOOK_PATH):
    return server.url + path


def assert_no_url(result, *needles):
    dumped = json.dumps(result)
    for needle in needles + (HOOK_PATH, TOKEN_PART, 'T0QFLOW01'):
        assert needle not in dumped, 'the secret URL (%s) leaked: %s' % (needle, dumped)


def posts(server):
    return [r for r in server.requests if r['method'] == 'POST']


def test_webhook_payload_shape(stub_server):
    server = stub_server({'POST ' + HOOK_PATH: Route(200, 'ok')})
    before = int(time.time())
    res, failed = run_module(notify, {
        'url': hook(server), 'text': 'Rolling restart of 3 nodes', 'title': 'Maintenance window',
        'severity': 'warning', 'procedure': 'maintenance-window',
        'fields': {'Operator': 'alice', 'Nodes': 3, 'Hosts': ['qflow-1', 'qflow-2'], 'Dry run': False}})
    assert not failed, res
    assert res['changed'] is True and res['delivered'] is True and res['status'] == 200
    assert res['channel'] == 'webhook' and res['endpoint'] == server.url and res['response'] == 'ok'
    assert res['msg'] == 'sent to %s (HTTP 200)' % server.url
    sent = posts(server)
    assert len(sent) == 1 and sent[0]['plain_path'] == HOOK_PATH
    assert sent[0]['headers']['content-type'] == 'application/json'
    body = json.loads(sent[0]['body'])
    assert body == res['payload']
    assert body['text'] == 'Rolling restart of 3 nodes'
    att = body['attachments']
    assert len(att) == 1 and set(att[0]) == {'color', 'title', 'fields', 'footer', 'ts'}
    assert att[0]['color'] == engine.COLORS['warning'] == '#ECB22E'
    assert att[0]['title'] == 'Maintenance window' and att[0]['footer'] == 'qflow.ops'
    assert before <= att[0]['ts'] <= time.time() + 1 and isinstance(att[0]['ts'], int)
    assert att[0]['fields'] == [
        {'title': 'Procedure', 'value': 'maintenance-window', 'short': True},
        {'title': 'Operator', 'value': 'alice', 'short': True},
        {'title': 'Nodes', 'value': '3', 'short': True},
        {'title': 'Hosts', 'value': '["qflow-1", "qflow-2"]', 'short': True},
        {'title': 'Dry run', 'value': 'false', 'short': True},
    ]
    assert_no_url(res)


@pytest.mark.parametrize('severity,color', sorted(engine.COLORS.items()))
def test_severity_colors(stub_server, severity, color):
    server = stub_server({'POST ' + HOOK_PATH: Route(200, 'ok')})
    res, failed = run_module(notify, {'url': hook(server), 'text': 'x', 'severity': severity})
    assert not failed and res['payload']['attachments'][0]['color'] == color
    assert 'title' not in res['payload']['attachments'][0] and res['payload']['attachments'][0]['fields'] == []


def test_url_from_environment(stub_server, monkeypatch):
    server = stub_server({'POST ' + HOOK_PATH: Route(200, 'ok')})
    monkeypatch.setenv('QFLOW_NOTIFY_WEBHOOK_URL', hook(server))
    res, failed = run_module(notify, {'text': 'from env'})
    assert not failed and res['delivered'] is True and len(posts(server)) == 1
    assert_no_url(res)


def test_url_is_no_log_and_masked_in_module_stdout(stub_server, tmp_path):
    """Run the module as Ansible does (a separate process, JSON on stdout): no part of the URL is printed."""
    server = stub_server({'POST ' + HOOK_PATH: Route(200, 'ok'), 'POST /fail' + HOOK_PATH: Route(500, 'boom')})
    spec = engine.argument_spec()
    assert spec['url']['no_log'] is True and spec['smtp_password']['no_log'] is True
    collections = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(notify.__file__)), *(['..'] * 5)))
    env = dict(os.environ, PYTHONPATH=collections + os.pathsep + os.environ.get('PYTHONPATH', ''))
    for path, fail_on_error in ((HOOK_PATH, True), ('/fail' + HOOK_PATH, True), ('/fail' + HOOK_PATH, False)):
        args = tmp_path / 'args.json'
        # the URL also appears in the text: no_log masks it there as well
        args.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': {
            'url': server.url + path, 'text': 'see %s' % (server.url + path), 'fail_on_error': fail_on_error,
            'headers': {'Authorization': 'Bearer SuperSecretBearer99', 'X-Team': 'ops'}}}))
        proc = subprocess.run([sys.executable, '-m', 'ansible_collections.qflow.ops.plugins.modules.notify',
                               str(args)], capture_output=True, text=True, env=env, timeout=60, check=False)
        out = proc.stdout + proc.stderr
        result = json.loads(proc.stdout)
        assert result['endpoint'] == server.url, out
        for needle in (HOOK_PATH, TOKEN_PART, 'T0QFLOW01', 'SuperSecretBearer99'):
            assert needle not in out, '%s leaked into the module output: %s' % (needle, out)
        assert result['invocation']['module_args']['url'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
        assert result['invocation']['module_args']['headers']['X-Team'] == 'ops'
        assert result.get('failed', False) is (path != HOOK_PATH and fail_on_error), out
    assert [r['headers']['authorization'] for r in posts(server)] == ['Bearer SuperSecretBearer99'] * 3


def test_check_mode_sends_nothing(stub_server):
    server = stub_server({'POST ' + HOOK_PATH: Route(200, 'ok')})
    res, failed = run_module(notify, {'url': hook(server), 'text': 'would go', 'severity': 'critical'},
                             check_mode=True)
    assert not failed and res['changed'] is True and res['delivered'] is False and res['status'] is None
    assert res['payload']['text'] == 'would go' and res['payload']['attachments'][0]['color'] == '#E01E5A'
    assert 'check mode' in res['msg'] and server.requests == []
    assert_no_url(res)


def test_check_mode_email_opens_no_connection():
    port = free_port()  # nothing listens: a connection attempt would fail the task
    res, failed = run_module(notify, {'channel': 'email', 'smtp_host': '127.0.0.1', 'smtp_port': port,
                                      'mail_to': ['ops@example.net'], 'text': 'hello'}, check_mode=True)
    assert not failed and res['changed'] is True and res['delivered'] is False
    assert res['payload']['to'] == ['ops@example.net'] and res['endpoint'] == 'smtp://127.0.0.1:%d' % port


def test_http_500_is_a_clear_error(stub_server):
    server = stub_server({'POST ' + HOOK_PATH: Route(500, 'internal_error')})
    res, failed = run_module(notify, {'url': hook(server), 'text': 'x'})
    assert failed and res['changed'] is False and res['delivered'] is False and res['status'] == 500
    assert res['msg'].startswith('Notification not delivered: The Slack webhook at %s answered HTTP 500' % server.url)
    assert "'internal_error'" in res['msg'] and 'retry' in res['msg']
    assert res['payload']['text'] == 'x' and res['response'] == 'internal_error'
    assert len(posts(server)) == 1  # never retried
    assert_no_url(res)


def test_slack_404_names_the_likely_cause(stub_server):
    server = stub_server({'POST ' + HOOK_PATH: Route(404, 'no_service')})
    res, failed = run_module(notify, {'url': hook(server), 'text': 'x'})
    assert failed and 'HTTP 404' in res['msg'] and 'no_service' in res['msg'] and 'Check the url' in res['msg']
    assert_no_url(res)


def test_unreachable_names_host_not_path():
    url = 'http://127.0.0.1:%d%s' % (free_port(), HOOK_PATH)
    res, failed = run_module(notify, {'url': url, 'text': 'x', 'timeout': 3})
    assert failed and res['delivered'] is False and res['status'] is None
    assert 'http://127.0.0.1:' in res['msg'] and 'refused' in res['msg'].lower()
    assert 'reachable from this host' in res['msg']
    assert_no_url(res)


def test_hanging_endpoint_times_out():
    raw = RawServer(b'')  # accepts, reads, closes without an HTTP answer
    try:
        res, failed = run_module(notify, {'url': raw.url + HOOK_PATH, 'text': 'x', 'timeout': 2})
    finally:
        raw.close()
    assert failed and res['delivered'] is False and raw.url in res['msg']
    assert_no_url(res)


def test_fail_on_error_false_goes_on(stub_server):
    server = stub_server({'POST ' + HOOK_PATH: Route(503, 'service unavailable')})
    res, failed = run_module(notify, {'url': hook(server), 'text': 'x', 'fail_on_error': False})
    assert not failed and res.get('failed') is None
    assert res['changed'] is False and res['delivered'] is False and res['status'] == 503
    assert 'HTTP 503' in res['msg'] and any('fail_on_error=false' in w for w in res['_warnings'])
    assert_no_url(res)


def test_http_channel_plain_json_and_headers(stub_server):
    server = stub_server({'POST /events': Route(202, {'accepted': True})})
    res, failed = run_module(notify, {
        'channel': 'http', 'url': server.url + '/events?token=QueryToken123', 'text': 'backup verified',
        'title': 'Nightly backup', 'severity': 'ok', 'procedure': 'nightly-backup', 'fields': {'size': 10},
        'headers': {'X-Api-Key': 'k3y-value-secret'}})
    assert not failed and res['status'] == 202 and res['delivered'] is True
    body = json.loads(posts(server)[0]['body'])
    assert body == res['payload']
    assert set(body) == {'text', 'title', 'severity', 'procedure', 'fields', 'source', 'timestamp'}
    assert body['severity'] == 'ok' and body['fields'] == {'size': 10} and body['source'] == 'qflow.ops'
    assert posts(server)[0]['headers']['x-api-key'] == 'k3y-value-secret'
    assert 'QueryToken123' not in json.dumps(res) and res['endpoint'] == server.url


def test_email(smtp_sink):
    sink = smtp_sink()
    res, failed = run_module(notify, {
        'channel': 'email', 'smtp_host': '127.0.0.1', 'smtp_port': sink.port, 'mail_from': 'qflow@example.net',
        'mail_to': ['ops@example.net', 'oncall@example.net'], 'text': 'qflow-2 is down', 'title': 'P1: qflow-2',
        'severity': 'critical', 'procedure': 'incident-p1', 'fields': {'node': 'qflow-2'}})
    assert not failed, res
    assert res['changed'] is True and res['delivered'] is True and res['status'] == 250 and res['refused'] == {}
    assert res['endpoint'] == 'smtp://127.0.0.1:%d' % sink.port
    assert len(sink.messages) == 1
    got = sink.messages[0]
    assert got['mail_from'] == 'qflow@example.net' and got['rcpt_to'] == ['ops@example.net', 'oncall@example.net']
    msg = got['message']
    assert msg['Subject'] == '[qflow.ops] CRITICAL: P1: qflow-2' == res['payload']['subject']
    body = msg.get_content()
    assert 'qflow-2 is down' in body and 'Procedure - incident-p1' in body and 'node - qflow-2' in body
    assert body.replace('\r\n', '\n') == res['payload']['body']


def test_email_login_and_env_fallbacks(smtp_sink, monkeypatch):
    sink = smtp_sink()
    monkeypatch.setenv('QFLOW_SMTP_HOST', '127.0.0.1')
    monkeypatch.setenv('QFLOW_SMTP_PORT', str(sink.port))
    monkeypatch.setenv('QFLOW_SMTP_USERNAME', 'qflow-ops')
    monkeypatch.setenv('QFLOW_SMTP_PASSWORD', 'smtp-Secret-pw')
    monkeypatch.setenv('QFLOW_NOTIFY_MAIL_TO', 'a@example.net,b@example.net')
    res, failed = run_module(notify, {'channel': 'email', 'text': 'hi', 'subject': 'custom'})
    assert not failed, res
    assert sink.logins == [('qflow-ops', 'smtp-Secret-pw')] and sink.messages[0]['auth'] == 'qflow-ops'
    assert sink.messages[0]['rcpt_to'] == ['a@example.net', 'b@example.net']
    assert sink.messages[0]['message']['Subject'] == 'custom'
    assert any('without TLS' in w for w in res['_warnings'])
    assert 'smtp-Secret-pw' not in json.dumps(res)


def test_email_partial_refusal_warns(smtp_sink):
    sink = smtp_sink(reject_rcpt=['typo@example.net'])
    res, failed = run_module(notify, {'channel': 'email', 'smtp_host': '127.0.0.1', 'smtp_port': sink.port,
                                      'mail_to': ['ops@example.net', 'typo@example.net'], 'text': 'x'})
    assert not failed and res['delivered'] is True
    assert res['refused'] == {'typo@example.net': '550 5.1.1 no such user'}
    assert any('typo@example.net' in w for w in res['_warnings'])


def test_email_errors(smtp_sink):
    sink = smtp_sink(reject_rcpt=['ops@example.net'])
    base = {'channel': 'email', 'smtp_host': '127.0.0.1', 'smtp_port': sink.port, 'mail_to': ['ops@example.net'],
            'text': 'x'}
    res, failed = run_module(notify, base)
    assert failed and 'refused every recipient' in res['msg'] and 'ops@example.net: 550' in res['msg']
    assert 'smtp://127.0.0.1:%d' % sink.port in res['msg']

    bad_login = smtp_sink(auth_ok=False)
    res, failed = run_module(notify, dict(base, smtp_port=bad_login.port, smtp_username='u',
                                          smtp_password='wrong-Password-1'))
    assert failed and 'refused the login of u' in res['msg'] and 'smtp_password' in res['msg']
    assert 'wrong-Password-1' not in json.dumps(res)

    port = free_port()
    res, failed = run_module(notify, dict(base, smtp_port=port, fail_on_error=False))
    assert not failed and res['delivered'] is False and res['changed'] is False
    assert 'cannot talk to smtp://127.0.0.1:%d while connecting' % port in res['msg']
    assert 'QFLOW_SMTP_HOST' in res['msg']


@pytest.mark.parametrize('args,match', [
    ({'text': 'x'}, 'needs url'),
    ({'text': 'x', 'url': 'ftp://example.net/hook'}, 'not an http'),
    ({'text': 'x', 'url': 'hooks.example.net/secretpath'}, 'not an http'),
    ({'text': 'x', 'channel': 'email', 'mail_to': ['a@b']}, 'needs smtp_host'),
    ({'text': 'x', 'channel': 'email', 'smtp_host': 'h'}, 'needs mail_to'),
    ({'text': 'x', 'channel': 'email', 'smtp_host': 'h', 'mail_to': ['a@b'], 'smtp_username': 'u'},
     'smtp_password'),
])
def test_bad_options_fail_before_sending(args, match, monkeypatch):
    for var in ('QFLOW_NOTIFY_WEBHOOK_URL', 'QFLOW_SMTP_HOST', 'QFLOW_NOTIFY_MAIL_TO', 'QFLOW_SMTP_PASSWORD'):
        monkeypatch.delenv(var, raising=False)
    res, failed = run_module(notify, args)
    assert failed and match in res['msg'] and 'nothing was sent' in res['msg']
    assert 'secretpath' not in json.dumps(res)


def test_endpoint_and_url_secrets():
    assert engine.endpoint('https://hooks.slack.com/services/T/B/X') == 'https://hooks.slack.com'
    assert engine.endpoint('https://user:pw@[::1]:8443/x?token=1') == 'https://[::1]:8443'
    assert engine.endpoint('not a url') == '(unparsable URL)'
    secrets = engine.url_secrets('https://u:password1@h.example/services/T0/B0/tokentokentoken?sig=abcdef')
    assert 'password1' in secrets and '/services/T0/B0/tokentokentoken' in secrets and 'sig=abcdef' in secrets
    assert 'tokentokentoken' in secrets and 'h.example' not in secrets
    assert engine.sensitive_header_values({'Authorization': 'Bearer abcd1234', 'X-Team': 'ops'}) == \
        ['Bearer abcd1234', 'abcd1234']


def test_subject_is_bounded():
    p = {'severity': 'info', 'text': 'y' * 300 + '\nsecond line', 'title': None, 'subject': None}
    subject = engine.email_subject(p)
    assert len(subject) == engine.SUBJECT_MAX and subject.endswith('...') and 'second' not in subject
