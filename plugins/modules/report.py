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
  description: V(pass) when every check passed, else V(fail). A report with no check at all is V(fail) (it proves nothing).
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils._report import ReportError, plan_report, write_report


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
    try:
        plan = plan_report(p['report_dir'], p['procedure'], p['checks'], title=p['title'], escalation=p['escalation'],
                           timestamp=p['timestamp'], extra=p['extra'])
    except ReportError as exc:
        module.fail_json(msg=str(exc))
    if plan.changed and not module.check_mode:
        try:
            write_report(plan)
        except ReportError as exc:
            module.fail_json(msg=str(exc), **plan.result)
    module.exit_json(**plan.result)


if __name__ == '__main__':
    main()
