# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from qflow_stub_http import Route, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowError
from ansible_collections.qflow.ops.plugins.module_utils._prometheus import (
    PrometheusParseError,
    histogram_quantile,
    inputs_from_prometheus,
    inputs_from_scrape,
    instance_of,
    normalize_selector,
    parse_text,
    prom_query,
    summarize,
)

GOOD = '''# HELP qflow_flows_completed_total Executions that completed.
# TYPE qflow_flows_completed_total counter
qflow_flows_completed_total 190
qflow_flows_failed_total{reason="timeout"} 6
qflow_flows_failed_total{reason="node_failure",} 4 1700000000000
# a free comment
qflow_build_info{version="0.1.0",node_id="n\\"1\\\\x\\n"} 1
weird_value NaN
plus_inf +Inf
sci 1.5e3

# TYPE h histogram
h_bucket{le="0.1"} 10
h_bucket{le="0.5"} 20
h_bucket{le="+Inf"} 25
h_sum 7.5
h_count 25
'''


def test_parse_good_text():
    m = parse_text(GOOD)
    assert m.types['qflow_flows_completed_total'] == 'counter'
    assert m.value('qflow_flows_completed_total') == 190
    assert m.value('qflow_flows_failed_total') == 10
    assert m.value('qflow_flows_failed_total', reason='timeout') == 6
    assert m.series('qflow_flows_failed_total')[1].timestamp == 1700000000000
    assert m.series('qflow_build_info')[0].labels == {'version': '0.1.0', 'node_id': 'n"1\\x\n'}
    assert m.value('weird_value') is None  # NaN ignored
    assert m.value('plus_inf') == float('inf')
    assert m.value('sci') == 1500
    assert m.value('absent') is None
    assert m.buckets('h') == [(0.1, 10), (0.5, 20), (float('inf'), 25)]


@pytest.mark.parametrize('line,lineno,reason', [
    ('qflow_flows_completed_total abc{', 3, 'invalid sample value'),
    ('qflow_x{le="1"', 3, 'expected'),
    ('qflow_x{le=1} 2', 3, 'quoted value'),
    ('qflow_x', 3, 'missing sample value'),
    ('qflow_x 1 2 3', 3, 'unexpected text'),
    ('qflow_x 1 notatime', 3, 'invalid timestamp'),
    ('9bad 1', 3, 'metric name'),
    ('# TYPE qflow_x wrongtype', 3, 'unknown metric type'),
])
def test_parse_rejects_malformed_line(line, lineno, reason):
    text = '# TYPE qflow_ok gauge\nqflow_ok 1\n%s\nqflow_ok2 2\n' % line
    with pytest.raises(PrometheusParseError) as exc:
        parse_text(text, source='http://127.0.1.2:9090/metrics')
    e = exc.value
    assert e.lineno == lineno
    assert e.line == line
    assert reason in str(e)
    assert 'line %d' % lineno in str(e) and 'http://127.0.1.2:9090/metrics' in str(e)
    assert repr(line) in str(e)


def test_quantile_matches_promql():
    # Values checked against PromQL histogram_quantile semantics.
    b = [(0.1, 10), (0.5, 20), (1.0, 30), (float('inf'), 40)]
    assert histogram_quantile(0.5, b) == pytest.approx(0.5)           # rank 20 -> end of 2nd bucket
    assert histogram_quantile(0.25, b) == pytest.approx(0.1)          # rank 10 -> end of 1st bucket
    assert histogram_quantile(0.125, b) == pytest.approx(0.05)        # rank 5 inside 1st bucket (from 0)
    assert histogram_quantile(0.625, b) == pytest.approx(0.75)        # rank 25 half-way in (0.5, 1]
    assert histogram_quantile(0.95, b) == pytest.approx(1.0)          # rank 38 in +Inf bucket -> highest finite bound
    assert histogram_quantile(0.0, b) == pytest.approx(0.0)
    assert histogram_quantile(1.5, b) == float('inf')
    assert histogram_quantile(-1, b) == float('-inf')


def test_quantile_edge_cases():
    inf = float('inf')
    assert histogram_quantile(0.95, None) is None
    assert histogram_quantile(0.95, [(0.1, 0), (inf, 0)]) is None         # no observations
    assert histogram_quantile(0.95, [(0.1, 5), (1.0, 5)]) is None         # no +Inf bucket
    assert histogram_quantile(0.95, [(inf, 5)]) is None                   # fewer than 2 buckets
    # unsorted input, duplicate le summed (two series), non monotonic fixed
    b = [(inf, 20), (0.5, 10), (0.5, 10), (0.1, 0)]
    assert histogram_quantile(0.5, b) == pytest.approx(0.1 + 0.4 * 10 / 20)
    assert histogram_quantile(0.5, [(0.1, 10), (0.2, 5), (inf, 10)]) == pytest.approx(0.05)
    # first bucket with a negative upper bound answers that bound
    assert histogram_quantile(0.1, [(-1, 5), (0, 10), (inf, 10)]) == -1
    # qflow execution histogram example: 95% of 200 = rank 190 in (2, 5] bucket holding 20 from 180
    b = [(0.05, 10), (0.5, 100), (1, 150), (2, 180), (5, 200), (30, 200), (inf, 200)]
    assert histogram_quantile(0.95, b) == pytest.approx(2 + 3 * (10 / 20))


def test_instance_and_selector():
    assert instance_of('http://127.0.1.2:9090/metrics') == '127.0.1.2:9090'
    assert instance_of('http://node.example.com/metrics') == 'node.example.com:80'
    assert instance_of('https://node.example.com/metrics') == 'node.example.com:443'
    assert instance_of('node:9090') == 'node:9090'
    assert normalize_selector('{job="qflow"}') == 'job="qflow"'
    assert normalize_selector(' job="qflow" ') == 'job="qflow"'


def test_summarize_from_scrape():
    text = '''
qflow_flows_completed_total 190
qflow_flows_failed_total 10
qflow_validation_failures_total 3
qflow_storage_cache_hits_total 70
qflow_storage_cache_requests_total 80
qflow_storage_cache_hit_ratio 0.5
qflow_process_cpu_usage_percent 12.345
qflow_process_memory_usage_bytes 268435456
qflow_process_memory_limit_bytes 2147483648
qflow_flows_active_count 4
qflow_node_health_score 1
qflow_process_uptime_seconds 3600.25
qflow_flow_execution_duration_seconds_bucket{le="0.05"} 10
qflow_flow_execution_duration_seconds_bucket{le="0.5"} 100
qflow_flow_execution_duration_seconds_bucket{le="1"} 150
qflow_flow_execution_duration_seconds_bucket{le="2"} 180
qflow_flow_execution_duration_seconds_bucket{le="5"} 200
qflow_flow_execution_duration_seconds_bucket{le="+Inf"} 200
qflow_node_selection_duration_seconds_bucket{le="0.005"} 0
qflow_node_selection_duration_seconds_bucket{le="0.05"} 100
qflow_node_selection_duration_seconds_bucket{le="+Inf"} 100
'''
    out = summarize(*inputs_from_scrape(parse_text(text)), now=0)
    assert out == {
        'cpu_percent': 12.35, 'memory_bytes': 268435456, 'memory_limit_bytes': 2147483648, 'memory_percent': 12.5,
        'flows_completed': 190, 'flows_failed': 10, 'flow_success_rate': 95.0,
        'execution_p95_seconds': 3.5, 'node_selection_p95_ms': 47.75, 'validation_p95_seconds': None,
        'validation_failures': 3, 'cache_hit_rate': 87.5, 'active_flows': 4, 'health_score': 1,
        'uptime_seconds': 3600.2,
    }


def test_summarize_fallbacks():
    out = summarize({'qflow_storage_cache_hits_total': 0, 'qflow_storage_cache_requests_total': 0,
                     'qflow_flows_completed_total': 0, 'qflow_flows_failed_total': 0},
                    {'qflow_storage_cache_hit_ratio': 0.8, 'process_resident_memory_bytes': 100,
                     'process_start_time_seconds': 1000.0}, {}, now=1060.0)
    assert out['flow_success_rate'] is None          # no finished executions
    assert out['cache_hit_rate'] == 80.0             # gauge fallback
    assert out['memory_bytes'] == 100 and out['memory_percent'] is None
    assert out['uptime_seconds'] == 60
    # dashboard names only
    out = summarize({'qflow_flow_executions_total': 50, 'qflow_flow_execution_failures_total': 5}, {}, {})
    assert out['flows_completed'] == 45 and out['flows_failed'] == 5 and out['flow_success_rate'] == 90.0


def test_prom_query_and_inputs(stub_server):
    seen = []

    def answer(req):
        from ansible.module_utils.six.moves.urllib.parse import parse_qs, urlsplit
        q = parse_qs(urlsplit(req['path']).query)['query'][0]
        seen.append(q)
        if q.startswith('sum by (le)') and 'qflow_flow_execution_duration_seconds_bucket' in q:
            result = [{'metric': {'le': le}, 'value': [1700000000, v]}
                      for le, v in (('0.5', '5'), ('1', '10'), ('+Inf', '20'))]
        elif q.startswith('sum(increase(qflow_flows_completed_total'):
            result = [{'metric': {}, 'value': [1700000000, '19.5']}]
        elif q.startswith('sum(last_over_time(qflow_node_health_score{'):
            result = [{'metric': {}, 'value': [1, '0.5']}]
        else:
            result = []
        return Route(200, {'status': 'success', 'data': {'resultType': 'vector', 'result': result}})

    srv = stub_server({'/api/v1/query': answer})

    def query(promql):
        return prom_query(srv.url, promql, timeout=5)

    counters, gauges, hists = inputs_from_prometheus(query, '{instance="a:9090"}', 300)
    assert counters['qflow_flows_completed_total'] == 19.5
    assert counters['qflow_flows_failed_total'] is None
    assert gauges['qflow_node_health_score'] == 0.5
    assert hists['qflow_flow_execution_duration_seconds'] == [(0.5, 5.0), (1.0, 10.0), (float('inf'), 20.0)]
    assert 'sum(increase(qflow_flows_completed_total{instance="a:9090"}[300s]))' in seen
    assert 'sum by (le) (increase(qflow_flow_execution_duration_seconds_bucket{instance="a:9090"}[300s]))' in seen
    assert 'sum(last_over_time(qflow_node_health_score{instance="a:9090"}[1m]))' in seen


def test_prom_query_errors(stub_server):
    srv = stub_server({
        '/bad/api/v1/query': Route(400, {'status': 'error', 'errorType': 'bad_data', 'error': 'parse error'}),
        '/html/api/v1/query': Route(200, '<html>'),
        '/matrix/api/v1/query': Route(200, {'status': 'success', 'data': {'resultType': 'matrix', 'result': []}}),
    })
    with pytest.raises(QflowError) as exc:
        prom_query(srv.url + '/bad', 'up{')
    assert 'rejected the query up{' in str(exc.value) and 'bad_data' in str(exc.value)
    with pytest.raises(QflowError) as exc:
        prom_query(srv.url + '/html', 'up')
    assert 'not JSON' in str(exc.value)
    with pytest.raises(QflowError) as exc:
        prom_query(srv.url + '/matrix', 'up')
    assert 'unsupported result type' in str(exc.value)
