#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: operator_token
short_description: Issue a Qflow operator token signed with the node's current JWT secret
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Reads C(QFLOW_JWT_SECRET) from the node's env file and issues a sQuid token with it, in the format of the node
    contract (C(docs/qflow-node-contract.md), section 3.1). The token is base64 of the JSON
    C({identity, signature, timestamp, expiresAt, permissions, nonce}). Its C(signature) is the hex
    HMAC-SHA256 of C(<identity>|<timestamp>|<expiresAt>|<perm1,perm2,...>|<nonce>) with the secret. The timestamps are
    ISO 8601 UTC with milliseconds and a C(Z).
  - Use it after a revoke-all rotation of the secret, that is M(qflow.ops.secret) with O(qflow.ops.secret#module:keep_previous=false)
    followed by a restart. Every older token is then dead, including the inventory's operator token, and the
    playbook issues a fresh one per node for the tasks that follow.
  - "The token is a secret. It is returned only in RV(token), for M(ansible.builtin.set_fact). The task B(must) set
    C(no_log: true), otherwise Ansible prints the result (and the token) with C(-v) and in callbacks. The module
    never puts the token or the secret in any other key, in a warning or in an error message. RV(fingerprint) is
    safe to print."
  - The node verifies the token with the secret it loaded at start. Issue the token after the node restarted with
    the new secret, or it will not be accepted.
  - It writes nothing, on the node or anywhere else, so the task is never changed.
extends_documentation_fragment:
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - The token is issued in check mode too, because issuing changes nothing. A playbook run with C(--check) can then
        use it for its read-only tasks.
  diff_mode:
    support: none
  idempotent:
    description: When run twice with the same arguments, the second run changes nothing.
    support: full
    details:
      - Nothing is ever changed. Every run returns a new token (new nonce and timestamps).
options:
  env_path:
    description:
      - The node's env file (inventory variable C(qflow_env_path)), the same file as O(qflow.ops.secret#module:env_path).
        It must exist and hold C(QFLOW_JWT_SECRET). It is only read.
      - Run with C(become=true) when the file belongs to another user (it is mode C(0600)).
    type: path
    default: /etc/qflow/qflow.env
  identity:
    description:
      - The sQuid identity the token names. The node logs it with every request (component C(auth)), so give the
        operations identity, not a person's.
      - Must not contain C(|).
    type: str
    default: squid:ops:qflow-ops
  permissions:
    description:
      - The permissions the token carries. Operator tokens carry V(*), which is what M(qflow.ops.node_mode) needs under
        lockdown. Names C(<namespace>:*) and exact names are honoured by the node.
      - No element may be empty or contain C(,) or C(|).
    type: list
    elements: str
    default: ['*']
  ttl:
    description:
      - How long the token is valid, from now. A number with an optional unit V(s), V(m), V(h), V(d) or V(w),
        for example V(1h) or V(30m). It must be more than 0 and at most 30 days.
      - Keep it short. A token cannot be revoked except by rotating the secret again.
    type: str
    default: 1h
notes:
  - The expiry is computed with the clock of the host that runs the module (the node). Keep the clocks in sync.
  - For a node whose secrets are a Kubernetes Secret there is no env file. Read the secret from the Secret instead,
    which this module does not do.
seealso:
  - module: qflow.ops.secret
  - module: qflow.ops.node_mode
'''

EXAMPLES = r'''
- name: Revoke every token - rotate the JWT secret without grace
  qflow.ops.secret:
    env_path: "{{ qflow_env_path }}"
    names: [QFLOW_JWT_SECRET]
    state: rotated
    keep_previous: false
  become: true

# ... restart the node and wait for it to be ready ...

- name: Issue a fresh operator token signed with the new secret
  qflow.ops.operator_token:
    env_path: "{{ qflow_env_path }}"
    ttl: 2h
  become: true
  no_log: true
  register: qflow_new_token

- name: Use it for the rest of the play (never print it)
  ansible.builtin.set_fact:
    qflow_api_token: "{{ qflow_new_token.token }}"
  no_log: true

- name: Print what is safe to print
  ansible.builtin.debug:
    msg: "new token for {{ inventory_hostname }}: {{ qflow_new_token.fingerprint }}, expires {{ qflow_new_token.expires_at }}"
'''

RETURN = r'''
token:
  description:
    - The token, for C(Authorization Bearer). A secret. Use it only in M(ansible.builtin.set_fact) (or
      O(qflow.ops.node_mode#module:api_token) and the like), in tasks with C(no_log) set to true.
  returned: success
  type: str
  sample: eyJpZGVudGl0eSI6InNxdWlkOm9wczpxZmxvdy1vcHMiLCJzaWduYXR1cmUiOiIuLi4ifQ==
identity:
  description: The identity the token names.
  returned: success
  type: str
  sample: squid:ops:qflow-ops
permissions:
  description: The permissions the token carries.
  returned: success
  type: list
  elements: str
  sample: ['*']
issued_at:
  description: The token's C(timestamp) (ISO 8601 UTC).
  returned: success
  type: str
  sample: '2026-11-27T03:12:45.123Z'
expires_at:
  description: The token's C(expiresAt) (ISO 8601 UTC).
  returned: success
  type: str
  sample: '2026-11-27T04:12:45.123Z'
fingerprint:
  description: C(sha256:) and the first 12 hex digits of the SHA-256 of the token. Safe to print and to log.
  returned: success
  type: str
  sample: sha256:4be1c0de77a2
secret_fingerprint:
  description:
    - The fingerprint of the C(QFLOW_JWT_SECRET) the token is signed with, in the format RV(qflow.ops.secret#module:fingerprints)
      uses, so a playbook can check that the token matches the secret it just rotated.
  returned: success
  type: str
  sample: sha256:7b1e04c9aa53
env_path:
  description: The env file the secret was read from.
  returned: always
  type: str
  sample: /etc/qflow/qflow.env
msg:
  description: One-line summary, without the token.
  returned: always
  type: str
  sample: issued a token for squid:ops:qflow-ops (sha256:4be1c0de77a2), valid until 2026-11-27T04:12:45.123Z
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _token as engine
from ansible_collections.qflow.ops.plugins.module_utils._secret import fingerprint
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration, utcnow


def main():
    module = AnsibleModule(
        argument_spec=dict(
            env_path=dict(type='path', default='/etc/qflow/qflow.env'),
            identity=dict(type='str', default='squid:ops:qflow-ops'),
            permissions=dict(type='list', elements='str', default=['*']),
            ttl=dict(type='str', default='1h'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(changed=False, env_path=p['env_path'])
    try:
        ttl = parse_duration(p['ttl'])
    except ValueError as exc:
        module.fail_json(msg='ttl: %s; no token was issued' % exc, **result)
    if ttl <= 0 or ttl > engine.MAX_TTL:
        module.fail_json(msg='ttl must be more than 0 and at most 30d, got %r; no token was issued' % p['ttl'], **result)
    try:
        engine.check_claims(p['identity'], p['permissions'])
        secret = engine.read_secret(p['env_path'])
    except engine.TokenError as exc:
        module.fail_json(msg='%s; no token was issued' % exc, **result)
    token, payload = engine.issue(secret, p['identity'], p['permissions'], ttl, utcnow())
    if secret not in token:  # never true for a real secret; masking it must not garble the token
        module.no_log_values.add(secret)
    result.update(token=token, identity=payload['identity'], permissions=payload['permissions'],
                  issued_at=payload['timestamp'], expires_at=payload['expiresAt'],
                  fingerprint=engine.token_fingerprint(token), secret_fingerprint=fingerprint(secret))
    result['msg'] = 'issued a token for %s (%s), valid until %s' % (payload['identity'], result['fingerprint'],
                                                                    payload['expiresAt'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
