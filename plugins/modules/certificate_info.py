#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: certificate_info
short_description: Status of a node's TLS certificate - days left and whether it expires soon
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Reads a PEM certificate (the first one in the file) and returns when it expires, how many days are left, whether it
    expires within O(expiring_within), its subject, issuer, serial and whether it is self-signed.
  - Never changes anything. To renew a certificate, use the role C(qflow.ops.certificate), which calls this module and
    then the C(community.crypto) modules.
  - A missing or unreadable file, or a file that does not hold a PEM certificate, makes the module fail with the reason.
requirements:
  - cryptography (Python library) on the target; it comes with Ansible's own dependencies on most hosts.
extends_documentation_fragment:
  - qflow.ops._attributes
  - qflow.ops._attributes.INFO_MODULE
options:
  path:
    description:
      - The PEM certificate file.
    type: path
    required: true
  expiring_within:
    description:
      - RV(expiring) is true when the certificate expires within this duration (or has expired), for example V(30d), V(2w),
        V(12h) (units C(s), C(m), C(h), C(d), C(w); a bare number is seconds).
    type: str
    default: 30d
seealso:
  - module: community.crypto.x509_certificate_info
  - module: community.crypto.x509_certificate
'''

EXAMPLES = r'''
- name: How long is the API certificate still valid?
  qflow.ops.certificate_info:
    path: /etc/qflow/tls/qflow.crt
    expiring_within: 30d
  register: qflow_cert

- name: Warn when it expires soon
  ansible.builtin.debug:
    msg: "{{ qflow_cert.path }} expires {{ qflow_cert.not_after }} ({{ qflow_cert.days_left | round(1) }} days left)"
  when: qflow_cert.expiring

- name: Renew when expiring (uses community.crypto)
  ansible.builtin.include_role:
    name: qflow.ops.certificate
  vars:
    qflow_cert_path: /etc/qflow/tls/qflow.crt
    qflow_cert_key_path: /etc/qflow/tls/qflow.key
'''

RETURN = r'''
path:
  description: The certificate file.
  returned: success
  type: str
  sample: /etc/qflow/tls/qflow.crt
not_before:
  description: Start of validity, ISO 8601 UTC.
  returned: success
  type: str
  sample: "2026-11-27T03:12:45.000Z"
not_after:
  description: End of validity, ISO 8601 UTC.
  returned: success
  type: str
  sample: "2027-11-27T03:12:45.000Z"
days_left:
  description: Days until RV(not_after), with decimals; negative when expired.
  returned: success
  type: float
  sample: 364.998
expired:
  description: Whether RV(not_after) has passed.
  returned: success
  type: bool
  sample: false
expiring:
  description: Whether the certificate expires within O(expiring_within) (true when expired too).
  returned: success
  type: bool
  sample: false
subject:
  description: Subject as an RFC 4514 string.
  returned: success
  type: str
  sample: CN=qflow-node-1
issuer:
  description: Issuer as an RFC 4514 string.
  returned: success
  type: str
  sample: CN=qflow-node-1
serial:
  description: Serial number.
  returned: success
  type: int
  sample: 583218874215470611
self_signed:
  description: Whether the issuer is the subject and the certificate's signature verifies with its own public key.
  returned: success
  type: bool
  sample: true
dns_names:
  description: DNS names of the subject alternative name extension.
  returned: success
  type: list
  elements: str
  sample: [qflow-node-1]
fingerprint:
  description: C(sha256:) and the SHA-256 of the DER certificate in hex.
  returned: success
  type: str
  sample: "sha256:5d0b8e3c0a4f..."
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: /etc/qflow/tls/qflow.crt expires 2027-11-27T03:12:45.000Z (365.0 days left)
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.qflow.ops.plugins.module_utils import _certificate as engine
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration, utcnow


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            expiring_within=dict(type='str', default='30d'),
        ),
        supports_check_mode=True,
    )
    if not engine.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib('cryptography'), exception=engine.CRYPTOGRAPHY_IMPORT_ERROR)
    path = module.params['path']
    try:
        within = parse_duration(module.params['expiring_within'])
    except ValueError as exc:
        module.fail_json(msg='expiring_within: %s' % exc, path=path)
    try:
        result = engine.status(path, within, utcnow())
    except engine.CertificateError as exc:
        module.fail_json(msg=str(exc), path=path)
    if result['expired']:
        state = 'EXPIRED %.1f days ago' % -result['days_left']
    else:
        state = '%.1f days left%s' % (result['days_left'], ', expiring within %s' % module.params['expiring_within'] if result['expiring'] else '')
    result['msg'] = '%s expires %s (%s)' % (path, result['not_after'], state)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
