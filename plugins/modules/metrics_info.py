#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: metrics_info
short_description: Summarise the Prometheus metrics of a Qflow node
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Computes the runbook figures of a Qflow node (CPU, memory, flow success rate, p95 latencies, cache hit rate,
    active flows, health score, uptime) from its Prometheus metrics.
  - By default it scrapes O(metrics_url) and computes from the cumulative values, that is since the process
    started.
  - When O(prometheus_url) is set it asks that Prometheus server instead, over the last O(window) - C(increase()) of
    the counters and of the histogram buckets (summed by C(le)), and the current gauges - and computes the same
    figures from those numbers with the same code. Quantiles are computed from the buckets the same way as
    PromQL C(histogram_quantile) (linear interpolation inside the bucket).
  - Malformed metrics text makes the module fail with the URL, the line number and the line.
extends_documentation_fragment:
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
  - qflow.ops._attributes.INFO_MODULE
options:
  metrics_url:
    description:
      - URL of the node's Prometheus text endpoint.
      - If not set, the value of the E(QFLOW_METRICS_URL) environment variable is used, then the default.
      - With O(prometheus_url) it only serves to build the default O(prometheus_selector).
    type: str
    default: http://localhost:9090/metrics
  prometheus_url:
    description:
      - Root URL of a Prometheus server that scrapes the node, for example C(http://prometheus:9090).
      - If not set, the value of the E(QFLOW_PROMETHEUS_URL) environment variable is used.
      - When neither is set, the module scrapes O(metrics_url) directly.
    type: str
  prometheus_selector:
    description:
      - PromQL label matchers that select the node's series, for example C(instance="10.0.0.5:9090",job="qflow").
      - Braces are optional.
      - Defaults to C(instance="<host:port of metrics_url>").
    type: str
  window:
    description:
      - Time window of the Prometheus queries, for example V(5m), V(1h), V(24h).
      - Ignored when the node is scraped directly.
    type: str
    default: 5m
seealso:
  - module: qflow.ops.health_info
  - module: qflow.ops.alerts_info
'''

EXAMPLES = r'''
- name: Summarise the node metrics since the process started
  qflow.ops.metrics_info:
    metrics_url: "http://{{ ansible_host }}:9090/metrics"
  register: qflow_metrics

- name: Check the success rate
  ansible.builtin.assert:
    that: qflow_metrics.metrics.flow_success_rate is none or qflow_metrics.metrics.flow_success_rate >= 95

- name: Summarise the last hour through Prometheus
  qflow.ops.metrics_info:
    prometheus_url: http://prometheus.example.com:9090
    metrics_url: "http://{{ ansible_host }}:9090/metrics"
    window: 1h
  register: qflow_metrics
'''

RETURN = r'''
source:
  description: Where the numbers came from, V(node) (direct scrape) or V(prometheus).
  returned: success
  type: str
  sample: node
window:
  description: The O(window) used with Prometheus; null for a direct scrape (values since process start).
  returned: success
  type: str
  sample: 5m
selector:
  description: The PromQL label matchers used; null for a direct scrape.
  returned: success
  type: str
  sample: instance="127.0.1.2:9090"
metrics:
  description:
    - The summary. Every key is present; a value is null when the node does not export what it needs.
    - Counts and rates cover the window (Prometheus) or the process lifetime (direct scrape); gauges are current.
  returned: success
  type: dict
  contains:
    cpu_percent:
      description:
        - Process CPU, 100 = one core. With O(prometheus_url), the average over O(window) from
          C(rate(process_cpu_seconds_total)); else the node's own short-term gauge C(qflow_process_cpu_usage_percent).
      type: float
      returned: always
    memory_bytes:
      description: Resident memory (C(qflow_process_memory_usage_bytes), else C(process_resident_memory_bytes)).
      type: int
      returned: always
    memory_limit_bytes:
      description: Memory limit C(engine.maxMemoryMB) (C(qflow_process_memory_limit_bytes)).
      type: int
      returned: always
    memory_percent:
      description: RV(metrics.memory_bytes) as a percentage of the limit.
      type: float
      returned: always
    flows_completed:
      description: Completed executions (C(qflow_flows_completed_total)).
      type: float
      returned: always
    flows_failed:
      description: Failed executions (C(qflow_flows_failed_total)).
      type: float
      returned: always
    flow_success_rate:
      description: Completed / (completed + failed) in percent; null when no execution finished.
      type: float
      returned: always
    execution_p95_seconds:
      description: 95th percentile of C(qflow_flow_execution_duration_seconds).
      type: float
      returned: always
    node_selection_p95_ms:
      description: 95th percentile of C(qflow_node_selection_duration_seconds), in milliseconds.
      type: float
      returned: always
    validation_p95_seconds:
      description: 95th percentile of C(qflow_validation_duration_seconds).
      type: float
      returned: always
    validation_failures:
      description: Validation failures (C(qflow_validation_failures_total)).
      type: float
      returned: always
    cache_hit_rate:
      description:
        - Storage cache hits / requests in percent (C(qflow_storage_cache_hits_total) / C(qflow_storage_cache_requests_total)).
        - Falls back to the C(qflow_storage_cache_hit_ratio) gauge (last 60 s) when there were no requests.
      type: float
      returned: always
    active_flows:
      description: Pending + running + paused executions (C(qflow_flows_active_count)).
      type: int
      returned: always
    health_score:
      description: C(qflow_node_health_score), 1 = healthy, 0 = critical.
      type: float
      returned: always
    uptime_seconds:
      description: Process uptime (C(qflow_process_uptime_seconds), else from C(process_start_time_seconds)).
      type: float
      returned: always
  sample:
    cpu_percent: 12.5
    memory_bytes: 268435456
    memory_limit_bytes: 2147483648
    memory_percent: 12.5
    flows_completed: 190
    flows_failed: 10
    flow_success_rate: 95.0
    execution_p95_seconds: 2.375
    node_selection_p95_ms: 47.5
    validation_p95_seconds: 0.0475
    validation_failures: 3
    cache_hit_rate: 87.5
    active_flows: 4
    health_score: 1
    uptime_seconds: 86400.0
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.parameters import env_fallback

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowError, fetch, http_argument_spec, preview
from ansible_collections.qflow.ops.plugins.module_utils._prometheus import (
    PrometheusParseError,
    inputs_from_scrape,
    node_selector,
    parse_text,
    prom_query,
    summarize,
    window_summary,
)
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration

METRICS_HINT = 'Check that the qflow service is running and that metrics_url (QFLOW_METRICS_URL) is right.'


def from_node(module):
    url = module.params['metrics_url']
    resp = fetch(url, headers={'Accept': 'text/plain;version=0.0.4'}, timeout=module.params['timeout'],
                 validate_certs=module.params['validate_certs'], ca_path=module.params['ca_path'], retries=1,
                 what='The Qflow metrics endpoint', hint=METRICS_HINT)
    if resp.status != 200:
        module.fail_json(msg='The Qflow metrics endpoint %s answered HTTP %s: %s. %s'
                         % (resp.url, resp.status, preview(resp.body), METRICS_HINT))
    try:
        parsed = parse_text(resp.text(), source=resp.url)
    except PrometheusParseError as e:
        module.fail_json(msg='%s. Check that metrics_url points to a Prometheus text endpoint (format 0.0.4).' % e,
                         line_number=e.lineno, line=e.line)
    if not any(name.startswith('qflow_') for name in parsed.names()):
        module.warn('%s exposes no qflow_* metric; is metrics_url the Qflow metrics endpoint?' % resp.url)
    counters, gauges, histograms = inputs_from_scrape(parsed)
    return dict(source='node', window=None, selector=None,
                metrics=summarize(counters, gauges, histograms, now=time.time()))


def from_prometheus(module):
    prom_url = module.params['prometheus_url']
    window = module.params['window']
    try:
        seconds = parse_duration(window)
    except ValueError as e:
        module.fail_json(msg='window: %s' % e)
    if seconds <= 0:
        module.fail_json(msg="window must be longer than 0, got %r (e.g. '5m')" % window)
    selector = node_selector(module.params['prometheus_selector'], module.params['metrics_url'])

    def query(promql):
        return prom_query(prom_url, promql, timeout=module.params['timeout'],
                          validate_certs=module.params['validate_certs'], ca_path=module.params['ca_path'])

    try:
        metrics = window_summary(query, prom_url, selector, seconds, time.time())
    except QflowError as e:
        module.fail_json(msg=str(e), selector=selector)
    return dict(source='prometheus', window=window, selector=selector, metrics=metrics)


def main():
    argument_spec = dict(
        metrics_url=dict(type='str', default='http://localhost:9090/metrics', fallback=(env_fallback, ['QFLOW_METRICS_URL'])),
        prometheus_url=dict(type='str', fallback=(env_fallback, ['QFLOW_PROMETHEUS_URL'])),
        prometheus_selector=dict(type='str'),
        window=dict(type='str', default='5m'),
    )
    argument_spec.update(http_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        if module.params['prometheus_url']:
            result = from_prometheus(module)
        else:
            result = from_node(module)
    except QflowError as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
