#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: deployment
short_description: Roll a Qflow node back to a release, switch it to a release, or mark its release verified
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Works on the node's release dir (node contract section 2.5 Releases; nodes run by systemd or supervisor) -
    C(<release_dir>/<version>/release.json), the symlink C(<release_dir>/current) naming the running release, and
    C(<release_dir>/history.jsonl), one C({"time", "action", "version", "from", "by"}) object per line.
  - O(state=rolled_back) points C(current) at O(version), by default at the last known good release, and appends a
    C(rolled_back) line. O(state=deployed) points C(current) at O(version), an existing release dir, and appends a
    C(deployed) line. O(state=verified) appends a C(verified) line for the current release (after it passed its checks).
  - The history line is appended first, then C(current) is repointed atomically (a temporary symlink in the release dir
    renamed over C(current)), so a reader always sees the old or the new link. When the switch fails the line is taken
    back and nothing has changed.
  - A release is I(known good) when its latest history line is C(verified); a C(rolled_back) line whose C(from) is the
    release counts as a line of that release (rolling back away from it is evidence against it). The I(last known
    good) release is the known good one other than the current one that was verified most recently (history order) and
    whose release dir still holds a C(release.json).
  - The module does not restart the service; the node reads C(current/release.json) at start. The role
    C(qflow.ops.deployment) restarts the node, waits at the health gate and only then marks the release verified.
extends_documentation_fragment:
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Writes nothing; returns the target, the history line that would be appended and the state the run would leave.
  diff_mode:
    support: full
    details:
      - C(before) and C(after) hold C(current), the release C(current) points at.
  idempotent:
    description: When run twice with the same arguments, the second run changes nothing.
    support: full
    details:
      - O(state=rolled_back) and O(state=deployed) change nothing when C(current) already is the target. Without
        O(version), a rollback whose last action (apart from C(verified) lines of the current release) was a rollback
        to the current release changes nothing either; pass O(version) to roll back further.
      - O(state=verified) changes nothing when the latest history line of the current release is C(verified).
options:
  release_dir:
    description:
      - The node's release dir, C(QFLOW_RELEASE_DIR) in its env file (inventory variable C(qflow_release_dir)).
      - It must exist and hold the symlink C(current).
    type: path
    default: /opt/qflow/releases
  state:
    description:
      - V(rolled_back) points C(current) at O(version), or when O(version) is not set at the last known good release.
      - V(deployed) points C(current) at O(version) (required), a release dir that exists already; the module does not
        install releases.
      - V(verified) records that the current release passed its checks.
    type: str
    choices: [rolled_back, deployed, verified]
    default: rolled_back
  version:
    description:
      - The target release, the name of a directory right under O(release_dir) that holds a C(release.json).
      - Required with O(state=deployed); ignored with O(state=verified).
      - With O(state=rolled_back) it may name a release that is not known good (a warning says so).
    type: str
  by:
    description:
      - Who acts, written as C(by) in the history line.
    type: str
    default: qflow.ops
  limit:
    description:
      - Number of history lines returned in RV(history) (the newest, oldest first); V(0) returns them all.
    type: int
    default: 5
notes:
  - Run with C(become=true) when the release dir belongs to another user.
  - Two runs at the same time on the same node are not locked against each other.
seealso:
  - module: qflow.ops.deployment_info
'''

EXAMPLES = r'''
- name: Roll back to the last known good release (then restart the service)
  qflow.ops.deployment:
    release_dir: "{{ qflow_release_dir }}"
    state: rolled_back
    by: "{{ lookup('ansible.builtin.env', 'USER') }}"
  become: true
  register: qflow_rollback

- name: Roll back to a given release
  qflow.ops.deployment:
    release_dir: /opt/qflow/releases
    state: rolled_back
    version: 0.1.0

- name: Mark the running release verified after it passed the health gate
  qflow.ops.deployment:
    release_dir: /opt/qflow/releases
    state: verified

- name: Switch to a release that is installed already
  qflow.ops.deployment:
    release_dir: /opt/qflow/releases
    state: deployed
    version: 0.2.0
'''

RETURN = r'''
current:
  description: The release C(current) points at after the run (in check mode, would point at).
  returned: always
  type: str
  sample: 0.1.0
previous:
  description: The release C(current) pointed at before the run.
  returned: success
  type: str
  sample: 0.2.0
target:
  description: The release the run aimed at (the current one for O(state=verified)).
  returned: success
  type: str
  sample: 0.1.0
entry:
  description: The history line appended (in check mode, that would be), or V(null) when nothing changed.
  returned: success
  type: dict
  sample: {"time": "2026-03-02T10:15:00.000Z", "action": "rolled_back", "version": "0.1.0", "from": "0.2.0", "by": "qflow.ops"}
history:
  description: The last O(limit) history lines after the run (in check mode, with RV(entry) as it would be), oldest first.
  returned: success
  type: list
  elements: dict
  sample: [{"time": "2026-03-01T09:00:00.000Z", "action": "deployed", "version": "0.2.0", "from": "0.1.0", "by": "ci"}]
known_good:
  description: The known good releases after the run, most recently verified first.
  returned: success
  type: list
  elements: str
  sample: [0.1.0]
release:
  description: The C(release.json) of RV(current).
  returned: success
  type: dict
  sample: {"version": "0.1.0", "createdAt": "2026-02-01T08:00:00.000Z", "defects": []}
restart_required:
  description: Whether C(current) was repointed, so the service must be restarted for the node to run RV(current).
  returned: always
  type: bool
  sample: true
diff:
  description: C(current) before and after.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: Before the run.
      type: dict
      sample: {"current": "0.2.0"}
    after:
      description: After the run.
      type: dict
      sample: {"current": "0.1.0"}
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "rolled back /opt/qflow/releases from 0.2.0 to 0.1.0; restart the service"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _deployment as engine
from ansible_collections.qflow.ops.plugins.module_utils._time import utcnow

VERB = {'rolled_back': 'rolled back', 'deployed': 'deployed', 'verified': 'marked verified'}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            release_dir=dict(type='path', default='/opt/qflow/releases'),
            state=dict(type='str', choices=['rolled_back', 'deployed', 'verified'], default='rolled_back'),
            version=dict(type='str'),
            by=dict(type='str', default='qflow.ops'),
            limit=dict(type='int', default=5),
        ),
        required_if=[('state', 'deployed', ['version'])],
        supports_check_mode=True,
    )
    p = module.params
    result = dict(changed=False, current=None, restart_required=False)
    if p['limit'] < 0:
        module.fail_json(msg='limit must be 0 (all) or more, got %d' % p['limit'], **result)
    version = p['version'] if p['state'] != 'verified' else None
    try:
        state = engine.read_state(p['release_dir'])
    except engine.DeploymentError as exc:
        module.fail_json(msg='%s; nothing was changed' % exc, **result)
    result['current'] = state['current']
    try:
        decision = engine.plan(state, p['state'], version, p['by'], utcnow())
    except engine.DeploymentError as exc:
        module.fail_json(msg='%s; nothing was changed' % exc, **result)
    for warning in decision['warnings']:
        module.warn(warning)
    if state['history_errors']:
        module.warn('%d line(s) of %s/%s are not history objects and were skipped'
                    % (state['history_errors'], p['release_dir'], engine.HISTORY))

    after = dict(state)
    after['current'] = decision['target'] if decision['switch'] else state['current']
    after['current_release'] = state['releases'].get(after['current'], {}).get('release')
    after['history'] = state['history'] + ([decision['entry']] if decision['entry'] else [])
    summary = engine.describe(after, p['limit'])
    result.update(changed=decision['changed'], current=after['current'], previous=state['current'],
                  target=decision['target'], entry=decision['entry'], history=summary['history'],
                  known_good=summary['known_good'], release=summary['release'])
    if module._diff:
        result['diff'] = {'before': {'current': state['current']}, 'after': {'current': after['current']}}

    if not decision['changed']:
        if p['state'] == 'verified':
            result['msg'] = 'release %s is verified already' % state['current']
        else:
            result['msg'] = '%s already points at %s' % (p['release_dir'], state['current'])
        module.exit_json(**result)

    if p['state'] == 'verified':
        what = '%s release %s' % (VERB[p['state']], state['current'])
    else:
        what = '%s %s from %s to %s' % (VERB[p['state']], p['release_dir'], state['current'], decision['target'])
    if module.check_mode:
        result['msg'] = 'would have ' + what
        module.exit_json(**result)
    try:
        engine.apply(state, decision)
    except engine.DeploymentError as exc:
        result.update(changed=False, current=state['current'], entry=None, history=engine.describe(state, p['limit'])['history'])
        module.fail_json(msg=str(exc), **result)
    result['restart_required'] = decision['switch']
    result['msg'] = what + ('; restart the service' if decision['switch'] else '')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
