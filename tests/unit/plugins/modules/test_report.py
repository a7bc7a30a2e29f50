# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.report, run through main()."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import qflow_backup_helpers as h  # noqa: E402  (puts the collection on sys.path)

from ansible_collections.qflow.ops.plugins.modules import report  # noqa: E402

PASS = u'\u2705'
FAIL = u'\u274c'

CHECKS = [
    {'node': 'qflow-node-2', 'item': 'cpu', 'title': 'CPU usage', 'ok': True, 'value': 33.0, 'unit': '%', 'threshold': '< 70 %'},
    {'node': 'qflow-node-1', 'item': 'cpu', 'title': 'CPU usage', 'ok': True, 'value': 12.3, 'unit': '%', 'threshold': '< 70 %'},
    {'node': 'qflow-node-2', 'item': 'flow_success_rate', 'title': 'Flow success rate', 'ok': False, 'value': 61.0, 'unit': '%',
     'threshold': '> 95 %', 'detail': '39 of 100 executions failed'},
    {'node': 'qflow-node-1', 'item': 'flow_success_rate', 'title': 'Flow success rate', 'ok': True, 'value': 99.5, 'unit': '%',
     'threshold': '> 95 %'},
    {'node': 'qflow-node-1', 'item': 'readiness', 'ok': True, 'value': {'storage': 'ok', 'config': 'ok'}},
]


def _args(tmp_path, checks=None, **extra):
    args = {'procedure': 'morning-health-check', 'title': 'Morning health check', 'report_dir': str(tmp_path / 'reports'),
            'checks': CHECKS if checks is None else checks, 'escalation': 'Runbook 1.3: page the on-call engineer'}
    args.update(extra)
    return args


def test_writes_json_md_and_latest(tmp_path):
    kind, res = h.run_module(report, _args(tmp_path, timestamp='20261127T031245Z', extra={'run': 'r1'}))
    assert kind == 'exit' and res['changed'] is True
    assert res['path'] == str(tmp_path / 'reports' / 'morning-health-check' / '20261127T031245Z')
    assert res['result'] == 'fail' and res['failed_items'] == 1
    assert res['summary'] == {'nodes': 2, 'items': 5, 'passed': 4, 'failed': 1}
    data = json.load(open(res['json_path']))
    assert data['procedure'] == 'morning-health-check' and data['result'] == 'fail'
    assert data['generated_at'] == '2026-11-27T03:12:45.000Z'
    assert data['escalation'] == 'Runbook 1.3: page the on-call engineer'
    assert data['extra'] == {'run': 'r1'}
    assert data['nodes']['qflow-node-2']['ok'] is False and data['nodes']['qflow-node-1']['ok'] is True
    assert [i['item'] for i in data['nodes']['qflow-node-1']['items']] == ['cpu', 'flow_success_rate', 'readiness']
    assert [c['value'] for c in data['checks'] if c['item'] == 'readiness'] == [{'storage': 'ok', 'config': 'ok'}]  # raw value kept
    md = open(res['md_path'], encoding='utf-8').read()
    assert md.startswith('# Morning health check\n')
    assert PASS in md and FAIL in md and '61.0 %' in md and '> 95 %' in md and '39 of 100 executions failed' in md
    assert 'Runbook 1.3: page the on-call engineer' in md
    latest = os.path.join(str(tmp_path / 'reports' / 'morning-health-check'), 'latest')
    assert os.path.islink(latest) and os.readlink(latest) == '20261127T031245Z'
    assert os.path.realpath(latest) == os.path.realpath(res['path'])


def test_checklist_sorted_and_aligned(tmp_path):
    kind, res = h.run_module(report, _args(tmp_path, timestamp='20261127T031245Z'), check_mode=True)
    lines = res['checklist']
    assert len(lines) == 5
    assert [line.split()[1] for line in lines] == ['qflow-node-1'] * 3 + ['qflow-node-2'] * 2
    assert [line.split()[2] for line in lines] == ['cpu', 'flow_success_rate', 'readiness', 'cpu', 'flow_success_rate']
    assert lines[0].startswith(PASS + ' qflow-node-1  cpu ') and '12.3 %  (threshold < 70 %)' in lines[0]
    assert lines[4].startswith(FAIL + ' qflow-node-2  flow_success_rate ')
    assert lines[4].endswith('61.0 %  (threshold > 95 %) \u2014 39 of 100 executions failed')
    # the value column ends at the same place on every line with a threshold
    ends = set(line.index('  (threshold') for line in lines if '(threshold' in line)
    assert len(ends) == 1


def test_check_mode_writes_nothing(tmp_path):
    kind, res = h.run_module(report, _args(tmp_path), check_mode=True)
    assert kind == 'exit' and res['changed'] is True and res['checklist'] and res['result'] == 'fail'
    assert not os.path.exists(str(tmp_path / 'reports'))


def test_latest_moves_and_fixed_timestamp_is_idempotent(tmp_path):
    kind, first = h.run_module(report, _args(tmp_path, timestamp='2026-11-27T03:12:45Z'))
    assert first['path'].endswith('20261127T031245Z')
    kind, again = h.run_module(report, _args(tmp_path, timestamp='20261127T031245Z'))
    assert again['changed'] is False
    passing = [dict(c, ok=True) for c in CHECKS]
    kind, second = h.run_module(report, _args(tmp_path, checks=passing, timestamp='20261128T031245Z'), diff=True)
    assert second['changed'] is True and second['result'] == 'pass' and second['failed_items'] == 0
    assert second['diff'] == {'before': {'latest': '20261127T031245Z', 'report_files': 'absent'},
                              'after': {'latest': '20261128T031245Z', 'report_files': 'written'}}
    latest = os.path.join(os.path.dirname(second['path']), 'latest')
    assert os.readlink(latest) == '20261128T031245Z'
    assert os.path.isdir(first['path'])  # older reports are kept
    data = json.load(open(second['json_path']))
    assert 'escalation' not in data and data['result'] == 'pass'
    md = open(second['md_path'], encoding='utf-8').read()
    assert FAIL not in md and 'Escalat' not in md
    leftovers = [n for n in os.listdir(os.path.dirname(latest)) if '.tmp-' in n]
    assert leftovers == []


def test_default_timestamp_and_title(tmp_path):
    kind, res = h.run_module(report, {'procedure': 'weekly-review', 'report_dir': str(tmp_path), 'checks': CHECKS[:1]})
    assert kind == 'exit' and res['changed'] is True and res['result'] == 'pass'
    name = os.path.basename(res['path'])
    assert len(name) == 16 and name[8] == 'T' and name.endswith('Z')
    assert json.load(open(res['json_path']))['title'] == 'Weekly review'


def test_bad_input(tmp_path):
    kind, res = h.run_module(report, _args(tmp_path, procedure='../x'))
    assert kind == 'fail' and 'procedure' in res['msg']
    kind, res = h.run_module(report, _args(tmp_path, timestamp='yesterday'))
    assert kind == 'fail' and 'timestamp' in res['msg']
    kind, res = h.run_module(report, _args(tmp_path, checks=[{'node': 'n', 'item': 'i'}]))
    assert kind == 'fail' and 'ok' in res['msg']
    proc = tmp_path / 'reports' / 'morning-health-check'
    (proc / 'latest').mkdir(parents=True)
    kind, res = h.run_module(report, _args(tmp_path))
    assert kind == 'fail' and 'not a symlink' in res['msg']


def test_four_steps_with_a_fixed_timestamp(tmp_path):
    args = _args(tmp_path, timestamp='20261127T031245Z')
    kind, step1 = h.run_module(report, args, check_mode=True)
    assert kind == 'exit' and step1['changed'] is True
    assert not os.path.exists(str(tmp_path / 'reports'))
    kind, step2 = h.run_module(report, args)
    assert kind == 'exit' and step2['changed'] is True and os.path.exists(step2['json_path'])
    written = open(step2['json_path'], 'rb').read(), open(step2['md_path'], 'rb').read()
    kind, step3 = h.run_module(report, args, check_mode=True)
    assert kind == 'exit' and step3['changed'] is False
    kind, step4 = h.run_module(report, args)
    assert kind == 'exit' and step4['changed'] is False
    assert (open(step2['json_path'], 'rb').read(), open(step2['md_path'], 'rb').read()) == written


def test_zero_items_is_never_a_pass(tmp_path):
    """A report with no check item (no node took part) fails and says why, in the result and both files."""
    kind, res = h.run_module(report, _args(tmp_path, checks=[], escalation='page the on-call engineer'))
    assert kind == 'exit' and res['result'] == 'fail' and res['summary']['items'] == 0
    data = json.load(open(res['json_path']))
    assert data['result'] == 'fail' and 'no check was made' in data['reason']
    assert data['escalation'] == 'page the on-call engineer'
    md = open(res['md_path'], encoding='utf-8').read()
    assert FAIL + ' FAIL' in md and 'recorded 0 items' in md and 'page the on-call engineer' in md
