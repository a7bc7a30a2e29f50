# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.perf_baseline, run through main() against a stub Prometheus."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import stat

from ansible.module_utils.six.moves.urllib.parse import parse_qs, urlsplit

from qflow_stub_http import Route, run_module, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.module_utils import _baseline as engine
from ansible_collections.qflow.ops.plugins.modules import perf_baseline

# Execution histogram over the window: 40 executions, p95 = rank 38 in (1, 2] -> 1 + 1 * 18/20 = 1.9 s
BASE_EXEC = (('1', '20'), ('2', '40'), ('+Inf', '40'))
# rank 38 in (1, 5] -> 1 + 4 * 18/20 = 4.6 s: +142 %, beyond the default 20 %
WORSE_EXEC = (('1', '20'), ('5', '40'), ('+Inf', '40'))
# rank 38 in (1, 2.1] -> 1 + 1.1 * 18/20 = 1.99 s: +4.74 %, within 20 %
SLIGHTLY_WORSE_EXEC = (('1', '20'), ('2.1', '40'), ('+Inf', '40'))

COUNTERS = {
    'qflow_flows_completed_total': 38.0,
    'qflow_flows_failed_total': 2.0,
    'qflow_storage_cache_hits_total': 9.0,
    'qflow_storage_cache_requests_total': 10.0,
    'process_cpu_seconds_total': 360.0,   # 0.1 core over the hour
}
GAUGES = {
    'qflow_flows_active_count': '7',
    'qflow_node_health_score': '1',
    'qflow_process_memory_usage_bytes': '214748364.8',
    'qflow_process_memory_limit_bytes': '2147483648',
}


def prometheus(stub_server, execution=BASE_EXEC, counters=None, seen=None):
    """A stub Prometheus answering the queries of metrics_info (up, increase of counters and buckets, last_over_time)."""
    values = dict(COUNTERS)
    values.update(counters or {})

    def answer(req):
        q = parse_qs(urlsplit(req['path']).query)['query'][0]
        if seen is not None:
            seen.append(q)
        result = []
        if q.startswith('max_over_time(up{'):
            result = [{'metric': {'instance': 'node1:9090'}, 'value': [1, '1']}]
        elif q.startswith('sum by (le) (increase(qflow_flow_execution_duration_seconds_bucket'):
            result = [{'metric': {'le': le}, 'value': [1, v]} for le, v in execution]
        elif q.startswith('sum(last_over_time('):
            name = q[len('sum(last_over_time('):].split('{')[0]
            result = [{'metric': {}, 'value': [1, GAUGES[name]]}] if name in GAUGES else []
        elif q.startswith('sum(increase('):
            name = q[len('sum(increase('):].split('{')[0]
            result = [{'metric': {}, 'value': [1, str(values[name])]}] if name in values else []
        return Route(200, {'status': 'success', 'data': {'resultType': 'vector', 'result': result}})

    return stub_server({'/api/v1/query': answer})


def args_for(srv, path, **extra):
    args = {'prometheus_url': srv.url, 'metrics_url': 'http://node1:9090/metrics', 'baseline_path': str(path)}
    args.update(extra)
    return args


def record(srv, path, **extra):
    result, failed = run_module(perf_baseline, args_for(srv, path, state='recorded', **extra))
    assert not failed, result.get('msg')
    return result


def test_recorded_four_steps_with_max_age(stub_server, tmp_path):
    srv = prometheus(stub_server)
    path = tmp_path / 'perf-baseline.json'
    args = args_for(srv, path, state='recorded', max_age='7d')

    result, failed = run_module(perf_baseline, args, check_mode=True, diff=True)
    assert not failed, result.get('msg')
    assert result['changed'] is True and 'would record' in result['msg']
    assert not path.exists() and os.listdir(str(tmp_path)) == []   # check mode writes nothing
    assert result['diff']['before'] is None
    assert result['diff']['after']['execution_p95_seconds'] == 1.9

    result, failed = run_module(perf_baseline, args, diff=True)
    assert not failed, result.get('msg')
    assert result['changed'] is True and result['diff']['before'] is None
    data = path.read_bytes()
    doc = json.loads(data.decode('utf-8'))
    assert sorted(doc) == ['metrics', 'recorded_at', 'selector', 'window']
    assert doc['window'] == '1h' and doc['selector'] == 'instance="node1:9090"'
    m = doc['metrics']
    assert m['execution_p95_seconds'] == 1.9 and m['flow_success_rate'] == 95.0 and m['cache_hit_rate'] == 90.0
    assert m['cpu_percent'] == 10.0 and m['memory_percent'] == 10.0 and m['node_selection_p95_ms'] is None
    assert doc == result['baseline'] and result['diff']['after'] == m
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o644
    assert os.listdir(str(tmp_path)) == ['perf-baseline.json']   # no temporary file left
    queries = len(srv.requests)

    result, failed = run_module(perf_baseline, args, check_mode=True, diff=True)
    assert not failed and result['changed'] is False
    assert 'max_age 7d' in result['skipped_reason'] and doc['recorded_at'] in result['skipped_reason']
    assert result['diff']['before'] == result['diff']['after'] == m
    assert path.read_bytes() == data

    result, failed = run_module(perf_baseline, args, diff=True)
    assert not failed and result['changed'] is False and result['baseline'] == doc
    assert path.read_bytes() == data
    assert len(srv.requests) == queries   # a kept baseline does not query Prometheus


def test_recorded_without_max_age_replaces_and_diffs_old_metrics(stub_server, tmp_path):
    path = tmp_path / 'b.json'
    record(prometheus(stub_server), path)
    old = json.loads(path.read_text())
    result, failed = run_module(perf_baseline, args_for(prometheus(stub_server, execution=WORSE_EXEC), path, state='recorded'), diff=True)
    assert not failed and result['changed'] is True
    assert result['diff']['before'] == old['metrics']
    assert result['diff']['after']['execution_p95_seconds'] == 4.6
    assert json.loads(path.read_text())['metrics']['execution_p95_seconds'] == 4.6


def test_max_age_ignores_a_baseline_of_another_window(stub_server, tmp_path):
    srv = prometheus(stub_server)
    path = tmp_path / 'b.json'
    record(srv, path, window='30m')
    result = record(srv, path, window='1h', max_age='7d')
    assert result['changed'] is True and json.loads(path.read_text())['window'] == '1h'


def test_compared_regression_beyond_tolerance(stub_server, tmp_path):
    path = tmp_path / 'b.json'
    record(prometheus(stub_server), path)
    data = path.read_bytes()
    seen = []
    srv = prometheus(stub_server, execution=WORSE_EXEC, seen=seen)
    result, failed = run_module(perf_baseline, args_for(srv, path, state='compared'))
    assert not failed, result.get('msg')
    assert result['changed'] is False and result['ok'] is False
    assert [r['metric'] for r in result['regressions']] == ['execution_p95_seconds']
    reg = result['regressions'][0]
    assert reg['baseline'] == 1.9 and reg['current'] == 4.6 and reg['change'] == 142.11
    assert reg['tolerance'] == 20.0 and reg['direction'] == 'higher' and reg['unit'] == 'percent'
    assert 'execution_p95_seconds 1.9 -> 4.6' in result['msg'] and '1 regression' in result['msg']
    comparison = result['comparison']
    assert sorted(comparison) == sorted(engine.KNOWN)
    assert comparison['node_selection_p95_ms']['status'] == 'not comparable'   # null on both sides
    assert comparison['cache_hit_rate']['status'] == 'ok' and comparison['cache_hit_rate']['change'] == 0.0
    assert 'not comparable: node_selection_p95_ms' in result['msg']
    assert path.read_bytes() == data   # compared never writes
    assert 'sum(increase(qflow_flows_completed_total{instance="node1:9090"}[3600s]))' in seen


def test_compared_within_tolerance_is_ok(stub_server, tmp_path):
    path = tmp_path / 'b.json'
    record(prometheus(stub_server), path)
    srv = prometheus(stub_server, execution=SLIGHTLY_WORSE_EXEC)
    result, failed = run_module(perf_baseline, args_for(srv, path, state='compared'), check_mode=True)
    assert not failed, result.get('msg')
    assert result['ok'] is True and result['regressions'] == []
    assert result['comparison']['execution_p95_seconds']['change'] == 4.74
    assert result['comparison']['execution_p95_seconds']['status'] == 'ok'
    assert result['msg'].startswith('no regression')


def test_tolerance_override_and_points(stub_server, tmp_path):
    path = tmp_path / 'b.json'
    record(prometheus(stub_server), path)
    # success 38/40 = 95 % -> 36/40 = 90 %: -5 points; cache 9/10 -> 8/10: -10 points
    worse = {'qflow_flows_completed_total': 36.0, 'qflow_flows_failed_total': 4.0, 'qflow_storage_cache_hits_total': 8.0}
    srv = prometheus(stub_server, execution=WORSE_EXEC, counters=worse)
    result, failed = run_module(perf_baseline, args_for(srv, path, tolerances={'execution_p95_seconds': 150, 'cache_hit_rate': '10'}))
    assert not failed, result.get('msg')
    assert [r['metric'] for r in result['regressions']] == ['flow_success_rate']
    reg = result['regressions'][0]
    assert reg['change'] == -5.0 and reg['unit'] == 'points' and reg['direction'] == 'lower' and reg['tolerance'] == 2.0
    assert result['comparison']['cache_hit_rate']['status'] == 'ok' and result['comparison']['cache_hit_rate']['tolerance'] == 10.0
    assert result['comparison']['execution_p95_seconds']['status'] == 'ok'


def test_missing_baseline_is_a_clear_error(stub_server, tmp_path):
    path = tmp_path / 'nowhere.json'
    result, failed = run_module(perf_baseline, args_for(prometheus(stub_server), path, state='compared'))
    assert failed
    assert str(path) in result['msg'] and 'state=recorded first' in result['msg']
    assert not path.exists()


def test_bad_tolerance_key_lists_known_metrics(stub_server, tmp_path):
    srv = prometheus(stub_server)
    result, failed = run_module(perf_baseline, args_for(srv, tmp_path / 'b.json', tolerances={'p95': 10}))
    assert failed and "'p95'" in result['msg']
    for name in engine.KNOWN:
        assert name in result['msg']
    assert srv.requests == []
    result, failed = run_module(perf_baseline, args_for(srv, tmp_path / 'b.json', tolerances={'cpu_percent': 'lots'}))
    assert failed and 'cpu_percent must be a number' in result['msg']


def test_invalid_baseline_file_and_missing_dir(stub_server, tmp_path):
    srv = prometheus(stub_server)
    path = tmp_path / 'b.json'
    path.write_text('{not json')
    result, failed = run_module(perf_baseline, args_for(srv, path, state='compared'))
    assert failed and str(path) in result['msg'] and 'not valid JSON' in result['msg']
    result, failed = run_module(perf_baseline, args_for(srv, tmp_path / 'no' / 'b.json', state='recorded'))
    assert failed and 'does not exist' in result['msg']


def test_prometheus_url_from_env_and_node_not_scraped(stub_server, tmp_path, monkeypatch):
    def answer(req):
        return Route(200, {'status': 'success', 'data': {'resultType': 'vector', 'result': []}})

    srv = stub_server({'/api/v1/query': answer})
    monkeypatch.setenv('QFLOW_PROMETHEUS_URL', srv.url)
    result, failed = run_module(perf_baseline, {'baseline_path': str(tmp_path / 'b.json'), 'state': 'recorded',
                                                'prometheus_selector': '{job="qflow"}'})
    assert failed and 'no "up" series matching {job="qflow"}' in result['msg']
    assert not (tmp_path / 'b.json').exists()


def test_compare_engine_edges():
    tol = engine.resolve_tolerances(None)
    comparison, regressions = engine.compare(
        {'cpu_percent': 0, 'memory_percent': 0, 'cache_hit_rate': 80.0, 'flow_success_rate': None},
        {'cpu_percent': 5.0, 'memory_percent': 0, 'cache_hit_rate': 90.0, 'flow_success_rate': 99.0}, tol)
    assert regressions == []
    assert comparison['cpu_percent']['status'] == 'not comparable'   # relative change against 0
    assert comparison['memory_percent']['status'] == 'ok'
    assert comparison['cache_hit_rate']['change'] == 10.0 and comparison['cache_hit_rate']['status'] == 'ok'
    assert comparison['flow_success_rate']['status'] == 'not comparable'
    assert comparison['execution_p95_seconds']['status'] == 'not comparable'   # missing in both
    # exactly at the tolerance is not a regression
    comparison, regressions = engine.compare({'cpu_percent': 40.0}, {'cpu_percent': 50.0}, tol)
    assert comparison['cpu_percent']['change'] == 25.0 and regressions == []
