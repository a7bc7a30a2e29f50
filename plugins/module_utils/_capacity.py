# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: capacity figures and their linear forecast from Prometheus history. May change without notice."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DAY = 86400.0

# name: (PromQL of the current value over the history window, PromQL of the series to fit, unit, default limit)
# {sel} is the node selector, {w} the history window, {step} the subquery step.
RESOURCES = {
    'cpu_percent': ('avg_over_time(qflow_process_cpu_usage_percent{{{sel}}}[{w}])',
                    'qflow_process_cpu_usage_percent{{{sel}}}', '%', 80.0),
    'memory_percent': ('100 * avg_over_time(qflow_process_memory_usage_bytes{{{sel}}}[{w}])'
                       ' / max_over_time(qflow_process_memory_limit_bytes{{{sel}}}[{w}])',
                       '100 * qflow_process_memory_usage_bytes{{{sel}}} / qflow_process_memory_limit_bytes{{{sel}}}',
                       '%', 85.0),
    'executions_per_day': ('86400 * sum(rate(qflow_flow_executions_total{{{sel}}}[{w}]))',
                           '86400 * sum(rate(qflow_flow_executions_total{{{sel}}}[{step}]))', 'executions', None),
    'active_flows': ('avg_over_time(qflow_flows_active_count{{{sel}}}[{w}])',
                     'qflow_flows_active_count{{{sel}}}', 'flows', None),
}


def queries(name, selector, window, step):
    current, series, unit, limit = RESOURCES[name]
    fit = '(%s)[%s:%s]' % (series.format(sel=selector, w=window, step=step), window, step)
    return {
        'current': current.format(sel=selector, w=window, step=step),
        'slope': 'deriv(%s)' % fit,
        'unit': unit,
        'limit': limit,
    }


def forecast(current, slope_per_second, horizon_seconds, limit):
    """Linear forecast: the value after the horizon, the change per day and the days until the limit (None when
    the limit is not approached)."""
    if current is None:
        return {'current': None, 'forecast': None, 'per_day': None, 'days_to_limit': None, 'limit': limit,
                'status': 'no data'}
    slope = slope_per_second or 0.0
    value = current + slope * horizon_seconds
    days = None
    if limit is not None:
        if current >= limit:
            days = 0.0
        elif slope > 0:
            days = (limit - current) / (slope * DAY)
    horizon_days = horizon_seconds / DAY
    if limit is None:
        status = 'ok'
    elif days is not None and days <= horizon_days:
        status = 'exceeds limit within horizon'
    else:
        status = 'ok'
    return {'current': round(current, 3), 'forecast': round(max(value, 0.0), 3), 'per_day': round(slope * DAY, 4),
            'days_to_limit': None if days is None else round(days, 1), 'limit': limit, 'status': status}


def line(name, r, horizon):
    """One readable line of a resource forecast."""
    if r['current'] is None:
        return '%s: no data' % name
    pct = r['unit'] if r['unit'] == '%' else ''
    text = '%s %s%s now, %s%s in %s' % (name, r['current'], pct, r['forecast'], pct, horizon)
    if r['limit'] is not None:
        text += ' (limit %s' % r['limit']
        text += ', reached in %s days)' % r['days_to_limit'] if r['days_to_limit'] is not None else ')'
    return text
