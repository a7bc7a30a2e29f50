# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: read alerts from Alertmanager (API v2) and normalise them. May change without notice."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

from ansible.module_utils.six.moves.urllib.parse import urlencode

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowError, QflowHttpError, fetch, preview
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_iso

SEVERITY_ORDER = {'critical': 0, 'error': 1, 'warning': 2, 'info': 3}
AM_HINT = 'Check that Alertmanager is running and that alertmanager_url (QFLOW_ALERTMANAGER_URL) is right.'


def _quote(value):
    return '"%s"' % str(value).replace('\\', '\\\\').replace('"', '\\"')


def fetch_alerts(alertmanager_url, matchers=None, include_silenced=False, timeout=10, validate_certs=True,
                 ca_path=None, retries=1):
    """GET /api/v2/alerts (active only; silenced and inhibited ones too if include_silenced). Return the raw list."""
    base = alertmanager_url.rstrip('/')
    params = [('active', 'true'), ('unprocessed', 'true'),
              ('silenced', 'true' if include_silenced else 'false'),
              ('inhibited', 'true' if include_silenced else 'false')]
    for name, value in sorted((matchers or {}).items()):
        params.append(('filter', '%s=%s' % (name, _quote(value))))
    url = '%s/api/v2/alerts?%s' % (base, urlencode(params))
    shown = '%s/api/v2/alerts' % base
    resp = fetch(url, timeout=timeout, validate_certs=validate_certs, ca_path=ca_path, retries=retries,
                 what='Alertmanager', hint=AM_HINT)
    text = resp.text()
    try:
        answer = json.loads(text)
    except ValueError:
        raise QflowHttpError('Alertmanager at %s answered HTTP %s with a body that is not JSON: %s. %s'
                             % (shown, resp.status, preview(resp.body), AM_HINT), url=shown, status=resp.status,
                             kind='garbage')
    if resp.status != 200:
        raise QflowError('Alertmanager at %s answered HTTP %s: %s. Check the matchers and the Alertmanager logs.'
                         % (shown, resp.status, preview(text)), url=shown)
    if not isinstance(answer, list):
        raise QflowError('Alertmanager at %s answered JSON that is not a list of alerts: %s. %s'
                         % (shown, preview(text), AM_HINT), url=shown)
    return answer


def normalize(alert):
    labels = alert.get('labels') or {}
    annotations = alert.get('annotations') or {}
    status = alert.get('status') or {}
    state = status.get('state') or 'active'
    return {
        'name': labels.get('alertname'),
        'severity': labels.get('severity'),
        'state': state,
        'starts_at': alert.get('startsAt'),
        'ends_at': alert.get('endsAt'),
        'instance': labels.get('instance'),
        'summary': annotations.get('summary') or annotations.get('description') or annotations.get('message'),
        'labels': labels,
        'annotations': annotations,
        'silenced': bool(status.get('silencedBy')),
        'inhibited': bool(status.get('inhibitedBy')),
        'fingerprint': alert.get('fingerprint'),
    }


def select(alerts, since_dt=None, severities=None, matchers=None, include_silenced=False):
    """Filter normalised alerts (client side too, so a proxy or an old Alertmanager cannot widen the answer).

    Return them sorted by severity (critical first), then newest first.
    """
    wanted = set(s.lower() for s in severities) if severities else None
    out = []
    for alert in alerts:
        labels = alert['labels']
        if matchers and any(labels.get(k) != str(v) for k, v in matchers.items()):
            continue
        if wanted is not None and (alert['severity'] or '').lower() not in wanted:
            continue
        if not include_silenced and (alert['state'] == 'suppressed' or alert['silenced'] or alert['inhibited']):
            continue
        if since_dt is not None:
            try:
                if alert['starts_at'] is None or parse_iso(alert['starts_at']) < since_dt:
                    continue
            except ValueError:
                continue
        out.append(alert)
    out.sort(key=lambda a: a['starts_at'] or '', reverse=True)
    out.sort(key=lambda a: SEVERITY_ORDER.get((a['severity'] or '').lower(), 9))
    return out


def count_by_severity(alerts):
    counts = {}
    for alert in alerts:
        key = alert['severity'] or 'none'
        counts[key] = counts.get(key, 0) + 1
    return counts
