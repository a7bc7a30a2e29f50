#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: node_mode
short_description: Enable or disable the emergency, lockdown or isolation mode of a Qflow node
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Switches one operating mode of a Qflow node through its REST API. These are the runbook commands
    C(qflow emergency enable), C(qflow security lockdown enable) and C(qflow security isolate), and their reverse.
  - V(emergency) makes the node refuse new executions (C(503 EMERGENCY_MODE) on C(POST /api/v1/flows/:id/start)).
    Running executions continue, and pause, resume, abort and every read keep working.
  - V(lockdown) makes the node refuse every token without admin permission (C(403 LOCKDOWN_ACTIVE)).
  - V(isolation) takes the node out of the pool. Readiness fails, C(/health) reports C(isolated), and every
    C(/api/v1/*) route except the modes answers C(503 NODE_ISOLATED). The process keeps running and
    C(/metrics) keeps serving, so evidence is preserved.
  - Every run reads C(GET /api/v1/system/modes) first. It sends C(PUT /api/v1/system/modes/<mode>) only when the mode
    is not yet in the requested state. A mode that is already enabled is left alone, and its recorded reason is not
    replaced.
  - The modes are a node contract extension (C(docs/qflow-node-contract.md), operating modes), not part of real Qflow.
    A node that does not serve the routes answers C(404 NOT_FOUND), and the module fails saying so.
  - Changing a mode needs an admin token (permission C(*) or C(admin:*)). Reading the modes needs any valid token.
extends_documentation_fragment:
  - qflow.ops._api
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Only C(GET /api/v1/system/modes) is called. RV(modes) is the predicted state, with C(since) and C(by) of the
        switched mode V(null) because the node sets them.
  diff_mode:
    support: full
    details:
      - Shows C(enabled) and C(reason) of the mode before and after (predicted in check mode).
  idempotent:
    description: When run twice with the same arguments, the second run changes nothing.
    support: full
options:
  mode:
    description:
      - The operating mode to switch.
    type: str
    choices: [emergency, lockdown, isolation]
    required: true
  state:
    description:
      - V(enabled) turns the mode on and V(disabled) turns it off.
    type: str
    choices: [enabled, disabled]
    required: true
  reason:
    description:
      - Why the mode is switched, for example the incident id. The node records it with the time and the token
        identity. Required with O(state=enabled).
      - Not secret. It is returned and shown in the diff.
    type: str
notes:
  - Emergency mode stops new executions only. To hold the running ones too, pause them with
    M(qflow.ops.flows) after enabling it.
  - With lockdown enabled, only admin tokens work on the node, including for the other qflow.ops modules.
  - The modes are stored on the node (file C(QFLOW_MODES_FILE)), so they survive a restart and a restore of the
    data dir. Disable them explicitly when the incident is over.
seealso:
  - module: qflow.ops.flows
  - module: qflow.ops.operator_token
  - module: qflow.ops.health_info
'''

EXAMPLES = r'''
- name: qflow emergency enable
  qflow.ops.node_mode:
    api_url: "{{ qflow_api_url }}"
    api_token: "{{ qflow_api_token }}"
    mode: emergency
    state: enabled
    reason: "INC-2026-1127 P0: error rate 40 %"

- name: qflow security lockdown enable
  qflow.ops.node_mode:
    api_url: "{{ qflow_api_url }}"
    api_token: "{{ qflow_api_token }}"
    mode: lockdown
    state: enabled
    reason: "INC-2026-1128 leaked token squid:user:leaked"

- name: qflow security isolate
  qflow.ops.node_mode:
    api_url: "{{ qflow_api_url }}"
    api_token: "{{ qflow_api_token }}"
    mode: isolation
    state: enabled
    reason: "INC-2026-1128 forensics on {{ inventory_hostname }}"
  register: qflow_mode

- name: Show the three modes
  ansible.builtin.debug:
    var: qflow_mode.modes

- name: Back to normal operation
  qflow.ops.node_mode:
    api_url: "{{ qflow_api_url }}"
    api_token: "{{ qflow_api_token }}"
    mode: "{{ item }}"
    state: disabled
  loop: [isolation, lockdown, emergency]
'''

RETURN = r'''
mode:
  description: The O(mode) that was switched (or checked).
  returned: success
  type: str
  sample: emergency
enabled:
  description: Whether the mode is enabled after the task (predicted in check mode).
  returned: success
  type: bool
  sample: true
modes:
  description:
    - Every operating mode the node reports after the task (predicted in check mode). Read again from the node after
      a change.
    - Each mode holds C(enabled), C(reason), C(since) (ISO 8601 UTC, when it was switched) and C(by) (the token
      identity that switched it).
  returned: success
  type: dict
  sample:
    emergency: {enabled: true, reason: "INC-2026-1127 P0", since: "2026-11-27T03:12:45.123Z", by: "squid:ops:lab-operator"}
    lockdown: {enabled: false, reason: null, since: null, by: null}
    isolation: {enabled: false, reason: null, since: null, by: null}
diff:
  description: C(enabled) and C(reason) of the mode before and after (predicted in check mode).
  returned: success
  type: dict
  contains:
    before:
      description: The mode before the task.
      type: dict
      sample: {emergency: {enabled: false, reason: null}}
    after:
      description: The mode after the task.
      type: dict
      sample: {emergency: {enabled: true, reason: "INC-2026-1127 P0"}}
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "enabled emergency mode (reason: INC-2026-1127 P0)"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _node_mode as engine
from ansible_collections.qflow.ops.plugins.module_utils._api import QflowClient, api_argument_spec


def run(module, client, progress):
    p = module.params
    mode, enabled, reason = p['mode'], p['state'] == 'enabled', (p['reason'] or '').strip() or None
    before = engine.read_modes(client)
    if mode not in before:
        raise engine.NodeModeError(
            'The node reports the operating modes %s but not %s. Check the node version against %s (operating '
            'modes); nothing was changed.' % (', '.join(sorted(before)) or 'none', mode, engine.CONTRACT))
    word = 'enabled' if enabled else 'disabled'
    result = dict(changed=False, mode=mode)
    if before[mode]['enabled'] == enabled:
        after = before
        result['msg'] = '%s mode is already %s' % (mode, word)
    else:
        result['changed'] = True
        why = ' (reason: %s)' % reason if reason else ''
        if module.check_mode:
            after = engine.predict(before, mode, enabled, reason)
            result['msg'] = 'would %s %s mode%s' % ('enable' if enabled else 'disable', mode, why)
        else:
            answer = engine.put_mode(client, mode, enabled, reason)
            progress['sent'] = True
            after = engine.read_modes(client)
            if mode not in after or after[mode]['enabled'] != enabled:
                raise engine.NodeModeError(
                    'PUT %s/%s answered %r but the node still reports %s mode %s. Look at the node logs '
                    '(qflow.ops.logs_info, component system/auth).'
                    % (engine.MODES_PATH, mode, answer, mode, 'disabled' if enabled else 'enabled'))
            result['msg'] = '%s %s mode%s' % (word, mode, why)
    result.update(enabled=after[mode]['enabled'], modes=after,
                  diff=dict(before={mode: engine.view(before[mode])}, after={mode: engine.view(after[mode])}))
    return result


def main():
    spec = api_argument_spec()
    spec.update(
        mode=dict(type='str', required=True, choices=list(engine.MODES)),
        state=dict(type='str', required=True, choices=['enabled', 'disabled']),
        reason=dict(type='str'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    if p['state'] == 'enabled' and not (p['reason'] or '').strip():
        module.fail_json(msg='state=enabled needs reason: say why the %s mode is enabled (for example the incident id; '
                         'the node records it); nothing was sent to the node' % p['mode'], changed=False)
    client = QflowClient(module)
    progress = dict(sent=False)
    try:
        result = run(module, client, progress)
    except engine.NodeModeError as exc:
        module.fail_json(msg=str(exc), changed=progress['sent'], mode=p['mode'], **exc.extra)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
