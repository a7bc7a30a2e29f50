#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: alerts_info
short_description: List the active Qflow alerts from Alertmanager
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Reads the active alerts from Alertmanager (C(GET /api/v2/alerts)) and returns them normalised, sorted by
    severity (critical first) and then newest first, with counts per severity.
  - Filters are sent to Alertmanager and applied again locally.
extends_documentation_fragment:
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
  - qflow.ops._attributes.INFO_MODULE
options:
  alertmanager_url:
    description:
      - Root URL of Alertmanager.
      - If not set, the value of the E(QFLOW_ALERTMANAGER_URL) environment variable is used, then the default.
    type: str
    default: http://localhost:9093
  since:
    description:
      - Only alerts that started within this duration, for example V(30m), V(24h), V(7d).
      - By default all active alerts are returned.
    type: str
  severity:
    description:
      - Only alerts whose C(severity) label is one of these, for example V(critical), V(warning).
    type: list
    elements: str
  matchers:
    description:
      - 'Only alerts whose labels equal these values (exact match), for example C({instance: "127.0.1.2:9090"}).'
    type: dict
  include_silenced:
    description:
      - Also return silenced and inhibited alerts (state C(suppressed)).
    type: bool
    default: false
seealso:
  - module: qflow.ops.metrics_info
'''

EXAMPLES = r'''
- name: Critical Qflow alerts of this node over the last day
  qflow.ops.alerts_info:
    alertmanager_url: http://alertmanager.example.com:9093
    since: 24h
    severity: [critical]
    matchers:
      service: qflow
      instance: "{{ ansible_host }}:9090"
  register: qflow_alerts

- name: Fail when something critical fires
  ansible.builtin.assert:
    that: qflow_alerts.critical == 0
    fail_msg: "{{ qflow_alerts.alerts | map(attribute='name') | join(', ') }}"
'''

RETURN = r'''
alerts:
  description: The matching alerts, critical first, then newest first.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: C(alertname) label.
      type: str
      returned: always
      sample: QflowHighErrorRate
    severity:
      description: C(severity) label (null when absent).
      type: str
      returned: always
      sample: critical
    state:
      description: Alertmanager state, V(active), V(suppressed) or V(unprocessed).
      type: str
      returned: always
      sample: active
    starts_at:
      description: When the alert started (ISO 8601).
      type: str
      returned: always
      sample: "2026-11-27T03:12:45.123Z"
    ends_at:
      description: When the alert ends unless it is refreshed (ISO 8601).
      type: str
      returned: always
    instance:
      description: C(instance) label.
      type: str
      returned: always
      sample: "127.0.1.2:9090"
    summary:
      description: C(summary) annotation, else C(description).
      type: str
      returned: always
    labels:
      description: All labels.
      type: dict
      returned: always
    annotations:
      description: All annotations.
      type: dict
      returned: always
    silenced:
      description: Whether a silence matches the alert.
      type: bool
      returned: always
    inhibited:
      description: Whether another alert inhibits it.
      type: bool
      returned: always
    fingerprint:
      description: Alertmanager fingerprint.
      type: str
      returned: always
counts:
  description: Number of returned alerts per severity (V(none) for alerts without a severity label).
  returned: success
  type: dict
  sample: {"critical": 1, "warning": 2}
critical:
  description: Number of returned alerts with severity V(critical).
  returned: success
  type: int
  sample: 1
'''

import datetime

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.parameters import env_fallback

from ansible_collections.qflow.ops.plugins.module_utils._alertmanager import count_by_severity, fetch_alerts, normalize, select
from ansible_collections.qflow.ops.plugins.module_utils._api import QflowError, http_argument_spec
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration, utcnow


def main():
    argument_spec = dict(
        alertmanager_url=dict(type='str', default='http://localhost:9093', fallback=(env_fallback, ['QFLOW_ALERTMANAGER_URL'])),
        since=dict(type='str'),
        severity=dict(type='list', elements='str'),
        matchers=dict(type='dict'),
        include_silenced=dict(type='bool', default=False),
    )
    argument_spec.update(http_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    since_dt = None
    if params['since']:
        try:
            since_dt = utcnow() - datetime.timedelta(seconds=parse_duration(params['since']))
        except ValueError as e:
            module.fail_json(msg='since: %s' % e)
    matchers = dict((str(k), str(v)) for k, v in (params['matchers'] or {}).items())

    try:
        raw = fetch_alerts(params['alertmanager_url'], matchers=matchers, include_silenced=params['include_silenced'],
                           timeout=params['timeout'], validate_certs=params['validate_certs'], ca_path=params['ca_path'])
    except QflowError as e:
        module.fail_json(msg=str(e))
    alerts = select([normalize(a) for a in raw if isinstance(a, dict)], since_dt=since_dt,
                    severities=params['severity'], matchers=matchers, include_silenced=params['include_silenced'])
    counts = count_by_severity(alerts)
    module.exit_json(changed=False, alerts=alerts, counts=counts, critical=counts.get('critical', 0))


if __name__ == '__main__':
    main()
