#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: capacity_info
short_description: Capacity of a Qflow node and its linear forecast from Prometheus history
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - The runbook's monthly capacity report. For each resource it reads the average over the history O(window) from
    Prometheus and fits a straight line through the history (C(deriv) over a subquery with step O(step)), then
    forecasts the value after O(horizon) and the days until the resource reaches its limit.
  - Resources - C(cpu_percent) (limit V(80)), C(memory_percent) of the node's memory limit (limit V(85)),
    C(executions_per_day) and C(active_flows) (no limit unless given in O(limits)).
  - A forecast is only as good as the history behind it. RV(history_seconds) tells how much history Prometheus
    really holds for the node; with less than a day of it, RV(forecast_warnings) says the forecast is not meaningful.
extends_documentation_fragment:
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
  - qflow.ops._attributes.INFO_MODULE
options:
  prometheus_url:
    description:
      - Prometheus base URL. Falls back to the environment variable E(QFLOW_PROMETHEUS_URL).
    type: str
    required: true
  metrics_url:
    description:
      - The node's metrics URL; its C(host:port) is the node's C(instance) label, used when O(prometheus_selector) is
        not given.
    type: str
    default: http://localhost:9090/metrics
  prometheus_selector:
    description:
      - Label matchers of the node's series, for example V(node="qflow-node-1").
    type: str
  window:
    description:
      - History to average and to fit, for example V(30d).
    type: str
    default: 30d
  step:
    description:
      - Resolution of the fitted series (subquery step).
    type: str
    default: 1h
  horizon:
    description:
      - How far ahead to forecast.
    type: str
    default: 90d
  limits:
    description:
      - Limits by resource name, overriding the defaults (C(cpu_percent) V(80), C(memory_percent) V(85)).
    type: dict
    default: {}
seealso:
  - module: qflow.ops.metrics_info
  - module: qflow.ops.perf_baseline
'''

EXAMPLES = r'''
- name: Capacity report with a 90-day forecast from 30 days of history
  qflow.ops.capacity_info:
    prometheus_url: "{{ qflow_prometheus_url }}"
    metrics_url: "{{ qflow_metrics_url }}"
    window: 30d
    horizon: 90d
  register: qflow_capacity

- name: Warn about resources that reach their limit within the horizon
  ansible.builtin.debug:
    msg: "{{ item.key }} reaches {{ item.value.limit }} in {{ item.value.days_to_limit }} days"
  loop: "{{ qflow_capacity.resources | dict2items | selectattr('value.status', 'equalto', 'exceeds limit within horizon') }}"
'''

RETURN = r'''
selector:
  description: The label matchers used.
  returned: always
  type: str
  sample: instance="127.0.1.1:9090"
history_seconds:
  description: Seconds of history Prometheus holds for the node (bounded by O(window)).
  returned: success
  type: float
  sample: 2592000.0
resources:
  description:
    - By resource, C(current) (average over the window), C(forecast) (after the horizon), C(per_day) (fitted change
      per day), C(limit), C(days_to_limit) (null when the limit is not approached) and C(status)
      (V(ok), V(exceeds limit within horizon) or V(no data)).
  returned: success
  type: dict
  sample: {"cpu_percent": {"current": 41.2, "forecast": 63.8, "per_day": 0.251, "limit": 80.0,
           "days_to_limit": 154.6, "status": "ok"}}
at_risk:
  description: Names of the resources that reach their limit within the horizon.
  returned: success
  type: list
  elements: str
  sample: []
summary:
  description: One readable line per resource.
  returned: success
  type: list
  elements: str
  sample: ["cpu_percent 41.2% now, 63.8% in 90d (limit 80.0, reached in 154.6 days)"]
forecast_warnings:
  description: Why the forecast may not be meaningful (short history). Also shown as task warnings.
  returned: success
  type: list
  elements: str
  sample: ["only 0.4 h of history (window 30d): the forecast is not meaningful yet"]
'''

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowError, http_argument_spec
from ansible_collections.qflow.ops.plugins.module_utils._prometheus import node_selector, prom_query
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration
from ansible_collections.qflow.ops.plugins.module_utils import _capacity as capacity


def main():
    spec = dict(
        prometheus_url=dict(type='str', required=True, fallback=(env_fallback, ['QFLOW_PROMETHEUS_URL'])),
        metrics_url=dict(type='str', default='http://localhost:9090/metrics', fallback=(env_fallback, ['QFLOW_METRICS_URL'])),
        prometheus_selector=dict(type='str'),
        window=dict(type='str', default='30d'),
        step=dict(type='str', default='1h'),
        horizon=dict(type='str', default='90d'),
        limits=dict(type='dict', default={}),
    )
    spec.update(http_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    try:
        window_s = parse_duration(p['window'])
        step_s = parse_duration(p['step'])
        horizon_s = parse_duration(p['horizon'])
    except ValueError as exc:
        module.fail_json(msg='window, step and horizon must be durations such as 30d, 1h, 90d: %s' % exc)
    if step_s <= 0 or window_s < 2 * step_s:
        module.fail_json(msg='window (%s) must hold at least two steps (%s)' % (p['window'], p['step']))
    unknown = sorted(set(p['limits']) - set(capacity.RESOURCES))
    if unknown:
        module.fail_json(msg='unknown resource(s) in limits: %s (known: %s)' % (', '.join(unknown), ', '.join(sorted(capacity.RESOURCES))))
    selector = node_selector(p['prometheus_selector'], p['metrics_url'])
    http = dict(timeout=p['timeout'], validate_certs=p['validate_certs'], ca_path=p['ca_path'])

    def scalar(query):
        rows = prom_query(p['prometheus_url'], query, **http)
        return rows[0][1] if rows else None

    resources, warnings = {}, []
    try:
        first = scalar('time() - min_over_time(timestamp(qflow_build_info{%s})[%s:1m])' % (selector, p['window']))
        history = min(first, window_s) if first is not None else 0.0
        # the fit needs at least two steps; on a short history use a step that fits it
        fit_step = p['step'] if history >= 4 * step_s else '%ds' % max(int(history // 8), 15)
        for name in sorted(capacity.RESOURCES):
            q = capacity.queries(name, selector, p['window'], fit_step)
            limit = p['limits'].get(name, q['limit'])
            resources[name] = capacity.forecast(scalar(q['current']), scalar(q['slope']), horizon_s,
                                                float(limit) if limit is not None else None)
            resources[name]['unit'] = q['unit']
    except QflowError as exc:
        module.fail_json(msg=str(exc), selector=selector)
    if history <= 0:
        module.fail_json(msg='Prometheus at %s has no series for %s in the last %s; check prometheus_selector or '
                             'metrics_url (the instance label)' % (p['prometheus_url'], selector, p['window']),
                         selector=selector)
    if history < 86400:
        warnings.append('only %.1f h of history (window %s): the forecast is not meaningful yet' % (history / 3600.0, p['window']))
    for text in warnings:
        module.warn(text)
    module.exit_json(changed=False, selector=selector, history_seconds=round(history, 1), resources=resources,
                     at_risk=[n for n, r in sorted(resources.items()) if r['status'] == 'exceeds limit within horizon'],
                     forecast_warnings=warnings,
                     summary=[capacity.line(n, r, p['horizon']) for n, r in sorted(resources.items())])


if __name__ == '__main__':
    main()
