#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: security_audit_info
short_description: Audit the security of a Qflow node's files, config and secrets
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - The runbook's monthly security audit, on the node's own files (node contract) - file modes of the env file,
    config, data dir and backup dir; the security settings of C(qflow-config.yaml) (authentication on, no secret in
    the config, token lifetime, TLS); the secrets in the env file (set, long enough, rotated within O(max_secret_age)
    according to the rotation record qflow.ops.secret keeps).
  - Each finding has a severity. RV(passed) is false when there is a V(high) finding.
  - Certificates are not read here; the monthly audit reads them with the role C(qflow.ops.certificate) (entry point
    C(status), community.crypto.x509_certificate_info).
  - Never prints a secret - findings name keys, paths, modes and ages.
extends_documentation_fragment:
  - qflow.ops._attributes
  - qflow.ops._attributes.INFO_MODULE
options:
  env_path:
    description: The node's env file.
    type: path
    default: /etc/qflow/qflow.env
  config_path:
    description: The node's C(qflow-config.yaml).
    type: path
    default: /etc/qflow/qflow-config.yaml
  data_dir:
    description: The node's data directory.
    type: path
    default: /var/lib/qflow
  backup_dir:
    description: The node's backup directory. Not audited when empty.
    type: path
    default: /var/backups/qflow
  max_secret_age:
    description:
      - Secrets rotated longer ago than this are a V(high) finding, for example V(90d).
    type: str
    default: 90d
  min_secret_length:
    description: Secrets shorter than this many characters are a V(high) finding.
    type: int
    default: 32
  require_tls:
    description:
      - Whether a node without C(networking.enableTLS) is a V(high) finding (otherwise V(medium)).
    type: bool
    default: true
notes:
  - Run with C(become=true) so the module can read the env file.
seealso:
  - module: qflow.ops.secret
  - module: community.crypto.x509_certificate_info
  - module: qflow.ops.config
'''

EXAMPLES = r'''
- name: Monthly security audit
  qflow.ops.security_audit_info:
    env_path: "{{ qflow_env_path }}"
    config_path: "{{ qflow_config_path }}"
    data_dir: "{{ qflow_data_dir }}"
    backup_dir: "{{ qflow_backup_dir }}"
    max_secret_age: 90d
  register: qflow_audit

- name: Show the high findings
  ansible.builtin.debug:
    msg: "{{ qflow_audit.findings | selectattr('severity', 'equalto', 'high') | map(attribute='message') }}"
'''

RETURN = r'''
passed:
  description: True when there is no V(high) finding.
  returned: success
  type: bool
  sample: false
findings:
  description: One entry per finding, with C(id), C(severity) (V(high), V(medium), V(low)), C(path) and C(message).
  returned: success
  type: list
  elements: dict
  sample: [{"id": "env_file_mode", "severity": "high", "path": "/etc/qflow/qflow.env",
            "message": "mode 0644 gives others access; the env file holds the JWT secret and encryption key (expected no bits in 0077)"}]
counts:
  description: Number of findings by severity.
  returned: success
  type: dict
  sample: {"high": 1, "medium": 0, "low": 2}
secret_age_days:
  description: Age in days of each secret per the rotation record (null when unknown).
  returned: success
  type: dict
  sample: {"QFLOW_JWT_SECRET": 6.2, "QFLOW_ENCRYPTION_KEY": null}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _audit as audit
from ansible_collections.qflow.ops.plugins.module_utils._config import ConfigError
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration, utcnow


def main():
    module = AnsibleModule(
        argument_spec=dict(
            env_path=dict(type='path', default='/etc/qflow/qflow.env'),
            config_path=dict(type='path', default='/etc/qflow/qflow-config.yaml'),
            data_dir=dict(type='path', default='/var/lib/qflow'),
            backup_dir=dict(type='path', default='/var/backups/qflow'),
            max_secret_age=dict(type='str', default='90d', no_log=False),
            min_secret_length=dict(type='int', default=32, no_log=False),
            require_tls=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        max_age = parse_duration(p['max_secret_age'])
    except ValueError as exc:
        module.fail_json(msg='max_secret_age: %s' % exc)
    now = utcnow()
    try:
        findings = audit.audit_modes(p['env_path'], p['config_path'], p['data_dir'], p['backup_dir'])
        findings += audit.audit_config(p['config_path'], p['require_tls'])
        secret_findings, ages = audit.audit_secrets(p['env_path'], max_age, p['min_secret_length'], now)
        findings += secret_findings
    except (ConfigError, OSError) as exc:
        module.fail_json(msg='security audit failed: %s' % exc)
    counts = audit.summary(findings)
    module.exit_json(changed=False, passed=counts['high'] == 0, findings=findings, counts=counts,
                     secret_age_days=ages)


if __name__ == '__main__':
    main()
