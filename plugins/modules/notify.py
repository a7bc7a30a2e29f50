#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: notify
short_description: Send a notification to a chat webhook, an HTTP endpoint or by e-mail
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Sends one notification, for example at the start and end of a maintenance window or when a procedure fails.
  - >-
    O(channel=webhook) posts a Slack-compatible incoming-webhook message (also accepted by Mattermost and
    Rocket.Chat), C({"text": ..., "attachments": [{"color": ..., "title": ..., "fields": [{"title": ..., "value": ...,
    "short": true}], "footer": "qflow.ops", "ts": <epoch>}]}). The color follows O(severity). O(procedure) and
    O(fields) become attachment fields.
  - >-
    O(channel=http) posts plain JSON for an in-house receiver, C({"text": ..., "title": ..., "severity": ...,
    "procedure": ..., "fields": {...}, "source": "qflow.ops", "timestamp": "2026-11-27T03:12:45Z"}).
  - O(channel=email) sends a plain-text mail through SMTP (O(smtp_host)), optionally with STARTTLS and a login.
  - A notification is an action, not a state. Every real run sends it and reports C(changed=true).
  - The webhook URL is a credential (anyone who has a Slack incoming-webhook URL can post to the channel). It is
    never returned or shown in messages. Only its scheme and host (RV(endpoint)) are. Header values whose name looks
    like a credential (C(Authorization), C(X-Api-Key), ...) are masked in the task output as well.
  - A delivery failure (connection refused, timeout, TLS error, an HTTP status other than 2xx, an SMTP error) makes
    the task fail with the endpoint's host, the cause and what to check. With O(fail_on_error=false) the task
    succeeds instead with RV(delivered=false) and a warning, so that a maintenance window goes on when the chat is
    down.
  - The request is sent once. It is never retried, so a slow endpoint cannot get duplicates.
  - O(timeout) bounds the HTTP request, and each SMTP command with O(channel=email). O(validate_certs) and
    O(ca_path) apply to HTTPS URLs and to STARTTLS.
extends_documentation_fragment:
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is sent and no connection is opened. The task reports C(changed=true) (a real run would send) and
        returns the RV(payload) it would send, with RV(delivered=false).
  diff_mode:
    support: none
options:
  channel:
    description:
      - V(webhook) - a Slack-compatible incoming webhook at O(url).
      - V(http) - a plain JSON C(POST) to O(url).
      - V(email) - a mail through the SMTP server O(smtp_host) to O(mail_to).
    type: str
    choices: [webhook, http, email]
    default: webhook
  url:
    description:
      - The webhook or endpoint URL, with O(channel=webhook) or O(channel=http).
      - Treated as a secret (no_log). Only its scheme and host are returned (RV(endpoint)).
      - If not set, the value of the E(QFLOW_NOTIFY_WEBHOOK_URL) environment variable is used.
    type: str
  text:
    description:
      - The message. Slack renders it as mrkdwn (C(*bold*), C(<https://example.net|a link>)).
    type: str
    required: true
  title:
    description:
      - Attachment title (webhook), C(title) (http), first line of the mail body (email).
    type: str
  severity:
    description:
      - How bad it is. Sets the Slack attachment color - V(ok) green C(#2EB67D), V(info) blue C(#439FE0),
        V(warning) yellow C(#ECB22E), V(critical) red C(#E01E5A).
      - Sent as C(severity) with O(channel=http) and put in the default mail subject.
      - The values follow the Alertmanager C(severity) labels of the runbook's alert rules (V(warning), V(critical))
        plus V(info) and V(ok) (resolved, maintenance done). Map incident priorities yourself, for example P0/P1 to
        V(critical).
    type: str
    choices: [ok, info, warning, critical]
    default: info
  fields:
    description:
      - Key/value pairs shown as short Slack attachment fields, in this order (after the procedure). Values that are
        not strings are rendered as text (lists and dicts as JSON).
      - Sent as the C(fields) object with O(channel=http). One C(key - value) line each in a mail.
    type: dict
    default: {}
  procedure:
    description:
      - The runbook procedure this notification belongs to, for example V(maintenance-window). Shown as the first
        field C(Procedure).
    type: str
  headers:
    description:
      - Extra HTTP headers (webhook and http channels), for example an C(Authorization) header of an in-house
        receiver. C(Content-Type) defaults to C(application/json).
      - Values of headers whose name contains C(authorization), C(token), C(secret), C(password), C(key), C(cookie),
        C(auth) or C(signature) are masked in the task output. Other values are shown at C(-vvv) (task invocation).
    type: dict
    default: {}
  fail_on_error:
    description:
      - Fail the task when the notification cannot be delivered.
      - With V(false) the task succeeds with RV(delivered=false), C(changed=false), the cause in RV(msg) and a
        warning.
      - Missing or wrong options (no O(url), no O(mail_to), ...) fail the task regardless.
    type: bool
    default: true
  smtp_host:
    description:
      - SMTP server, with O(channel=email).
      - If not set, the value of the E(QFLOW_SMTP_HOST) environment variable is used.
    type: str
  smtp_port:
    description:
      - SMTP port. Use V(587) with O(smtp_starttls=true) for most submission servers.
      - If not set, the value of the E(QFLOW_SMTP_PORT) environment variable is used, then the default.
    type: int
    default: 25
  smtp_username:
    description:
      - Login for the SMTP server (AUTH). Needs O(smtp_password).
      - If not set, the value of the E(QFLOW_SMTP_USERNAME) environment variable is used.
    type: str
  smtp_password:
    description:
      - Password of O(smtp_username). Never returned or logged.
      - If not set, the value of the E(QFLOW_SMTP_PASSWORD) environment variable is used.
    type: str
  smtp_starttls:
    description:
      - Upgrade the SMTP connection with STARTTLS before the login and the message. The certificate is verified
        unless O(validate_certs=false); O(ca_path) is used as the CA bundle.
      - If not set, the value of the E(QFLOW_SMTP_STARTTLS) environment variable is used, then the default.
      - A login without STARTTLS is sent with a warning.
    type: bool
    default: false
  mail_from:
    description:
      - Sender address. Defaults to C(qflow-ops@<this host's FQDN>).
      - If not set, the value of the E(QFLOW_NOTIFY_MAIL_FROM) environment variable is used.
    type: str
  mail_to:
    description:
      - Recipients, with O(channel=email).
      - If not set, the value of the E(QFLOW_NOTIFY_MAIL_TO) environment variable (comma-separated) is used.
    type: list
    elements: str
  subject:
    description:
      - >-
        Mail subject. Defaults to C([qflow.ops] <SEVERITY>: <title, or the first line of text>) (120 characters at
        most).
    type: str
notes:
  - Connection options fall back to environment variables so that AWX / Automation Controller credential types
    can inject them (E(QFLOW_NOTIFY_WEBHOOK_URL), E(QFLOW_SMTP_HOST), E(QFLOW_SMTP_USERNAME), E(QFLOW_SMTP_PASSWORD),
    ...).
  - Module options set with O(url) from a variable are not printed, but a C(debug) of that variable would be. Keep
    the webhook URL in a vault or a credential.
seealso:
  - module: qflow.ops.report
'''

EXAMPLES = r'''
- name: Announce the maintenance window in the ops channel
  qflow.ops.notify:
    url: "{{ qflow_notify_webhook_url }}"
    title: Maintenance window started
    text: "Rolling restart of {{ ansible_play_hosts | length }} Qflow nodes"
    severity: warning
    procedure: maintenance-window
    fields:
      Operator: "{{ lookup('env', 'USER') }}"
      Nodes: "{{ ansible_play_hosts | join(', ') }}"
  run_once: true
  delegate_to: localhost

- name: Tell the chat, but do not stop the window when the chat is down
  qflow.ops.notify:
    text: Maintenance window finished, every node ready
    severity: ok
    fail_on_error: false   # url from QFLOW_NOTIFY_WEBHOOK_URL
  register: qflow_notified

- name: Post plain JSON to an in-house receiver
  qflow.ops.notify:
    channel: http
    url: https://events.example.net/qflow
    headers:
      Authorization: "Bearer {{ events_token }}"
    text: Nightly backup verified
    fields: {node: qflow-1, size_bytes: 1048576}

- name: Mail the on-call list
  qflow.ops.notify:
    channel: email
    smtp_host: smtp.example.net
    smtp_port: 587
    smtp_starttls: true
    smtp_username: qflow-ops
    smtp_password: "{{ vault_smtp_password }}"
    mail_from: qflow-ops@example.net
    mail_to: [oncall@example.net]
    severity: critical
    title: "P1: qflow-2 down"
    text: The morning health check failed on qflow-2; see reports/morning-health-check/latest/report.md
'''

RETURN = r'''
channel:
  description: The O(channel) used.
  returned: always
  type: str
  sample: webhook
endpoint:
  description:
    - Where the notification went, without the secret part - C(scheme://host[:port]) of O(url), or
      C(smtp://host:port).
  returned: when the options are valid
  type: str
  sample: https://hooks.slack.com
payload:
  description:
    - What was sent (or would be sent in check mode). The JSON body for the webhook and http channels. For e-mail,
      C(from), C(to), C(subject) and C(body).
    - Never contains the URL.
  returned: when the options are valid
  type: dict
  sample:
    text: Maintenance window started on 3 nodes
    attachments:
      - color: '#ECB22E'
        title: Maintenance window
        fields:
          - {title: Procedure, value: maintenance-window, short: true}
          - {title: Operator, value: alice, short: true}
        footer: qflow.ops
        ts: 1764213165
status:
  description:
    - The HTTP status the endpoint answered, also on failure when there was an answer. V(250) for a mail the SMTP
      server accepted. C(null) in check mode or when the endpoint did not answer.
  returned: when the options are valid
  type: int
  sample: 200
delivered:
  description: Whether the notification was delivered (false in check mode and after a failure with O(fail_on_error=false)).
  returned: when the options are valid
  type: bool
  sample: true
response:
  description: The first 200 characters of the endpoint's answer (Slack answers C(ok)).
  returned: when an HTTP endpoint answered
  type: str
  sample: ok
refused:
  description: Recipients the SMTP server refused while accepting the mail for the others, with its answer.
  returned: when the mail was sent
  type: dict
  sample: {"typo@example.net": "550 no such user"}
msg:
  description: One-line summary, or the cause of the failure.
  returned: always
  type: str
  sample: sent to https://hooks.slack.com (HTTP 200)
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _notify as notify


def _mask(module, values):
    for value in values:
        if value and len(value) >= 4:
            module.no_log_values.add(value)


def main():
    module = AnsibleModule(argument_spec=notify.argument_spec(), supports_check_mode=True)
    p = module.params
    if p['url']:
        _mask(module, notify.url_secrets(p['url']))
    _mask(module, notify.sensitive_header_values(p['headers']))
    channel = p['channel']
    try:
        for warning in notify.check_options(p):
            module.warn(warning)
    except ValueError as exc:
        module.fail_json(msg=str(exc), changed=False, channel=channel)
    where = notify.smtp_endpoint(p) if channel == 'email' else notify.endpoint(p['url'])
    payload = notify.build_payload(p)
    result = dict(changed=False, channel=channel, endpoint=where, payload=payload, status=None, delivered=False)
    if module.check_mode:
        result.update(changed=True, msg='would send a %s notification to %s (check mode: nothing sent)'
                      % (channel, where))
        module.exit_json(**result)
    try:
        if channel == 'email':
            status, refused = notify.send_email(p, payload)
            result['refused'] = refused
            if refused:
                module.warn('%s refused some recipients: %s' % (where, ', '.join(sorted(refused))))
            detail = 'mail to %s' % ', '.join(payload['to'])
        else:
            status, response = notify.send_http(p, payload)
            result['response'] = response
            detail = 'HTTP %s' % status
    except notify.NotifyError as exc:
        result.update(status=exc.status, msg=str(exc))
        if exc.response is not None:
            result['response'] = exc.response
        if p['fail_on_error']:
            module.fail_json(**result)
        module.warn('%s (fail_on_error=false: the play goes on)' % exc)
        module.exit_json(**result)
    result.update(changed=True, delivered=True, status=status, msg='sent to %s (%s)' % (where, detail))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
