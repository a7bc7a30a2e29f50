#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: window_lock
short_description: Take, release or read the maintenance-window lock of a Qflow node
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Makes sure that two maintenance windows (weekly, monthly, incident, emergency) never change the same node at once.
    The window's first task takes the node's lock; a second window that reaches the node while the lock is held fails
    there, before it changes anything, naming the run that holds the node (playbook, user, controller, since when,
    until when).
  - The lock is a JSON file on the node, O(path), with the holder's C(run_id), C(playbook), C(who), C(controller),
    C(pid), C(pid_start), C(boot_id), and the times C(since) and C(expires) (ISO 8601 UTC).
  - A lock held by another run is B(stale), and is replaced (returned in RV(broken)), when its C(expires) has passed, or
    when its C(run_id) is in O(stale_run_ids). The action plugin of this module fills O(stale_run_ids) by itself when
    the holder is a run of the same controller whose C(ansible-playbook) process is gone, or when that controller
    rebooted since; a run of another controller that died is detected by O(ttl) only.
  - A new lock is a fully written temporary file hard-linked to O(path), which fails when O(path) exists, so two runs
    racing for a free node cannot both win; a stale lock is replaced by an atomic rename while an exclusive C(flock) of
    the lock dir is held.
  - Symbolic links are never followed. The lock dir (the directory of O(path)) is created with mode C(0700) when
    missing, and refused unless it is a directory owned by the user that runs the task that neither group nor others
    can write.
  - Runs through an action plugin on the controller, which fills O(holder) and O(node) and finds dead runs of this
    controller (see O(holder)). See C(docs/locking.md) for how to clear a lock by hand.
extends_documentation_fragment:
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the lock and predicts the outcome (take, replace a stale lock, refuse, release, keep); creates, locks and
        writes nothing. A lock held by another live run fails the task in check mode too, as the real run would.
  diff_mode:
    support: full
    details:
      - The lock's content (the holder) before and after, as JSON.
  idempotent:
    description: When run twice with the same arguments, the second run changes nothing.
    support: full
    details:
      - Acquiring a lock this run holds already, or releasing a lock that is free or held by another run, changes
        nothing. The lock's C(since) and C(expires) are not renewed.
  action:
    description: Indicates this has a corresponding action plugin so some parts of the task run on the controller.
    support: full
    details:
      - The action plugin fills O(holder) and O(node) from the controller and, with O(state=acquired), reads the lock
        first (O(state=query)) to find a holder of this controller that died. With O(state=query) it reports such a
        holder in RV(stale_reason).
options:
  path:
    description:
      - The lock file on the node. Its directory is the lock dir (created mode C(0700) when missing).
      - Give every node its own file; when several nodes run on one host, derive the name from the node's data dir (the
        role P(qflow.ops.run_guard#role) entry point C(lock) does).
    type: path
    required: true
  state:
    description:
      - V(acquired) takes the lock for the run in O(holder) - nothing to do when that run holds it already; taken when
        free; replaced when another run's lock is stale; otherwise the task fails, naming the holder.
      - V(released) removes the lock when O(holder) holds it; a lock that is free or held by another run is left as it
        is (RV(held_by) names the other run).
      - V(query) only reads the lock (RV(held_by), RV(stale_reason)).
    type: str
    choices: [acquired, released, query]
    default: acquired
  holder:
    description:
      - The run that takes or releases the lock. Required with O(state=acquired) and O(state=released).
      - The action plugin sets every key that is not given from the controller, so a playbook normally gives only
        O(holder.playbook).
    type: dict
    suboptions:
      run_id:
        description:
          - Identifies the run; every task of one run must use the same value. Required by the module.
          - The action plugin's default is derived from the C(ansible-playbook) process (controller host name, boot id,
            pid and the process's start time), so all the tasks of one run share it and no two runs have the same.
        type: str
      playbook:
        description: The procedure or playbook, for people reading the lock. The action plugin's default is the play's name.
        type: str
      who:
        description:
          - The person who started the run. The action plugin's default is the extra var C(awx_user_name) (or
            C(tower_user_name)) set by AWX / Automation Controller, else the user running Ansible on the controller.
        type: str
      controller:
        description: Host name of the controller. The action plugin's default is the controller's host name.
        type: str
      pid:
        description: PID of the C(ansible-playbook) process on the controller (action plugin default).
        type: int
      pid_start:
        description:
          - Start time of that process (clock ticks since boot, from C(/proc/<pid>/stat)), so that a PID reused by
            another process is not mistaken for the run (action plugin default).
        type: int
      boot_id:
        description: The controller's C(/proc/sys/kernel/random/boot_id) (action plugin default).
        type: str
  ttl:
    description:
      - How long a new lock is valid, for example V(6h), V(90m), V(1d) (units C(s), C(m), C(h), C(d), C(w); a bare
        number is seconds). After C(expires) another run may replace it.
      - Choose more than the longest window takes; a lock is not renewed while its run goes on.
    type: str
    default: 6h
  stale_run_ids:
    description:
      - Runs known to be dead. A lock held by one of them is replaced like an expired one.
      - The action plugin adds the holder's run when that run belongs to this controller and its process is gone.
    type: list
    elements: str
    default: []
  node:
    description:
      - The node's name in messages. The action plugin's default is C(inventory_hostname); the module's is the host
        name of the node.
    type: str
notes:
  - Run with the same C(become) setting in every window (the lock dir must belong to the user that runs the task).
  - A host that fails in the middle of a window keeps its lock until O(ttl) passes or, for the next run from the same
    controller, until its C(ansible-playbook) process has ended. That is on purpose - the node may be half changed.
seealso:
  - module: qflow.ops.report
'''

EXAMPLES = r'''
- name: Take the node for the weekly window (fails, naming the holder, when another window runs)
  qflow.ops.window_lock:
    path: /var/lib/qflow-ops/locks/var-lib-qflow.json
    holder:
      playbook: weekly-maintenance
    ttl: 6h
  become: true

- name: Release the node at the end of the window
  qflow.ops.window_lock:
    path: /var/lib/qflow-ops/locks/var-lib-qflow.json
    state: released
  become: true

- name: Who holds the node?
  qflow.ops.window_lock:
    path: /var/lib/qflow-ops/locks/var-lib-qflow.json
    state: query
  become: true
  register: qflow_lock

- name: Show the holder
  ansible.builtin.debug:
    msg: "{{ qflow_lock.msg }}"

- name: Replace the lock of a run that is known to have died on another controller
  qflow.ops.window_lock:
    path: /var/lib/qflow-ops/locks/var-lib-qflow.json
    holder:
      playbook: emergency-outage
    stale_run_ids: ["{{ qflow_lock.held_by.run_id }}"]
  become: true
'''

RETURN = r'''
lock_path:
  description: The lock file (O(path)).
  returned: always
  type: str
  sample: /var/lib/qflow-ops/locks/var-lib-qflow.json
holder:
  description:
    - This run (O(holder) with the defaults the action plugin filled in). With O(state=acquired), when this run holds
      (or in check mode would hold) the lock, the lock's record with C(since) and C(expires).
    - V(null) with O(state=query) and no O(holder).
  returned: always
  type: dict
  sample: {"run_id": "9d0c4be71f2a53e8", "playbook": "weekly-maintenance", "who": "alice", "controller": "ctl-1",
           "pid": 4242, "pid_start": 81234567, "boot_id": "0b6c2b0e-6c37-4a4e-9a43-0c1f1c0d5f00",
           "since": "2026-12-03T02:00:04Z", "expires": "2026-12-03T08:00:04Z"}
held_by:
  description:
    - The lock's content after the task (predicted in check mode), V(null) when the node is free. When the task was
      refused, or a release found another run's lock, the other run.
  returned: always
  type: dict
  sample: {"run_id": "3f2a9c1e0b7d4e21", "playbook": "monthly-maintenance", "who": "bob", "controller": "ctl-2",
           "pid": 977, "pid_start": 1203344, "boot_id": "6f1e2d1c-0a9b-4c3d-8e7f-112233445566",
           "since": "2026-12-06T01:00:02Z", "expires": "2026-12-06T07:00:02Z"}
broken:
  description: The stale lock of another run that was (or in check mode would be) replaced, else V(null).
  returned: always
  type: dict
  sample: {"run_id": "3f2a9c1e0b7d4e21", "playbook": "monthly-maintenance", "who": "bob", "controller": "ctl-1",
           "pid": 977, "pid_start": 1203344, "boot_id": "6f1e2d1c-0a9b-4c3d-8e7f-112233445566",
           "since": "2026-11-29T01:00:02Z", "expires": "2026-11-29T07:00:02Z"}
stale_reason:
  description: Why the lock of another run is stale (for RV(broken), or with O(state=query)), else V(null).
  returned: always
  type: str
  sample: it expired at 2026-11-29T07:00:02Z
diff:
  description: The lock's content before and after.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The lock before (empty when free).
      type: dict
    after:
      description: The lock after (empty when free).
      type: dict
msg:
  description: One-line summary; on refusal, who holds the node and what to do.
  returned: always
  type: str
  sample: >-
    qflow-node-2 is held by weekly-maintenance (run 3f2a9c1e0b7d4e21, started by alice on ctl-1 (pid 4242),
    since 2026-12-03T02:00:04Z, expires 08:00:04Z); wait for it to finish, or if that run died, remove
    /var/lib/qflow-ops/locks/var-lib-qflow.json after checking that it no longer runs; nothing was changed
'''

import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _window_lock as engine
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration, utcnow


def _messages(p, node, outcome, check_mode):
    path = p['path']
    action = outcome['action']
    if action == 'take':
        return '%s: %s %s for %s' % (node, 'would take' if check_mode else 'took', path, engine.describe(outcome['after']))
    if action == 'break':
        after = outcome['after']
        return '%s: %s the stale lock of %s - %s; %s held by %s (run %s)' % (
            node, 'would replace' if check_mode else 'replaced', engine.describe(outcome['before']), outcome['reason'],
            'would then be' if check_mode else 'now', after.get('playbook') or 'an unnamed playbook', after['run_id'])
    if action == 'remove':
        verb = 'would release' if check_mode else 'released'
        return '%s: %s %s (held by %s)' % (node, verb, path, engine.describe(outcome['before']))
    if action == 'keep':
        return ('%s: not released, %s is held by another run: %s; left as it is'
                % (node, path, engine.describe(outcome['before'])))
    if outcome['before'] is None:
        return '%s: %s is free' % (node, path)
    if p['state'] == 'query':
        stale = outcome['stale_reason']
        return '%s: %s is held by %s%s' % (node, path, engine.describe(outcome['before']),
                                           '; stale - %s' % stale if stale else '')
    return '%s: %s is held by this run already: %s' % (node, path, engine.describe(outcome['before']))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', choices=['acquired', 'released', 'query'], default='acquired'),
            holder=dict(type='dict', options=dict(
                run_id=dict(type='str'),
                playbook=dict(type='str'),
                who=dict(type='str'),
                controller=dict(type='str'),
                pid=dict(type='int'),
                pid_start=dict(type='int'),
                boot_id=dict(type='str'),
            )),
            ttl=dict(type='str', default='6h'),
            stale_run_ids=dict(type='list', elements='str', default=[]),
            node=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    node = p['node'] or socket.gethostname()
    holder = dict(p['holder']) if p['holder'] else None
    result = dict(changed=False, lock_path=p['path'], holder=holder, held_by=None, broken=None, stale_reason=None)

    try:
        ttl = parse_duration(p['ttl'])
    except ValueError as exc:
        module.fail_json(msg='ttl: %s; nothing was changed' % exc, **result)
    if ttl <= 0:
        module.fail_json(msg='ttl must be more than 0, got %r; nothing was changed' % p['ttl'], **result)
    if p['state'] != 'query' and not (holder and holder.get('run_id')):
        module.fail_json(msg='holder.run_id is required with state=%s (the action plugin sets it; it is missing only '
                             'when the module runs without it); nothing was changed' % p['state'], **result)

    now = utcnow()
    try:
        outcome = engine.execute(p['path'], p['state'], holder, now, ttl, p['stale_run_ids'], module.check_mode)
    except engine.LockError as exc:
        module.fail_json(msg='%s: %s' % (node, exc), **result)

    action = outcome['action']
    result['held_by'] = outcome['after']
    result['stale_reason'] = outcome['stale_reason']
    if action == 'break':
        result['broken'] = outcome['before']
    if p['state'] == 'acquired' and outcome['after'] is not None and outcome['after'].get('run_id') == holder['run_id']:
        result['holder'] = outcome['after']
    if module._diff:
        result['diff'] = dict(before=outcome['before'] or {}, after=outcome['after'] or {},
                              before_header=p['path'], after_header=p['path'])
    if action == 'refuse':
        result['msg'] = engine.refusal_message(node, outcome['before'], p['path'])
        module.fail_json(**result)
    result['changed'] = action in ('take', 'break', 'remove')
    result['msg'] = _messages(p, node, outcome, module.check_mode)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
