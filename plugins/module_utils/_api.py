# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: the one HTTP layer (Qflow REST API client, plain fetches). May change without notice.

Only the Python standard library and ansible.module_utils are used, so this runs on any target.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import socket
import ssl
import time
import uuid

from ansible.module_utils.common.parameters import env_fallback
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlencode, urlsplit
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

try:
    from http.client import HTTPException
except ImportError:  # pragma: no cover - Python 2 is not supported, keep the import safe
    HTTPException = Exception

DEFAULT_API_URL = 'http://localhost:8080'
RETRY_STATUSES = (502, 503, 504)
BODY_PREVIEW = 120
USER_AGENT = 'qflow.ops'

API_HINT = 'Check that the qflow service is running and that api_url (QFLOW_API_URL) is right.'

# Advice given after an envelope error, by error code first, then by HTTP status.
_CODE_HINTS = {
    'MISSING_TOKEN': 'Set api_token or the QFLOW_API_TOKEN environment variable.',
    'INVALID_TOKEN': 'Check api_token / QFLOW_API_TOKEN (expired, or signed with another QFLOW_JWT_SECRET?).',
    'IDENTITY_NOT_FOUND': 'Check api_token / QFLOW_API_TOKEN: the identity it names is unknown to the node.',
    'INSUFFICIENT_PERMISSIONS': 'Use a token that holds the required permission (operator tokens carry "*").',
    'RATE_LIMIT_EXCEEDED': 'The node rate-limits each client IP (100 requests per 15 min); wait and retry.',
    'QUOTA_EXCEEDED': 'The tenant quota is exhausted; wait for the quota window or raise the tenant limits.',
    'NOT_READY': 'The node is not ready yet; see the failing readiness checks.',
}
_STATUS_HINTS = {
    400: 'Check the request parameters.',
    401: 'Check api_token / QFLOW_API_TOKEN.',
    403: 'Use a token that holds the required permission.',
    404: 'Check the id or path; the object may not exist on this node.',
    409: 'The object is in a conflicting state (exists already, or is in use).',
    429: 'The node is rate limiting this client; wait and retry.',
}


def http_argument_spec():
    """Options shared by every module that makes HTTP requests (fragment qflow.ops._api.HTTP)."""
    return dict(
        validate_certs=dict(type='bool', default=True, fallback=(env_fallback, ['QFLOW_VALIDATE_CERTS'])),
        ca_path=dict(type='path', fallback=(env_fallback, ['QFLOW_CA_PATH'])),
        timeout=dict(type='int', default=10, fallback=(env_fallback, ['QFLOW_TIMEOUT'])),
    )


def api_argument_spec():
    """Options of the Qflow REST API modules (fragments qflow.ops._api and qflow.ops._api.HTTP)."""
    spec = dict(
        api_url=dict(type='str', default=DEFAULT_API_URL, fallback=(env_fallback, ['QFLOW_API_URL'])),
        api_token=dict(type='str', no_log=True, fallback=(env_fallback, ['QFLOW_API_TOKEN'])),
        retries=dict(type='int', default=2),
    )
    spec.update(http_argument_spec())
    return spec


class QflowError(Exception):
    """Base class; str(error) is a complete message for fail_json."""

    def __init__(self, msg, url=None):
        super(QflowError, self).__init__(msg)
        self.msg = msg
        self.url = url

    def __str__(self):
        return self.msg


class QflowHttpError(QflowError):
    """The server could not be reached, hung, or answered something unusable."""

    def __init__(self, msg, url=None, status=None, kind=None, body=None):
        super(QflowHttpError, self).__init__(msg, url=url)
        self.status = status
        self.kind = kind  # 'connection', 'timeout', 'tls', 'protocol', 'garbage', 'http'
        self.body = body


class QflowApiError(QflowError):
    """The Qflow API answered with an error envelope (or an error status)."""

    def __init__(self, msg, status=None, code=None, details=None, request_id=None, url=None):
        super(QflowApiError, self).__init__(msg, url=url)
        self.status = status
        self.code = code
        self.details = details
        self.request_id = request_id

    def to_result(self):
        """Safe extra keys for fail_json."""
        return dict(status=self.status, code=self.code, details=self.details, request_id=self.request_id)


class HttpResponse(object):
    """What fetch() returns: status, headers (lower-case keys), body bytes, elapsed milliseconds."""

    def __init__(self, url, status, headers, body, elapsed_ms):
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed_ms = elapsed_ms

    def text(self):
        return to_text(self.body, errors='surrogate_or_replace')

    def json(self, what='The server'):
        """Parse the body as JSON or raise QflowHttpError naming the URL and the first bytes."""
        try:
            return json.loads(self.text())
        except ValueError:
            raise QflowHttpError(
                '%s at %s answered HTTP %s with a body that is not JSON: %s. Check that the URL points to the right service.'
                % (what, self.url, self.status, preview(self.body)),
                url=self.url, status=self.status, kind='garbage', body=self.body)


def preview(body, limit=BODY_PREVIEW):
    """A short printable rendering of the first bytes of a body."""
    if body is None:
        return "''"
    if isinstance(body, bytes):
        head = body[:limit]
        text = repr(to_text(head, errors='surrogate_or_replace'))
    else:
        head = body[:limit]
        text = repr(head)
    if len(body) > limit:
        text += ' ... (%d bytes)' % len(body)
    elif len(body) == 0:
        text = "an empty body"
    return text


def safe_url(url):
    """The URL without user:password@ and without the query string (which may carry ?token=)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc.rsplit('@', 1)[-1]
    return '%s://%s%s' % (parts.scheme, netloc, parts.path)


def scrub(text, secrets):
    """text with every secret value replaced by ********."""
    text = to_text(text, errors='surrogate_or_replace')
    for secret in secrets:
        if secret:
            text = text.replace(secret, '********')
    return text


def _reason(exc):
    """The most useful text for a low-level error, e.g. '[Errno 111] Connection refused'."""
    if isinstance(exc, URLError) and not isinstance(exc, HTTPError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return _reason(reason)
        return to_native(reason)
    text = to_native(exc)
    if not text:
        text = exc.__class__.__name__
    return text


def _lower(what):
    return ('the ' + what[4:]) if what.startswith('The ') else what


def _is_timeout(exc):
    if isinstance(exc, (socket.timeout,)):
        return True
    try:
        if isinstance(exc, TimeoutError):
            return True
    except NameError:  # pragma: no cover
        pass
    if isinstance(exc, URLError) and not isinstance(exc, HTTPError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return _is_timeout(reason)
        return 'timed out' in to_native(reason)
    return 'timed out' in to_native(exc)


def fetch(url, method='GET', headers=None, data=None, timeout=10, validate_certs=True, ca_path=None,
          retries=0, retry_statuses=RETRY_STATUSES, what='The server', hint='', secrets=(), retry_if=None):
    """One HTTP request with urllib (ansible.module_utils.urls.open_url).

    Returns HttpResponse for any HTTP status (4xx/5xx included). Raises QflowHttpError when there is no HTTP
    answer (connection refused, DNS, TLS, timeout, broken HTTP). Retries (with a short backoff) only GET/HEAD
    requests, only on connection errors and on ``retry_statuses``; ``retry_if(response)`` may veto a retry.
    Timeouts are not retried: a node that hangs would otherwise cost (retries + 1) x timeout.
    """
    method = method.upper()
    idempotent = method in ('GET', 'HEAD')
    attempts = 1 + (max(0, int(retries or 0)) if idempotent else 0)
    shown = scrub(safe_url(url), secrets)
    hint = (' ' + hint) if hint else ''
    last_error = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(0.5 * (2 ** (attempt - 1)), 4.0))
        start = time.time()
        try:
            resp = open_url(url, method=method, headers=headers or {}, data=data, timeout=timeout,
                            validate_certs=validate_certs, ca_path=ca_path, use_netrc=False,
                            http_agent=USER_AGENT, follow_redirects='safe')
            try:
                body = resp.read()
            finally:
                resp.close()
            status = resp.getcode() if hasattr(resp, 'getcode') else resp.status
            resp_headers = dict((k.lower(), v) for k, v in resp.headers.items())
        except HTTPError as e:
            try:
                body = e.read() if e.fp is not None else b''
            except Exception:  # pylint: disable=broad-except
                body = b''
            status = e.code
            resp_headers = dict((k.lower(), v) for k, v in (e.headers.items() if e.headers else []))
        except Exception as e:  # pylint: disable=broad-except
            if _is_timeout(e):
                raise QflowHttpError(
                    '%s at %s did not answer within the timeout of %s s (%s).%s Raise timeout if the service is just slow.'
                    % (what, shown, timeout, scrub(_reason(e), secrets), hint),
                    url=shown, kind='timeout')
            if isinstance(e, (ssl.SSLError, getattr(ssl, 'CertificateError', ssl.SSLError))) or \
                    (isinstance(e, UrlsConnectionError) and 'SSL' in to_native(e)) or \
                    (isinstance(e, URLError) and isinstance(getattr(e, 'reason', None), ssl.SSLError)):
                raise QflowHttpError(
                    'TLS error talking to %s at %s: %s. Set ca_path (QFLOW_CA_PATH) to the CA bundle that signed the '
                    'certificate, or validate_certs=false for a lab.' % (_lower(what), shown, scrub(_reason(e), secrets)),
                    url=shown, kind='tls')
            if isinstance(e, (HTTPException, ValueError)) and not isinstance(e, URLError):
                kind = 'protocol'
                msg = '%s at %s did not answer with valid HTTP (%s: %s).%s' % (
                    what, shown, e.__class__.__name__, scrub(repr(_reason(e).strip()[:BODY_PREVIEW]), secrets), hint)
            else:
                kind = 'connection'
                msg = 'Cannot reach %s at %s: %s.%s' % (_lower(what), shown, scrub(_reason(e), secrets), hint)
            last_error = QflowHttpError(msg, url=shown, kind=kind)
            continue
        elapsed_ms = round((time.time() - start) * 1000.0, 1)
        response = HttpResponse(shown, status, resp_headers, body, elapsed_ms)
        if status in retry_statuses and attempt + 1 < attempts and (retry_if is None or retry_if(response)):
            last_error = None
            continue
        return response
    raise last_error


def _is_envelope(obj):
    return isinstance(obj, dict) and 'success' in obj


class ApiResponse(object):
    """A Qflow API answer: HTTP status, the parsed envelope, its data, requestId and response time."""

    def __init__(self, method, path, status, envelope, request_id, response_time_ms, headers):
        self.method = method
        self.path = path
        self.status = status
        self.envelope = envelope
        self.request_id = request_id
        self.response_time_ms = response_time_ms
        self.headers = headers

    @property
    def success(self):
        if _is_envelope(self.envelope):
            return self.envelope.get('success') is True and 200 <= self.status < 300
        return 200 <= self.status < 300

    @property
    def data(self):
        """Envelope ``data``; a bare (unwrapped) JSON object is returned as is."""
        if _is_envelope(self.envelope):
            return self.envelope.get('data')
        return self.envelope

    @property
    def error(self):
        """(code, message, details) of an error answer, or (None, None, None)."""
        env = self.envelope
        if not isinstance(env, dict):
            return None, None, None
        err = env.get('error')
        if isinstance(err, dict):
            return err.get('code'), err.get('message'), err.get('details')
        if isinstance(err, str):  # billing 429 and a few others: string error, top-level message
            return err, env.get('message'), env.get('limits')
        return None, env.get('message'), None


class QflowClient(object):
    """Client of the Qflow REST API (envelope ``{success, data | error, timestamp, requestId}``).

    ``module_or_params`` is an AnsibleModule or a dict with the keys of api_argument_spec().
    """

    def __init__(self, module_or_params):
        params = getattr(module_or_params, 'params', module_or_params) or {}
        self.module = module_or_params if hasattr(module_or_params, 'params') else None
        url = (params.get('api_url') or DEFAULT_API_URL).strip().rstrip('/')
        if url.endswith('/api/v1'):  # be forgiving: api_url is the node root, paths carry /api/v1
            url = url[:-len('/api/v1')]
        if '://' not in url:
            url = 'http://' + url
        self.base_url = url
        self.token = params.get('api_token') or None
        self.validate_certs = params.get('validate_certs', True)
        if self.validate_certs is None:
            self.validate_certs = True
        self.ca_path = params.get('ca_path')
        self.timeout = params.get('timeout') or 10
        retries = params.get('retries')
        self.retries = 2 if retries is None else retries
        self.last_response_time_ms = None
        self.last_request_id = None

    # -- plumbing -------------------------------------------------------------------------------------

    def url(self, path, query=None):
        if not path.startswith('/'):
            path = '/' + path
        url = self.base_url + path
        if query:
            pairs = []
            for key, value in sorted(query.items()):
                if value is None:
                    continue
                if isinstance(value, bool):
                    value = 'true' if value else 'false'
                if isinstance(value, (list, tuple)):
                    pairs.extend((key, to_native(v)) for v in value)
                else:
                    pairs.append((key, to_native(value)))
            if pairs:
                url += ('&' if '?' in url else '?') + urlencode(pairs)
        return url

    def _secrets(self):
        return (self.token,) if self.token else ()

    def _send(self, method, path, query=None, body=None, auth=True, retry_statuses=RETRY_STATUSES):
        request_id = str(uuid.uuid4())
        headers = {'Accept': 'application/json', 'X-Request-ID': request_id}
        if auth and self.token:
            headers['Authorization'] = 'Bearer %s' % self.token
        data = None
        if body is not None:
            data = json.dumps(body).encode('utf-8')
            headers['Content-Type'] = 'application/json'
        url = self.url(path, query)

        def retry_if(response):
            # A Qflow error envelope on 503 (NOT_READY) is an answer, not a proxy hiccup.
            try:
                return not _is_envelope(json.loads(response.text()))
            except ValueError:
                return True

        resp = fetch(url, method=method, headers=headers, data=data, timeout=self.timeout,
                     validate_certs=self.validate_certs, ca_path=self.ca_path, retries=self.retries,
                     retry_statuses=retry_statuses, what='The Qflow API', hint=API_HINT,
                     secrets=self._secrets(), retry_if=retry_if)
        self.last_response_time_ms = resp.elapsed_ms
        shown_path = path.split('?', 1)[0]
        text = resp.text()
        try:
            envelope = json.loads(text) if text.strip() else None
        except ValueError:
            raise QflowHttpError(
                'Qflow API %s %s (%s) answered HTTP %s with a body that is not JSON: %s. Check that api_url points to a '
                'Qflow node (not a proxy or another service).'
                % (method, shown_path, resp.url, resp.status, scrub(preview(resp.body), self._secrets())),
                url=resp.url, status=resp.status, kind='garbage', body=resp.body)
        rid = None
        if isinstance(envelope, dict):
            rid = envelope.get('requestId')
        rid = rid or resp.headers.get('x-request-id') or request_id
        self.last_request_id = rid
        return ApiResponse(method, shown_path, resp.status, envelope, rid, resp.elapsed_ms, resp.headers)

    def error_from(self, response):
        """A QflowApiError with a complete message for an unsuccessful ApiResponse."""
        code, message, details = response.error
        status = response.status
        if code is None and message is None:
            if response.envelope is None:
                message = 'empty body'
            elif not isinstance(response.envelope, dict) or not _is_envelope(response.envelope):
                message = 'JSON that is not a Qflow envelope: %s' % preview(json.dumps(response.envelope))
            else:
                message = 'no error details'
        hint = _CODE_HINTS.get(code) or _STATUS_HINTS.get(status)
        if hint is None:
            hint = ('Look at the node logs (qflow.ops.logs_info) around this requestId.' if status >= 500
                    else 'Check the request.')
        if code == 'INSUFFICIENT_PERMISSIONS' and isinstance(details, dict):
            hint = 'The token lacks a permission (required %s, available %s). %s' % (
                details.get('required'), details.get('available'), hint)
        msg = 'Qflow API %s %s answered %s%s: %s (requestId %s). %s' % (
            response.method, response.path, status, (' ' + to_text(code)) if code else '',
            to_text(message), response.request_id, hint)
        return QflowApiError(scrub(msg, self._secrets()), status=status, code=code, details=details,
                             request_id=response.request_id, url=self.url(response.path))

    # -- public API -----------------------------------------------------------------------------------

    def request(self, method, path, query=None, body=None, auth=True):
        """Send a request; return the ApiResponse on success, raise QflowApiError / QflowHttpError otherwise."""
        response = self._send(method.upper(), path, query=query, body=body, auth=auth)
        if not response.success:
            raise self.error_from(response)
        return response

    def request_raw(self, path, query=None, auth=False, method='GET'):
        """For health endpoints: return the ApiResponse whatever the HTTP status (503 NOT_READY included).

        Still raises QflowHttpError when the node does not answer, hangs, or answers something that is not JSON.
        """
        return self._send(method.upper(), path, query=query, auth=auth)

    def get(self, path, query=None, auth=True):
        return self.request('GET', path, query=query, auth=auth).data

    def post(self, path, body=None, query=None):
        return self.request('POST', path, query=query, body=body if body is not None else {}).data

    def put(self, path, body=None, query=None):
        return self.request('PUT', path, query=query, body=body if body is not None else {}).data

    def delete(self, path, body=None, query=None):
        return self.request('DELETE', path, query=query, body=body).data
