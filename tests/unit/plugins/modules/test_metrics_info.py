# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.module_utils.six.moves.urllib.parse import parse_qs, urlsplit

from qflow_stub_http import Route, free_port, run_module, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.modules import metrics_info

METRICS = '''# HELP qflow_flows_completed_total Executions that completed.
# TYPE qflow_flows_completed_total counter
qflow_flows_completed_total 95
# TYPE qflow_flows_failed_total counter
qflow_flows_failed_total 5
qflow_validation_failures_total 2
qflow_storage_cache_requests_total 200
qflow_storage_cache_hits_total 150
qflow_storage_cache_hit_ratio 0.9
qflow_flows_active_count 3
qflow_node_health_score 1
qflow_process_cpu_usage_percent 7.5
qflow_process_memory_usage_bytes 104857600
qflow_process_memory_limit_bytes 2147483648
qflow_process_uptime_seconds 42
# TYPE qflow_flow_execution_duration_seconds histogram
qflow_flow_execution_duration_seconds_bucket{le="0.05"} 0
qflow_flow_execution_duration_seconds_bucket{le="0.5"} 50
qflow_flow_execution_duration_seconds_bucket{le="1"} 90
qflow_flow_execution_duration_seconds_bucket{le="5"} 100
qflow_flow_execution_duration_seconds_bucket{le="+Inf"} 100
qflow_flow_execution_duration_seconds_sum 60
qflow_flow_execution_duration_seconds_count 100
qflow_validation_duration_seconds_bucket{le="0.01"} 10
qflow_validation_duration_seconds_bucket{le="0.1"} 20
qflow_validation_duration_seconds_bucket{le="+Inf"} 20
qflow_node_selection_duration_seconds_bucket{le="0.005"} 10
qflow_node_selection_duration_seconds_bucket{le="0.1"} 20
qflow_node_selection_duration_seconds_bucket{le="+Inf"} 20
'''


def test_scrape_node(stub_server):
    srv = stub_server({'/metrics': Route(200, METRICS)})
    result, failed = run_module(metrics_info, {'metrics_url': srv.url + '/metrics'})
    assert not failed, result.get('msg')
    assert result['changed'] is False and result['source'] == 'node' and result['window'] is None
    m = result['metrics']
    assert m['flows_completed'] == 95 and m['flows_failed'] == 5 and m['flow_success_rate'] == 95.0
    assert m['execution_p95_seconds'] == 3.0            # rank 95 in (1, 5]: 1 + 4 * 5/10
    assert m['validation_p95_seconds'] == 0.091          # rank 19 in (0.01, 0.1]: 0.01 + 0.09 * 9/10
    assert m['node_selection_p95_ms'] == 90.5            # rank 19 in (0.005, 0.1]: 5 + 95 * 9/10 ms
    assert m['cache_hit_rate'] == 75.0
    assert m['memory_percent'] == round(100.0 * 104857600 / 2147483648, 2)
    assert m['active_flows'] == 3 and m['health_score'] == 1 and m['cpu_percent'] == 7.5
    assert m['uptime_seconds'] == 42 and m['validation_failures'] == 2
    assert sorted(m) == sorted([
        'cpu_percent', 'memory_bytes', 'memory_limit_bytes', 'memory_percent', 'flows_completed', 'flows_failed',
        'flow_success_rate', 'execution_p95_seconds', 'node_selection_p95_ms', 'validation_p95_seconds',
        'validation_failures', 'cache_hit_rate', 'active_flows', 'health_score', 'uptime_seconds'])


def test_malformed_metrics_fail_with_line(stub_server):
    srv = stub_server({'/metrics': Route(200, 'qflow_ok 1\nqflow_flows_completed_total abc{\n')})
    result, failed = run_module(metrics_info, {'metrics_url': srv.url + '/metrics'})
    assert failed
    assert 'line 2' in result['msg'] and 'qflow_flows_completed_total abc{' in result['msg']
    assert srv.url + '/metrics' in result['msg']
    assert result['line_number'] == 2


def test_metrics_endpoint_down():
    port = free_port()
    result, failed = run_module(metrics_info, {'metrics_url': 'http://127.0.0.1:%d/metrics' % port})
    assert failed and 'Cannot reach the Qflow metrics endpoint' in result['msg'] and 'metrics_url' in result['msg']


def test_metrics_http_error(stub_server):
    srv = stub_server({'/metrics': Route(503, 'down for maintenance')})
    result, failed = run_module(metrics_info, {'metrics_url': srv.url + '/metrics'})
    assert failed and 'answered HTTP 503' in result['msg']


def test_prometheus_source(stub_server):
    seen = []
    vec = {
        'sum(increase(qflow_flows_completed_total': 38.0,
        'sum(increase(qflow_flows_failed_total': 2.0,
        'sum(increase(qflow_storage_cache_hits_total': 9.0,
        'sum(increase(qflow_storage_cache_requests_total': 10.0,
        'sum(increase(process_cpu_seconds_total': 2700.0,   # 0.75 core over the hour
    }

    def answer(req):
        q = parse_qs(urlsplit(req['path']).query)['query'][0]
        seen.append(q)
        result = []
        if q.startswith('max_over_time(up{'):
            result = [{'metric': {'instance': 'node1:9090'}, 'value': [1, '1']}]
        elif q.startswith('sum by (le) (increase(qflow_flow_execution_duration_seconds_bucket'):
            result = [{'metric': {'le': le}, 'value': [1, v]} for le, v in (('1', '20'), ('2', '40'), ('+Inf', '40'))]
        elif q.startswith('sum(last_over_time('):
            gauge = {'qflow_flows_active_count': '7', 'qflow_process_cpu_usage_percent': '3', 'qflow_node_health_score': '0.4'}
            name = q[len('sum(last_over_time('):].split('{')[0]
            result = [{'metric': {}, 'value': [1, gauge[name]]}] if name in gauge else []
        else:
            for prefix, value in vec.items():
                if q.startswith(prefix):
                    result = [{'metric': {}, 'value': [1, str(value)]}]
        return Route(200, {'status': 'success', 'data': {'resultType': 'vector', 'result': result}})

    srv = stub_server({'/api/v1/query': answer})
    result, failed = run_module(metrics_info, {'prometheus_url': srv.url, 'metrics_url': 'http://node1:9090/metrics',
                                               'window': '1h'})
    assert not failed, result.get('msg')
    assert result['source'] == 'prometheus' and result['window'] == '1h'
    assert result['selector'] == 'instance="node1:9090"'
    m = result['metrics']
    assert m['flows_completed'] == 38 and m['flows_failed'] == 2 and m['flow_success_rate'] == 95.0
    assert m['execution_p95_seconds'] == 1.9             # rank 38 in (1, 2]: 1 + 1 * 18/20
    assert m['cache_hit_rate'] == 90.0 and m['active_flows'] == 7 and m['health_score'] == 0.4
    assert m['node_selection_p95_ms'] is None
    assert m['cpu_percent'] == 75.0  # the window's average, not the node's instant gauge (3)
    assert 'sum(increase(qflow_flows_completed_total{instance="node1:9090"}[3600s]))' in seen
    assert not any('histogram_quantile' in q for q in seen)


def test_prometheus_selector_override_and_no_series(stub_server):
    def answer(req):
        return Route(200, {'status': 'success', 'data': {'resultType': 'vector', 'result': []}})

    srv = stub_server({'/api/v1/query': answer})
    result, failed = run_module(metrics_info, {'prometheus_url': srv.url, 'prometheus_selector': '{job="qflow"}'})
    assert failed and 'no "up" series matching {job="qflow"}' in result['msg']


def test_prometheus_bad_window(stub_server):
    result, failed = run_module(metrics_info, {'prometheus_url': 'http://127.0.0.1:1', 'window': 'five minutes'})
    assert failed and result['msg'].startswith('window: invalid duration')


def test_prometheus_node_down_is_a_clear_error(stub_server):
    def answer(req):
        q = parse_qs(urlsplit(req['path']).query)['query'][0]
        result = [{'metric': {'instance': 'node1:9090'}, 'value': [1, '0']}] if q.startswith('max_over_time(up{') else []
        return Route(200, {'status': 'success', 'data': {'resultType': 'vector', 'result': result}})

    srv = stub_server({'/api/v1/query': answer})
    result, failed = run_module(metrics_info, {'prometheus_url': srv.url, 'metrics_url': 'http://node1:9090/metrics'})
    assert failed and 'up == 0' in result['msg'] and 'instance="node1:9090"' in result['msg']
