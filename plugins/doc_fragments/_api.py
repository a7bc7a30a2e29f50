# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: connection options of the modules that talk HTTP. May change without notice."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # Qflow REST API modules: extend both qflow.ops._api and qflow.ops._api.HTTP (the connection options below).
    DOCUMENTATION = r'''
options:
  api_url:
    description:
      - Root URL of the Qflow node REST API, without C(/api/v1) (health endpoints live at the root).
      - If not set, the value of the E(QFLOW_API_URL) environment variable is used, then the default.
    type: str
    default: http://localhost:8080
  api_token:
    description:
      - "sQuid identity token sent as C(Authorization: Bearer <token>)."
      - If not set, the value of the E(QFLOW_API_TOKEN) environment variable is used.
      - Health endpoints do not need it. It never appears in results or error messages.
    type: str
  retries:
    description:
      - How many times an idempotent C(GET) is retried after a connection error or an HTTP 502, 503 or 504 that
        does not carry a Qflow error envelope. Other methods are never retried. Timeouts are not retried.
    type: int
    default: 2
notes:
  - Connection options fall back to environment variables so that AWX / Automation Controller credential types
    can inject them.
'''

    # Modules that fetch other HTTP endpoints (metrics, Prometheus, Alertmanager): qflow.ops._api.HTTP.
    HTTP = r'''
options:
  validate_certs:
    description:
      - Verify the TLS certificate of HTTPS URLs. Set to V(false) only for a lab with self-signed certificates.
      - If not set, the value of the E(QFLOW_VALIDATE_CERTS) environment variable is used, then the default.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA certificates used to verify HTTPS URLs.
      - If not set, the value of the E(QFLOW_CA_PATH) environment variable is used.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP request (connect and read).
      - If not set, the value of the E(QFLOW_TIMEOUT) environment variable is used, then the default.
    type: int
    default: 10
'''
