#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: report
short_description: Write the report of a runbook procedure (JSON + Markdown) and return a readable checklist
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Turns the checks gathered by a procedure (for example the morning health check) into
    C(<report_dir>/<procedure>/<YYYYmmddTHHMMSSZ>/report.json) and C(report.md), and points the symlink
    C(<report_dir>/<procedure>/latest) at that directory (replaced atomically).
  - Meant to run once on the controller, with C(delegate_to=localhost) and C(run_once=true), after the checks of every
    node were collected.
  - Returns RV(checklist), one aligned line per check with a pass/fail mark, the measured value and the threshold,
    for display with M(ansible.builtin.debug).
  - The module does not fail when checks failed; it returns RV(result=fail) and RV(failed_items) so the playbook can
    decide (for example with M(ansible.builtin.assert) after the report is safely written).
  - Idempotent for a fixed O(timestamp) (same content, same link target means no change). Without O(timestamp) every
    run is a new report.
extends_documentation_fragment:
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Writes nothing and still returns the rendered RV(checklist), RV(result) and the paths that would be written.
  diff_mode:
    support: partial
    details:
      - Shows where the C(latest) link points before and after and whether the report files change, not their content.
options:
  procedure:
    description:
      - Procedure name, used as a directory name, for example V(morning-health-check).
      - Letters, digits, V(.), V(_) and V(-) only.
    type: str
    required: true
  title:
    description:
      - Report title. Defaults to the procedure name in title case.
    type: str
  report_dir:
    description:
      - Root directory of the reports on the controller. Created when missing.
    type: path
    required: true
  checks:
    description:
      - The checks, one entry per node and item. Order is kept within a node; nodes are sorted by name.
    type: list
    elements: dict
    required: true
    suboptions:
      node:
        description: Node (host) the check ran on.
        type: str
        required: true
      item:
        description: Short machine name of the check, for example V(cpu) or V(flow_success_rate).
        type: str
        required: true
      title:
        description: Human title of the check. Defaults to O(checks[].item).
        type: str
      ok:
        description: Whether the check passed.
        type: bool
        required: true
      value:
        description: The measured value, as measured (number, string, list, ...). Stored raw in C(report.json).
        type: raw
      unit:
        description: Unit shown after the value, for example V(%) or V(ms).
        type: str
      threshold:
        description: The threshold as a human string, for example V(< 70 %).
        type: str
      detail:
        description: Explanation, shown for failed checks.
        type: str
  escalation:
    description:
      - The runbook escalation step to name when any check failed. Written to both files only when the result is V(fail).
    type: str
  timestamp:
    description:
      - Time of the run, either V(YYYYmmddTHHMMSSZ) or ISO 8601. Used as the directory name (in the V(YYYYmmddTHHMMSSZ) form)
        and as C(generated_at).
      - Defaults to now.
    type: str
  extra:
    description:
      - Free data copied as C(extra) into C(report.json), for example the inventory or run id.
    type: dict
notes:
  - Keep secrets out of O(checks) and O(extra); the report files are mode C(0644).
'''

EXAMPLES = r'''
- name: Write the morning health check report
  qflow.ops.report:
    procedure: morning-health-check
    title: Morning health check
    report_dir: "{{ playbook_dir }}/../reports"
    escalation: "Runbook 1.3: page the on-call engineer (#qflow-oncall) and open an incident"
    checks:
      - node: qflow-node-1
        item: cpu
        title: CPU usage
        ok: true
        value: 12.3
        unit: "%"
        threshold: "< 70 %"
      - node: qflow-node-2
        item: flow_success_rate
        title: Flow success rate (1 h)
        ok: false
        value: 61.0
        unit: "%"
        threshold: "> 95 %"
        detail: 39 of 100 executions failed (upstream timeout)
  delegate_to: localhost
  run_once: true
  register: health_report

- name: Show the checklist
  ansible.builtin.debug:
    var: health_report.checklist
  run_once: true

- name: Fail the play after the report is written
  ansible.builtin.assert:
    that: health_report.result == 'pass'
    fail_msg: "{{ health_report.failed_items }} check(s) failed, see {{ health_report.md_path }}"
  run_once: true
'''

RETURN = r'''
path:
  description: Directory of this report.
  returned: always
  type: str
  sample: /srv/reports/morning-health-check/20261127T031245Z
json_path:
  description: Path of C(report.json).
  returned: always
  type: str
  sample: /srv/reports/morning-health-check/20261127T031245Z/report.json
md_path:
  description: Path of C(report.md).
  returned: always
  type: str
  sample: /srv/reports/morning-health-check/20261127T031245Z/report.md
latest_path:
  description: Path of the C(latest) symlink.
  returned: always
  type: str
  sample: /srv/reports/morning-health-check/latest
result:
  description: V(pass) when every check passed, else V(fail).
  returned: always
  type: str
  sample: fail
failed_items:
  description: Number of failed checks.
  returned: always
  type: int
  sample: 1
summary:
  description: Counts.
  returned: always
  type: dict
  contains:
    nodes:
      description: Distinct nodes.
      type: int
    items:
      description: Checks.
      type: int
    passed:
      description: Checks that passed.
      type: int
    failed:
      description: Checks that failed.
      type: int
  sample: {nodes: 2, items: 2, passed: 1, failed: 1}
checklist:
  description: One aligned line per check, sorted by node, then in the order given.
  returned: always
  type: list
  elements: str
  sample:
    - "✅ qflow-node-1  cpu                 12.3 %  (threshold < 70 %)"
    - "❌ qflow-node-2  flow_success_rate   61.0 %  (threshold > 95 %) — 39 of 100 executions failed"
generated_at:
  description: The report time, ISO 8601 UTC.
  returned: always
  type: str
  sample: '2026-11-27T03:12:45.000Z'
diff:
  description: Target of the C(latest) link and whether the report files change.
  returned: always
  type: dict
  sample: {before: {latest: 20261126T031200Z, report_files: absent}, after: {latest: 20261127T031245Z, report_files: written}}
'''

import datetime
import json
import math
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils._time import iso, parse_iso, utcnow

PASS_MARK = u'\u2705'
FAIL_MARK = u'\u274c'
DASH = u'\u2014'
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')
_STAMP_RE = re.compile(r'^\d{8}T\d{6}Z$')
STAMP_FORMAT = '%Y%m%dT%H%M%SZ'
CHECKLIST_VALUE_MAX = 24


def parse_timestamp(text):
    if text is None:
        return utcnow().replace(microsecond=0)
    text = text.strip()
    if _STAMP_RE.match(text):
        return datetime.datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=datetime.timezone.utc)
    return parse_iso(text)


def format_value(value, unit=None):
    if value is None:
        text = 'n/a'
    elif isinstance(value, bool):
        text = 'yes' if value else 'no'
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            text = str(value)
        elif value == 0 or abs(value) >= 1:
            text = '%.1f' % value if abs(value) < 1e6 else '%.0f' % value
        else:
            text = '%.3g' % value
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, sort_keys=True, default=str, separators=(',', ':'))
    else:
        text = str(value)
    if unit and value is not None:
        text = '%s %s' % (text, unit)
    return text


def normalise_checks(checks):
    out = []
    for check in checks:
        item = dict(check)
        item['title'] = check.get('title') or check['item']
        out.append(item)
    # sorted() is stable: nodes by name, items in the order given
    return sorted(out, key=lambda c: c['node'])


def _shorten(text, limit):
    return text if len(text) <= limit else text[:limit - 1] + u'\u2026'


def build_checklist(checks):
    if not checks:
        return []
    rows = [(c, _shorten(format_value(c.get('value'), c.get('unit')), CHECKLIST_VALUE_MAX)) for c in checks]
    node_w = max(len(c['node']) for c, dummy in rows)
    item_w = max(len(c['item']) for c, dummy in rows)
    value_w = max(len(v) for dummy, v in rows)
    lines = []
    for check, value in rows:
        line = u'%s %s  %s  %s' % (PASS_MARK if check['ok'] else FAIL_MARK, check['node'].ljust(node_w), check['item'].ljust(item_w), value.rjust(value_w))
        if check.get('threshold'):
            line += u'  (threshold %s)' % check['threshold']
        if not check['ok'] and check.get('detail'):
            line += u' %s %s' % (DASH, check['detail'])
        lines.append(line.rstrip())
    return lines


def _cell(text):
    return (u'%s' % (text if text is not None else '')).replace('|', '\\|').replace('\r', ' ').replace('\n', ' ')


def build_report(procedure, title, checks, escalation, generated, extra):
    failed = [c for c in checks if not c['ok']]
    nodes = {}
    for check in checks:
        node = nodes.setdefault(check['node'], {'ok': True, 'items': []})
        node['ok'] = node['ok'] and bool(check['ok'])
        node['items'].append(dict((k, check.get(k)) for k in ('item', 'title', 'ok', 'value', 'unit', 'threshold', 'detail')))
    result = 'fail' if failed else 'pass'
    summary = {'nodes': len(nodes), 'items': len(checks), 'passed': len(checks) - len(failed), 'failed': len(failed)}
    report = {
        'procedure': procedure,
        'title': title,
        'generated_at': iso(generated),
        'result': result,
        'summary': summary,
        'nodes': nodes,
        'checks': [dict((k, c.get(k)) for k in ('node', 'item', 'title', 'ok', 'value', 'unit', 'threshold', 'detail')) for c in checks],
        'extra': extra or {},
    }
    if failed:
        report['escalation'] = escalation
    return report


def render_markdown(report, checks):
    summary = report['summary']
    failed = report['result'] == 'fail'
    lines = [u'# %s' % report['title'], u'']
    lines.append(u'**Result: %s %s** %s %d of %d checks passed on %d node(s)' % (
        FAIL_MARK if failed else PASS_MARK, report['result'].upper(), DASH, summary['passed'], summary['items'], summary['nodes']))
    lines.append(u'')
    lines.append(u'Procedure `%s`, generated %s.' % (report['procedure'], report['generated_at']))
    for node in sorted(report['nodes']):
        info = report['nodes'][node]
        lines += [u'', u'## %s %s' % (PASS_MARK if info['ok'] else FAIL_MARK, node), u'',
                  u'| | Check | Value | Threshold | Detail |', u'|---|---|---|---|---|']
        for check in [c for c in checks if c['node'] == node]:
            name = _cell(check['item']) if check['title'] == check['item'] else u'%s (`%s`)' % (_cell(check['title']), _cell(check['item']))
            lines.append(u'| %s | %s | %s | %s | %s |' % (
                PASS_MARK if check['ok'] else FAIL_MARK, name,
                _cell(format_value(check.get('value'), check.get('unit'))), _cell(check.get('threshold') or ''), _cell(check.get('detail') or '')))
    if failed:
        lines += [u'', u'## Failures', u'']
        for check in checks:
            if check['ok']:
                continue
            measured = format_value(check.get('value'), check.get('unit'))
            text = u'- %s **%s / %s** (%s): measured %s' % (FAIL_MARK, check['node'], check['item'], check['title'], measured)
            if check.get('threshold'):
                text += u', threshold %s' % check['threshold']
            if check.get('detail'):
                text += u' %s %s' % (DASH, check['detail'])
            lines.append(text)
        lines += [u'', u'## Escalation', u'',
                  u'**Escalate:** %s' % (report.get('escalation') or u'no escalation step was given; follow the runbook escalation policy')]
    return u'\n'.join(lines) + u'\n'


def _read(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _write_atomic(path, data):
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.tmp-', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _point_link(link, target):
    tmp = '%s.tmp-%d' % (link, os.getpid())
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    try:
        os.rename(tmp, link)
    except OSError:
        os.unlink(tmp)
        raise


def main():
    check_spec = dict(
        node=dict(type='str', required=True),
        item=dict(type='str', required=True),
        title=dict(type='str'),
        ok=dict(type='bool', required=True),
        value=dict(type='raw'),
        unit=dict(type='str'),
        threshold=dict(type='str'),
        detail=dict(type='str'),
    )
    module = AnsibleModule(
        argument_spec=dict(
            procedure=dict(type='str', required=True),
            title=dict(type='str'),
            report_dir=dict(type='path', required=True),
            checks=dict(type='list', elements='dict', required=True, options=check_spec),
            escalation=dict(type='str'),
            timestamp=dict(type='str'),
            extra=dict(type='dict'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    procedure = p['procedure']
    if not _NAME_RE.match(procedure):
        module.fail_json(msg='procedure %r cannot be used as a directory name: use letters, digits, ".", "_" and "-" only' % procedure)
    try:
        generated = parse_timestamp(p['timestamp'])
    except ValueError as exc:
        module.fail_json(msg='timestamp %r is neither YYYYmmddTHHMMSSZ nor ISO 8601 (%s)' % (p['timestamp'], exc))
    run_name = generated.astimezone(datetime.timezone.utc).strftime(STAMP_FORMAT)
    title = p['title'] or procedure.replace('-', ' ').replace('_', ' ').capitalize()

    checks = normalise_checks(p['checks'])
    report = build_report(procedure, title, checks, p['escalation'], generated, p['extra'])
    markdown = render_markdown(report, checks)
    checklist = build_checklist(checks)

    proc_dir = os.path.join(p['report_dir'], procedure)
    run_dir = os.path.join(proc_dir, run_name)
    json_path = os.path.join(run_dir, 'report.json')
    md_path = os.path.join(run_dir, 'report.md')
    latest = os.path.join(proc_dir, 'latest')
    json_bytes = (json.dumps(report, indent=2, sort_keys=True, default=str, ensure_ascii=False) + '\n').encode('utf-8')
    md_bytes = markdown.encode('utf-8')

    if os.path.lexists(latest) and not os.path.islink(latest):
        module.fail_json(msg='%s exists and is not a symlink; move it away so the latest report link can be maintained' % latest)
    old_target = os.readlink(latest) if os.path.islink(latest) else None
    files_change = _read(json_path) != json_bytes or _read(md_path) != md_bytes
    link_change = old_target != run_name
    changed = files_change or link_change

    result = dict(
        changed=changed, path=run_dir, json_path=json_path, md_path=md_path, latest_path=latest,
        result=report['result'], failed_items=report['summary']['failed'], summary=report['summary'],
        checklist=checklist, generated_at=report['generated_at'],
        diff={'before': {'latest': old_target, 'report_files': 'present' if os.path.exists(json_path) else 'absent'},
              'after': {'latest': run_name, 'report_files': 'written' if files_change else 'unchanged'}},
    )
    if changed and not module.check_mode:
        try:
            if not os.path.isdir(run_dir):
                os.makedirs(run_dir, 0o755)
            if files_change:
                _write_atomic(json_path, json_bytes)
                _write_atomic(md_path, md_bytes)
            if link_change:
                _point_link(latest, run_name)
        except (IOError, OSError) as exc:
            module.fail_json(msg='cannot write the report under %s: %s; check that report_dir is writable on the controller '
                                 '(the task should run with delegate_to: localhost)' % (run_dir, exc), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
