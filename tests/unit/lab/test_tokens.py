import base64
import json

import pytest

from qflow_lab.tokens import TokenError, has_permission, make_token, verify_token


def test_good_token_roundtrip():
    t = make_token("s3cret", "squid:ops:x", ["flow:read", "flow:create"], 60)
    p = verify_token(t, "s3cret")
    assert p["identity"] == "squid:ops:x"
    assert p["permissions"] == ["flow:read", "flow:create"]
    assert set(p) == {"identity", "signature", "timestamp", "expiresAt", "permissions", "nonce"}


def test_wrong_secret_rejected():
    t = make_token("s3cret", "squid:ops:x", ["*"], 60)
    with pytest.raises(TokenError, match="signature"):
        verify_token(t, "other")


def test_expired_rejected():
    t = make_token("s3cret", "squid:ops:x", ["*"], -5)
    with pytest.raises(TokenError, match="expired"):
        verify_token(t, "s3cret")


@pytest.mark.parametrize("bad", ["", "!!!notbase64!!!", base64.b64encode(b"not json").decode(),
                                 base64.b64encode(json.dumps({"identity": "x"}).encode()).decode(),
                                 base64.b64encode(b"[1,2]").decode()])
def test_malformed_rejected(bad):
    with pytest.raises(TokenError):
        verify_token(bad, "s3cret")


def test_tampered_permissions_rejected():
    t = make_token("s3cret", "squid:ops:x", ["flow:read"], 60)
    p = json.loads(base64.b64decode(t))
    p["permissions"] = ["*"]
    forged = base64.b64encode(json.dumps(p).encode()).decode()
    with pytest.raises(TokenError):
        verify_token(forged, "s3cret")


def test_permission_wildcards():
    assert has_permission(["*"], "flow:create")
    assert has_permission(["flow:*"], "flow:create")
    assert has_permission(["flow:create"], "flow:create")
    assert not has_permission(["flow:read"], "flow:create")
    assert not has_permission(["dao:*"], "flow:create")
