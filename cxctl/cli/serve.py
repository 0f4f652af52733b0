"""`cxctl serve`: the survey page, one-click scores and one-click unsubscribe, over the workspace's store."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cxctl.cli.common import NowOption, WorkspaceOption, now_for, open_workspace
from cxctl.core import output


def serve_command(
    workspace: WorkspaceOption = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (keep 127.0.0.1 behind a reverse proxy).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8080,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Worker processes (each holds its own rate limits).")
    ] = 1,
    proxy_headers: Annotated[
        bool,
        typer.Option(
            "--proxy-headers",
            help="Trust X-Forwarded-For/-Proto from the proxy (--forwarded-allow-ips) for client addresses.",
        ),
    ] = False,
    forwarded_allow_ips: Annotated[
        Optional[str],
        typer.Option(
            "--forwarded-allow-ips",
            help="Proxies trusted with --proxy-headers (comma-separated; default 127.0.0.1,::1).",
        ),
    ] = None,
    posts_per_minute: Annotated[
        int,
        typer.Option(
            "--posts-per-minute",
            min=0,
            help="Answers and opt-outs accepted per client address and minute (0: no limit).",
        ),
    ] = 60,
    no_access_log: Annotated[
        bool, typer.Option("--no-access-log", help="Do not log each request (tokens are redacted from it anyway).")
    ] = False,
    now: NowOption = None,
) -> None:
    """Serve the survey page (/s/TOKEN), one-click unsubscribe (/u/TOKEN), /healthz and, with
    CXCTL_REPORT_PASSWORD set, the live report (/report) until Ctrl-C.

    Answers are recorded by POST only, exactly once per invitation, into the workspace's store.

    Example: cxctl serve --port 8080 --proxy-headers
    """
    from cxctl.web.report_page import report_password
    from cxctl.web.server import ServeOptions, serve

    ws = open_workspace(workspace)
    ws.secret()  # refuse to start without the signing secret, with the message that says how to set it
    report_password(ws)  # and with a report password that is refused, before saying it serves
    when = now_for(ws, now) if now else None
    where = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    public = ws.settings.public_url or "(no workspace.public_url: invitations link to survey_url)"
    output.info(f"serving {ws.settings.name!r} on {where}, public address {public}; Ctrl-C to stop")
    serve(
        ws.root,
        ServeOptions(
            host=host,
            port=port,
            workers=workers,
            proxy_headers=proxy_headers,
            forwarded_allow_ips=forwarded_allow_ips,
            posts_per_minute=posts_per_minute,
            access_log=not no_access_log,
        ),
        when,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
