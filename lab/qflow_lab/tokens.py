"""Operator/test tokens for the lab (same format the node verifies, contract §3.1)."""
from .node.auth import TokenError, decode_token, has_permission, make_token, verify_token

OPERATOR_IDENTITY = "squid:ops:lab-operator"
OPERATOR_TTL = 30 * 24 * 3600

__all__ = ["make_token", "verify_token", "decode_token", "has_permission", "TokenError",
           "operator_token", "OPERATOR_IDENTITY"]


def operator_token(secret, ttl_seconds=OPERATOR_TTL):
    return make_token(secret, OPERATOR_IDENTITY, ["*"], ttl_seconds)
