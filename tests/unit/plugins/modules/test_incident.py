# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.incident and qflow.ops.incident_info, run through main()."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import stat
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import qflow_backup_helpers as h  # noqa: E402  (puts the collection on sys.path)

from ansible_collections.qflow.ops.plugins.modules import incident, incident_info  # noqa: E402

T0 = '2026-11-27T03:12:45Z'
ID = 'INC-20261127-031245-P0'


def snapshot(root):
    """{relative path: bytes, or 'link -> target', or 'dir'} of everything under root (hidden files too)."""
    out = {}
    if not os.path.exists(root):
        return out
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(base, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                out[rel] = 'link -> ' + os.readlink(full)
            elif os.path.isdir(full):
                out[rel] = 'dir'
            else:
                out[rel] = open(full, 'rb').read()
    return out


def run(mod, args, check_mode=False, diff=False):
    return h.run_module(mod, args, check_mode=check_mode, diff=diff)


def idir(tmp_path):
    return str(tmp_path / 'incidents')


def open_args(tmp_path, **extra):
    args = {'incident_dir': idir(tmp_path), 'state': 'opened', 'severity': 'P0', 'kind': 'outage',
            'title': 'Qflow API down', 'affected': ['qflow-node-1', 'qflow-node-2'], 'now': T0}
    args.update(extra)
    return args


def opened(tmp_path, **extra):
    kind, res = run(incident, open_args(tmp_path, **extra))
    assert kind == 'exit' and res['changed'] is True, res
    return res


def four_steps(args, check_change=None):
    """check -> real -> check (no change) -> real (no change); returns the real run's result."""
    before = snapshot(args['incident_dir'])
    kind, step1 = run(incident, args, check_mode=True)
    assert kind == 'exit' and step1['changed'] is True, step1
    assert snapshot(args['incident_dir']) == before, 'check mode wrote something'
    if check_change:
        check_change(step1)
    kind, step2 = run(incident, args)
    assert kind == 'exit' and step2['changed'] is True, step2
    assert step2['incident'] == step1['incident']  # check mode computed what the real run wrote
    written = snapshot(args['incident_dir'])
    assert written != before
    assert json.load(open(step2['json_path'])) == step2['incident']
    kind, step3 = run(incident, args, check_mode=True)
    assert kind == 'exit' and step3['changed'] is False, step3
    kind, step4 = run(incident, args)
    assert kind == 'exit' and step4['changed'] is False, step4
    assert snapshot(args['incident_dir']) == written
    return step2


# ------------------------------------------------------------------------------------------- opened

def test_open_generates_the_id_four_steps(tmp_path):
    res = four_steps(open_args(tmp_path, summary='Every node answers 502'))
    assert res['id'] == ID and res['created'] is True
    inc = res['incident']
    assert inc['severity'] == 'P0' and inc['status'] == 'open' and inc['kind'] == 'outage'
    assert inc['opened_at'] == '2026-11-27T03:12:45.000Z'
    assert inc['response_due_at'] == '2026-11-27T03:27:45.000Z'  # P0: 15 minutes
    assert inc['response_met'] is None and inc['acknowledged_at'] is None and inc['resolved_at'] is None
    assert inc['affected'] == ['qflow-node-1', 'qflow-node-2'] and inc['escalations'] == []
    assert [e['step'] for e in inc['timeline']] == ['incident.opened']
    assert inc['timeline'][0]['detail'] == 'Every node answers 502'
    assert res['path'] == os.path.join(idir(tmp_path), ID)
    assert res['markdown_path'] == os.path.join(res['path'], 'timeline.md')
    assert 'postmortem_path' not in res


def test_open_without_id_reuses_the_open_incident_with_same_title_kind_severity(tmp_path):
    first = opened(tmp_path)
    kind, again = run(incident, open_args(tmp_path, now='2026-11-27T04:00:00Z'))
    assert kind == 'exit' and again['changed'] is False and again['id'] == first['id'] and again['created'] is False
    # another kind, title or severity is another incident
    kind, other = run(incident, open_args(tmp_path, kind='degradation', severity='P1', now='2026-11-27T04:00:00Z'))
    assert other['changed'] is True and other['id'] == 'INC-20261127-040000-P1'
    assert other['incident']['response_due_at'] == '2026-11-27T05:00:00.000Z'  # P1: 1 hour
    # a resolved incident is not reused
    run(incident, {'incident_dir': idir(tmp_path), 'id': first['id'], 'state': 'resolved', 'now': '2026-11-27T05:00:00Z'})
    kind, new = run(incident, open_args(tmp_path, now='2026-11-27T06:00:00Z'))
    assert new['changed'] is True and new['id'] == 'INC-20261127-060000-P0'


def test_generated_id_gets_a_suffix_when_taken(tmp_path):
    opened(tmp_path)
    res = opened(tmp_path, title='Another one')
    assert res['id'] == ID + '-2'
    assert opened(tmp_path, title='A third')['id'] == ID + '-3'


def test_open_explicit_id_four_steps_and_severity_conflict(tmp_path):
    args = open_args(tmp_path, id='game-day-1', severity='P2', title=None, kind=None)
    res = four_steps(args)
    assert res['id'] == 'game-day-1' and res['incident']['title'] == 'P2 incident'
    assert res['incident']['response_due_at'] == '2026-11-27T07:12:45.000Z'  # P2: 4 hours
    before = snapshot(idir(tmp_path))
    kind, res = run(incident, dict(args, severity='P0'))
    assert kind == 'fail'
    assert 'incident game-day-1 exists with severity P2, not P0' in res['msg'] and 'open a new incident' in res['msg']
    assert snapshot(idir(tmp_path)) == before


def test_default_title_from_kind(tmp_path):
    res = opened(tmp_path, title=None, kind='security-breach')
    assert res['incident']['title'] == 'P0 security-breach'


# ------------------------------------------------------------------------------------------- acknowledged

def test_acknowledge_four_steps(tmp_path):
    opened(tmp_path)
    args = {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'acknowledged', 'owner': 'alice',
            'now': '2026-11-27T03:15:57Z'}
    res = four_steps(args)
    inc = res['incident']
    assert inc['status'] == 'acknowledged' and inc['owner'] == 'alice'
    assert inc['acknowledged_at'] == '2026-11-27T03:15:57.000Z' and inc['response_met'] is True
    event = inc['timeline'][-1]
    assert event['step'] == 'incident.acknowledged' and event['action'] == 'acknowledged by alice'
    assert 'T+00:03:12 within the P0 response time (15m)' == event['detail']
    # a later acknowledgement changes nothing (not even the time)
    kind, later = run(incident, dict(args, now='2026-11-27T05:00:00Z'))
    assert later['changed'] is False and later['incident']['acknowledged_at'] == '2026-11-27T03:15:57.000Z'


def test_acknowledge_late_misses_the_response_time(tmp_path):
    opened(tmp_path)
    kind, res = run(incident, {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'acknowledged',
                               'now': '2026-11-27T03:30:00Z'})
    assert res['incident']['response_met'] is False
    assert 'after the P0 response time' in res['incident']['timeline'][-1]['detail']
    md = open(res['markdown_path'], encoding='utf-8').read()
    assert '(T+00:17:15, after the response time)' in md


# ------------------------------------------------------------------------------------------- updated

def test_update_four_steps_and_same_step_other_content(tmp_path):
    opened(tmp_path)
    event = {'step': 'p0.assess.health', 'action': 'checked /health on 8 nodes', 'status': 'failed',
             'detail': '2 of 8 nodes down', 'host': 'qflow-node-2', 'data': {'down': ['qflow-node-2', 'qflow-node-5']}}
    args = {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'updated', 'event': event, 'now': '2026-11-27T03:13:30Z',
            'affected': ['qflow-node-5']}

    def check(res):
        assert res['diff']['before']['timeline'] == 1 and res['diff']['after']['timeline'] == 2

    res = four_steps(args, check)
    last = res['incident']['timeline'][-1]
    assert last == dict(event, time='2026-11-27T03:13:30.000Z')
    assert res['incident']['affected'] == ['qflow-node-1', 'qflow-node-2', 'qflow-node-5']
    # the same step and content later: still recorded once
    kind, same = run(incident, dict(args, now='2026-11-27T03:20:00Z'))
    assert same['changed'] is False and len(same['incident']['timeline']) == 2
    # the same step with another outcome is a new event
    kind, other = run(incident, dict(args, event=dict(event, status='ok', detail='8 of 8 up'), now='2026-11-27T03:40:00Z'))
    assert other['changed'] is True
    assert [(e['step'], e['status']) for e in other['incident']['timeline'][1:]] == [
        ('p0.assess.health', 'failed'), ('p0.assess.health', 'ok')]


def test_update_event_defaults(tmp_path):
    opened(tmp_path)
    kind, res = run(incident, {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'updated',
                               'event': {'step': 'p0.notify.stakeholders'}, 'now': T0})
    assert res['incident']['timeline'][-1] == {'time': '2026-11-27T03:12:45.000Z', 'step': 'p0.notify.stakeholders',
                                               'action': None, 'status': 'info', 'detail': None, 'host': None, 'data': {}}


# ------------------------------------------------------------------------------------------- escalated

def test_escalate_four_steps(tmp_path):
    opened(tmp_path)
    args = {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'escalated', 'level': 2, 'now': '2026-11-27T03:13:00Z',
            'escalation': {'name': 'Engineering Team', 'reason': 'any P0 incident', 'channel': '#engineering-alerts',
                           'email': ['engineering@example.com']}}
    res = four_steps(args)
    esc = res['incident']['escalations']
    assert esc == [{'level': 2, 'at': '2026-11-27T03:13:00.000Z', 'name': 'Engineering Team', 'reason': 'any P0 incident',
                    'channel': '#engineering-alerts', 'email': ['engineering@example.com']}]
    event = res['incident']['timeline'][-1]
    assert event['step'] == 'incident.escalated.level-2' and event['action'] == 'escalated to level 2 (Engineering Team)'
    assert event['detail'] == 'any P0 incident' and event['data']['level'] == 2
    # the same level later, with other details: not recorded again
    kind, again = run(incident, dict(args, now='2026-11-27T05:00:00Z', escalation={'reason': 'again'}))
    assert again['changed'] is False and len(again['incident']['escalations']) == 1
    md = open(res['markdown_path'], encoding='utf-8').read()
    assert '| 2 | Engineering Team | 2026-11-27T03:13:00.000Z | T+00:00:15 | #engineering-alerts | engineering@example.com | any P0 incident |' in md


def test_escalate_a_resolved_incident_fails(tmp_path):
    opened(tmp_path)
    run(incident, {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'resolved', 'now': '2026-11-27T04:00:00Z'})
    before = snapshot(idir(tmp_path))
    kind, res = run(incident, {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'escalated', 'level': 3})
    assert kind == 'fail' and 'is resolved' in res['msg'] and 'open a new incident' in res['msg']
    assert snapshot(idir(tmp_path)) == before


# ------------------------------------------------------------------------------------------- resolved

def test_resolve_four_steps_writes_the_postmortem(tmp_path):
    opened(tmp_path)
    base = {'incident_dir': idir(tmp_path), 'id': ID}
    run(incident, dict(base, state='acknowledged', owner='alice', now='2026-11-27T03:15:57Z'))
    run(incident, dict(base, state='updated', now='2026-11-27T03:20:00Z',
                       event={'step': 'p0.mitigate.emergency_mode', 'status': 'failed', 'detail': 'HTTP 403'}))
    run(incident, dict(base, state='updated', now='2026-11-27T03:25:00Z',
                       event={'step': 'p0.investigate.rollback', 'status': 'ok', 'data': {'mitigated': True}}))
    run(incident, dict(base, state='updated', now='2026-11-27T03:30:00Z',
                       event={'step': 'p0.mitigate', 'status': 'ok', 'action': 'scaled'}))
    args = dict(base, state='resolved', summary='Bad release 0.2.0 rolled back to 0.1.0', now='2026-11-27T04:12:45Z')

    def check(res):
        assert res['postmortem_path'] == os.path.join(idir(tmp_path), ID, 'postmortem.md')
        assert not os.path.exists(res['postmortem_path'])

    res = four_steps(args, check)
    inc = res['incident']
    assert inc['status'] == 'resolved' and inc['resolved_at'] == '2026-11-27T04:12:45.000Z'
    assert inc['summary'] == 'Bad release 0.2.0 rolled back to 0.1.0'
    assert inc['timeline'][-1]['step'] == 'incident.resolved'
    assert inc['timeline'][-1]['detail'] == 'Bad release 0.2.0 rolled back to 0.1.0'
    pm = open(res['postmortem_path'], encoding='utf-8').read()
    assert pm.startswith('# Post-mortem: %s: Qflow API down\n' % ID)
    assert '| Time to acknowledge | 00:03:12 | response target 15m: met |' in pm
    # the failed mitigation does not count; data mitigated: true at T+00:12:15 does
    assert '| Time to mitigate | 00:12:15 | first mitigation: `p0.investigate.rollback` |' in pm
    assert '| Time to resolve | 01:00:00 | |' in pm
    assert '- Duration (opened to resolved): 1h' in pm
    assert '- `p0.mitigate.emergency_mode` failed: HTTP 403' in pm
    for section in ('## Summary', '## Impact', '## Timeline', '## Root cause', '## What went well',
                    '## What went badly', '## Action items'):
        assert section in pm
    assert '| 2026-11-27T03:20:00.000Z | T+00:07:15 | `p0.mitigate.emergency_mode` |' in pm  # timeline copied
    # an edited post-mortem is never overwritten; a deleted one comes back
    with open(res['postmortem_path'], 'a') as handle:
        handle.write('Root cause: the release had no health gate.\n')
    edited = open(res['postmortem_path'], 'rb').read()
    kind, again = run(incident, args)
    assert again['changed'] is False and open(res['postmortem_path'], 'rb').read() == edited
    os.unlink(res['postmortem_path'])
    kind, again = run(incident, args)
    assert again['changed'] is True and os.path.exists(res['postmortem_path'])


def test_resolve_unacknowledged_acknowledges_and_without_mitigation(tmp_path):
    opened(tmp_path)
    kind, res = run(incident, {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'resolved', 'now': '2026-11-27T03:20:00Z'})
    inc = res['incident']
    assert inc['acknowledged_at'] == inc['resolved_at'] == '2026-11-27T03:20:00.000Z' and inc['response_met'] is True
    assert [e['step'] for e in inc['timeline']] == ['incident.opened', 'incident.acknowledged', 'incident.resolved']
    assert inc['timeline'][-1]['detail'] == 'resolved after 7m 15s'
    pm = open(res['postmortem_path'], encoding='utf-8').read()
    assert '| Time to mitigate | \u2014 | no mitigation event' in pm


# ------------------------------------------------------------------------------------------- files

def test_modes_index_and_latest(tmp_path):
    first = opened(tmp_path)
    assert stat.S_IMODE(os.stat(idir(tmp_path)).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(first['path']).st_mode) == 0o750
    for name in ('incident.json', 'timeline.md'):
        assert stat.S_IMODE(os.stat(os.path.join(first['path'], name)).st_mode) == 0o640
    latest = os.path.join(idir(tmp_path), 'latest')
    assert os.readlink(latest) == ID
    second = opened(tmp_path, severity='P2', kind='degradation', title='Slow responses', now='2026-11-27T05:00:00Z')
    assert os.readlink(latest) == second['id'] == 'INC-20261127-050000-P2'
    index = json.load(open(os.path.join(idir(tmp_path), 'index.json')))
    assert index == {
        ID: {'severity': 'P0', 'status': 'open', 'title': 'Qflow API down', 'kind': 'outage',
             'opened_at': '2026-11-27T03:12:45.000Z'},
        second['id']: {'severity': 'P2', 'status': 'open', 'title': 'Slow responses', 'kind': 'degradation',
                       'opened_at': '2026-11-27T05:00:00.000Z'}}
    # changing the older incident keeps latest on the newest, and updates the index
    run(incident, {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'resolved', 'now': '2026-11-27T06:00:00Z'})
    assert os.readlink(latest) == second['id']
    assert json.load(open(os.path.join(idir(tmp_path), 'index.json')))[ID]['status'] == 'resolved'
    leftovers = [n for n in os.listdir(first['path']) + os.listdir(idir(tmp_path)) if '.tmp-' in n]
    assert leftovers == []


def test_a_missing_timeline_md_is_rewritten(tmp_path):
    res = opened(tmp_path)
    os.unlink(res['markdown_path'])
    kind, again = run(incident, open_args(tmp_path, id=ID))
    assert again['changed'] is True and os.path.exists(res['markdown_path'])


def test_markdown_content(tmp_path):
    opened(tmp_path, summary='Every node answers 502', owner='bob')
    kind, res = run(incident, {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'updated', 'now': '2026-11-27T04:15:57Z',
                               'event': {'step': 'p0.assess.deployments', 'action': 'read the release history',
                                         'status': 'ok', 'host': 'qflow-node-1', 'detail': 'deployed 0.2.0 | 10 min ago',
                                         'data': {'version': '0.2.0'}}})
    md = open(res['markdown_path'], encoding='utf-8').read()
    assert md.startswith('# %s: Qflow API down\n' % ID)
    assert '| Severity | P0 Critical (complete outage - service down, data loss; respond within 15m) |' in md
    assert '| Status | open |' in md and '| Owner | bob |' in md and '| Affected | qflow-node-1, qflow-node-2 |' in md
    assert '| Response due | 2026-11-27T03:27:45.000Z |' in md and '| Acknowledged | \u2014 |' in md
    assert '## Summary\n\nEvery node answers 502\n' in md
    assert ('| 2026-11-27T04:15:57.000Z | T+01:03:12 | `p0.assess.deployments` | read the release history | \u2705 ok '
            '| qflow-node-1 | deployed 0.2.0 \\| 10 min ago `{"version":"0.2.0"}` |') in md
    assert '## Escalations\n\nNone recorded.\n' in md


def test_event_before_the_opening_shows_a_negative_offset(tmp_path):
    opened(tmp_path)
    kind, res = run(incident, {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'updated', 'now': '2026-11-27T03:12:40Z',
                               'event': {'step': 'alert.fired'}})
    assert '| T-00:00:05 | `alert.fired` |' in open(res['markdown_path'], encoding='utf-8').read()


# ------------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize('state,extra', [
    ('acknowledged', {}),
    ('updated', {'event': {'step': 'x'}}),
    ('escalated', {'level': 1}),
    ('resolved', {}),
])
def test_unknown_id_fails_and_writes_nothing(tmp_path, state, extra):
    opened(tmp_path)
    before = snapshot(idir(tmp_path))
    args = dict({'incident_dir': idir(tmp_path), 'id': 'INC-nope', 'state': state}, **extra)
    for check_mode in (True, False):
        kind, res = run(incident, args, check_mode=check_mode)
        assert kind == 'fail' and res['changed'] is False
        assert res['msg'].startswith('incident INC-nope not found in %s; known: %s.' % (idir(tmp_path), ID))
    assert snapshot(idir(tmp_path)) == before


def test_unknown_id_in_a_missing_dir_creates_nothing(tmp_path):
    kind, res = run(incident, {'incident_dir': idir(tmp_path), 'id': 'INC-1', 'state': 'resolved'})
    assert kind == 'fail' and 'incident INC-1 not found in %s; known: none' % idir(tmp_path) in res['msg']
    assert not os.path.exists(idir(tmp_path))


@pytest.mark.parametrize('args,needle', [
    ({'state': 'opened', 'severity': 'P0', 'id': '../etc'}, "id: '../etc' is not a valid incident id"),
    ({'state': 'opened', 'severity': 'P0', 'id': 'x' * 65}, 'is not a valid incident id'),
    ({'state': 'updated', 'id': '-leading', 'event': {'step': 's'}}, 'is not a valid incident id'),
    ({'state': 'opened', 'title': 'no severity'}, 'severity is required with state=opened: one of P0, P1, P2, P3'),
    ({'state': 'updated', 'id': ID, 'event': {'action': 'no step'}}, 'event.step is required'),
    ({'state': 'updated', 'id': ID}, 'state=updated needs event'),
    ({'state': 'escalated', 'id': ID}, 'state=escalated needs level'),
    ({'state': 'escalated', 'id': ID, 'level': 0}, 'state=escalated needs level'),
    ({'state': 'acknowledged'}, 'id is required with state=acknowledged'),
    ({'state': 'opened', 'severity': 'P0', 'now': 'yesterday'}, "now: 'yesterday' is not an ISO 8601 time"),
    ({'state': 'opened', 'severity': 'P5'}, 'value of severity must be one of'),
    ({'state': 'updated', 'id': ID, 'event': {'step': 's', 'status': 'great'}}, 'status'),
])
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, args, needle):
    opened(tmp_path)
    before = snapshot(idir(tmp_path))
    kind, res = run(incident, dict(args, incident_dir=idir(tmp_path)))
    assert kind == 'fail' and needle in res['msg'], res['msg']
    assert snapshot(idir(tmp_path)) == before


def test_bad_input_on_an_empty_controller_creates_no_dir(tmp_path):
    kind, res = run(incident, {'incident_dir': idir(tmp_path), 'state': 'opened'})
    assert kind == 'fail' and 'severity is required' in res['msg']
    kind, res = run(incident, {'incident_dir': idir(tmp_path), 'state': 'opened', 'severity': 'P1',
                               'event': {'detail': 'no step'}})
    assert kind == 'fail' and 'event.step is required' in res['msg']
    assert not os.path.exists(idir(tmp_path))


def test_incident_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv('QFLOW_INCIDENT_DIR', idir(tmp_path))
    kind, res = run(incident, {'state': 'opened', 'severity': 'P3', 'now': T0})
    assert kind == 'exit' and res['path'] == os.path.join(idir(tmp_path), 'INC-20261127-031245-P3')
    kind, res = run(incident_info, {})
    assert res['count'] == 1


def test_unreadable_record_is_skipped_with_a_warning(tmp_path):
    opened(tmp_path)
    bad = tmp_path / 'incidents' / 'INC-broken'
    bad.mkdir()
    (bad / 'incident.json').write_text('{not json')
    result, failed = h._run_module(incident_info, {'incident_dir': idir(tmp_path)})
    assert not failed and [i['id'] for i in result['incidents']] == [ID]
    assert any('INC-broken' in w for w in result['_warnings'])


# ------------------------------------------------------------------------------------------- incident_info

def _info(tmp_path, **extra):
    args = {'incident_dir': idir(tmp_path)}
    args.update(extra)
    kind, res = run(incident_info, args)
    assert kind == 'exit' and res['changed'] is False, res
    return res


def test_info_lists_and_filters(tmp_path):
    assert _info(tmp_path, now=T0) == {'changed': False, 'incidents': [], 'count': 0, 'escalations_due': [],
                                       'overdue': [], 'now': '2026-11-27T03:12:45.000Z'}
    opened(tmp_path)
    opened(tmp_path, severity='P2', title='Slow', now='2026-11-27T05:00:00Z')
    run(incident, {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'resolved', 'now': '2026-11-27T06:00:00Z'})
    res = _info(tmp_path, now='2026-11-27T07:00:00Z')
    assert [i['id'] for i in res['incidents']] == ['INC-20261127-050000-P2', ID]
    assert [i['id'] for i in _info(tmp_path, status=['resolved'])['incidents']] == [ID]
    assert [i['id'] for i in _info(tmp_path, severity=['P2'])['incidents']] == ['INC-20261127-050000-P2']
    assert _info(tmp_path, severity=['P1'])['count'] == 0
    one = _info(tmp_path, id=ID, now='2026-11-27T07:00:00Z')
    assert one['incident']['id'] == ID and one['incident']['open'] is False
    assert one['incident']['age_seconds'] == 3 * 3600 + 47 * 60 + 15
    assert one['incident']['escalations_due'] == [] and one['incident']['time_to_resolve_seconds'] == 2 * 3600 + 47 * 60 + 15


def test_info_overdue_and_default_policy_for_p0(tmp_path):
    opened(tmp_path)
    early = _info(tmp_path, id=ID, now='2026-11-27T03:20:00Z')['incident']
    assert early['overdue'] is False and early['age_seconds'] == 435
    assert [e['level'] for e in early['escalations_due']] == [1, 2]
    assert [e['level'] for e in early['escalations_upcoming']] == [3]
    assert early['escalations_upcoming'][0]['due_at'] == '2026-11-27T05:12:45.000Z'
    assert early['escalations_due'][0] == {
        'level': 1, 'name': 'Operations Team', 'channel': '#ops-alerts', 'email': ['ops-team@example.com'],
        'after': '0s', 'respond_within': '15m', 'respond_within_seconds': 900.0, 'due_at': '2026-11-27T03:12:45.000Z',
        'reason': 'P0 incident: level 1 at once'}
    late = _info(tmp_path, now='2026-11-27T05:12:45Z')
    assert late['overdue'] == [ID] and late['incidents'][0]['overdue'] is True
    assert [e['level'] for e in late['incidents'][0]['escalations_due']] == [1, 2, 3]
    assert late['escalations_due'][2]['reason'] == 'P0 incident not resolved within 2h'
    assert late['escalations_due'][2]['id'] == ID
    # recorded levels are not due any more; an acknowledged incident is not overdue
    for level in (1, 2):
        run(incident, {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'escalated', 'level': level})
    run(incident, {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'acknowledged', 'now': '2026-11-27T03:40:00Z'})
    later = _info(tmp_path, id=ID, now='2026-11-27T05:12:44Z')['incident']
    assert later['overdue'] is False and later['escalations_due'] == [] and later['escalations_recorded'] == [1, 2]
    assert [e['level'] for e in _info(tmp_path, id=ID, now='2026-11-27T05:12:45Z')['incident']['escalations_due']] == [3]


def test_info_p1_and_p3_with_the_default_policy(tmp_path):
    opened(tmp_path, severity='P1', kind='degradation')
    opened(tmp_path, severity='P3', kind='cosmetic', now='2026-11-27T03:12:46Z')
    p1 = 'INC-20261127-031245-P1'
    assert [e['level'] for e in _info(tmp_path, id=p1, now='2026-11-27T04:12:44Z')['incident']['escalations_due']] == [1]
    assert [e['level'] for e in _info(tmp_path, id=p1, now='2026-11-27T04:12:45Z')['incident']['escalations_due']] == [1, 2]
    assert _info(tmp_path, id='INC-20261127-031246-P3', now='2026-11-30T00:00:00Z')['incident']['escalations_due'] == []


def test_info_security_breach_reaches_management_at_once(tmp_path):
    opened(tmp_path, severity='P1', kind='security-breach', title='Leaked token used')
    due = _info(tmp_path, id='INC-20261127-031245-P1', now=T0)['incident']['escalations_due']
    assert [(e['level'], e['reason']) for e in due] == [
        (1, 'P1 incident: level 1 at once'), (3, 'kind security-breach escalates to level 3 at once')]


def test_info_custom_policy_with_tiny_thresholds(tmp_path):
    opened(tmp_path)
    policy = [{'level': 1, 'name': 'Ops', 'severities': ['P0'], 'after': '0s', 'channel': '#ops'},
              {'level': 2, 'severities': ['P0'], 'after': '10s', 'email': 'eng@example.net'},
              {'level': 2, 'severities': ['P0'], 'after': '5s'}]
    res = _info(tmp_path, id=ID, escalation=policy, now='2026-11-27T03:12:49Z')['incident']
    assert [e['level'] for e in res['escalations_due']] == [1]
    assert res['escalations_upcoming'][0]['due_at'] == '2026-11-27T03:12:50.000Z'  # the earliest entry of level 2
    assert res['escalations_upcoming'][0]['name'] == 'Level 2'
    res = _info(tmp_path, id=ID, escalation=policy, now='2026-11-27T03:12:50Z')['incident']
    assert [e['level'] for e in res['escalations_due']] == [1, 2]
    assert res['escalations_due'][1]['reason'] == 'P0 incident not resolved within 5s'


def test_info_bad_input(tmp_path):
    opened(tmp_path)
    before = snapshot(idir(tmp_path))
    kind, res = run(incident_info, {'incident_dir': idir(tmp_path), 'id': 'INC-x'})
    assert kind == 'fail' and res['msg'].startswith('incident INC-x not found in %s; known: %s' % (idir(tmp_path), ID))
    kind, res = run(incident_info, {'incident_dir': idir(tmp_path), 'escalation': [{'level': 1, 'after': 'soon'}]})
    assert kind == 'fail' and "escalation[0].after: invalid duration 'soon'" in res['msg']
    kind, res = run(incident_info, {'incident_dir': idir(tmp_path), 'escalation': [{'level': 0}]})
    assert kind == 'fail' and 'escalation[0].level must be a positive integer' in res['msg']
    kind, res = run(incident_info, {'incident_dir': idir(tmp_path), 'escalation': [{'level': 1, 'colour': 'red'}]})
    assert kind == 'fail' and 'colour' in res['msg']
    kind, res = run(incident_info, {'incident_dir': idir(tmp_path), 'now': 'later'})
    assert kind == 'fail' and 'not an ISO 8601 time' in res['msg']
    assert snapshot(idir(tmp_path)) == before


def test_info_never_writes_even_with_a_missing_dir(tmp_path):
    res = _info(tmp_path)
    assert res['count'] == 0 and not os.path.exists(idir(tmp_path))
    opened(tmp_path)
    before = snapshot(idir(tmp_path))
    _info(tmp_path, now='2030-01-01T00:00:00Z')
    assert snapshot(idir(tmp_path)) == before


def test_info_key_times(tmp_path):
    opened(tmp_path)
    run(incident, {'incident_dir': idir(tmp_path), 'id': ID, 'state': 'updated', 'now': '2026-11-27T03:14:45Z',
                   'event': {'step': 'p0.mitigate', 'status': 'ok'}})
    res = _info(tmp_path, id=ID, now='2026-11-27T03:20:00Z')['incident']
    assert res['time_to_mitigate_seconds'] == 120 and res['mitigated_by'] == 'p0.mitigate'
    assert res['time_to_acknowledge_seconds'] is None and res['time_to_resolve_seconds'] is None


def test_diff_summary(tmp_path):
    kind, res = run(incident, open_args(tmp_path), check_mode=True, diff=True)
    after = {'status': 'open', 'severity': 'P0', 'timeline': 1, 'escalations': [], 'acknowledged_at': None,
             'resolved_at': None}
    assert res['diff'] == {'before': {}, 'after': after}
