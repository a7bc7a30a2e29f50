#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: health_info
short_description: Read the health, liveness and readiness of a Qflow node
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Calls C(GET /health), C(GET /health/live) and C(GET /health/ready) on a Qflow node. These endpoints need no token.
  - The module returns RV(healthy=true) when C(/health) answers HTTP 200 with C(success=true) and status C(healthy), and
    C(/health/live) answers status C(alive).
  - A readiness answer of HTTP 503 C(NOT_READY) is a normal answer; the module then returns RV(ready=false) and the
    failing checks.
  - When a token is available (O(api_token) or C(QFLOW_API_TOKEN)), the module also calls C(GET /api/v1/system/info),
    which proves that the API accepts the token, and returns RV(system). A token the node refuses (HTTP 401/403) makes
    the module fail with the Qflow error code and what to check.
  - The module fails, with the cause in C(msg), when the node does not answer, hangs past O(timeout), answers
    something that is not JSON, or rate-limits the client (HTTP 429).
extends_documentation_fragment:
  - qflow.ops._api
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
  - qflow.ops._attributes.INFO_MODULE
options: {}
seealso:
  - module: qflow.ops.metrics_info
  - module: qflow.ops.logs_info
'''

EXAMPLES = r'''
- name: Read the node health
  qflow.ops.health_info:
    api_url: "{{ qflow_api_url }}"
  register: qflow_health

- name: Stop when the node is not ready
  ansible.builtin.assert:
    that: qflow_health.ready
    fail_msg: "Failing checks: {{ qflow_health.failing_checks | join(', ') }}"

- name: Keep going on an unreachable node and report it
  qflow.ops.health_info:
    api_url: "http://{{ inventory_hostname }}:8080"
    timeout: 5
    retries: 0
  register: qflow_health
  ignore_errors: true
'''

RETURN = r'''
healthy:
  description: C(/health) answered 200, C(success=true), status C(healthy), and C(/health/live) answered C(alive).
  returned: success
  type: bool
  sample: true
live:
  description: C(/health/live) answered 200 with status C(alive).
  returned: success
  type: bool
  sample: true
ready:
  description: C(/health/ready) answered 200 with status C(ready).
  returned: success
  type: bool
  sample: false
checks:
  description: The readiness checks as the node reports them (from C(data.checks) or the C(NOT_READY) details).
  returned: success
  type: dict
  sample: {"flowParser": true, "executionEngine": true, "validationPipeline": true, "eventEmitter": true,
           "storage": false, "config": true}
failing_checks:
  description: Names of the readiness checks that did not pass, sorted.
  returned: success
  type: list
  elements: str
  sample: ["storage"]
status:
  description: C(status) of the C(/health) answer, or C(<HTTP status> <error code>) when it was an error.
  returned: success
  type: str
  sample: healthy
version:
  description: Node version from C(/health).
  returned: success
  type: str
  sample: 0.1.0
node_id:
  description: Node id from C(/health) (C(nodeId)); null when the node does not report it.
  returned: success
  type: str
  sample: qflow-node-1
uptime_seconds:
  description: Process uptime in seconds from C(/health).
  returned: success
  type: float
  sample: 3605.2
response_time_ms:
  description: Time the C(/health) request took, in milliseconds.
  returned: success
  type: float
  sample: 3.4
http_status:
  description: HTTP status of each endpoint.
  returned: success
  type: dict
  sample: {"health": 200, "live": 200, "ready": 503}
system:
  description:
    - Node facts from the authenticated C(GET /api/v1/system/info); null when no token is available.
  returned: success
  type: dict
  sample: {"name": "qflow", "version": "0.1.0", "uptime": 3605.2, "nodeVersion": "python-3.11.7", "platform": "linux", "architecture": "x86_64"}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowClient, QflowError, api_argument_spec

_PASSING = ('ok', 'pass', 'passed', 'healthy', 'up', 'ready', 'true', 'alive')


def _check_passes(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        if 'healthy' in value:
            return bool(value['healthy'])
        if 'ok' in value:
            return bool(value['ok'])
        if 'status' in value:
            return str(value['status']).lower() in _PASSING
        return False
    if isinstance(value, str):
        return value.lower() in _PASSING
    return bool(value)


def _status_of(response):
    data = response.data if isinstance(response.data, dict) else {}
    if response.success and data.get('status') is not None:
        return str(data.get('status'))
    code = response.error[0]
    return ('%s %s' % (response.status, code)) if code else str(response.status)


def _rate_limited(client, response):
    if response.status == 429:
        raise client.error_from(response)
    return response


def run(module):
    client = QflowClient(module)
    health = _rate_limited(client, client.request_raw('/health'))
    response_time_ms = health.response_time_ms
    live = _rate_limited(client, client.request_raw('/health/live'))
    ready = _rate_limited(client, client.request_raw('/health/ready'))

    hdata = health.data if isinstance(health.data, dict) else {}
    ldata = live.data if isinstance(live.data, dict) else {}
    rdata = ready.data if isinstance(ready.data, dict) else {}

    is_live = live.success and ldata.get('status') == 'alive'
    healthy = health.status == 200 and health.success and hdata.get('status') == 'healthy' and is_live
    is_ready = ready.status == 200 and ready.success and rdata.get('status') == 'ready'

    checks = rdata.get('checks')
    if not isinstance(checks, dict):
        details = ready.error[2]
        checks = details.get('checks') if isinstance(details, dict) else None
    checks = checks if isinstance(checks, dict) else {}
    failing = sorted(name for name, value in checks.items() if not _check_passes(value))

    uptime = hdata.get('uptime')
    try:
        uptime = round(float(uptime), 1) if uptime is not None else None
    except (TypeError, ValueError):
        uptime = None
    system = None
    if client.token:
        info = client.get('/api/v1/system/info')
        info = info if isinstance(info, dict) else {}
        system = dict((key, info.get(key)) for key in ('name', 'version', 'uptime', 'nodeVersion', 'platform', 'architecture'))
    version = hdata.get('version')
    node_id = hdata.get('nodeId', hdata.get('node_id'))
    return dict(
        changed=False,
        healthy=bool(healthy),
        live=bool(is_live),
        ready=bool(is_ready),
        checks=checks,
        failing_checks=failing,
        status=_status_of(health),
        version=str(version) if version is not None else None,
        node_id=str(node_id) if node_id is not None else None,
        uptime_seconds=uptime,
        response_time_ms=response_time_ms,
        http_status=dict(health=health.status, live=live.status, ready=ready.status),
        system=system,
    )


def main():
    module = AnsibleModule(argument_spec=api_argument_spec(), supports_check_mode=True)
    try:
        result = run(module)
    except QflowError as e:
        module.fail_json(msg=str(e), **(e.to_result() if hasattr(e, 'to_result') else {}))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
