# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: incident records of qflow.ops.incident and qflow.ops.incident_info. May change without notice.

Layout of an incident directory (on the controller)::

    <incident_dir>/index.json                 id -> {severity, status, title, kind, opened_at}
    <incident_dir>/latest                     symlink to the most recently opened incident's directory
    <incident_dir>/<id>/incident.json         the record (mode 0640, written atomically)
    <incident_dir>/<id>/timeline.md           Markdown rendering of the record
    <incident_dir>/<id>/postmortem.md         post-mortem skeleton, written at resolve when absent (never overwritten)

Everything here is a pure function of (the files, the options, now) until write_plan(), so that check mode computes
the same result as a real run and writes nothing.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import collections
import copy
import datetime
import errno
import json
import os
import re

from ansible_collections.qflow.ops.plugins.module_utils._files import write_atomic
from ansible_collections.qflow.ops.plugins.module_utils._report import _point_link
from ansible_collections.qflow.ops.plugins.module_utils._time import iso, parse_duration, parse_iso, utcnow

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

STATES = ('opened', 'acknowledged', 'updated', 'escalated', 'resolved')
STATUSES = ('open', 'acknowledged', 'resolved')
EVENT_STATUSES = ('ok', 'failed', 'skipped', 'info')
ID_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$')
FILE_MODE = 0o640
DIR_MODE = 0o750
DASH = u'\u2014'
STATUS_MARKS = {'ok': u'\u2705', 'failed': u'\u274c', 'skipped': u'\u23ed\ufe0f', 'info': u'\u2139\ufe0f'}

# The runbook's severity levels and response times.
SEVERITIES = collections.OrderedDict([
    ('P0', {'name': 'Critical', 'response': '15m', 'description': 'complete outage - service down, data loss'}),
    ('P1', {'name': 'High', 'response': '1h', 'description': 'major functionality impaired - high error rate, performance degradation'}),
    ('P2', {'name': 'Medium', 'response': '4h', 'description': 'minor issue - single feature broken, slow response'}),
    ('P3', {'name': 'Low', 'response': '24h', 'description': 'cosmetic issue'}),
])

# The runbook's escalation procedure (Level 1 ops, Level 2 engineering, Level 3 management).
DEFAULT_ESCALATION = [
    {'level': 1, 'name': 'Operations Team', 'severities': ['P0', 'P1', 'P2'], 'after': '0s', 'respond_within': '15m',
     'channel': '#ops-alerts', 'email': ['ops-team@example.com'], 'kinds_immediate': []},
    {'level': 2, 'name': 'Engineering Team', 'severities': ['P0'], 'after': '0s', 'respond_within': '30m',
     'channel': '#engineering-alerts', 'email': ['engineering@example.com'], 'kinds_immediate': []},
    {'level': 2, 'name': 'Engineering Team', 'severities': ['P1'], 'after': '1h', 'respond_within': '30m',
     'channel': '#engineering-alerts', 'email': ['engineering@example.com'], 'kinds_immediate': []},
    {'level': 3, 'name': 'Management', 'severities': ['P0'], 'after': '2h', 'respond_within': '1h',
     'channel': None, 'email': ['management@example.com'], 'kinds_immediate': ['security-breach']},
]
LEVEL_KEYS = ('level', 'name', 'severities', 'after', 'respond_within', 'channel', 'email', 'kinds_immediate')


class IncidentError(Exception):
    """A failure meant for the operator: the cause and what to do next."""


# ------------------------------------------------------------------------------------------- argument specs

def event_spec():
    return dict(
        step=dict(type='str'),
        action=dict(type='str'),
        status=dict(type='str', default='info', choices=list(EVENT_STATUSES)),
        detail=dict(type='str'),
        host=dict(type='str'),
        data=dict(type='dict'),
    )


def level_spec():
    return dict(
        level=dict(type='int', required=True),
        name=dict(type='str'),
        severities=dict(type='list', elements='str', choices=list(SEVERITIES), default=list(SEVERITIES)),
        after=dict(type='str', default='0s'),
        respond_within=dict(type='str'),
        channel=dict(type='str'),
        email=dict(type='list', elements='str', default=[]),
        kinds_immediate=dict(type='list', elements='str', default=[]),
    )


def argument_spec():
    from ansible.module_utils.common.parameters import env_fallback
    return dict(
        incident_dir=dict(type='path', required=True, fallback=(env_fallback, ['QFLOW_INCIDENT_DIR'])),
        id=dict(type='str'),
        state=dict(type='str', required=True, choices=list(STATES)),
        severity=dict(type='str', choices=list(SEVERITIES)),
        title=dict(type='str'),
        summary=dict(type='str'),
        kind=dict(type='str'),
        event=dict(type='dict', options=event_spec()),
        level=dict(type='int'),
        escalation=dict(type='dict'),
        owner=dict(type='str'),
        affected=dict(type='list', elements='str'),
        now=dict(type='str'),
    )


def info_argument_spec():
    from ansible.module_utils.common.parameters import env_fallback
    return dict(
        incident_dir=dict(type='path', required=True, fallback=(env_fallback, ['QFLOW_INCIDENT_DIR'])),
        id=dict(type='str'),
        status=dict(type='list', elements='str', choices=list(STATUSES)),
        severity=dict(type='list', elements='str', choices=list(SEVERITIES)),
        escalation=dict(type='list', elements='dict', options=level_spec()),
        now=dict(type='str'),
    )


# ------------------------------------------------------------------------------------------- time helpers

def parse_now(text):
    if text in (None, ''):
        return utcnow()
    try:
        return parse_iso(text)
    except ValueError:
        raise IncidentError('now: %r is not an ISO 8601 time; use e.g. 2026-11-27T03:12:45Z or leave it unset for the clock' % (text,))


def response_seconds(severity):
    return parse_duration(SEVERITIES[severity]['response'])


def hms(seconds):
    """Signed H:MM:SS of a duration in seconds: 00:03:12, 26:00:00, -00:00:05."""
    if seconds is None:
        return None
    sign = '-' if seconds < 0 else ''
    total = int(abs(seconds))
    return '%s%02d:%02d:%02d' % (sign, total // 3600, (total % 3600) // 60, total % 60)


def relative(incident, when):
    """T+00:03:12 relative to the incident's opening."""
    if not when:
        return ''
    delta = (parse_iso(when) - parse_iso(incident['opened_at'])).total_seconds()
    text = hms(delta)
    return 'T' + text if text.startswith('-') else 'T+' + text


def seconds_between(start, end):
    if not start or not end:
        return None
    return (parse_iso(end) - parse_iso(start)).total_seconds()


def human_duration(seconds):
    """15m, 1h, 2h 30m, 45s, 1d 2h: for messages and Markdown."""
    if seconds is None:
        return DASH
    seconds = int(round(seconds))
    parts = []
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60), ('s', 1)):
        if seconds >= size or (unit == 's' and not parts):
            parts.append('%d%s' % (seconds // size, unit))
            seconds %= size
    return ' '.join(parts[:2])


# ------------------------------------------------------------------------------------------- reading

def check_id(ident):
    if not isinstance(ident, str) or not ID_RE.match(ident):
        raise IncidentError('id: %r is not a valid incident id; use 1-64 letters, digits, ".", "_" or "-", starting with a '
                            'letter or digit (for example INC-20261127-031245-P0)' % (ident,))


def _read_bytes(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def load_all(incident_dir):
    """Every incident under incident_dir: ({id: incident}, [warnings]). A missing dir is no incidents."""
    incidents, warnings = {}, []
    try:
        names = sorted(os.listdir(incident_dir))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return incidents, warnings
        raise IncidentError('cannot read the incident dir %s: %s; check its permissions' % (incident_dir, exc))
    if not os.path.isdir(incident_dir):
        raise IncidentError('incident_dir %s is not a directory; choose another incident_dir' % incident_dir)
    for name in names:
        path = os.path.join(incident_dir, name, 'incident.json')
        if not ID_RE.match(name) or not os.path.isfile(path):
            continue
        try:
            with open(path, 'rb') as handle:
                data = json.loads(handle.read().decode('utf-8'))
            if not isinstance(data, dict) or data.get('id') != name or data.get('severity') not in SEVERITIES:
                raise ValueError('not an incident record of %s' % name)
        except (IOError, OSError, ValueError) as exc:
            warnings.append('skipped %s: unreadable incident record (%s)' % (path, exc))
            continue
        incidents[name] = data
    return incidents, warnings


def _newest_first(incidents):
    return sorted(incidents.values(), key=lambda i: (i.get('opened_at') or '', i['id']), reverse=True)


def not_found(ident, incident_dir, incidents):
    known = [i['id'] for i in _newest_first(incidents)]
    listed = ', '.join(known[:10]) + (' and %d more' % (len(known) - 10) if len(known) > 10 else '') if known else 'none'
    return ('incident %s not found in %s; known: %s. Check the id (qflow.ops.incident_info lists them) and the '
            'incident_dir (or QFLOW_INCIDENT_DIR)' % (ident, incident_dir, listed))


# ------------------------------------------------------------------------------------------- events

EVENT_KEYS = ('step', 'action', 'status', 'detail', 'host', 'data')


def normalise_event(event, when):
    event = event or {}
    if not event.get('step'):
        raise IncidentError('event.step is required: a stable key of the procedure step, for example p0.assess.health '
                            '(an event with the same step and content is recorded once)')
    status = event.get('status') or 'info'
    if status not in EVENT_STATUSES:
        raise IncidentError('event.status %r is not one of %s' % (status, ', '.join(EVENT_STATUSES)))
    data = event.get('data')
    if data is not None and not isinstance(data, dict):
        raise IncidentError('event.data must be a dict, got %s' % type(data).__name__)
    out = {'time': iso(when), 'step': str(event['step']), 'action': event.get('action'), 'status': status,
           'detail': event.get('detail'), 'host': event.get('host'), 'data': data or {}}
    return out


def _same_event(a, b):
    return all(a.get(k) == b.get(k) for k in EVENT_KEYS)


def add_event(incident, event):
    """Append event unless an event with the same step and identical content is on the timeline. True if added."""
    if any(_same_event(old, event) for old in incident['timeline']):
        return False
    incident['timeline'].append(event)
    return True


def _own_event(when, step, action, detail=None, data=None, status='info'):
    return {'time': iso(when), 'step': step, 'action': action, 'status': status, 'detail': detail, 'host': None,
            'data': data or {}}


# ------------------------------------------------------------------------------------------- escalation policy

def normalise_policy(levels):
    """Validate an escalation policy (list of level entries); return entries with seconds computed."""
    if levels is None:
        levels = DEFAULT_ESCALATION
    if not isinstance(levels, list):
        raise IncidentError('escalation must be a list of levels, for example [{level: 1, severities: [P0], after: 0s}]')
    out = []
    for index, entry in enumerate(levels):
        where = 'escalation[%d]' % index
        if not isinstance(entry, dict):
            raise IncidentError('%s must be a dict with level, severities, after, ...' % where)
        unknown = sorted(set(entry) - set(LEVEL_KEYS))
        if unknown:
            raise IncidentError('%s: unknown key(s) %s; known: %s' % (where, ', '.join(unknown), ', '.join(LEVEL_KEYS)))
        level = entry.get('level')
        if not isinstance(level, int) or isinstance(level, bool) or level < 1:
            raise IncidentError('%s.level must be a positive integer, got %r' % (where, level))
        severities = entry.get('severities')
        severities = list(SEVERITIES) if severities is None else severities
        bad = [s for s in severities if s not in SEVERITIES]
        if bad:
            raise IncidentError('%s.severities: %s not one of %s' % (where, ', '.join(map(str, bad)), ', '.join(SEVERITIES)))
        item = {'level': level, 'name': entry.get('name') or 'Level %d' % level, 'severities': list(severities),
                'channel': entry.get('channel'), 'kinds_immediate': list(entry.get('kinds_immediate') or [])}
        email = entry.get('email') or []
        item['email'] = [email] if isinstance(email, str) else list(email)
        for key in ('after', 'respond_within'):
            value = entry.get(key)
            if value is None:
                value = '0s' if key == 'after' else None
            try:
                item[key] = None if value is None else str(value)
                item[key + '_seconds'] = None if value is None else parse_duration(value)
            except ValueError as exc:
                raise IncidentError('%s.%s: %s' % (where, key, exc))
        out.append(item)
    return out


def evaluate_escalation(incident, policy, now):
    """(due, upcoming) for an incident: levels not recorded yet that are due now, and those due later.

    A level entry applies when the incident's severity is in its severities (due after `after` from the opening) or
    its kind is in kinds_immediate (due at once). Several entries of one level count as one level (the earliest due
    time wins). A resolved incident has nothing due.
    """
    if incident['status'] == 'resolved':
        return [], []
    recorded = set(e.get('level') for e in incident.get('escalations') or [])
    opened = parse_iso(incident['opened_at'])
    best = {}
    for entry in policy:
        if entry['level'] in recorded:
            continue
        candidates = []
        if incident.get('kind') and incident['kind'] in entry['kinds_immediate']:
            candidates.append((0.0, 'kind %s escalates to level %d at once' % (incident['kind'], entry['level'])))
        if incident['severity'] in entry['severities']:
            after = entry['after_seconds']
            reason = ('%s incident: level %d at once' % (incident['severity'], entry['level']) if not after else
                      '%s incident not resolved within %s' % (incident['severity'], entry['after']))
            candidates.append((after, reason))
        for after, reason in candidates:
            due_at = opened + datetime.timedelta(seconds=after)
            current = best.get(entry['level'])
            if current is None or due_at < current[0]:
                best[entry['level']] = (due_at, reason, entry)
    due, upcoming = [], []
    for level in sorted(best):
        due_at, reason, entry = best[level]
        item = {'level': level, 'name': entry['name'], 'channel': entry['channel'], 'email': entry['email'],
                'after': entry['after'], 'respond_within': entry['respond_within'],
                'respond_within_seconds': entry['respond_within_seconds'], 'due_at': iso(due_at), 'reason': reason}
        (due if due_at <= now else upcoming).append(item)
    return due, upcoming


def describe(incident, now, policy=None):
    """The incident with the computed fields of incident_info."""
    out = copy.deepcopy(incident)
    opened = parse_iso(incident['opened_at'])
    out['age_seconds'] = int((now - opened).total_seconds())
    out['open'] = incident['status'] != 'resolved'
    out['overdue'] = bool(incident['status'] == 'open' and now > parse_iso(incident['response_due_at']))
    out['escalations_recorded'] = sorted(set(e.get('level') for e in incident.get('escalations') or []))
    out['escalations_due'], out['escalations_upcoming'] = evaluate_escalation(incident, policy or normalise_policy(None), now)
    out.update(key_times(incident))
    return out


def key_times(incident):
    """Seconds from the opening to the acknowledgement, the first mitigation and the resolution (None if not yet)."""
    mitigation = first_mitigation(incident)
    return {
        'time_to_acknowledge_seconds': seconds_between(incident['opened_at'], incident.get('acknowledged_at')),
        'time_to_mitigate_seconds': seconds_between(incident['opened_at'], mitigation['time'] if mitigation else None),
        'time_to_resolve_seconds': seconds_between(incident['opened_at'], incident.get('resolved_at')),
        'mitigated_by': mitigation['step'] if mitigation else None,
    }


def is_mitigation(event):
    """A mitigation: an event whose data has mitigated: true (any status but failed), or an event with status ok whose
    step is `mitigate`, ends with `.mitigate` or has a `.mitigate.` part (p0.mitigate, p0.mitigate.emergency_mode)."""
    data = event.get('data') or {}
    if data.get('mitigated') is True and event.get('status') != 'failed':
        return True
    step = event.get('step') or ''
    return event.get('status') == 'ok' and (step == 'mitigate' or step.endswith('.mitigate') or '.mitigate.' in step
                                            or step.startswith('mitigate.'))


def first_mitigation(incident):
    events = [e for e in incident.get('timeline') or [] if is_mitigation(e)]
    return min(events, key=lambda e: e['time']) if events else None


# ------------------------------------------------------------------------------------------- Markdown

def _cell(text):
    if text is None:
        return ''
    if isinstance(text, (dict, list)):
        text = json.dumps(text, sort_keys=True, separators=(',', ':'))
    return (u'%s' % text).replace('|', '\\|').replace('\r', ' ').replace('\n', ' ')


def _severity_text(severity):
    info = SEVERITIES[severity]
    return u'%s %s (%s; respond within %s)' % (severity, info['name'], info['description'], info['response'])


def _ack_text(incident):
    if not incident.get('acknowledged_at'):
        return DASH
    met = incident.get('response_met')
    verdict = 'within the response time' if met else 'after the response time' if met is False else ''
    return u'%s (%s%s)' % (incident['acknowledged_at'], relative(incident, incident['acknowledged_at']),
                           ', ' + verdict if verdict else '')


def timeline_table(incident):
    lines = [u'| Time | T+ | Step | Action | Status | Host | Detail |', u'|---|---|---|---|---|---|---|']
    for event in incident['timeline']:
        detail = _cell(event.get('detail'))
        if event.get('data'):
            detail = (detail + ' ' if detail else '') + '`%s`' % _cell(event['data']).replace('`', "'")
        lines.append(u'| %s | %s | `%s` | %s | %s %s | %s | %s |' % (
            event['time'], relative(incident, event['time']), _cell(event['step']), _cell(event.get('action')),
            STATUS_MARKS.get(event['status'], ''), event['status'], _cell(event.get('host')), detail))
    return lines


def escalations_table(incident):
    if not incident.get('escalations'):
        return [u'None recorded.']
    lines = [u'| Level | Name | At | T+ | Channel | E-mail | Reason |', u'|---|---|---|---|---|---|---|']
    for esc in incident['escalations']:
        email = esc.get('email')
        lines.append(u'| %s | %s | %s | %s | %s | %s | %s |' % (
            esc.get('level'), _cell(esc.get('name')), esc.get('at'), relative(incident, esc.get('at')),
            _cell(esc.get('channel')), _cell(', '.join(email) if isinstance(email, list) else email),
            _cell(esc.get('reason'))))
    return lines


def render_timeline(incident):
    lines = [u'# %s: %s' % (incident['id'], incident['title']), u'',
             u'| Field | Value |', u'|---|---|',
             u'| Severity | %s |' % _cell(_severity_text(incident['severity'])),
             u'| Status | %s |' % incident['status'],
             u'| Kind | %s |' % _cell(incident.get('kind') or DASH),
             u'| Opened | %s |' % incident['opened_at'],
             u'| Response due | %s |' % incident['response_due_at'],
             u'| Acknowledged | %s |' % _cell(_ack_text(incident)),
             u'| Resolved | %s |' % (u'%s (%s)' % (incident['resolved_at'], relative(incident, incident['resolved_at']))
                                     if incident.get('resolved_at') else DASH),
             u'| Owner | %s |' % _cell(incident.get('owner') or DASH),
             u'| Affected | %s |' % _cell(', '.join(incident.get('affected') or []) or DASH)]
    if incident.get('summary'):
        lines += [u'', u'## Summary', u'', incident['summary']]
    lines += [u'', u'## Timeline', u''] + timeline_table(incident)
    lines += [u'', u'## Escalations', u''] + escalations_table(incident)
    return u'\n'.join(lines) + u'\n'


def render_postmortem(incident):
    times = key_times(incident)
    mitigation = first_mitigation(incident)
    response = SEVERITIES[incident['severity']]['response']
    met = incident.get('response_met')
    failed = [e for e in incident['timeline'] if e['status'] == 'failed']
    lines = [u'# Post-mortem: %s: %s' % (incident['id'], incident['title']), u'',
             u'Severity %s, kind %s, opened %s, resolved %s. Owner: %s.' % (
                 _severity_text(incident['severity']), incident.get('kind') or DASH, incident['opened_at'],
                 incident.get('resolved_at') or DASH, incident.get('owner') or 'TODO'), u'',
             u'This skeleton was generated when the incident was resolved; edit it (it is never overwritten).',
             u'', u'## Summary', u'', incident.get('summary') or u'TODO: what happened, in two or three sentences.',
             u'', u'## Impact', u'',
             u'- Affected: %s' % (', '.join(incident.get('affected') or []) or 'TODO'),
             u'- Duration (opened to resolved): %s' % human_duration(times['time_to_resolve_seconds']),
             u'- TODO: users, flows and executions affected; data lost (none?)',
             u'', u'## Key times', u'',
             u'| Measure | Value | Note |', u'|---|---|---|',
             u'| Time to acknowledge | %s | response target %s: %s |' % (
                 hms(times['time_to_acknowledge_seconds']) or DASH, response,
                 'met' if met else 'missed' if met is False else 'not acknowledged'),
             u'| Time to mitigate | %s | %s |' % (
                 hms(times['time_to_mitigate_seconds']) or DASH,
                 u'first mitigation: `%s`' % mitigation['step'] if mitigation else
                 u'no mitigation event (a step ending in .mitigate with status ok, or data mitigated: true)'),
             u'| Time to resolve | %s | |' % (hms(times['time_to_resolve_seconds']) or DASH),
             u'', u'## Timeline', u''] + timeline_table(incident)
    lines += [u'', u'## Escalations', u''] + escalations_table(incident)
    lines += [u'', u'## Root cause', u'', u'TODO: the root cause, and why it was possible.',
              u'', u'## What went well', u'', u'- TODO',
              u'', u'## What went badly', u'']
    lines += [u'- `%s` failed: %s' % (e['step'], _cell(e.get('detail') or e.get('action') or '')) for e in failed]
    lines += [u'- TODO',
              u'', u'## Action items', u'', u'| Action | Owner | Due |', u'|---|---|---|', u'| TODO | | |']
    return u'\n'.join(lines) + u'\n'


# ------------------------------------------------------------------------------------------- planning

def _dumps(obj):
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + '\n').encode('utf-8')


def _index(incidents):
    return dict((i['id'], {'severity': i['severity'], 'status': i['status'], 'title': i['title'],
                           'kind': i.get('kind'), 'opened_at': i['opened_at']}) for i in incidents.values())


def _summary(incident):
    if not incident:
        return {}
    return {'status': incident['status'], 'severity': incident['severity'], 'timeline': len(incident['timeline']),
            'escalations': [e.get('level') for e in incident.get('escalations') or []],
            'acknowledged_at': incident.get('acknowledged_at'), 'resolved_at': incident.get('resolved_at')}


def generate_id(severity, now, incidents):
    base = 'INC-%s-%s' % (now.astimezone(datetime.timezone.utc).strftime('%Y%m%d-%H%M%S'), severity)
    ident, n = base, 1
    while ident in incidents:
        n += 1
        ident = '%s-%d' % (base, n)
    return ident


def default_title(p):
    return p.get('title') or '%s %s' % (p['severity'], p.get('kind') or 'incident')


def _new_incident(ident, p, now):
    severity = p['severity']
    due = now + datetime.timedelta(seconds=response_seconds(severity))
    title = default_title(p)
    incident = {
        'id': ident, 'severity': severity, 'title': title, 'kind': p.get('kind'), 'summary': p.get('summary'),
        'status': 'open', 'opened_at': iso(now), 'acknowledged_at': None, 'resolved_at': None,
        'response_due_at': iso(due), 'response_met': None, 'affected': list(p.get('affected') or []),
        'owner': p.get('owner'), 'escalations': [], 'timeline': [],
    }
    incident['timeline'].append(_own_event(
        now, 'incident.opened', 'opened %s incident' % severity, p.get('summary') or title,
        {'severity': severity, 'kind': p.get('kind'), 'response_due_at': incident['response_due_at']}))
    return incident


def _update_fields(incident, p):
    for key in ('title', 'summary', 'kind', 'owner'):
        if p.get(key) is not None:
            incident[key] = p[key]
    for host in p.get('affected') or []:
        if host not in incident['affected']:
            incident['affected'].append(host)


def _acknowledge(incident, when, owner):
    incident['status'] = 'acknowledged'
    incident['acknowledged_at'] = iso(when)
    incident['response_met'] = when <= parse_iso(incident['response_due_at'])
    verdict = 'within' if incident['response_met'] else 'after'
    return _own_event(when, 'incident.acknowledged', 'acknowledged' + (' by %s' % owner if owner else ''),
                      '%s %s the %s response time (%s)' % (relative(incident, incident['acknowledged_at']), verdict,
                                                           incident['severity'], SEVERITIES[incident['severity']]['response']))


Plan = collections.namedtuple('Plan', 'incident_dir ident before after files link created result warnings')


def plan_change(p):
    """Compute the change of one module run. Raises IncidentError for bad input (nothing is written by this)."""
    incident_dir = p['incident_dir']
    state = p['state']
    now = parse_now(p.get('now'))
    if p.get('id') is not None:
        check_id(p['id'])
    event = normalise_event(p['event'], now) if p.get('event') is not None else None
    if state == 'updated' and event is None:
        raise IncidentError('state=updated needs event (with at least event.step, for example p0.assess.health)')
    if state == 'escalated' and (p.get('level') is None or p['level'] < 1):
        raise IncidentError('state=escalated needs level, a positive integer (1 Operations, 2 Engineering, 3 Management)')
    incidents, warnings = load_all(incident_dir)
    created = False
    if state == 'opened':
        if not p.get('severity'):
            raise IncidentError('severity is required with state=opened: one of %s (%s)' % (
                ', '.join(SEVERITIES), '; '.join('%s %s' % (k, v['name']) for k, v in SEVERITIES.items())))
        ident = p.get('id')
        existing = incidents.get(ident) if ident else None
        if ident is None:
            title = default_title(p)
            same = [i for i in _newest_first(incidents) if i['status'] != 'resolved' and i['title'] == title
                    and i.get('kind') == p.get('kind') and i['severity'] == p['severity']]
            existing = same[0] if same else None
        if existing is not None:
            if existing['severity'] != p['severity']:
                raise IncidentError(
                    'incident %s exists with severity %s, not %s; an incident keeps its severity: open a new incident '
                    'with another id (or none, to generate one) and resolve %s'
                    % (existing['id'], existing['severity'], p['severity'], existing['id']))
            ident = existing['id']
            before = existing
            after = copy.deepcopy(existing)
        else:
            ident = ident or generate_id(p['severity'], now, incidents)
            before = None
            after = _new_incident(ident, p, now)
            created = True
    else:
        ident = p.get('id')
        if ident is None:
            raise IncidentError('id is required with state=%s: the incident to change (see qflow.ops.incident_info)' % state)
        if ident not in incidents:
            raise IncidentError(not_found(ident, incident_dir, incidents))
        before = incidents[ident]
        after = copy.deepcopy(before)
        _update_fields(after, p)
        if state == 'acknowledged' and after['status'] == 'open':
            add_event(after, _acknowledge(after, now, after.get('owner')))
        elif state == 'escalated':
            level = p['level']
            if after['status'] == 'resolved' and level not in [e.get('level') for e in after['escalations']]:
                raise IncidentError('incident %s is resolved (at %s): it cannot be escalated any more; open a new incident '
                                    'if the problem is back' % (ident, after['resolved_at']))
            if level not in [e.get('level') for e in after['escalations']]:
                extra = dict(p.get('escalation') or {})
                extra.pop('level', None)
                extra.pop('at', None)
                record = {'level': level, 'at': iso(now)}
                record.update(extra)
                after['escalations'].append(record)
                name = extra.get('name')
                add_event(after, _own_event(now, 'incident.escalated.level-%d' % level,
                                            'escalated to level %d%s' % (level, ' (%s)' % name if name else ''),
                                            extra.get('reason'),
                                            dict((k, v) for k, v in dict(extra, level=level).items() if k != 'reason')))
        elif state == 'resolved' and after['status'] != 'resolved':
            if not after.get('acknowledged_at'):
                add_event(after, _acknowledge(after, now, after.get('owner')))
            after['status'] = 'resolved'
            after['resolved_at'] = iso(now)
            add_event(after, _own_event(now, 'incident.resolved', 'resolved',
                                        p.get('summary') or 'resolved after %s' % human_duration(
                                            seconds_between(after['opened_at'], after['resolved_at']))))
    if event is not None:
        add_event(after, event)

    # the files this state needs, and which of them differ from the disk
    inc_path = os.path.join(incident_dir, ident)
    wanted = collections.OrderedDict()
    wanted[os.path.join(inc_path, 'incident.json')] = _dumps(after)
    wanted[os.path.join(inc_path, 'timeline.md')] = render_timeline(after).encode('utf-8')
    postmortem = os.path.join(inc_path, 'postmortem.md')
    if after['status'] == 'resolved' and not os.path.lexists(postmortem):
        wanted[postmortem] = render_postmortem(after).encode('utf-8')
    all_after = dict(incidents)
    all_after[ident] = after
    wanted[os.path.join(incident_dir, 'index.json')] = _dumps(_index(all_after))
    files = collections.OrderedDict((path, data) for path, data in wanted.items() if _read_bytes(path) != data)
    latest = _newest_first(all_after)[0]['id']
    link_path = os.path.join(incident_dir, 'latest')
    current_link = os.readlink(link_path) if os.path.islink(link_path) else None
    if os.path.lexists(link_path) and not os.path.islink(link_path):
        raise IncidentError('%s exists and is not a symlink; remove it (the module keeps it pointing at the newest '
                            'incident)' % link_path)
    link = latest if current_link != latest else None

    changed = bool(files) or link is not None
    result = {
        'changed': changed, 'id': ident, 'incident': after, 'created': created,
        'path': inc_path, 'json_path': os.path.join(inc_path, 'incident.json'),
        'markdown_path': os.path.join(inc_path, 'timeline.md'),
        'diff': {'before': _summary(before), 'after': _summary(after)},
    }
    if after['status'] == 'resolved':
        result['postmortem_path'] = postmortem
    verb = {'opened': 'opened' if created else 'already open', 'acknowledged': 'acknowledged', 'updated': 'updated',
            'escalated': 'escalated to level %s' % p.get('level'), 'resolved': 'resolved'}[state]
    result['msg'] = '%s %s (%s, %s)%s' % (ident, verb, after['severity'], after['status'],
                                          '' if changed else ': no change')
    return Plan(incident_dir, ident, before, after, files, link, created, result, warnings)


# ------------------------------------------------------------------------------------------- writing

def _ensure_dir(path):
    if os.path.isdir(path):
        return
    if os.path.lexists(path):
        raise IncidentError('%s exists but is not a directory; remove it or choose another incident_dir' % path)
    try:
        os.makedirs(path, DIR_MODE)
        os.chmod(path, DIR_MODE)
    except OSError as exc:
        raise IncidentError('cannot create %s: %s; create it (mode 0750) or choose another incident_dir' % (path, exc))


class Lock(object):
    """An exclusive lock on <incident_dir>/.lock for read-modify-write (concurrent plays on one controller)."""

    def __init__(self, incident_dir):
        self.path = os.path.join(incident_dir, '.lock')
        self.handle = None

    def __enter__(self):
        _ensure_dir(os.path.dirname(self.path))
        self.handle = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE), 'a')
        if fcntl is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if fcntl is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()
        return False


def write_plan(plan):
    try:
        _ensure_dir(plan.incident_dir)
        _ensure_dir(os.path.join(plan.incident_dir, plan.ident))
        for path, data in plan.files.items():
            write_atomic(path, data, mode=FILE_MODE)
        if plan.link is not None:
            _point_link(os.path.join(plan.incident_dir, 'latest'), plan.link)
    except (IOError, OSError) as exc:
        raise IncidentError('cannot write the incident record in %s: %s; check the permissions and the free space'
                            % (plan.incident_dir, exc))


def apply(p, check_mode):
    """Plan, and unless check_mode write under the lock (planned again under it). Return the plan."""
    plan = plan_change(p)
    if check_mode or not plan.result['changed']:
        return plan
    with Lock(p['incident_dir']):
        plan = plan_change(p)
        if plan.result['changed']:
            write_plan(plan)
    return plan


# ------------------------------------------------------------------------------------------- info

def info(p):
    now = parse_now(p.get('now'))
    policy = normalise_policy(p.get('escalation'))
    incidents, warnings = load_all(p['incident_dir'])
    if p.get('id') is not None:
        check_id(p['id'])
        if p['id'] not in incidents:
            raise IncidentError(not_found(p['id'], p['incident_dir'], incidents))
        selected = [incidents[p['id']]]
    else:
        selected = [i for i in _newest_first(incidents)
                    if (not p.get('status') or i['status'] in p['status'])
                    and (not p.get('severity') or i['severity'] in p['severity'])]
    described = [describe(i, now, policy) for i in selected]
    result = {'incidents': described, 'count': len(described), 'now': iso(now),
              'escalations_due': [dict(e, id=i['id']) for i in described for e in i['escalations_due']],
              'overdue': [i['id'] for i in described if i['overdue']]}
    if p.get('id') is not None:
        result['incident'] = described[0]
    return result, warnings
