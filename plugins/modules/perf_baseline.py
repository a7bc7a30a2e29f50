#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: perf_baseline
short_description: Record a performance baseline of a Qflow node from Prometheus and compare the current window against it
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Computes the summary of M(qflow.ops.metrics_info) over the last O(window) through Prometheus (the same queries
    and the same computation) and either records it as the node's baseline in the JSON file O(baseline_path) on
    the target (O(state=recorded)) or compares it with the recorded baseline (O(state=compared)).
  - The baseline file holds C(recorded_at) (ISO 8601 UTC), C(window), C(selector) and C(metrics) (the whole
    summary). It is written atomically (temporary file, fsync, rename) with mode C(0644).
  - The comparison covers C(execution_p95_seconds), C(node_selection_p95_ms), C(cpu_percent) and
    C(memory_percent) (relative change in percent of the baseline, higher is worse) and C(cache_hit_rate) and
    C(flow_success_rate) (difference in percentage points, lower is worse). A metric that changes for the worse by
    more than its tolerance is a regression. A metric that is null on either side is reported as
    V(not comparable), never as a regression.
  - O(state=compared) never writes and never fails because of a regression; test RV(ok) or RV(regressions).
extends_documentation_fragment:
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - With O(state=recorded), queries Prometheus, predicts whether the baseline would be written (honouring
        O(max_age)) and writes nothing.
      - O(state=compared) is read-only and runs the same in check mode.
  diff_mode:
    support: full
    details:
      - With O(state=recorded), the metrics of the existing baseline (null when there is none) and the metrics that
        are (or would be) recorded.
options:
  state:
    description:
      - V(recorded) writes the summary of the current window as the baseline (see O(max_age)).
      - V(compared) compares the current window with the baseline and returns RV(regressions), RV(ok) and
        RV(comparison). It never writes.
    type: str
    choices: [recorded, compared]
    default: compared
  prometheus_url:
    description:
      - Root URL of a Prometheus server that scrapes the node, for example C(http://prometheus:9090).
      - If not set, the value of the E(QFLOW_PROMETHEUS_URL) environment variable is used.
    type: str
    required: true
  metrics_url:
    description:
      - URL of the node's Prometheus text endpoint. Only serves to build the default O(prometheus_selector).
      - If not set, the value of the E(QFLOW_METRICS_URL) environment variable is used, then the default.
    type: str
    default: http://localhost:9090/metrics
  prometheus_selector:
    description:
      - PromQL label matchers that select the node's series, for example C(instance="10.0.0.5:9090",job="qflow").
      - Braces are optional.
      - Defaults to C(instance="<host:port of metrics_url>").
    type: str
  window:
    description:
      - Time window of the Prometheus queries, for example V(30m), V(1h), V(24h).
      - Compare over the same window as the baseline was recorded with; a different one gives a warning.
    type: str
    default: 1h
  baseline_path:
    description:
      - JSON file on the target that holds the baseline, for example C(/var/lib/qflow/perf-baseline.json).
      - Its directory must exist.
    type: path
    required: true
  tolerances:
    description:
      - How much worse than the baseline each metric may get before it is a regression, by metric name.
      - Given metrics override the defaults, the others keep theirs. An unknown metric name makes the module fail.
      - C(execution_p95_seconds) (default V(20)), C(node_selection_p95_ms) (V(20)), C(cpu_percent) (V(25)) and
        C(memory_percent) (V(25)) are percent of the baseline value, and higher is worse.
      - C(cache_hit_rate) (default V(5)) and C(flow_success_rate) (V(2)) are percentage points, and lower is worse.
    type: dict
  max_age:
    description:
      - With O(state=recorded), keep an existing baseline recorded less than this duration ago for the same
        O(prometheus_selector) and O(window) (not changed, RV(skipped_reason) set). Prometheus is not queried then.
      - A number with an optional unit V(s), V(m), V(h), V(d) or V(w), for example V(7d), which makes a weekly run
        idempotent.
      - When not set, every run with O(state=recorded) records a new baseline.
    type: str
notes:
  - Record the baseline during a representative period; a baseline taken while the node is idle makes every later
    window look like a regression.
  - A metric whose baseline is V(0) cannot have a relative change; it is V(not comparable) unless it is still V(0).
seealso:
  - module: qflow.ops.metrics_info
'''

EXAMPLES = r'''
- name: Record the weekly baseline (kept when one younger than 7 days exists)
  qflow.ops.perf_baseline:
    state: recorded
    prometheus_url: http://prometheus.example.com:9090
    metrics_url: "http://{{ ansible_host }}:9090/metrics"
    window: 1h
    baseline_path: /var/lib/qflow/perf-baseline.json
    max_age: 7d
  become: true

- name: Compare the last hour with the baseline
  qflow.ops.perf_baseline:
    state: compared
    prometheus_url: http://prometheus.example.com:9090
    metrics_url: "http://{{ ansible_host }}:9090/metrics"
    window: 1h
    baseline_path: /var/lib/qflow/perf-baseline.json
    tolerances:
      execution_p95_seconds: 30
      cache_hit_rate: 10
  register: qflow_perf

- name: Fail on a regression
  ansible.builtin.assert:
    that: qflow_perf.ok
    fail_msg: "{{ qflow_perf.msg }}"
'''

RETURN = r'''
baseline_path:
  description: The baseline file.
  returned: always
  type: str
  sample: /var/lib/qflow/perf-baseline.json
window:
  description: The O(window) of the current queries.
  returned: success
  type: str
  sample: 1h
selector:
  description: The PromQL label matchers used.
  returned: success
  type: str
  sample: instance="127.0.1.2:9090"
baseline:
  description:
    - The baseline document. With O(state=recorded), the one written (would be written in check mode) or kept;
      with O(state=compared), the one compared against.
  returned: success
  type: dict
  contains:
    recorded_at:
      description: When the baseline was recorded, ISO 8601 UTC.
      type: str
      sample: '2026-11-27T03:12:45.123Z'
    window:
      description: The window it was recorded over.
      type: str
      sample: 1h
    selector:
      description: The PromQL label matchers it was recorded with.
      type: str
      sample: instance="127.0.1.2:9090"
    metrics:
      description: The M(qflow.ops.metrics_info) summary of that window.
      type: dict
      sample: {execution_p95_seconds: 1.9, node_selection_p95_ms: 47.5, cache_hit_rate: 90.0, flow_success_rate: 95.0}
skipped_reason:
  description: Why the existing baseline was kept (O(max_age)).
  returned: with O(state=recorded) when the existing baseline is younger than O(max_age)
  type: str
  sample: baseline recorded at 2026-11-27T03:12:45.123Z (2.0 h ago) is younger than max_age 7d
metrics:
  description: The summary of the current window (same keys as the M(qflow.ops.metrics_info) summary).
  returned: with O(state=compared)
  type: dict
  sample: {execution_p95_seconds: 2.5, node_selection_p95_ms: 47.5, cache_hit_rate: 90.0, flow_success_rate: 95.0}
comparison:
  description:
    - Every compared metric, by name, with the same keys as the elements of RV(regressions) plus C(status).
    - C(status) is V(ok), V(regression) or V(not comparable) (null on either side, with C(reason)).
  returned: with O(state=compared)
  type: dict
  sample:
    execution_p95_seconds: {metric: execution_p95_seconds, baseline: 1.9, current: 2.5, change: 31.58, unit: percent,
                            tolerance: 20.0, direction: higher, status: regression}
    cache_hit_rate: {metric: cache_hit_rate, baseline: 90.0, current: 88.0, change: -2.0, unit: points,
                     tolerance: 5.0, direction: lower, status: ok}
regressions:
  description: The metrics that got worse by more than their tolerance.
  returned: with O(state=compared)
  type: list
  elements: dict
  contains:
    metric:
      description: Metric name.
      type: str
      sample: execution_p95_seconds
    baseline:
      description: Value in the baseline.
      type: float
      sample: 1.9
    current:
      description: Value over the current window.
      type: float
      sample: 2.5
    change:
      description: Current minus baseline, in percent of the baseline (C(unit=percent)) or in percentage points (C(unit=points)).
      type: float
      sample: 31.58
    unit:
      description: V(percent) or V(points), the unit of C(change) and C(tolerance).
      type: str
      sample: percent
    tolerance:
      description: The tolerance that was exceeded.
      type: float
      sample: 20.0
    direction:
      description: The direction that is worse, V(higher) or V(lower).
      type: str
      sample: higher
    status:
      description: Always V(regression) here.
      type: str
      sample: regression
ok:
  description: True when there is no regression.
  returned: with O(state=compared)
  type: bool
  sample: false
diff:
  description: With O(state=recorded), the baseline metrics before (null when there was none) and after.
  returned: with O(state=recorded)
  type: dict
  contains:
    before:
      description: Metrics of the existing baseline, or null.
      type: dict
      sample: null
    after:
      description: Metrics recorded (or kept).
      type: dict
      sample: {execution_p95_seconds: 1.9, cache_hit_rate: 90.0}
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: '1 regression(s) against the baseline of 2026-11-27T03:12:45.123Z: execution_p95_seconds 1.9 -> 2.5 (+31.58 %, tolerance 20.0 %)'
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.parameters import env_fallback

from ansible_collections.qflow.ops.plugins.module_utils import _baseline as engine
from ansible_collections.qflow.ops.plugins.module_utils._api import QflowError, http_argument_spec
from ansible_collections.qflow.ops.plugins.module_utils._prometheus import node_selector, prom_query
from ansible_collections.qflow.ops.plugins.module_utils._time import iso, parse_duration, utcnow


def _duration(module, name, result):
    try:
        seconds = parse_duration(module.params[name])
    except ValueError as e:
        module.fail_json(msg='%s: %s' % (name, e), **result)
    if seconds <= 0:
        module.fail_json(msg="%s must be longer than 0, got %r (e.g. '1h')" % (name, module.params[name]), **result)
    return seconds


def _current(module, selector, window_seconds, result):
    p = module.params

    def query(promql):
        return prom_query(p['prometheus_url'], promql, timeout=p['timeout'], validate_certs=p['validate_certs'], ca_path=p['ca_path'])

    try:
        return engine.current_summary(query, p['prometheus_url'], selector, window_seconds, now=time.time())
    except QflowError as e:
        module.fail_json(msg=str(e), **result)


def _recorded(module, selector, window_seconds, result):
    p = module.params
    path = p['baseline_path']
    max_age = _duration(module, 'max_age', result) if p['max_age'] is not None else None
    try:
        existing = engine.load(path)
    except engine.BaselineError as e:
        existing = None
        module.warn('%s; it will be replaced' % e)
    before = existing['metrics'] if existing else None
    now = utcnow()
    if existing is not None and max_age is not None:
        age = engine.age_seconds(existing, now)
        same = existing.get('selector') == selector and existing.get('window') == p['window']
        if age is not None and -60 <= age < max_age and same:
            result['skipped_reason'] = ('baseline recorded at %s (%.1f h ago) is younger than max_age %s'
                                        % (existing['recorded_at'], age / 3600.0, p['max_age']))
            result.update(baseline=existing, msg='baseline kept: ' + result['skipped_reason'],
                          diff={'before': before, 'after': before})
            module.exit_json(**result)
    metrics = _current(module, selector, window_seconds, result)
    doc = engine.document(iso(now), p['window'], selector, metrics)
    result.update(changed=True, baseline=doc, diff={'before': before, 'after': metrics})
    if module.check_mode:
        result['msg'] = 'would record the baseline of the last %s in %s' % (p['window'], path)
        module.exit_json(**result)
    try:
        engine.write(path, doc)
    except engine.BaselineError as e:
        module.fail_json(msg=str(e), **result)
    result['msg'] = 'recorded the baseline of the last %s in %s' % (p['window'], path)
    module.exit_json(**result)


def _compared(module, selector, window_seconds, tolerances, result):
    p = module.params
    path = p['baseline_path']
    try:
        baseline = engine.load(path)
    except engine.BaselineError as e:
        module.fail_json(msg=str(e), **result)
    if baseline is None:
        module.fail_json(msg='no baseline at %s: run qflow.ops.perf_baseline with state=recorded first' % path, **result)
    if baseline.get('selector') not in (None, selector):
        module.warn('the baseline in %s was recorded for {%s}, the current window is for {%s}' % (path, baseline.get('selector'), selector))
    if baseline.get('window') not in (None, p['window']):
        module.warn('the baseline in %s was recorded over %s, the current window is %s: the figures may not compare'
                    % (path, baseline.get('window'), p['window']))
    metrics = _current(module, selector, window_seconds, result)
    comparison, regressions = engine.compare(baseline['metrics'], metrics, tolerances)
    result.update(baseline=baseline, metrics=metrics, comparison=comparison, regressions=regressions, ok=not regressions)
    when = baseline.get('recorded_at') or 'unknown date'
    skipped = sorted(name for name, entry in comparison.items() if entry['status'] == engine.NOT_COMPARABLE)
    tail = ('; not comparable: %s' % ', '.join(skipped)) if skipped else ''
    if regressions:
        result['msg'] = '%d regression(s) against the baseline of %s: %s%s' % (
            len(regressions), when, '; '.join(engine.describe(r) for r in regressions), tail)
    else:
        result['msg'] = 'no regression against the baseline of %s%s' % (when, tail)
    module.exit_json(**result)


def main():
    argument_spec = dict(
        state=dict(type='str', default='compared', choices=['recorded', 'compared']),
        prometheus_url=dict(type='str', required=True, fallback=(env_fallback, ['QFLOW_PROMETHEUS_URL'])),
        metrics_url=dict(type='str', default='http://localhost:9090/metrics', fallback=(env_fallback, ['QFLOW_METRICS_URL'])),
        prometheus_selector=dict(type='str'),
        window=dict(type='str', default='1h'),
        baseline_path=dict(type='path', required=True),
        tolerances=dict(type='dict'),
        max_age=dict(type='str'),
    )
    argument_spec.update(http_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    result = dict(changed=False, baseline_path=p['baseline_path'])
    try:
        tolerances = engine.resolve_tolerances(p['tolerances'])
    except engine.BaselineError as e:
        module.fail_json(msg=str(e), **result)
    window_seconds = _duration(module, 'window', result)
    selector = node_selector(p['prometheus_selector'], p['metrics_url'])
    result.update(window=p['window'], selector=selector)
    if p['state'] == 'recorded':
        _recorded(module, selector, window_seconds, result)
    else:
        _compared(module, selector, window_seconds, tolerances, result)


if __name__ == '__main__':
    main()
