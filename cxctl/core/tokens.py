"""Signed invitation tokens: a random id plus an HMAC-SHA256 tag under the workspace secret.

The token goes into survey, one-click score and unsubscribe links. `responses import` ties a response
to its invitation by the token and quarantines one that matches none, naming it forged when its tag
is wrong; the pages the links land on (survey tool, unsubscribe page) can check a token with `verify`
and a pre-filled score with `verify_value`. Tokens are URL-safe and short (22 + 1 + 16 chars).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_TAG_BYTES = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _tag(secret: bytes, random_id: str, purpose: str = "") -> str:
    return _b64(hmac.new(secret, (purpose + random_id).encode("ascii"), hashlib.sha256).digest()[:_TAG_BYTES])


def new_token(secret: bytes) -> str:
    """A fresh signed token `<random id>.<tag>`."""
    random_id = _b64(secrets.token_bytes(16))
    return f"{random_id}.{_tag(secret, random_id)}"


def verify(secret: bytes, token: str) -> bool:
    """True when `token` was signed with `secret` (constant-time comparison)."""
    if not isinstance(token, str) or token.count(".") != 1:
        return False
    random_id, tag = token.split(".")
    try:
        random_id.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(tag, _tag(secret, random_id))


def sign_value(secret: bytes, token: str, value: str) -> str:
    """Tag for a one-click answer link (token + score), so a score in a link cannot be altered."""
    return _tag(secret, f"{token}:{value}", purpose="value:")


def verify_value(secret: bytes, token: str, value: str, tag: str) -> bool:
    return hmac.compare_digest(tag, sign_value(secret, token, value))
