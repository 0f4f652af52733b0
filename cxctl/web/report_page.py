"""The live report at `/report` on `cxctl serve`: the same page as `cxctl report`, behind a login.

The password comes from an environment variable (CXCTL_REPORT_PASSWORD), never from the YAML and never
the link-signing secret: whoever can read the report must not be able to forge survey links. Without the
variable the page does not exist (404), so a server that only collects answers shows nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from datetime import datetime

import sqlite_utils

from cxctl.core.errors import CxError, UsageError
from cxctl.results.report import build_report
from cxctl.results.report_render import render_report
from cxctl.workspace.loader import Workspace

PASSWORD_ENV = "CXCTL_REPORT_PASSWORD"
MIN_PASSWORD = 12
# The report is one self-contained page with its style inline and its charts as inline SVG.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
CHALLENGE = 'Basic realm="cxctl report", charset="UTF-8"'
QUERY_KEYS = ("since", "until", "moment", "by", "lang", "period")


def report_password(ws: Workspace) -> str | None:
    """The login's password, or None when the live report is off. Refuses (UsageError, at start) a
    password that is too short or that is the link-signing secret itself."""
    password = os.environ.get(PASSWORD_ENV) or None
    if password is None:
        return None
    if len(password) < MIN_PASSWORD:
        raise UsageError(
            f"{PASSWORD_ENV} is shorter than {MIN_PASSWORD} characters: the report holds every score of the "
            f"programme; export a longer one, e.g. `export {PASSWORD_ENV}=$(openssl rand -hex 16)`"
        )
    if password == os.environ.get(ws.settings.token_secret_env):
        raise UsageError(
            f"{PASSWORD_ENV} is the link-signing secret ({ws.settings.token_secret_env}): a reader of the report "
            "could then sign survey links; give the report its own password"
        )
    return password


def login_ok(authorization: str | None, password: str) -> bool:
    """HTTP Basic credentials carry the password (any user name), compared in constant time."""
    if not authorization or not authorization.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, _, given = decoded.partition(":")
    return hmac.compare_digest(given.encode("utf-8"), password.encode("utf-8"))


def report_html(ws: Workspace, db: sqlite_utils.Database, now: datetime, query: dict[str, str]) -> tuple[int, str]:
    """(status, page): the report for the query's period, moment, breakdown and language; 400 with the
    message when a value is refused (an unknown moment, a bad date), as the CLI would say it."""
    try:
        report = build_report(
            ws,
            db,
            now,
            since=query.get("since"),
            until=query.get("until"),
            moment=query.get("moment"),
            by=query.get("by"),
            lang=query.get("lang"),
            granularity=query.get("period"),
        )
    except CxError as exc:
        return 400, str(exc)
    return 200, render_report(report)
