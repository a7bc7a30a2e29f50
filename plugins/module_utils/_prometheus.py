# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: Prometheus text format, histogram quantiles, PromQL queries, Qflow metric summary.

May change without notice.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import math
import re

from ansible.module_utils.six.moves.urllib.parse import urlencode, urlsplit

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowError, QflowHttpError, fetch, preview

_NAME_RE = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')
_LABEL_NAME_RE = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*')
_TYPES = ('counter', 'gauge', 'histogram', 'summary', 'untyped', 'info', 'stateset', 'gaugehistogram', 'unknown')
_ESCAPES = {'\\': '\\', '"': '"', 'n': '\n'}


class PrometheusParseError(ValueError):
    """A line of the text format that cannot be parsed; carries the line number and the line."""

    def __init__(self, lineno, line, reason, source=None):
        self.lineno = lineno
        self.line = line
        self.reason = reason
        self.source = source
        where = (' from %s' % source) if source else ''
        shown = line if len(line) <= 200 else line[:200] + '...'
        super(PrometheusParseError, self).__init__(
            'Malformed Prometheus metrics%s, line %d: %s (%r)' % (where, lineno, reason, shown))


def parse_float(text):
    """Prometheus sample value: a Go float, with NaN, +Inf, -Inf, Inf."""
    low = text.lower()
    if low in ('+inf', 'inf'):
        return float('inf')
    if low == '-inf':
        return float('-inf')
    if low == 'nan':
        return float('nan')
    if not re.match(r'^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$', text) and not re.match(r'^[-+]?0[xX][0-9a-fA-F]+$', text):
        raise ValueError('invalid sample value %r' % text)
    if text.lstrip('+-')[:2].lower() == '0x':
        return float(int(text, 16))
    return float(text)


def _parse_labels(text, pos):
    """Parse ``{a="b",c="d"}`` starting at text[pos] == '{'. Return (labels, new_pos)."""
    labels = {}
    pos += 1
    n = len(text)
    while True:
        while pos < n and text[pos] in ' \t':
            pos += 1
        if pos < n and text[pos] == '}':
            return labels, pos + 1
        match = _LABEL_NAME_RE.match(text, pos)
        if not match:
            raise ValueError('expected a label name or "}" at column %d' % (pos + 1))
        name = match.group(0)
        pos = match.end()
        while pos < n and text[pos] in ' \t':
            pos += 1
        if pos >= n or text[pos] != '=':
            raise ValueError('expected "=" after label %r' % name)
        pos += 1
        while pos < n and text[pos] in ' \t':
            pos += 1
        if pos >= n or text[pos] != '"':
            raise ValueError('expected a quoted value for label %r' % name)
        pos += 1
        value = []
        while True:
            if pos >= n:
                raise ValueError('unterminated value of label %r' % name)
            char = text[pos]
            if char == '\\':
                if pos + 1 >= n or text[pos + 1] not in _ESCAPES:
                    raise ValueError('invalid escape in the value of label %r' % name)
                value.append(_ESCAPES[text[pos + 1]])
                pos += 2
                continue
            if char == '"':
                pos += 1
                break
            value.append(char)
            pos += 1
        if name in labels:
            raise ValueError('duplicate label %r' % name)
        labels[name] = ''.join(value)
        while pos < n and text[pos] in ' \t':
            pos += 1
        if pos < n and text[pos] == ',':
            pos += 1
            continue
        if pos < n and text[pos] == '}':
            return labels, pos + 1
        raise ValueError('expected "," or "}" after the value of label %r' % name)


class Sample(object):
    __slots__ = ('name', 'labels', 'value', 'timestamp')

    def __init__(self, name, labels, value, timestamp=None):
        self.name = name
        self.labels = labels
        self.value = value
        self.timestamp = timestamp

    def __repr__(self):
        return 'Sample(%r, %r, %r)' % (self.name, self.labels, self.value)


class Metrics(object):
    """Parsed exposition: samples plus the declared types; helpers that sum across label sets."""

    def __init__(self, samples, types=None, helps=None):
        self.samples = samples
        self.types = types or {}
        self.helps = helps or {}
        self._by_name = {}
        for sample in samples:
            self._by_name.setdefault(sample.name, []).append(sample)

    def names(self):
        return sorted(self._by_name)

    def has(self, name):
        return name in self._by_name

    def series(self, name):
        return list(self._by_name.get(name, []))

    def value(self, name, **labels):
        """Sum of the samples of ``name`` whose labels include ``labels``; None when there is none."""
        found = [s.value for s in self._by_name.get(name, [])
                 if all(s.labels.get(k) == v for k, v in labels.items()) and not math.isnan(s.value)]
        if not found:
            return None
        return float(sum(found))

    def buckets(self, name):
        """Cumulative buckets of histogram ``name`` (base name, without _bucket), summed by ``le``."""
        sums = {}
        for sample in self._by_name.get(name + '_bucket', []):
            if 'le' not in sample.labels:
                continue
            try:
                upper = parse_float(sample.labels['le'])
            except ValueError:
                continue
            sums[upper] = sums.get(upper, 0.0) + sample.value
        if not sums:
            return None
        return sorted(sums.items())


def parse_text(text, source=None):
    """Parse the Prometheus text exposition format (0.0.4). Raise PrometheusParseError on a malformed line."""
    samples = []
    types = {}
    helps = {}
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    for lineno, raw in enumerate(text.split('\n'), 1):
        line = raw.rstrip('\r')
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith('#'):
            parts = stripped[1:].strip().split(None, 2)
            if parts and parts[0] in ('TYPE', 'HELP'):
                if len(parts) < 2 or not _NAME_RE.fullmatch(parts[1]):
                    raise PrometheusParseError(lineno, line, 'invalid # %s line' % parts[0], source)
                if parts[0] == 'TYPE':
                    kind = parts[2].strip().lower() if len(parts) > 2 else ''
                    if kind not in _TYPES:
                        raise PrometheusParseError(lineno, line, 'unknown metric type %r' % kind, source)
                    types[parts[1]] = kind
                else:
                    helps[parts[1]] = parts[2] if len(parts) > 2 else ''
            continue
        try:
            match = _NAME_RE.match(stripped)
            if not match:
                raise ValueError('expected a metric name')
            name = match.group(0)
            pos = match.end()
            labels = {}
            if pos < len(stripped) and stripped[pos] == '{':
                labels, pos = _parse_labels(stripped, pos)
            rest = stripped[pos:]
            if rest and rest[0] not in ' \t':
                raise ValueError('unexpected %r after the metric name' % rest[0])
            fields = rest.split()
            if not fields:
                raise ValueError('missing sample value')
            if len(fields) > 2:
                raise ValueError('unexpected text after the value and timestamp')
            value = parse_float(fields[0])
            timestamp = None
            if len(fields) == 2:
                if not re.match(r'^-?\d+$', fields[1]):
                    raise ValueError('invalid timestamp %r' % fields[1])
                timestamp = int(fields[1])
        except ValueError as e:
            raise PrometheusParseError(lineno, line, str(e), source)
        samples.append(Sample(name, labels, value, timestamp))
    return Metrics(samples, types, helps)


def histogram_quantile(q, buckets):
    """Quantile ``q`` from cumulative buckets [(upper_bound, count), ...], like PromQL histogram_quantile.

    Linear interpolation inside the bucket that holds the rank; the lower bound of the first bucket is 0
    (unless its upper bound is <= 0); a rank in the +Inf bucket answers the highest finite upper bound.
    Returns None where PromQL answers NaN (no +Inf bucket, fewer than 2 buckets, no observations).
    """
    if q is None or buckets is None:
        return None
    if q < 0:
        return float('-inf')
    if q > 1:
        return float('inf')
    merged = {}
    for upper, count in buckets:
        upper = float(upper)
        if math.isnan(count):
            continue
        merged[upper] = merged.get(upper, 0.0) + float(count)
    items = sorted(merged.items())
    if len(items) < 2 or not math.isinf(items[-1][0]) or items[-1][0] < 0:
        return None
    # Counts must be monotonic; Prometheus fixes violations (e.g. from scrape races) by carrying the max.
    fixed = []
    high = 0.0
    for upper, count in items:
        high = max(high, count)
        fixed.append((upper, high))
    items = fixed
    observations = items[-1][1]
    if observations <= 0:
        return None
    rank = q * observations
    b = 0
    while b < len(items) and items[b][1] < rank:
        b += 1
    if b >= len(items) - 1:
        return items[-2][0]
    if b == 0 and items[0][0] <= 0:
        return items[0][0]
    bucket_start = 0.0
    bucket_end = items[b][0]
    count = items[b][1]
    if b > 0:
        bucket_start = items[b - 1][0]
        count -= items[b - 1][1]
        rank -= items[b - 1][1]
    if count <= 0:
        return bucket_start
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


# --------------------------------------------------------------------------------------------------------------
# PromQL over HTTP

def prom_query(prometheus_url, query, timeout=10, validate_certs=True, ca_path=None, at=None):
    """Run an instant PromQL query (GET /api/v1/query). Return a list of (labels, value) for vector answers.

    A scalar answer gives one element with empty labels. Raises QflowError with a clear message otherwise.
    """
    base = prometheus_url.rstrip('/')
    params = [('query', query)]
    if at is not None:
        params.append(('time', str(at)))
    url = '%s/api/v1/query?%s' % (base, urlencode(params))
    resp = fetch(url, timeout=timeout, validate_certs=validate_certs, ca_path=ca_path, retries=1,
                 what='The Prometheus server',
                 hint='Check that Prometheus is running and that prometheus_url (QFLOW_PROMETHEUS_URL) is right.')
    shown = '%s/api/v1/query' % base
    try:
        answer = json.loads(resp.text())
    except ValueError:
        raise QflowHttpError('The Prometheus server at %s answered HTTP %s with a body that is not JSON: %s. '
                             'Check that prometheus_url points to a Prometheus server.'
                             % (shown, resp.status, preview(resp.body)), url=shown, status=resp.status, kind='garbage')
    if not isinstance(answer, dict) or answer.get('status') != 'success':
        if isinstance(answer, dict) and answer.get('status') == 'error':
            raise QflowError('Prometheus at %s rejected the query %s: HTTP %s %s: %s. Check prometheus_selector and window.'
                             % (shown, query, resp.status, answer.get('errorType'), answer.get('error')), url=shown)
        raise QflowError('Prometheus at %s answered HTTP %s with JSON that is not a query result: %s. '
                         'Check that prometheus_url points to a Prometheus server.'
                         % (shown, resp.status, preview(resp.text())), url=shown)
    data = answer.get('data') or {}
    rtype = data.get('resultType')
    result = data.get('result')
    out = []
    try:
        if rtype == 'vector':
            for item in result or []:
                out.append((item.get('metric') or {}, parse_float(str(item['value'][1]))))
        elif rtype == 'scalar':
            out.append(({}, parse_float(str(result[1]))))
        else:
            raise ValueError('unsupported result type %r' % rtype)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise QflowError('Prometheus at %s answered the query %s with an unexpected result (%s): %s'
                         % (shown, query, e, preview(json.dumps(data))), url=shown)
    return out


def instance_of(url):
    """``host:port`` of a scrape URL, as Prometheus writes the ``instance`` label (default port added)."""
    parts = urlsplit(url if '://' in url else 'http://' + url)
    host = parts.hostname or 'localhost'
    if ':' in host:
        host = '[%s]' % host
    port = parts.port or (443 if parts.scheme == 'https' else 80)
    return '%s:%s' % (host, port)


def node_selector(selector, metrics_url):
    """The node's series matchers: ``selector`` when given, else ``instance="<host:port of metrics_url>"``."""
    if selector is None:
        selector = 'instance="%s"' % instance_of(metrics_url)
    return normalize_selector(selector)


def normalize_selector(selector):
    """Accept ``a="b",c="d"`` or ``{a="b"}``; return the inner matcher list."""
    selector = (selector or '').strip()
    if selector.startswith('{') and selector.endswith('}'):
        selector = selector[1:-1].strip()
    return selector


# --------------------------------------------------------------------------------------------------------------
# The Qflow summary, computed from numbers that come either from a scrape or from Prometheus

COUNTERS = (
    'qflow_flows_completed_total', 'qflow_flows_failed_total',
    'qflow_flow_executions_total', 'qflow_flow_execution_failures_total',
    'qflow_validation_failures_total',
    'qflow_storage_cache_hits_total', 'qflow_storage_cache_requests_total',
)
GAUGES = (
    'qflow_process_cpu_usage_percent', 'qflow_process_memory_usage_bytes', 'process_resident_memory_bytes',
    'qflow_process_memory_limit_bytes', 'qflow_flows_active_count', 'qflow_node_health_score',
    'qflow_process_uptime_seconds', 'process_start_time_seconds', 'qflow_storage_cache_hit_ratio',
)
HISTOGRAMS = (
    'qflow_flow_execution_duration_seconds', 'qflow_node_selection_duration_seconds',
    'qflow_validation_duration_seconds',
)


def _num(value, digits=3):
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    if float(value).is_integer():
        return int(value)
    return round(value, digits)


def _pct(part, whole):
    if part is None or not whole:
        return None
    return round(100.0 * part / whole, 2)


def _scale(value, factor):
    return None if value is None else value * factor


def summarize(counters, gauges, histograms, now=None, window_seconds=None):
    """Compute the metrics_info summary.

    ``counters``: name -> number (cumulative since start, or increase over the window) or None;
    with ``window_seconds`` (the counters are increases over that window), CPU is the average over the window
    from ``process_cpu_seconds_total`` rather than the node's short-term gauge;
    ``gauges``: name -> number or None; ``histograms``: base name -> cumulative [(le, count)] or None.
    """
    c = dict((k, counters.get(k)) for k in COUNTERS)
    g = dict((k, gauges.get(k)) for k in GAUGES)
    completed = c['qflow_flows_completed_total']
    failed = c['qflow_flows_failed_total']
    if completed is None and c['qflow_flow_executions_total'] is not None:
        # Dashboard names: executions_total counts every finished execution (completed, failed or aborted),
        # failures_total the failed ones; aborted executions then count as completed.
        failed = c['qflow_flow_execution_failures_total'] if failed is None else failed
        completed = max(0.0, c['qflow_flow_executions_total'] - (failed or 0.0))
    if failed is None and c['qflow_flow_execution_failures_total'] is not None:
        failed = c['qflow_flow_execution_failures_total']
    finished = (completed or 0.0) + (failed or 0.0)
    success_rate = _pct(completed or 0.0, finished) if finished > 0 else None

    hits = c['qflow_storage_cache_hits_total']
    requests = c['qflow_storage_cache_requests_total']
    if hits is not None and requests:
        cache_hit_rate = _pct(hits, requests)
    elif g['qflow_storage_cache_hit_ratio'] is not None:
        cache_hit_rate = round(100.0 * g['qflow_storage_cache_hit_ratio'], 2)
    else:
        cache_hit_rate = None

    memory = g['qflow_process_memory_usage_bytes']
    if memory is None:
        memory = g['process_resident_memory_bytes']
    limit = g['qflow_process_memory_limit_bytes']

    uptime = g['qflow_process_uptime_seconds']
    if uptime is None and g['process_start_time_seconds'] and now is not None:
        uptime = max(0.0, now - g['process_start_time_seconds'])

    def p95(name):
        return histogram_quantile(0.95, histograms.get(name))

    execution_p95 = p95('qflow_flow_execution_duration_seconds')
    selection_p95 = p95('qflow_node_selection_duration_seconds')
    validation_p95 = p95('qflow_validation_duration_seconds')
    cpu = g['qflow_process_cpu_usage_percent']
    cpu_seconds = counters.get('process_cpu_seconds_total')
    if window_seconds and cpu_seconds is not None:
        cpu = 100.0 * cpu_seconds / window_seconds
    return {
        'cpu_percent': None if cpu is None else round(cpu, 2),
        'memory_bytes': _num(memory, 0),
        'memory_limit_bytes': _num(limit, 0),
        'memory_percent': _pct(memory, limit),
        'flows_completed': _num(completed),
        'flows_failed': _num(failed),
        'flow_success_rate': success_rate,
        'execution_p95_seconds': _num(execution_p95, 4),
        'node_selection_p95_ms': _num(_scale(selection_p95, 1000.0), 2),
        'validation_p95_seconds': _num(validation_p95, 4),
        'validation_failures': _num(c['qflow_validation_failures_total']),
        'cache_hit_rate': cache_hit_rate,
        'active_flows': _num(g['qflow_flows_active_count']),
        'health_score': _num(g['qflow_node_health_score'], 3),
        'uptime_seconds': _num(uptime, 1),
    }


def inputs_from_scrape(metrics):
    """(counters, gauges, histograms) from a parsed scrape (values are cumulative since process start)."""
    counters = dict((name, metrics.value(name)) for name in COUNTERS)
    gauges = dict((name, metrics.value(name)) for name in GAUGES)
    histograms = dict((name, metrics.buckets(name)) for name in HISTOGRAMS)
    return counters, gauges, histograms


def inputs_from_prometheus(query, selector, window_seconds):
    """(counters, gauges, histograms) from a Prometheus server over a window.

    ``query(promql)`` returns [(labels, value)]. Counters: ``sum(increase(c{sel}[w]))``; histogram buckets:
    ``sum by (le) (increase(h_bucket{sel}[w]))``; gauges: ``sum(last_over_time(g{sel}[1m]))``.
    """
    sel = normalize_selector(selector)
    rng = '%ds' % max(1, int(round(window_seconds)))
    counters = {}
    for name in COUNTERS + ('process_cpu_seconds_total',):
        result = query('sum(increase(%s{%s}[%s]))' % (name, sel, rng))
        counters[name] = result[0][1] if result else None
    histograms = {}
    for name in HISTOGRAMS:
        result = query('sum by (le) (increase(%s_bucket{%s}[%s]))' % (name, sel, rng))
        buckets = []
        for labels, value in result:
            if 'le' in labels:
                try:
                    buckets.append((parse_float(labels['le']), value))
                except ValueError:
                    continue
        histograms[name] = sorted(buckets) or None
    # Gauges: the last sample of the last minute, so one slow or missed scrape does not blank them out.
    gauges = dict((name, None) for name in GAUGES)
    for name in GAUGES:
        result = query('sum(last_over_time(%s{%s}[1m]))' % (name, sel))
        if result and not math.isnan(result[0][1]):
            gauges[name] = result[0][1]
    return counters, gauges, histograms


def window_summary(query, prometheus_url, selector, window_seconds, now):
    """The metrics_info summary of one node over a window, through Prometheus.

    ``query(promql)`` returns [(labels, value)]. A node counts as scraped when one scrape of the last minute
    succeeded, so a single slow scrape on a busy Prometheus does not blank it out. Raises QflowError when
    Prometheus does not scrape the node, or has not scraped it successfully for a minute.
    """
    selector = normalize_selector(selector)
    shown = prometheus_url.rstrip('/')
    up = query('max_over_time(up{%s}[1m])' % selector)
    if not up:
        raise QflowError('Prometheus at %s has no "up" series matching {%s}: it does not scrape this node. Check '
                         'the Prometheus scrape targets, and prometheus_selector or metrics_url.' % (shown, selector))
    if not any(value >= 1 for _labels, value in up):
        raise QflowError('Prometheus at %s has not scraped the node for a minute (up == 0 for {%s}): its metrics are stale. '
                         'Check that the node runs and that its metrics endpoint answers (Prometheus /targets shows the '
                         'scrape error).' % (shown, selector))
    counters, gauges, histograms = inputs_from_prometheus(query, selector, window_seconds)
    return summarize(counters, gauges, histograms, now=now, window_seconds=window_seconds)
