# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: issue sQuid operator tokens signed with a node's QFLOW_JWT_SECRET. May change without notice.

Token (contract §3.1): base64 of JSON {identity, signature, timestamp, expiresAt, permissions[], nonce};
signature = hex(HMAC-SHA256(secret, "<identity>|<timestamp>|<expiresAt>|<perm1,perm2,...>|<nonce>")).
Timestamps are ISO 8601 UTC with milliseconds and a Z (what JavaScript's toISOString() gives, and what the reference
node parses). The secret never leaves this module; the token is returned to the caller only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import datetime
import hashlib
import hmac
import json
import os
import secrets

from ansible_collections.qflow.ops.plugins.module_utils._secret import fingerprint, parse_env
from ansible_collections.qflow.ops.plugins.module_utils._time import iso

SECRET_KEY = 'QFLOW_JWT_SECRET'
MAX_TTL = 30 * 86400


class TokenError(Exception):
    pass


def read_secret(env_path, key=SECRET_KEY):
    """The value of ``key`` in the env file. Raise TokenError naming the file and what to do."""
    try:
        with open(env_path, 'rb') as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        if not os.path.lexists(env_path):
            raise TokenError('env file %s does not exist; check env_path (inventory variable qflow_env_path: the node '
                             'reads %s from it)' % (env_path, key))
        raise TokenError('cannot read env file %s: %s; run with become: true (the file is mode 0600)'
                         % (env_path, exc.strerror or exc))
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError:
        raise TokenError('env file %s is not UTF-8 text' % env_path)
    value = parse_env(text)[1].get(key)
    if not value:
        raise TokenError('env file %s has no %s (or it is empty): the node cannot verify tokens without it. Generate '
                         'one with qflow.ops.secret (state=present) and restart the node' % (env_path, key))
    return value


def check_claims(identity, permissions):
    """Refuse values that would make the signing string ambiguous. Raise TokenError."""
    if not identity or not identity.strip():
        raise TokenError('identity must not be empty, for example squid:ops:qflow-ops')
    if '|' in identity:
        raise TokenError('identity %r must not contain "|" (the separator of the signed string)' % identity)
    if not permissions:
        raise TokenError('permissions must name at least one permission, for example "*"')
    for perm in permissions:
        if not perm or '|' in perm or ',' in perm:
            raise TokenError('permission %r is invalid: it must be non-empty, without "|" or ","' % perm)


def signing_string(identity, timestamp, expires_at, permissions, nonce):
    return '%s|%s|%s|%s|%s' % (identity, timestamp, expires_at, ','.join(permissions), nonce)


def issue(secret, identity, permissions, ttl_seconds, now):
    """Return (token, payload). ``now`` is an aware datetime."""
    timestamp = iso(now)
    expires_at = iso(now + datetime.timedelta(seconds=ttl_seconds))
    perms = list(permissions)
    nonce = secrets.token_hex(8)
    signature = hmac.new(secret.encode('utf-8'), signing_string(identity, timestamp, expires_at, perms, nonce)
                         .encode('utf-8'), hashlib.sha256).hexdigest()
    payload = dict(identity=identity, signature=signature, timestamp=timestamp, expiresAt=expires_at,
                   permissions=perms, nonce=nonce)
    token = base64.b64encode(json.dumps(payload, separators=(',', ':')).encode('utf-8')).decode('ascii')
    return token, payload


def token_fingerprint(token):
    """'sha256:' + 12 hex digits of the SHA-256 of the token: safe to print, same format as qflow.ops.secret."""
    return fingerprint(token)
