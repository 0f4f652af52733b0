"""The Starlette application of `cxctl serve`: the survey page, one-click unsubscribe, /healthz.

A GET never writes (mail scanners fetch every link of a message, some with a full browser): answers and
opt-outs are recorded by POST only. Every response carries a strict Content-Security-Policy, no referrer
(a token in the URL must not leak to another site), nosniff and frame-ancestors 'none'; request bodies
are bounded, POSTs are rate-limited per client address, and nothing secret reaches a page.

Reads (the invitation behind a token) run on the event loop: in WAL mode a reader never waits for a
writer. Answers are written by one writer at a time in a worker thread, in batches: every answer that
arrives while a batch is being written goes into the next one, a single short transaction through the
import's own path. So `cxctl send`, `plan` and the imports never wait on `serve` for more than a moment
(the busy timeout lets each writer wait its turn), and under load one commit serves many answers.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import anyio.to_thread
import jinja2
import sqlite_utils
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cxctl import store
from cxctl.core.errors import UsageError
from cxctl.core.timeutil import parse_now, utcnow
from cxctl.delivery.sms_hooks import SignatureError, handle_sms_hook
from cxctl.validation import load_workspace
from cxctl.web import report_page, survey
from cxctl.web.texts import TEXTS, long_date, page_language, say
from cxctl.workspace.loader import Workspace

MAX_BODY = 16 * 1024  # bytes of one POST: a full survey with a 2,000-character comment fits several times
MAX_FIELDS = 100  # form fields of one POST
POSTS_PER_MINUTE = 60  # per client address and worker process; 0 turns the limit off
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Kept to what protects the respondent (each header is validated and written on every answer, so the
# list stays short): the policy, no referrer, nosniff, no framing (old browsers read X-Frame-Options).
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]
HERE = Path(__file__).parent


class SecurityHeaders:
    """Adds the security headers to every response, and `Cache-Control: no-store` where none is set (pages
    are tied to one person's token)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RateLimiter:
    """A token bucket per client address: `per_minute` POSTs, refilled evenly. Bounded memory: the oldest
    addresses are forgotten past `max_addresses` (they would have a full bucket again by then anyway)."""

    def __init__(self, per_minute: int, max_addresses: int = 50_000):
        self.per_minute = per_minute
        self.max_addresses = max_addresses
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.lock = threading.Lock()

    def allow(self, address: str) -> bool:
        if self.per_minute <= 0:
            return True
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.pop(address, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60.0)
            allowed = tokens >= 1.0
            self.buckets[address] = (tokens - 1.0 if allowed else tokens, now)
            while len(self.buckets) > self.max_addresses:
                self.buckets.popitem(last=False)
            return allowed


class Connections:
    """One SQLite connection per worker thread (sqlite3 objects are not to be shared between threads while
    in use), and one lock for this process's writes, so they queue here rather than in SQLite's busy
    handler, whose sleeps would add milliseconds to every contended answer."""

    def __init__(self, path: Path):
        self.path = path
        self.local = threading.local()
        self.write_lock = threading.Lock()

    def db(self) -> sqlite_utils.Database:
        db = getattr(self.local, "db", None)
        if db is None:
            db = self.local.db = store.connect(self.path)
        return db


class AnswerWriter:
    """Writes the answers of concurrent requests in batches, one batch at a time, in a worker thread: a
    request waits at most for the batch being written and its own (MAX_BATCH answers each)."""

    MAX_BATCH = 200

    def __init__(self, write: Callable[[list], list]):
        self.write = write
        self.pending: list[tuple[Any, asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.flush())
        # A client that hangs up cancels only its wait: the answer is in the batch, and is written.
        return await future

    async def flush(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending[: self.MAX_BATCH], self.pending[self.MAX_BATCH :]
                try:
                    results = await anyio.to_thread.run_sync(self.write, [item for item, _ in batch])
                except Exception as exc:  # the whole batch failed (a bug or a broken disk): every request says so
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():
                            future.set_result(result)
        finally:
            self.task = None


class BodyProblem(Exception):
    """A request body refused before it is read as answers: 413 too large, 400 malformed, 415 wrong type."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


async def read_pairs(request: Request, max_body: int) -> list[tuple[str, str]]:
    """The (name, value) pairs of a form body, url-encoded or multipart, read to at most `max_body` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_body):
        raise BodyProblem(413 if declared.isdigit() else 400)
    if declared is not None:  # the usual case: the length is known and within the limit
        body: bytes | bytearray = await request.body()
        if len(body) > max_body:
            raise BodyProblem(413)
    else:  # chunked: count while reading
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise BodyProblem(413)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not body and not kind:  # an empty form, as some clients send it: no fields
        return []
    if kind == "application/x-www-form-urlencoded":
        try:
            return parse_qsl(
                bytes(body).decode("ascii"),
                keep_blank_values=True,
                encoding="utf-8",
                errors="strict",
                max_num_fields=MAX_FIELDS,
            )
        except ValueError:  # non-ASCII bytes, bad UTF-8 in an escape, too many fields
            raise BodyProblem(400) from None
    if kind == "multipart/form-data":
        from starlette.formparsers import MultiPartException, MultiPartParser

        async def replay():
            yield bytes(body)
            yield b""

        try:
            form = await MultiPartParser(
                request.headers, replay(), max_files=0, max_fields=MAX_FIELDS, max_part_size=max_body
            ).parse()
        except (MultiPartException, ValueError, KeyError):
            raise BodyProblem(400) from None
        pairs = []
        for name, value in form.multi_items():
            if not isinstance(value, str):  # a file part (max_files=0 should refuse them already)
                raise BodyProblem(400)
            pairs.append((name, value))
        return pairs
    raise BodyProblem(415)


class SurveyApp:
    """The pages over one workspace's store; `now` pins the clock's start (tests, the demo's dated data)."""

    def __init__(
        self,
        ws: Workspace,
        *,
        now: datetime | None = None,
        posts_per_minute: int = POSTS_PER_MINUTE,
        max_body: int = MAX_BODY,
    ):
        self.ws = ws
        self.connections = Connections(ws.database)
        self.limiter = RateLimiter(posts_per_minute)
        self.max_body = max_body
        started, origin = time.monotonic(), now
        self.clock: Callable[[], datetime] = (
            (lambda: origin + timedelta(seconds=time.monotonic() - started)) if origin is not None else utcnow
        )
        self.pages = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(HERE / "templates"), encoding="utf-8"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.css = (HERE / "static" / "cxctl.css").read_bytes()
        self.default_lang = page_language(ws.settings.default_language, ws.settings.default_language)
        # Create and migrate the store, and check the secret against the one that signed the links
        # (SecretChangedError: a wrong CXCTL_SECRET would turn every link into a 404).
        self.keys_until = 0.0
        self.refresh_keys()
        self.writer = AnswerWriter(self.write_answers)
        self.zone = ZoneInfo(ws.settings.timezone)
        self.report_password = report_page.report_password(ws)  # None: no /report on this server
        self.thanks_pages: dict[tuple, bytes | memoryview] = {}  # starlette types Response.body so

    def write_answers(self, responses: list) -> list:
        """A batch of answers, in one transaction (runs in a worker thread); then their follow-up cases open
        (cxctl.results.alerts.answers_stored, as after `responses import`) and the owners are told from a
        thread of their own, so a slow mail server or webhook never holds a page."""
        from cxctl.results.alerts import answers_stored

        with self.connections.write_lock:
            stored = survey.record_answers(self.ws, self.connections.db(), responses, self.secret)
            ids = [s.response_id for s in stored if s.response_id is not None and s.status == "counted"]
            opened = (
                answers_stored(self.ws, self.connections.db(), self.clock(), response_ids=ids, deliver=False).opened
                if ids
                else []
            )
        if opened and self.ws.followups.alerts is not None:
            threading.Thread(target=self.tell_owners, daemon=True).start()
        return stored

    def tell_owners(self) -> None:
        """Send the planned alerts on a connection of this thread (the alerts lock keeps runs apart)."""
        from cxctl import store
        from cxctl.results.alerts import deliver_alerts

        db = store.connect(self.ws.database)
        try:
            deliver_alerts(self.ws, db, self.clock())
        except Exception as exc:  # the alerts stay planned: `cxctl followups alerts` (cron) sends them
            import logging

            logging.getLogger("cxctl.serve").warning(
                "follow-up alerts not sent now (%s): they wait for `cxctl followups alerts`", exc
            )
        finally:
            db.conn.close()

    # --- plumbing ---------------------------------------------------------------------------------

    KEYS_FOR = 300.0  # seconds: a previous secret stops verifying within this long after its grace period

    def refresh_keys(self) -> None:
        from cxctl.delivery.signing import keyring

        self.keys, _ = keyring(self.ws, self.connections.db(), self.clock(), record=False)
        self.keys_until = time.monotonic() + self.KEYS_FOR

    @property
    def secret(self):
        """The keyring tokens are checked with (current secret, and a previous one during a rotation)."""
        if time.monotonic() > self.keys_until:
            self.refresh_keys()
        return self.keys

    async def in_thread(self, work: Callable[[sqlite_utils.Database], Any]) -> Any:
        connections = self.connections
        return await anyio.to_thread.run_sync(lambda: work(connections.db()))

    def read(self, work: Callable[[sqlite_utils.Database], Any]) -> Any:
        """A read on the event loop's own connection (WAL: never waits for a writer)."""
        return work(self.connections.db())

    def page(
        self, request: Request, template: str, status: int = 200, headers: dict | None = None, **values
    ) -> HTMLResponse:
        values.setdefault("workspace", self.ws.settings.name)
        values.setdefault("root", request.scope.get("root_path", ""))
        html = self.pages.get_template(template).render(**values)
        return HTMLResponse(html, status_code=status, headers=headers)

    def message(
        self,
        request: Request,
        lang: str,
        status: int,
        title_key: str,
        *body_keys: str,
        headers=None,
        extra: list[str] | None = None,
    ) -> HTMLResponse:
        return self.page(
            request,
            "message.html.j2",
            status,
            headers,
            lang=lang,
            title=say(lang, title_key),
            lines=[say(lang, k) for k in body_keys] + (extra or []),
        )

    def not_found(self, request: Request) -> HTMLResponse:
        return self.message(request, self.default_lang, 404, "not_found_title", "not_found_body")

    def refused(self, request: Request, lang: str, status: int) -> HTMLResponse:
        if status == 413:
            return self.message(request, lang, 413, "too_large_title", "too_large_body")
        if status == 429:
            return self.message(request, lang, 429, "too_many_title", "too_many_body", headers={"Retry-After": "60"})
        return self.message(request, lang, status, "bad_request_title", "bad_request_body")

    def client(self, request: Request) -> str:
        return request.client.host if request.client else "?"

    # --- the survey page ----------------------------------------------------------------------------

    def survey_form(
        self,
        request: Request,
        invitation: survey.Invitation,
        link_token: str,
        *,
        values: dict,
        errors: dict,
        answered_before: bool,
        preselected: bool,
        status: int = 200,
    ) -> HTMLResponse:
        lang = invitation.page_lang
        fields = survey.fields_for(self.ws, invitation.moment, invitation.language, lang)
        moment = self.ws.moments[invitation.moment]
        from cxctl.workspace.model import localise

        heading = localise(moment.name, invitation.language, self.ws.settings.default_language) or say(lang, "title")
        return self.page(
            request,
            "survey.html.j2",
            status,
            lang=lang,
            title=heading,
            heading=heading,
            t=TEXTS[lang],
            fields=fields,
            values=values,
            errors=errors,
            texts_by_id={f.id: f.text for f in fields},
            answered_before=answered_before,
            preselected=preselected,
            link_token=link_token,
            max_chars_hint=say(lang, "chars_max", n=survey.MAX_TEXT),
        )

    def closed(self, request: Request, invitation: survey.Invitation) -> HTMLResponse:
        return self.message(request, invitation.page_lang, 410, "closed_title", "closed_body")

    async def survey_get(self, request: Request) -> Response:
        token = request.path_params["token"]
        ws, secret = self.ws, self.secret

        def look(db):
            invitation = survey.find_invitation(ws, db, token, secret)
            if invitation is None or invitation.forgotten:
                return None, False
            return invitation, survey.answered(db, invitation)

        invitation, answered_before = self.read(look)
        if invitation is None:
            return self.not_found(request)
        if not invitation.is_open(self.clock()):
            return self.closed(request, invitation)
        chosen = survey.preselected(ws, invitation, token, dict(request.query_params), secret)
        return self.survey_form(
            request,
            invitation,
            token,
            values={k: [v] for k, v in chosen.items()},
            errors={},
            answered_before=answered_before,
            preselected=bool(chosen),
        )

    async def survey_post(self, request: Request) -> Response:
        token = request.path_params["token"]
        if not self.limiter.allow(self.client(request)):
            return self.refused(request, self.default_lang, 429)
        try:
            pairs = await read_pairs(request, self.max_body)
        except BodyProblem as problem:
            return self.refused(request, self.default_lang, problem.status)
        now = self.clock()
        invitation = self.read(lambda db: survey.find_invitation(self.ws, db, token, self.secret))
        if invitation is None or invitation.forgotten:
            return self.not_found(request)
        if not invitation.is_open(now):
            return self.closed(request, invitation)
        reading = survey.read_form(self.ws, invitation.moment, pairs, invitation.page_lang)
        if reading.errors:
            return self.survey_form(
                request,
                invitation,
                token,
                values=reading.values,
                errors=reading.errors,
                answered_before=False,
                preselected=False,
                status=400,
            )
        stored = await self.writer.submit(survey.response_of(invitation, reading, now))
        if stored.outcome == "unmatched":  # the invitation was pruned between the look-up and the write
            return self.closed(request, invitation)
        return self.thanks(request, invitation)

    def thanks(self, request: Request, invitation: survey.Invitation) -> HTMLResponse:
        """The thank-you page; it only depends on the language and the closing day, so it is rendered once
        per pair (under load, most answers share both)."""
        lang = invitation.page_lang
        assert invitation.closes is not None, "thanks follows an answer, taken only while the invitation is open"
        until = invitation.closes.astimezone(self.zone).date()
        key = (lang, until, request.scope.get("root_path", ""))
        html = self.thanks_pages.get(key)
        if html is None:
            page = self.message(
                request,
                lang,
                200,
                "thanks_title",
                "thanks_body",
                extra=[say(lang, "thanks_change", date=long_date(lang, until))],
            )
            if len(self.thanks_pages) < 1000:
                self.thanks_pages[key] = page.body
            return page
        return HTMLResponse(html)

    # --- one-click unsubscribe (RFC 8058) ------------------------------------------------------------------

    async def unsubscribe_get(self, request: Request) -> Response:
        token = request.path_params["token"]
        ws, secret = self.ws, self.secret
        invitation = self.read(lambda db: survey.find_invitation(ws, db, token, secret))
        if invitation is None:
            return self.not_found(request)
        lang = invitation.page_lang
        return self.page(
            request,
            "unsubscribe.html.j2",
            lang=lang,
            title=say(lang, "unsub_title"),
            body=say(lang, "unsub_body"),
            button=say(lang, "unsub_button"),
            link_token=token,
        )

    async def unsubscribe_post(self, request: Request) -> Response:
        token = request.path_params["token"]
        if not self.limiter.allow(self.client(request)):
            return self.refused(request, self.default_lang, 429)
        try:
            pairs = await read_pairs(request, 1024)
        except BodyProblem as problem:
            return self.refused(request, self.default_lang, problem.status)
        if ("List-Unsubscribe", "One-Click") not in pairs:
            return self.refused(request, self.default_lang, 400)
        ws, secret, connections, now = self.ws, self.secret, self.connections, self.clock()

        def opt_out(db):
            invitation = survey.find_invitation(ws, db, token, secret)
            if invitation is None:
                return None
            with connections.write_lock:
                survey.unsubscribe(db, invitation, now)
            return invitation

        invitation = await self.in_thread(opt_out)
        if invitation is None:
            return self.not_found(request)
        return self.message(request, invitation.page_lang, 200, "unsub_done_title", "unsub_done_body")

    # --- SMS provider webhooks (issue 16) ---------------------------------------------------------------

    async def sms_hook(self, request: Request) -> Response:
        """STOP replies and delivery receipts from an SMS provider (cxctl.delivery.sms_hooks): verified by
        its signature (Twilio) or bearer token (Brevo), applied in one short transaction; 403 when the
        check fails, and nothing is applied."""
        provider = request.path_params["provider"]
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > self.max_body:
            return JSONResponse({"error": "body too large"}, status_code=413)
        body = await request.body()
        # The URL the provider signed is the public one (behind a proxy the request reaches us on another).
        public = (self.ws.settings.public_url or "").rstrip("/")
        url = (
            public + request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if public
            else str(request.url)
        )
        ws, connections, now, headers = self.ws, self.connections, self.clock(), dict(request.headers)

        def apply(db):
            with connections.write_lock:
                return handle_sms_hook(ws, db, provider, url, headers, body, now)

        try:
            report = await self.in_thread(apply)
        except SignatureError:
            return JSONResponse({"error": "signature"}, status_code=403)
        except UsageError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404 if "unknown SMS provider" in str(exc) else 503)
        if provider == "twilio":  # Twilio reads TwiML: an empty Response sends no reply to the person
            return Response("<Response></Response>", media_type="text/xml")
        return JSONResponse({"stops": report.stops, "bounces": report.bounces, "delivered": report.delivered})

    # --- the live report --------------------------------------------------------------------------------

    async def report(self, request: Request) -> Response:
        """GET /report behind HTTP Basic (CXCTL_REPORT_PASSWORD); failed logins share the POST rate limit."""
        if self.report_password is None:
            return self.not_found(request)
        if not report_page.login_ok(request.headers.get("authorization"), self.report_password):
            if not self.limiter.allow(self.client(request)):
                return PlainTextResponse("too many attempts: wait a minute", status_code=429)
            return PlainTextResponse(
                "login required", status_code=401, headers={"WWW-Authenticate": report_page.CHALLENGE}
            )
        query = {k: v for k, v in request.query_params.items() if k in report_page.QUERY_KEYS}
        status, page = await self.in_thread(lambda db: report_page.report_html(self.ws, db, self.clock(), query))
        if status != 200:
            return PlainTextResponse(page, status_code=status)
        return HTMLResponse(page, headers={"Content-Security-Policy": report_page.CSP})

    # --- the rest ---------------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        try:
            await self.in_thread(lambda db: db.execute("SELECT COUNT(*) FROM migrations").fetchone())
        except Exception as exc:  # the load balancer only needs to know; the log says why
            return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def stylesheet(self, request: Request) -> Response:
        return Response(
            self.css, media_type="text/css; charset=utf-8", headers={"Cache-Control": "public, max-age=3600"}
        )

    async def error_page(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            return self.message(
                request,
                self.default_lang,
                405,
                "bad_request_title",
                "bad_request_body",
                headers={"Allow": ", ".join(sorted(getattr(exc, "headers", {}).get("Allow", "GET").split(", ")))},
            )
        return self.not_found(request)

    def asgi(self) -> ASGIApp:
        routes = [
            Route("/s/{token}", self.survey_get, methods=["GET"]),
            Route("/s/{token}", self.survey_post, methods=["POST"]),
            Route("/u/{token}", self.unsubscribe_get, methods=["GET"]),
            Route("/u/{token}", self.unsubscribe_post, methods=["POST"]),
            Route("/hooks/sms/{provider}", self.sms_hook, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/report", self.report, methods=["GET"]),
            Route("/static/cxctl.css", self.stylesheet, methods=["GET"]),
        ]
        app = Starlette(routes=routes, exception_handlers={404: self.error_page, 405: self.error_page})
        return SecurityHeaders(app)


def create_app(ws: Workspace, **options) -> ASGIApp:
    """The ASGI application over `ws` (options: now, posts_per_minute, max_body)."""
    return SurveyApp(ws, **options).asgi()


# Set by `cxctl serve` for uvicorn's worker processes, which build the app themselves (--workers N).
ENV_WORKSPACE, ENV_NOW, ENV_RATE = "CXCTL_SERVE_WORKSPACE", "CXCTL_SERVE_NOW", "CXCTL_SERVE_POSTS_PER_MINUTE"


def app_from_environment() -> ASGIApp:
    """Factory for uvicorn (`cxctl.web.app:app_from_environment`, factory=True)."""
    ws = load_workspace(Path(os.environ[ENV_WORKSPACE]))
    now = os.environ.get(ENV_NOW)
    return create_app(
        ws,
        now=parse_now(now, ws.settings.timezone) if now else None,
        posts_per_minute=int(os.environ.get(ENV_RATE, POSTS_PER_MINUTE)),
    )
