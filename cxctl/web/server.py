"""Running the pages under uvicorn, with tokens redacted from its access log.

uvicorn's access log prints each request's path and query: `/s/<token>?q=nps&score=9&sig=<tag>`. A
token opens one person's survey and unsubscribes them, so a log that is shipped, kept or shown to a
colleague must not carry it: the filter below rewrites the path of every access record to
`/s/[token]` before any handler formats it, in the server process and in each worker.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

_PAGE_PATH = re.compile(r"^(/[su]/).*$", re.DOTALL)
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{8,}")


def redact(path: str) -> str:
    """`/s/<token>?…` → `/s/[token]`: everything after the page's prefix goes (uvicorn logs the decoded path,
    so `%2F` or `%0A` inside a token must not split it), and so does any query (it carries the score's
    signature); a token-shaped word elsewhere is masked too."""
    match = _PAGE_PATH.match(path)
    if match is not None:
        return f"{match.group(1)}[token]"
    return _TOKEN_SHAPE.sub("[token]", path.split("?", 1)[0]) + ("?[query]" if "?" in path else "")


class RedactTokens(logging.Filter):
    """Rewrites the path argument of uvicorn.access records: (client, method, path, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def log_config() -> dict:
    """uvicorn's default logging set-up with the redaction filter on the access logger and its handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": "cxctl.web.server.RedactTokens"}
    config["handlers"]["access"].setdefault("filters", []).append("redact_tokens")
    config["loggers"]["uvicorn.access"].setdefault("filters", []).append("redact_tokens")
    return config


@dataclass
class ServeOptions:
    """What `cxctl serve` was asked for."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    proxy_headers: bool = False
    forwarded_allow_ips: str | None = None
    posts_per_minute: int | None = None
    access_log: bool = True


APP_FACTORY = "cxctl.web.app:app_from_environment"


def uvicorn_settings(workspace: Path, options: ServeOptions, now: datetime | None = None) -> dict:
    """uvicorn's settings for `cxctl serve`. The workspace, clock and rate limit travel in the environment:
    the only way to hand them to the processes of `--workers N`, which each build the app (APP_FACTORY)."""
    from cxctl.web import app as web

    os.environ[web.ENV_WORKSPACE] = str(Path(workspace).resolve())
    if now is not None:
        os.environ[web.ENV_NOW] = now.isoformat()
    else:
        os.environ.pop(web.ENV_NOW, None)
    if options.posts_per_minute is not None:
        os.environ[web.ENV_RATE] = str(options.posts_per_minute)
    return dict(
        host=options.host,
        port=options.port,
        proxy_headers=options.proxy_headers,
        forwarded_allow_ips=options.forwarded_allow_ips,
        log_config=log_config(),
        access_log=options.access_log,
        server_header=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
    )


def serve(workspace: Path, options: ServeOptions, now: datetime | None = None) -> None:
    """Run until interrupted (Ctrl-C or SIGTERM: uvicorn finishes the requests in flight)."""
    import uvicorn

    settings = uvicorn_settings(workspace, options, now)
    uvicorn.run(APP_FACTORY, factory=True, workers=options.workers, **settings)
