#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: secret
short_description: Rotate the JWT signing secret and the encryption key in a Qflow node's env file
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Generates new values for C(QFLOW_JWT_SECRET) and C(QFLOW_ENCRYPTION_KEY) in the node's env file
    (C(KEY=value) lines, see the node contract), or makes sure they exist and are long enough.
  - The values are never returned, logged or shown in a diff. The module returns fingerprints only, C(sha256:) followed by
    the first 12 hex digits of the SHA-256 of the value, and registers every old and new value so that Ansible masks it
    wherever it would appear.
  - The env file is written atomically. Every other line, comment and the order of the lines are kept, and so are the
    file's owner and mode (bits for others are dropped; the file is at least C(0600)). A key that has no line is appended.
  - The time of each change and the fingerprint of the new value are recorded in the sidecar file C(<env_path>.meta.json)
    (mode C(0600)), which is how O(max_age) knows the age of a secret.
  - The node reads the env file at start; restart its service for new values to take effect. A new C(QFLOW_JWT_SECRET)
    revokes every token signed with the old one once the node restarts, so new operator tokens must be issued.
    Changing C(QFLOW_ENCRYPTION_KEY) makes data encrypted with the old key unreadable unless the node re-encrypts it.
  - This module manages the env file only. For a node whose secrets are a Kubernetes Secret, the filter
    P(qflow.ops.secret_plan#filter) applies the same rules and returns the merge patch for P(kubernetes.core.k8s#module)
    (the maintenance role's JWT step does so on the V(kubernetes) service backend; see C(docs/inventory.md)).
extends_documentation_fragment:
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports which names would change and why, and writes nothing (no env file, backup or sidecar). No value is
        generated, so the C(after) fingerprint of a name that would change is V(null).
  diff_mode:
    support: full
    details:
      - One C(NAME=<redacted sha256:...>) line per name in O(names), before and after. Other lines of the file are not
        shown (they may hold other secrets).
  idempotent:
    description: When run twice with the same arguments, the second run changes nothing.
    support: partial
    details:
      - O(state=present) is idempotent.
      - O(state=rotated) generates new values on every run unless O(max_age) is set; with O(max_age) it is idempotent
        while the secrets are younger than O(max_age).
options:
  env_path:
    description:
      - The node's env file (inventory variable C(qflow_env_path)). It must exist.
    type: path
    default: /etc/qflow/qflow.env
  names:
    description:
      - The secrets to manage.
    type: list
    elements: str
    choices: [QFLOW_JWT_SECRET, QFLOW_ENCRYPTION_KEY]
    default: [QFLOW_JWT_SECRET, QFLOW_ENCRYPTION_KEY]
  state:
    description:
      - V(rotated) generates a new value for each name. Without O(max_age) this happens on every run (the task is
        always changed). With O(max_age), a name is rotated only when its value is older than O(max_age), when it
        is missing, or when its age is unknown (no entry for it in the sidecar file, or the value was changed by
        something else since the entry was written).
      - V(present) generates a value only for a name that is missing, empty or shorter than O(min_length) characters;
        a long enough value is left alone whatever its age.
    type: str
    choices: [rotated, present]
    default: present
  max_age:
    description:
      - With O(state=rotated), rotate only the secrets older than this duration, for example V(7d), V(12h), V(90m),
        V(2w) (units C(s), C(m), C(h), C(d), C(w); a bare number is seconds).
      - Checked but not used with O(state=present).
    type: str
  length:
    description:
      - Number of random bytes of a new value. The value is these bytes in URL-safe base64 (C(secrets.token_urlsafe)),
        so V(48) bytes give 64 characters.
      - Must give at least O(min_length) characters.
    type: int
    default: 48
  min_length:
    description:
      - With O(state=present), a value shorter than this many characters is replaced.
    type: int
    default: 32
  backup:
    description:
      - Keep the previous env file as C(<env_path>.<YYYYmmddTHHMMSSZ>.bak) (mode C(0600), same owner) before writing,
        so that a node that fails to restart can be rolled back. The path is returned in RV(backup_file).
    type: bool
    default: true
  keep_previous:
    description:
      - With O(state=rotated), when a name is rotated, keep its old value as C(<NAME>_PREVIOUS) in the env file (a line is added or
        replaced), so that tokens signed with the old JWT secret stay valid until the next rotation and data
        encrypted with the old key can still be read (node contract, secret rotation grace).
      - The next rotation replaces C(<NAME>_PREVIOUS) again, so at most two values are accepted at any time.
      - With V(false), a rotated name's C(<NAME>_PREVIOUS) line left by an earlier rotation is removed, so only the new
        value is accepted - every token signed before is revoked (the security breach procedure).
      - The C(_PREVIOUS) lines are shown redacted in the diff, like the secrets themselves.
    type: bool
    default: true
notes:
  - Run with C(become=true) when the env file belongs to another user.
  - The backups hold the old secrets; remove them once the node runs with the new ones.
seealso:
  - module: qflow.ops.config
  - module: qflow.ops.backup
'''

EXAMPLES = r'''
- name: Make sure both secrets exist and are long enough (first install)
  qflow.ops.secret:
    env_path: "{{ qflow_env_path }}"
    state: present
  become: true

- name: Rotate both secrets when older than 90 days (idempotent, safe to schedule)
  qflow.ops.secret:
    env_path: "{{ qflow_env_path }}"
    state: rotated
    max_age: 90d
  become: true
  register: qflow_secret

- name: Restart the node so that it uses the new secrets (old tokens are revoked)
  ansible.builtin.systemd_service:
    name: qflow
    state: restarted
  become: true
  when: qflow_secret.changed

- name: Rotate the JWT signing secret now (for example after a leak)
  qflow.ops.secret:
    env_path: /etc/qflow/qflow.env
    names: [QFLOW_JWT_SECRET]
    state: rotated
  become: true

- name: Roll back to the previous env file if the node does not come back
  ansible.builtin.copy:
    src: "{{ qflow_secret.backup_file }}"
    dest: "{{ qflow_env_path }}"
    remote_src: true
    mode: "0600"
  become: true
  when: qflow_secret.backup_file
'''

RETURN = r'''
env_path:
  description: The env file.
  returned: always
  type: str
  sample: /etc/qflow/qflow.env
rotated:
  description: The names whose value was (or in check mode would be) generated.
  returned: always
  type: list
  elements: str
  sample: [QFLOW_JWT_SECRET]
reasons:
  description: Why each name in RV(rotated) was (or would be) changed.
  returned: always
  type: dict
  sample: {"QFLOW_JWT_SECRET": "older than max_age (91d02h)"}
fingerprints:
  description:
    - For each name in O(names), C(sha256:) and the first 12 hex digits of the SHA-256 of the value before and after.
    - V(null) for a value that does not exist, and for the new value in check mode.
  returned: always
  type: dict
  sample: {"QFLOW_JWT_SECRET": {"before": "sha256:0f3a9c21b7de", "after": "sha256:7b1e04c9aa53"}}
backup_file:
  description: The copy of the previous env file, or V(null) when nothing was written or O(backup=false).
  returned: always
  type: str
  sample: /etc/qflow/qflow.env.20261127T031245Z.bak
meta_path:
  description: The sidecar file with the time and fingerprint of each change.
  returned: always
  type: str
  sample: /etc/qflow/qflow.env.meta.json
restart_required:
  description: Whether the node must be restarted to use new values (true when something changed and not in check mode).
  returned: always
  type: bool
  sample: true
diff:
  description: One line per name with the fingerprint of the value, never the value.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: Lines before.
      type: str
      sample: "QFLOW_JWT_SECRET=<redacted sha256:0f3a9c21b7de>\n"
    after:
      description: Lines after (C(<new value>) in check mode).
      type: str
      sample: "QFLOW_JWT_SECRET=<redacted sha256:7b1e04c9aa53>\n"
    before_header:
      description: The env file path.
      type: str
      sample: /etc/qflow/qflow.env
    after_header:
      description: The env file path.
      type: str
      sample: /etc/qflow/qflow.env
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "rotated QFLOW_JWT_SECRET in /etc/qflow/qflow.env (backup /etc/qflow/qflow.env.20261127T031245Z.bak); restart the node"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _secret as engine
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration, utcnow


def main():
    module = AnsibleModule(
        argument_spec=dict(
            env_path=dict(type='path', default='/etc/qflow/qflow.env'),
            names=dict(type='list', elements='str', choices=list(engine.SECRET_NAMES), default=list(engine.SECRET_NAMES)),
            state=dict(type='str', choices=['rotated', 'present'], default='present'),
            max_age=dict(type='str'),
            length=dict(type='int', default=48),
            min_length=dict(type='int', default=32),
            backup=dict(type='bool', default=True),
            keep_previous=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    env_path = p['env_path']
    names = []
    for name in p['names']:
        if name not in names:
            names.append(name)
    result = dict(changed=False, env_path=env_path, rotated=[], reasons={}, fingerprints={}, backup_file=None,
                  meta_path=engine.meta_path(env_path), restart_required=False)

    max_age = None
    if p['max_age'] is not None:
        try:
            max_age = parse_duration(p['max_age'])
        except ValueError as exc:
            module.fail_json(msg='max_age: %s; nothing was changed' % exc, **result)
        if p['state'] != 'rotated':
            max_age = None
    if not names:
        module.fail_json(msg='names must name at least one secret', **result)
    if p['min_length'] < 1:
        module.fail_json(msg='min_length must be 1 or more, got %d' % p['min_length'], **result)
    if p['length'] < 16:
        module.fail_json(msg='length must be at least 16 bytes, got %d' % p['length'], **result)
    if len(engine.generate(p['length'])) < p['min_length']:
        module.fail_json(msg='length %d bytes gives values shorter than min_length %d characters; raise length'
                         % (p['length'], p['min_length']), **result)

    now = utcnow()
    try:
        plan = engine.plan(env_path, names, p['state'], p['length'], p['min_length'], max_age, now, module.check_mode,
                           keep_previous=p['keep_previous'])
    except engine.SecretError as exc:
        module.fail_json(msg=str(exc), **result)
    for value in plan.pop('hide'):
        module.no_log_values.add(value)

    result.update(rotated=plan['changed'], reasons=plan['reasons'], fingerprints=plan['fingerprints'],
                  changed=bool(plan['changed']))
    if module._diff:
        result['diff'] = plan['diff']
    if not plan['changed']:
        result['msg'] = '%s: %s unchanged' % (env_path, ', '.join(names))
        module.exit_json(**result)
    if module.check_mode:
        result['msg'] = 'would %s %s in %s' % ('generate' if p['state'] == 'present' else 'rotate', ', '.join(plan['changed']), env_path)
        module.exit_json(**result)

    try:
        result['backup_file'] = engine.apply(env_path, plan, p['backup'], now)
    except (engine.SecretError, IOError, OSError) as exc:
        module.fail_json(msg='cannot write %s: %s' % (env_path, exc), **result)
    result['restart_required'] = True
    result['msg'] = '%s %s in %s%s; restart the node to use the new value%s' % (
        'generated' if p['state'] == 'present' else 'rotated', ', '.join(plan['changed']), env_path,
        ' (backup %s)' % result['backup_file'] if result['backup_file'] else '', 's' if len(plan['changed']) > 1 else '')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
