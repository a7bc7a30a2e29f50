# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: rendering and writing of the reports of qflow.ops.report. May change without notice.

Layout of a report directory::

    <report_dir>/<procedure>/<YYYYmmddTHHMMSSZ>/report.json   machine-readable report, mode 0644
    <report_dir>/<procedure>/<YYYYmmddTHHMMSSZ>/report.md     Markdown for humans, mode 0644
    <report_dir>/<procedure>/latest                           symlink to the newest run directory
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import collections
import datetime
import json
import math
import os
import re

from ansible_collections.qflow.ops.plugins.module_utils._files import write_atomic
from ansible_collections.qflow.ops.plugins.module_utils._time import iso, parse_iso, utcnow

PASS_MARK = u'\u2705'
FAIL_MARK = u'\u274c'
DASH = u'\u2014'
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')
_STAMP_RE = re.compile(r'^\d{8}T\d{6}Z$')
STAMP_FORMAT = '%Y%m%dT%H%M%SZ'
CHECKLIST_VALUE_MAX = 24
REPORT_FILE_MODE = 0o644  # the report files hold no secrets (see the module notes)


NO_ITEMS = (u'no check was made: the procedure recorded 0 items (no node took part, or every node was left out '
            u'before its checks); check the inventory, the target group and --limit')


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
    # A report that checked nothing proves nothing: 0 items is a failure, never a pass.
    result = 'fail' if failed or not checks else 'pass'
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
    if not checks:
        report['reason'] = NO_ITEMS
    if result == 'fail':
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
    if not checks:
        lines += [u'', u'## Failures', u'', u'- %s %s' % (FAIL_MARK, NO_ITEMS)]
    if failed or not checks:
        lines += [u'', u'## Escalation', u'',
                  u'**Escalate:** %s' % (report.get('escalation') or u'no escalation step was given; follow the runbook escalation policy')]
    return u'\n'.join(lines) + u'\n'


def _read(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError):
        return None


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


class ReportError(Exception):
    """A failure with a message meant for the operator (cause + what to do next)."""


_PLAN_FIELDS = 'run_name run_dir json_path md_path latest json_bytes md_bytes files_change link_change result'


class ReportPlan(collections.namedtuple('ReportPlan', _PLAN_FIELDS)):
    """A rendered report and what writing it would change. Nothing is written until write_report().

    ``result`` is the module result (changed, paths, result, summary, checklist, diff, ...).
    """
    __slots__ = ()

    @property
    def changed(self):
        return self.files_change or self.link_change


def plan_report(report_dir, procedure, checks, title=None, escalation=None, timestamp=None, extra=None):
    """Render the report of ``checks`` and compare it with what is on disk. Reads only. Raise ReportError."""
    if not _NAME_RE.match(procedure):
        raise ReportError('procedure %r cannot be used as a directory name: use letters, digits, ".", "_" and "-" only' % procedure)
    try:
        generated = parse_timestamp(timestamp)
    except ValueError as exc:
        raise ReportError('timestamp %r is neither YYYYmmddTHHMMSSZ nor ISO 8601 (%s)' % (timestamp, exc))
    run_name = generated.astimezone(datetime.timezone.utc).strftime(STAMP_FORMAT)
    title = title or procedure.replace('-', ' ').replace('_', ' ').capitalize()

    checks = normalise_checks(checks)
    report = build_report(procedure, title, checks, escalation, generated, extra)
    markdown = render_markdown(report, checks)
    checklist = build_checklist(checks)

    proc_dir = os.path.join(report_dir, procedure)
    run_dir = os.path.join(proc_dir, run_name)
    json_path = os.path.join(run_dir, 'report.json')
    md_path = os.path.join(run_dir, 'report.md')
    latest = os.path.join(proc_dir, 'latest')
    json_bytes = (json.dumps(report, indent=2, sort_keys=True, default=str, ensure_ascii=False) + '\n').encode('utf-8')
    md_bytes = markdown.encode('utf-8')

    if os.path.lexists(latest) and not os.path.islink(latest):
        raise ReportError('%s exists and is not a symlink; move it away so the latest report link can be maintained' % latest)
    old_target = os.readlink(latest) if os.path.islink(latest) else None
    files_change = _read(json_path) != json_bytes or _read(md_path) != md_bytes
    link_change = old_target != run_name

    result = dict(
        changed=files_change or link_change, path=run_dir, json_path=json_path, md_path=md_path, latest_path=latest,
        result=report['result'], failed_items=report['summary']['failed'], summary=report['summary'],
        checklist=checklist, generated_at=report['generated_at'],
        diff={'before': {'latest': old_target, 'report_files': 'present' if os.path.exists(json_path) else 'absent'},
              'after': {'latest': run_name, 'report_files': 'written' if files_change else 'unchanged'}},
    )
    return ReportPlan(run_name, run_dir, json_path, md_path, latest, json_bytes, md_bytes, files_change, link_change, result)


def write_report(plan):
    """Write the files and point the latest link as planned. Raise ReportError when the file system refuses."""
    try:
        if not os.path.isdir(plan.run_dir):
            os.makedirs(plan.run_dir, 0o755)
        if plan.files_change:
            write_atomic(plan.json_path, plan.json_bytes, REPORT_FILE_MODE)
            write_atomic(plan.md_path, plan.md_bytes, REPORT_FILE_MODE)
        if plan.link_change:
            _point_link(plan.latest, plan.run_name)
    except (IOError, OSError) as exc:
        raise ReportError('cannot write the report under %s: %s; check that report_dir is writable on the controller '
                          '(the task should run with delegate_to: localhost)' % (plan.run_dir, exc))
