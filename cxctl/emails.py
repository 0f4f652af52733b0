"""Email addresses: normalised the same way everywhere (import, suppressions, forget, send).

Syntax only — no DNS or SMTP look-ups. The local part is kept as written (it may be case-sensitive);
the domain is lower-cased and internationalised domains are converted to their ASCII (IDNA) form.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


def normalise(raw: str) -> str:
    """Return the normalised address; raise ValueError with a readable reason."""
    if raw is None:
        raise ValueError("empty email")
    text = raw.strip().strip("<>").strip()
    if not text:
        raise ValueError("empty email")
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email {text!r}: {exc}") from None
    domain = result.ascii_domain or result.domain
    return f"{result.local_part}@{domain.lower()}"


def is_valid(raw: str) -> bool:
    try:
        normalise(raw)
        return True
    except ValueError:
        return False
