# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: performance baselines (record the metrics_info summary, compare against it).

May change without notice.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import math
import os

from ansible_collections.qflow.ops.plugins.module_utils._files import write_atomic
from ansible_collections.qflow.ops.plugins.module_utils._prometheus import window_summary
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_iso

# metric -> (default tolerance, direction that is worse, unit of the change and of the tolerance)
# 'percent': relative change against the baseline in percent; 'points': absolute difference in percentage points.
METRICS = {
    'execution_p95_seconds': (20.0, 'higher', 'percent'),
    'node_selection_p95_ms': (20.0, 'higher', 'percent'),
    'cache_hit_rate': (5.0, 'lower', 'points'),
    'flow_success_rate': (2.0, 'lower', 'points'),
    'cpu_percent': (25.0, 'higher', 'percent'),
    'memory_percent': (25.0, 'higher', 'percent'),
}
KNOWN = tuple(sorted(METRICS))

NOT_COMPARABLE = 'not comparable'


class BaselineError(Exception):
    pass


def resolve_tolerances(given):
    """Defaults overridden by ``given`` (metric -> percent). Raise BaselineError on an unknown metric or a bad value."""
    tolerances = dict((name, spec[0]) for name, spec in METRICS.items())
    unknown = sorted(k for k in (given or {}) if k not in METRICS)
    if unknown:
        raise BaselineError('tolerances: unknown metric(s) %s; known metrics: %s'
                            % (', '.join(repr(k) for k in unknown), ', '.join(KNOWN)))
    for name, value in (given or {}).items():
        try:
            if isinstance(value, bool):
                raise ValueError()
            number = float(value)
        except (TypeError, ValueError):
            raise BaselineError('tolerances: %s must be a number of percent (or percentage points), got %r' % (name, value))
        if math.isnan(number) or math.isinf(number) or number < 0:
            raise BaselineError('tolerances: %s must be a finite number >= 0, got %r' % (name, value))
        tolerances[name] = number
    return tolerances


def current_summary(query, prometheus_url, selector, window_seconds, now):
    """The metrics_info summary of the node over the window (the one computation, in _prometheus)."""
    return window_summary(query, prometheus_url, selector, window_seconds, now)


def load(path):
    """The baseline document at ``path``, or None when the file does not exist. BaselineError when unreadable."""
    try:
        with open(path, 'rb') as handle:
            raw = handle.read()
    except (IOError, OSError) as e:
        if not os.path.exists(path):
            return None
        raise BaselineError('cannot read the baseline file %s: %s' % (path, e))
    try:
        doc = json.loads(raw.decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as e:
        raise BaselineError('the baseline file %s is not valid JSON (%s); record it again with state=recorded' % (path, e))
    if not isinstance(doc, dict) or not isinstance(doc.get('metrics'), dict):
        raise BaselineError('the baseline file %s has no "metrics" object; record it again with state=recorded' % path)
    return doc


def age_seconds(doc, now):
    """Seconds since the baseline was recorded, or None when recorded_at is missing or invalid."""
    try:
        return (now - parse_iso(doc.get('recorded_at'))).total_seconds()
    except (TypeError, ValueError):
        return None


def document(recorded_at, window, selector, metrics):
    return {'recorded_at': recorded_at, 'window': window, 'selector': selector, 'metrics': metrics}


def serialize(doc):
    return (json.dumps(doc, indent=2, sort_keys=True) + '\n').encode('utf-8')


def write(path, doc):
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        raise BaselineError('the directory %s of baseline_path does not exist; create it first' % directory)
    try:
        write_atomic(path, serialize(doc), mode=0o644)
    except (IOError, OSError) as e:
        raise BaselineError('cannot write the baseline file %s: %s' % (path, e))


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value) and not math.isinf(value)


def compare(baseline, current, tolerances):
    """Compare the current summary with the baseline summary.

    Returns (comparison, regressions): comparison maps every known metric to {metric, baseline, current, change,
    unit, tolerance, direction, status}; status is 'ok', 'regression' or 'not comparable' (a null or missing value
    on either side, or a relative change against a baseline of 0). regressions lists the 'regression' entries.
    """
    comparison = {}
    regressions = []
    for name in KNOWN:
        dummy, direction, unit = METRICS[name]
        before = baseline.get(name)
        after = current.get(name)
        entry = {'metric': name, 'baseline': before, 'current': after, 'change': None, 'unit': unit,
                 'tolerance': tolerances[name], 'direction': direction, 'status': NOT_COMPARABLE}
        comparison[name] = entry
        if not _is_number(before) or not _is_number(after):
            entry['reason'] = 'no value in the %s' % ('baseline' if not _is_number(before) else 'current window')
            continue
        if unit == 'points':
            change = float(after) - float(before)
        elif before == 0:
            if after != 0:
                entry['reason'] = 'the baseline is 0, a relative change has no meaning'
                continue
            change = 0.0
        else:
            change = 100.0 * (float(after) - float(before)) / abs(float(before))
        entry['change'] = round(change, 2)
        worse_by = change if direction == 'higher' else -change
        if worse_by > tolerances[name] + 1e-9:
            entry['status'] = 'regression'
            regressions.append(entry)
        else:
            entry['status'] = 'ok'
    return comparison, regressions


def describe(entry):
    """One line for a regression, e.g. 'execution_p95_seconds 2.0 -> 3.0 (+50.0 %, tolerance 20.0 %)'."""
    unit = '%' if entry['unit'] == 'percent' else 'points'
    return '%s %s -> %s (%+.2f %s, tolerance %s %s)' % (
        entry['metric'], entry['baseline'], entry['current'], entry['change'], unit, entry['tolerance'], unit)
