"""Signed invitation tokens: a random id plus an HMAC-SHA256 tag under the workspace secret.

The token goes into survey, one-click score and unsubscribe links. `responses import` ties a response
to its invitation by the token and quarantines one that matches none, naming it forged when its tag
is wrong; the pages the links land on (survey tool, unsubscribe page) can check a token with `verify`
and a pre-filled score with `verify_value`. Tokens are URL-safe and short (22 + 1 + 16 chars).

After a secret rotation, links already in mailboxes carry tags made with the previous secret: a page
or an import verifies with a `Keyring` (the current secret, plus the previous one during its grace
period, see cxctl.delivery.signing) through `verify_with_keys` / `verify_value_with_keys`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_TAG_BYTES = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _tag(secret: bytes, random_id: str, purpose: str = "") -> str:
    return _b64(hmac.new(secret, (purpose + random_id).encode("ascii"), hashlib.sha256).digest()[:_TAG_BYTES])


def new_token(secret: bytes) -> str:
    """A fresh signed token `<random id>.<tag>`."""
    random_id = _b64(secrets.token_bytes(16))
    return f"{random_id}.{_tag(secret, random_id)}"


_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{8,}")


def looks_like_token(text: str) -> bool:
    """Whether `text` has the shape of a cxctl token (`<random id>.<tag>`), signed or not: told apart from an
    hour or a flag in a column that happens to be named `t`."""
    return bool(_SHAPE.fullmatch(text))


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


def fingerprint(secret: bytes) -> str:
    """A short public fingerprint of the secret, safe to store and print: it identifies the key (a
    changed CXCTL_SECRET is noticed) but reveals nothing that helps forge a tag."""
    return "sha256:" + hashlib.sha256(b"cxctl signing key fingerprint\x00" + secret).hexdigest()[:16]


@dataclass(frozen=True)
class Keyring:
    """The secrets a token may be signed with: `current` signs; `previous` (during a rotation's grace
    period only) still verifies links sent before the rotation."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    @property
    def keys(self) -> tuple[bytes, ...]:
        return (self.current, *self.previous)


def verify_with_keys(keyring: Keyring, token: str) -> bool:
    """True when `token` was signed with the current secret or a previous one still in its grace period."""
    return any(verify(key, token) for key in keyring.keys)


def verify_value_with_keys(keyring: Keyring, token: str, value: str, tag: str) -> bool:
    """`verify_value` under any key of the keyring (a one-click score link sent before a rotation)."""
    return any(verify_value(key, token, value, tag) for key in keyring.keys)
