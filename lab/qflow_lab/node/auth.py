"""sQuid tokens (contract §3.1).

A token is base64 of JSON {identity, signature, timestamp, expiresAt, permissions[], nonce}.
signature = hex(HMAC-SHA256(secret, "identity|timestamp|expiresAt|perm1,perm2|nonce")).
"""
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time

from .util import iso, parse_iso


class TokenError(Exception):
    """The token is undecodable, badly signed or expired (401 INVALID_TOKEN)."""


def signing_string(identity, timestamp, expires_at, permissions, nonce):
    return "%s|%s|%s|%s|%s" % (identity, timestamp, expires_at, ",".join(permissions), nonce)


def sign(secret, identity, timestamp, expires_at, permissions, nonce):
    msg = signing_string(identity, timestamp, expires_at, permissions, nonce)
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def make_token(secret, identity, permissions, ttl_seconds, now=None):
    """Return a signed sQuid token (str). A negative ttl gives an expired token."""
    now = time.time() if now is None else now
    ts = iso(now)
    exp = iso(now + ttl_seconds)
    perms = list(permissions)
    nonce = secrets.token_hex(8)
    payload = {
        "identity": identity,
        "signature": sign(secret, identity, ts, exp, perms, nonce),
        "timestamp": ts,
        "expiresAt": exp,
        "permissions": perms,
        "nonce": nonce,
    }
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_token(token):
    t = (token or "").strip().replace(" ", "+")
    try:
        raw = base64.b64decode(t + "=" * (-len(t) % 4), validate=False)
        if not raw:
            raise ValueError("empty")
        payload = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        try:
            raw = base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
            payload = json.loads(raw.decode("utf-8"))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise TokenError("Token is not valid base64-encoded JSON")
    if not isinstance(payload, dict):
        raise TokenError("Token payload is not an object")
    for key in ("identity", "signature", "timestamp", "expiresAt", "nonce"):
        if not isinstance(payload.get(key), str) or not payload.get(key):
            raise TokenError("Token field missing or invalid: %s" % key)
    perms = payload.get("permissions")
    if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
        raise TokenError("Token field missing or invalid: permissions")
    return payload


def verify_token(token, secret, now=None):
    """Return the payload of a valid token or raise TokenError."""
    payload = decode_token(token)
    expected = sign(secret, payload["identity"], payload["timestamp"], payload["expiresAt"],
                    payload["permissions"], payload["nonce"])
    if not hmac.compare_digest(expected, payload["signature"].lower()):
        raise TokenError("Invalid token signature")
    try:
        exp = parse_iso(payload["expiresAt"])
    except ValueError:
        raise TokenError("Invalid expiresAt")
    now = time.time() if now is None else now
    if exp <= now:
        raise TokenError("Token expired")
    return payload


def has_permission(available, required):
    """True if `required` is granted by `available` (honours '*' and 'ns:*')."""
    for p in available:
        if p == "*" or p == required:
            return True
        if p.endswith(":*") and required.startswith(p[:-1]):
            return True
    return False


def has_all(available, required):
    return all(has_permission(available, r) for r in required)


def is_admin(available):
    return has_permission(available, "flow:admin") or has_permission(available, "admin:any")
