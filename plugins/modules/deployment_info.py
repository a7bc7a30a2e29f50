#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: deployment_info
short_description: Deployment history, current release, known good releases and every release of a Qflow node
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Reads the node's release dir (node contract section 2.5 Releases) - the symlink C(current), C(history.jsonl) and the
    C(release.json) of every release - like C(qflow deployment history --limit 5). Never writes.
  - A release is I(known good) when its latest history line is C(verified) (a C(rolled_back) line whose C(from) is the
    release counts as a line of that release). RV(last_known_good) is what M(qflow.ops.deployment) rolls back to when no
    version is given.
extends_documentation_fragment:
  - qflow.ops._attributes
  - qflow.ops._attributes.INFO_MODULE
options:
  release_dir:
    description:
      - The node's release dir, C(QFLOW_RELEASE_DIR) in its env file (inventory variable C(qflow_release_dir)).
      - It must exist and hold the symlink C(current); otherwise the module fails naming what is missing.
    type: path
    default: /opt/qflow/releases
  limit:
    description:
      - Number of history lines returned in RV(history) (the newest, oldest first); V(0) returns them all.
    type: int
    default: 5
seealso:
  - module: qflow.ops.deployment
'''

EXAMPLES = r'''
- name: Deployment history (qflow deployment history --limit 5)
  qflow.ops.deployment_info:
    release_dir: "{{ qflow_release_dir }}"
    limit: 5
  register: qflow_deployments

- name: Show where a rollback would go
  ansible.builtin.debug:
    msg: "current {{ qflow_deployments.current }}, last known good {{ qflow_deployments.last_known_good }}"
'''

RETURN = r'''
current:
  description: The release C(current) points at.
  returned: success
  type: str
  sample: 0.2.0
release:
  description: The C(release.json) of RV(current), or V(null) when it cannot be read.
  returned: success
  type: dict
  sample: {"version": "0.2.0", "createdAt": "2026-03-01T09:00:00.000Z", "defects": []}
history:
  description: The last O(limit) lines of C(history.jsonl), oldest first. Lines that are not history objects are skipped.
  returned: success
  type: list
  elements: dict
  contains:
    time:
      description: When (ISO 8601 UTC).
      type: str
    action:
      description: V(deployed), V(rolled_back) or V(verified).
      type: str
    version:
      description: The release deployed, rolled back to or verified.
      type: str
    from:
      description: The release C(current) pointed at before (V(null) for V(verified)).
      type: str
    by:
      description: Who acted.
      type: str
  sample: [{"time": "2026-03-01T09:00:00.000Z", "action": "deployed", "version": "0.2.0", "from": "0.1.0", "by": "ci"}]
history_total:
  description: Number of history lines (all of them, not only those in RV(history)).
  returned: success
  type: int
  sample: 12
known_good:
  description: Known good releases (the current one included when it is), most recently verified first.
  returned: success
  type: list
  elements: str
  sample: [0.1.0]
last_known_good:
  description: The known good release other than the current one verified most recently, or V(null).
  returned: success
  type: str
  sample: 0.1.0
releases:
  description: Every release dir, by version (numbers compare as numbers).
  returned: success
  type: list
  elements: dict
  contains:
    version:
      description: The directory name.
      type: str
    path:
      description: The directory.
      type: str
    release:
      description: Its C(release.json), or V(null) when it cannot be read.
      type: dict
    error:
      description: Why C(release.json) cannot be read, or V(null).
      type: str
    current:
      description: Whether C(current) points at it.
      type: bool
    known_good:
      description: Whether it is known good.
      type: bool
  sample: [{"version": "0.1.0", "path": "/opt/qflow/releases/0.1.0", "release": {"version": "0.1.0"}, "error": null,
            "current": false, "known_good": true}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _deployment as engine


def main():
    module = AnsibleModule(
        argument_spec=dict(
            release_dir=dict(type='path', default='/opt/qflow/releases'),
            limit=dict(type='int', default=5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p['limit'] < 0:
        module.fail_json(msg='limit must be 0 (all) or more, got %d' % p['limit'])
    try:
        state = engine.read_state(p['release_dir'])
    except engine.DeploymentError as exc:
        module.fail_json(msg=str(exc))
    if state['history_errors']:
        module.warn('%d line(s) of %s/%s are not history objects and were skipped'
                    % (state['history_errors'], p['release_dir'], engine.HISTORY))
    summary = engine.describe(state, p['limit'])
    releases = []
    for name in sorted(state['releases'], key=engine.version_key):
        rel = state['releases'][name]
        releases.append(dict(rel, current=name == state['current'], known_good=name in summary['known_good']))
    module.exit_json(changed=False, history_total=len(state['history']), releases=releases, **summary)


if __name__ == '__main__':
    main()
