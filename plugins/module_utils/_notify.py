# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: build and send notifications (Slack-compatible webhook, plain JSON POST, SMTP).
May change without notice.

The webhook URL is a secret (a Slack incoming-webhook URL is a bearer credential): nothing here returns or puts it
in a message. Only endpoint(url) (scheme://host[:port]) is shown.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import smtplib
import socket
import ssl
import time

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ansible.module_utils.common.parameters import env_fallback
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.parse import urlsplit

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowHttpError, fetch, http_argument_spec, preview, scrub

CHANNELS = ('webhook', 'http', 'email')
SEVERITIES = ('ok', 'info', 'warning', 'critical')
# Slack attachment colors (the bar left of the attachment).
COLORS = {'ok': '#2EB67D', 'info': '#439FE0', 'warning': '#ECB22E', 'critical': '#E01E5A'}
FOOTER = 'qflow.ops'
SUBJECT_MAX = 120
# Header names whose values are credentials: masked in the task output (invocation included).
SENSITIVE_HEADER_WORDS = ('authorization', 'token', 'secret', 'password', 'key', 'cookie', 'auth', 'signature')


class NotifyError(Exception):
    """Delivery failed; str(error) names the endpoint (host only), the cause and what to check."""

    def __init__(self, msg, status=None, response=None):
        super(NotifyError, self).__init__(msg)
        self.msg = msg
        self.status = status
        self.response = response

    def __str__(self):
        return self.msg


def argument_spec():
    spec = dict(
        channel=dict(type='str', default='webhook', choices=list(CHANNELS)),
        url=dict(type='str', no_log=True, fallback=(env_fallback, ['QFLOW_NOTIFY_WEBHOOK_URL'])),
        text=dict(type='str', required=True),
        title=dict(type='str'),
        severity=dict(type='str', default='info', choices=list(SEVERITIES)),
        fields=dict(type='dict', default={}),
        procedure=dict(type='str'),
        headers=dict(type='dict', default={}, no_log=False),
        fail_on_error=dict(type='bool', default=True),
        smtp_host=dict(type='str', fallback=(env_fallback, ['QFLOW_SMTP_HOST'])),
        smtp_port=dict(type='int', default=25, fallback=(env_fallback, ['QFLOW_SMTP_PORT'])),
        smtp_username=dict(type='str', fallback=(env_fallback, ['QFLOW_SMTP_USERNAME'])),
        smtp_password=dict(type='str', no_log=True, fallback=(env_fallback, ['QFLOW_SMTP_PASSWORD'])),
        smtp_starttls=dict(type='bool', default=False, fallback=(env_fallback, ['QFLOW_SMTP_STARTTLS'])),
        mail_from=dict(type='str', fallback=(env_fallback, ['QFLOW_NOTIFY_MAIL_FROM'])),
        mail_to=dict(type='list', elements='str', fallback=(env_fallback, ['QFLOW_NOTIFY_MAIL_TO'])),
        subject=dict(type='str'),
    )
    spec.update(http_argument_spec())
    return spec


# ------------------------------------------------------------------------------------------- secrets / display

def endpoint(url):
    """scheme://host[:port] of a URL: no user info, path, query or fragment (they may carry the token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ''
        if ':' in host:
            host = '[%s]' % host
        port = parts.port
    except ValueError:
        return '(unparsable URL)'
    if not parts.scheme or not host:
        return '(unparsable URL)'
    return '%s://%s%s' % (parts.scheme, host, (':%d' % port) if port else '')


def url_secrets(url):
    """The parts of a URL that may be a credential, to mask wherever they might appear (longest first)."""
    out = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    for value in (parts.path, parts.query, parts.password, parts.username):
        if value and len(value.strip('/')) >= 4:
            out.append(value)
    out.extend(seg for seg in parts.path.split('/') if len(seg) >= 8)
    return sorted(set(out), key=len, reverse=True)


def sensitive_header_values(headers):
    """Values of headers whose name says credential (Authorization, X-Api-Key, ...)."""
    out = []
    for name, value in (headers or {}).items():
        low = to_text(name).lower()
        if value not in (None, '') and any(word in low for word in SENSITIVE_HEADER_WORDS):
            out.append(to_text(value))
            if ' ' in to_text(value):  # "Bearer abc": the credential alone as well
                out.append(to_text(value).split(' ', 1)[1])
    return [v for v in out if len(v) >= 4]


# ------------------------------------------------------------------------------------------- payloads

def _field_value(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if value is None:
        return ''
    return to_text(value)


def field_list(p):
    """(title, value) pairs: the procedure first, then O(fields) in their order."""
    pairs = []
    if p.get('procedure'):
        pairs.append(('Procedure', to_text(p['procedure'])))
    for key, value in (p.get('fields') or {}).items():
        pairs.append((to_text(key), _field_value(value)))
    return pairs


def slack_payload(p, now=None):
    attachment = {'color': COLORS[p['severity']]}
    if p.get('title'):
        attachment['title'] = p['title']
    attachment['fields'] = [{'title': k, 'value': v, 'short': True} for k, v in field_list(p)]
    attachment['footer'] = FOOTER
    attachment['ts'] = int(time.time() if now is None else now)
    return {'text': p['text'], 'attachments': [attachment]}


def http_payload(p, now=None):
    now = time.time() if now is None else now
    return {
        'text': p['text'],
        'title': p.get('title'),
        'severity': p['severity'],
        'procedure': p.get('procedure'),
        'fields': dict((to_text(k), v) for k, v in (p.get('fields') or {}).items()),
        'source': FOOTER,
        'timestamp': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now)),
    }


def email_subject(p):
    if p.get('subject'):
        return p['subject']
    head = p.get('title') or (p['text'].strip().splitlines() or [''])[0]
    subject = '[qflow.ops] %s: %s' % (p['severity'].upper(), head)
    return subject if len(subject) <= SUBJECT_MAX else subject[:SUBJECT_MAX - 3] + '...'


def email_body(p):
    lines = []
    if p.get('title'):
        lines += [p['title'], '']
    lines.append(p['text'])
    pairs = field_list(p)
    if pairs:
        lines.append('')
        lines += ['%s - %s' % (k, v) for k, v in pairs]
    lines += ['', 'Severity: %s' % p['severity'], '-- ', 'sent by %s' % FOOTER]
    return '\n'.join(lines) + '\n'


def email_payload(p):
    return {
        'from': p.get('mail_from') or 'qflow-ops@%s' % (socket.getfqdn() or 'localhost'),
        'to': list(p['mail_to']),
        'subject': email_subject(p),
        'body': email_body(p),
    }


def build_payload(p, now=None):
    if p['channel'] == 'webhook':
        return slack_payload(p, now)
    if p['channel'] == 'http':
        return http_payload(p, now)
    return email_payload(p)


def check_options(p):
    """Refuse missing or misplaced options before anything is sent; return a list of warnings."""
    warnings = []
    channel = p['channel']
    if channel in ('webhook', 'http'):
        if not p.get('url'):
            raise ValueError('channel=%s needs url (or the QFLOW_NOTIFY_WEBHOOK_URL environment variable); nothing was '
                             'sent' % channel)
        if endpoint(p['url']) == '(unparsable URL)' or urlsplit(p['url']).scheme not in ('http', 'https'):
            raise ValueError('url is not an http:// or https:// URL (its value is not shown: it is treated as a '
                             'secret); nothing was sent')
        unused = [k for k in ('smtp_host', 'mail_to', 'subject', 'smtp_username') if p.get(k)]
        if unused:
            warnings.append('%s ignored with channel=%s' % (', '.join(unused), channel))
    else:
        if not p.get('smtp_host'):
            raise ValueError('channel=email needs smtp_host (or the QFLOW_SMTP_HOST environment variable); nothing '
                             'was sent')
        if not p.get('mail_to'):
            raise ValueError('channel=email needs mail_to (one or more addresses, or QFLOW_NOTIFY_MAIL_TO); nothing '
                             'was sent')
        if p.get('smtp_username') and not p.get('smtp_password'):
            raise ValueError('smtp_username is set but smtp_password (QFLOW_SMTP_PASSWORD) is not; nothing was sent')
        if p.get('smtp_username') and not p.get('smtp_starttls'):
            warnings.append('smtp_username/smtp_password are sent to %s without TLS; set smtp_starttls=true unless '
                            'the server is on this host' % smtp_endpoint(p))
        if p.get('headers'):
            warnings.append('headers ignored with channel=email')
    return warnings


# ------------------------------------------------------------------------------------------- sending

def _http_hint(channel, status):
    if status in (401, 403):
        return 'Check the credentials: the webhook URL (for Slack, regenerate it if it was revoked) or headers.'
    if status == 404:
        return 'Check the url: the webhook or channel does not exist (Slack answers 404 channel_not_found / no_service).'
    if status == 400:
        return 'The endpoint refused the payload; check text, fields and the endpoint\'s expected format.'
    if status == 429:
        return 'The endpoint is rate limiting; send fewer messages or wait.'
    if status and status >= 500:
        return 'The endpoint failed on its side; check the chat/receiver service status, then retry.'
    return 'Check the url and the endpoint.'


def send_http(p, payload):
    """POST the payload as JSON; return (status, response preview). Raise NotifyError with host only."""
    url = p['url']
    where = endpoint(url)
    secrets = url_secrets(url) + sensitive_header_values(p.get('headers'))
    headers = dict((to_native(k), to_native(v)) for k, v in (p.get('headers') or {}).items())
    headers.setdefault('Content-Type', 'application/json')
    what = 'The Slack webhook' if p['channel'] == 'webhook' else 'The notification endpoint'
    try:
        resp = fetch(url, method='POST', headers=headers, data=json.dumps(payload).encode('utf-8'),
                     timeout=p.get('timeout') or 10, validate_certs=p.get('validate_certs', True),
                     ca_path=p.get('ca_path'), retries=0, what=what)
    except QflowHttpError as exc:
        msg = to_text(exc.msg)
        for shown in sorted(set([exc.url or '', url]), key=len, reverse=True):
            if shown:
                msg = msg.replace(shown, where)
        msg = scrub(msg, secrets)
        raise NotifyError('Notification not delivered: %s Check that %s is reachable from this host (proxy, '
                          'firewall, DNS) and that url (QFLOW_NOTIFY_WEBHOOK_URL) is right.' % (msg, where))
    shown_body = scrub(preview(resp.body), secrets)
    if not 200 <= resp.status < 300:
        raise NotifyError('Notification not delivered: %s at %s answered HTTP %s: %s. %s'
                          % (what, where, resp.status, shown_body, _http_hint(p['channel'], resp.status)),
                          status=resp.status, response=scrub(resp.text()[:200], secrets))
    return resp.status, scrub(resp.text()[:200], secrets)


def smtp_endpoint(p):
    host = p.get('smtp_host') or ''
    if ':' in host:
        host = '[%s]' % host
    return 'smtp://%s:%s' % (host, p.get('smtp_port') or 25)


def build_message(payload):
    msg = EmailMessage()
    msg['From'] = payload['from']
    msg['To'] = ', '.join(payload['to'])
    msg['Subject'] = payload['subject']
    msg['Date'] = formatdate(localtime=True)
    msg['Message-ID'] = make_msgid(domain='qflow.ops')
    msg['X-Qflow-Ops'] = 'notify'
    msg.set_content(payload['body'])
    return msg


def send_email(p, payload):
    """Send through SMTP; return (250, refused recipients). Raise NotifyError naming the server."""
    where = smtp_endpoint(p)
    secrets = [s for s in (p.get('smtp_password'),) if s]
    timeout = p.get('timeout') or 10
    smtp = None
    step = 'connecting'
    try:
        smtp = smtplib.SMTP(p['smtp_host'], p.get('smtp_port') or 25, timeout=timeout)
        step = 'EHLO'
        smtp.ehlo()
        if p.get('smtp_starttls'):
            step = 'STARTTLS'
            context = ssl.create_default_context(cafile=p.get('ca_path'))
            if not p.get('validate_certs', True):
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            smtp.starttls(context=context)
            smtp.ehlo()
        if p.get('smtp_username'):
            step = 'login'
            smtp.login(p['smtp_username'], p['smtp_password'])
        step = 'sending'
        refused = smtp.send_message(build_message(payload))
    except smtplib.SMTPAuthenticationError as exc:
        raise NotifyError('Mail not delivered: %s refused the login of %s (%s %s). Check smtp_username and '
                          'smtp_password (QFLOW_SMTP_USERNAME, QFLOW_SMTP_PASSWORD).'
                          % (where, p.get('smtp_username'), exc.smtp_code, scrub(_smtp_text(exc.smtp_error), secrets)))
    except smtplib.SMTPRecipientsRefused as exc:
        detail = '; '.join('%s: %s %s' % (rcpt, code, _smtp_text(text))
                           for rcpt, (code, text) in sorted(exc.recipients.items()))
        raise NotifyError('Mail not delivered: %s refused every recipient (%s). Check mail_to, and that this server '
                          'relays for these domains.' % (where, detail))
    except smtplib.SMTPSenderRefused as exc:
        raise NotifyError('Mail not delivered: %s refused the sender %s (%s %s). Check mail_from (the server may '
                          'require a sender of its own domain, or a login).'
                          % (where, exc.sender, exc.smtp_code, _smtp_text(exc.smtp_error)))
    except smtplib.SMTPNotSupportedError as exc:
        raise NotifyError('Mail not delivered: %s does not support %s (%s). Check smtp_starttls and smtp_username '
                          'against what the server offers.' % (where, step, to_text(exc)))
    except smtplib.SMTPResponseException as exc:
        raise NotifyError('Mail not delivered: %s answered %s %s while %s. Check the server logs and smtp_port.'
                          % (where, exc.smtp_code, scrub(_smtp_text(exc.smtp_error), secrets), step))
    except (smtplib.SMTPException, ssl.SSLError) as exc:
        raise NotifyError('Mail not delivered: %s failed while %s: %s. Check smtp_host, smtp_port and smtp_starttls '
                          '(a TLS error: ca_path, or validate_certs=false for a lab).'
                          % (where, step, scrub(to_text(exc) or exc.__class__.__name__, secrets)))
    except (socket.timeout, OSError) as exc:
        reason = to_text(exc) or exc.__class__.__name__
        if isinstance(exc, socket.timeout) or 'timed out' in reason:
            reason = 'no answer within the timeout of %s s' % timeout
        raise NotifyError('Mail not delivered: cannot talk to %s while %s: %s. Check that the SMTP server runs, that '
                          'smtp_host and smtp_port (QFLOW_SMTP_HOST, QFLOW_SMTP_PORT) are right and that no firewall '
                          'blocks the port.' % (where, step, reason))
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except Exception:  # pylint: disable=broad-except
                try:
                    smtp.close()
                except Exception:  # pylint: disable=broad-except
                    pass
    return 250, dict((k, '%s %s' % (v[0], _smtp_text(v[1]))) for k, v in (refused or {}).items())


def _smtp_text(value):
    return to_text(value, errors='surrogate_or_replace').strip()
