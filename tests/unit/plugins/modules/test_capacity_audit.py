# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.capacity_info (stub Prometheus) and qflow.ops.security_audit_info (temp node files)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

from ansible.module_utils.six.moves.urllib.parse import parse_qs, urlsplit

from qflow_stub_http import Route, run_module, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.module_utils import _capacity as capacity
from ansible_collections.qflow.ops.plugins.module_utils import _secret
from ansible_collections.qflow.ops.plugins.modules import capacity_info, security_audit_info

DAY = 86400.0


def test_forecast_math():
    r = capacity.forecast(40.0, 0.5 / DAY, 90 * DAY, 80.0)
    assert r['forecast'] == 85.0 and r['per_day'] == 0.5 and r['days_to_limit'] == 80.0
    assert r['status'] == 'exceeds limit within horizon'
    assert capacity.forecast(40.0, -1.0 / DAY, 90 * DAY, 80.0)['days_to_limit'] is None
    assert capacity.forecast(90.0, 0.0, 90 * DAY, 80.0)['days_to_limit'] == 0.0
    assert capacity.forecast(None, None, 90 * DAY, 80.0)['status'] == 'no data'
    assert capacity.forecast(100.0, 5.0 / DAY, 90 * DAY, None)['status'] == 'ok'


def prometheus(stub_server, history, slope_per_day, seen):
    def answer(req):
        q = parse_qs(urlsplit(req['path']).query)['query'][0]
        seen.append(q)
        if q.startswith('time() - min_over_time(timestamp('):
            value = history
        elif q.startswith('deriv('):
            value = slope_per_day / DAY
        elif 'memory' in q:
            value = 50.0
        else:
            value = 10.0
        result = [{'metric': {}, 'value': [1, str(value)]}]
        return Route(200, {'status': 'success', 'data': {'resultType': 'vector', 'result': result}})
    return stub_server({'/api/v1/query': answer})


def test_capacity_at_risk_with_long_history(stub_server):
    seen = []
    srv = prometheus(stub_server, 40 * DAY, 0.5, seen)
    res, failed = run_module(capacity_info, {'prometheus_url': srv.url, 'metrics_url': 'http://node1:9090/metrics'})
    assert not failed and res['changed'] is False, res
    mem = res['resources']['memory_percent']
    assert mem['current'] == 50.0 and mem['forecast'] == 95.0 and mem['days_to_limit'] == 70.0
    assert res['at_risk'] == ['memory_percent'] and res['forecast_warnings'] == []
    assert res['history_seconds'] == 30 * DAY
    assert any('instance="node1:9090"' in q and q.startswith('deriv(') and '[30d:1h]' in q for q in seen)
    assert any(line.startswith('memory_percent 50.0% now, 95.0% in 90d (limit 85.0, reached in 70.0 days)')
               for line in res['summary'])


def test_capacity_short_history_warns(stub_server):
    srv = prometheus(stub_server, 2 * 3600, 0.0, [])
    res, failed = run_module(capacity_info, {'prometheus_url': srv.url})
    assert not failed and 'not meaningful' in res['forecast_warnings'][0]


def test_capacity_bad_input(stub_server):
    srv = prometheus(stub_server, 0, 0.0, [])
    res, failed = run_module(capacity_info, {'prometheus_url': srv.url})
    assert failed and 'has no series' in res['msg']
    res, failed = run_module(capacity_info, {'prometheus_url': srv.url, 'limits': {'disk': 1}})
    assert failed and 'unknown resource(s) in limits: disk' in res['msg']
    res, failed = run_module(capacity_info, {'prometheus_url': srv.url, 'window': '1h', 'step': '1h'})
    assert failed and 'at least two steps' in res['msg']


SECRET = 'x' * 40


def node_files(tmp_path, env_mode=0o600, config='qflow:\n  networking:\n    enableTLS: true\n', secret=SECRET):
    etc, data, backups = tmp_path / 'etc', tmp_path / 'data', tmp_path / 'backups'
    for d, mode in ((etc, 0o750), (data, 0o750), (backups, 0o700)):
        d.mkdir()
        os.chmod(str(d), mode)
    env = etc / 'qflow.env'
    env.write_text('QFLOW_JWT_SECRET=%s\nQFLOW_ENCRYPTION_KEY=%s\n' % (secret, 'k' * 48))
    os.chmod(str(env), env_mode)
    cfg = etc / 'qflow-config.yaml'
    cfg.write_text(config)
    os.chmod(str(cfg), 0o640)
    return {'env_path': str(env), 'config_path': str(cfg), 'data_dir': str(data), 'backup_dir': str(backups)}


def test_audit_clean_node_passes(tmp_path):
    args = node_files(tmp_path)
    res, failed = run_module(security_audit_info, args)
    assert not failed and res['passed'] is True and res['changed'] is False, res
    assert {f['id'] for f in res['findings']} == {'secret_age_unknown'}  # no rotation record yet: low


def test_audit_findings_name_paths_never_values(tmp_path):
    args = node_files(tmp_path, env_mode=0o644, secret='zqXw7',
                      config='qflow:\n  security:\n    enableAuthentication: false\n    jwtSecret: in-config-secret\n')
    meta = _secret.meta_path(args['env_path'])
    with open(meta, 'w') as handle:
        json.dump({'QFLOW_ENCRYPTION_KEY': {'rotated_at': '2020-01-01T00:00:00.000Z',
                                            'fingerprint': _secret.fingerprint('k' * 48)}}, handle)
    res, failed = run_module(security_audit_info, args)
    assert not failed and res['passed'] is False
    ids = dict((f['id'], f) for f in res['findings'])
    assert {'env_file_mode', 'authentication_disabled', 'secret_in_config', 'tls_disabled', 'secret_short',
            'secret_too_old'} <= set(ids), ids
    assert '0644' in ids['env_file_mode']['message'] and ids['env_file_mode']['path'] == args['env_path']
    assert res['counts']['high'] >= 6 and res['secret_age_days']['QFLOW_ENCRYPTION_KEY'] > 365
    dumped = json.dumps(res)
    assert 'in-config-secret' not in dumped and 'zqXw7' not in dumped
    assert 'k' * 48 not in dumped


def test_audit_tls_is_medium_when_not_required(tmp_path):
    args = node_files(tmp_path, config='qflow:\n  networking:\n    enableTLS: false\n')
    res, failed = run_module(security_audit_info, dict(args, require_tls=False))
    assert not failed and res['passed'] is True
    assert [f['severity'] for f in res['findings'] if f['id'] == 'tls_disabled'] == ['medium']
    res, failed = run_module(security_audit_info, args)
    assert res['passed'] is False


def test_audit_bad_max_age(tmp_path):
    res, failed = run_module(security_audit_info, dict(node_files(tmp_path), max_secret_age='soon'))
    assert failed and 'max_secret_age' in res['msg']
