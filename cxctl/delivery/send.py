"""Delivering invitations and reminders, safe from cron overlaps and from crashes.

Each invitation moves through recorded states: planned → sending → sent | failed (attempts, next try) |
bounced (address suppressed), or cancelled/expired before it goes. A row is committed as `sending`, with
the Message-ID it will carry, only when a connection is free to take it, and its outcome is committed as
soon as the server answers (in the same transaction as the next row's `sending`), so after a `kill -9`
the rows still `sending` are exactly the messages in flight — at most `smtp.concurrency`: the next run
marks them `in_doubt` and reports them, never re-sends them silently (cxctl.delivery.in_doubt settles them).
Messages are rendered ahead, but not marked, so the pipeline does not widen the window.
A file lock (cxctl.delivery.lock) keeps two runs apart.

Retries: quick ones within a run (IN_RUN_RETRY_DELAYS) count as one attempt; later ones wait on the clock
(`smtp.retry_schedule`, e.g. 5 min, 30 min, 2 h, 6 h) and stop `smtp.give_up_after` after the first try.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from cxctl.core.errors import TransportError, UsageError
from cxctl.core.timeutil import from_db, to_db
from cxctl.delivery.due import CONTACT_SQL, DUE_WHERE, due_rows
from cxctl.delivery.in_doubt import Selection, in_doubt_ids, settle_by_id
from cxctl.delivery.lock import database_file, send_lock  # noqa: F401  (part of this module's API)
from cxctl.delivery.mime import MessageBuilder
from cxctl.delivery.outcomes import Outcome, Prepared, SendReport
from cxctl.delivery.rates import delivery_rates, over_ceiling
from cxctl.delivery.recording import OutcomeRecorder
from cxctl.delivery.render import Renderer, TemplateError, contact_vars, event_vars
from cxctl.delivery.retries import RetryFailed, reopen_failed  # noqa: F401  (RetryFailed: part of this API)
from cxctl.delivery.sms_delivery import number_of, prepare_sms, sms_refusal
from cxctl.delivery.sms_render import SmsRenderer
from cxctl.delivery.sms_transport import MAX_HOLD_SECONDS, make_sms_transport
from cxctl.delivery.transport import RateLimiter, SendFailure, Transport
from cxctl.store import email_hash
from cxctl.workspace.loader import Workspace

IN_RUN_RETRY_DELAYS = (1.0, 5.0)  # seconds before each retry of a temporary failure within a run

ProgressCallback = Callable[[int, int], None]


class _Delivery(OutcomeRecorder):
    """One channel's delivery run: email through `transport` (SMTP or outbox), or SMS (a provider or outbox)."""

    def __init__(
        self,
        ws: Workspace,
        db: sqlite_utils.Database,
        now: datetime,
        transport: Transport,
        limit: int | None,
        moment: str | None,
        dry_run: bool,
        progress: ProgressCallback | None,
        retry_delays: tuple[float, ...],
        channel: str = "email",
    ):
        self.ws, self.db, self.now, self.transport = ws, db, now, transport
        self.limit, self.moment, self.dry_run, self.progress = limit, moment, dry_run, progress
        self.retry_delays = retry_delays
        self.channel = channel
        self.smtp = ws.settings.smtp
        self.limits = ws.settings.sms if channel == "sms" else ws.settings.smtp  # retries, caps, failures in a row
        self.renderer = Renderer(ws, ws.secret())
        self.sms = SmsRenderer(ws, self.renderer)
        self.builder = MessageBuilder(ws)
        self.report = SendReport(transport=transport.describe(), dry_run=dry_run)
        self.skipped: Counter[str] = Counter()
        self.started = time.monotonic()
        self.stopped: str | None = None
        self.consecutive = 0
        self.done = 0
        self.total = 0
        self.budget_reason: str | None = None
        self.bounced_now: set[str] = set()  # addresses that bounced during this run
        self.run_id: int | None = None
        self.max_in_flight = 0  # the most rows `sending` at once in this run (measured: ≤ concurrency)
        self.stopped_moments: dict[str, str] = {}  # moment → why: its complaint rate crossed the ceiling

    def clock(self) -> datetime:
        """The run's `now` moved on by the real time elapsed (sent_at, Date, next tries)."""
        return (self.now + timedelta(seconds=time.monotonic() - self.started)).replace(microsecond=0)

    # --- before sending ---------------------------------------------------------------------

    def settle_in_doubt(self, resend: Selection, accept: Selection) -> None:
        """Rows left `sending` belong to a dead run (we hold the lock): they may or may not have gone.
        They stay in doubt — reported by every run, which exits 1 — until settled one by one: by id
        (`resend`/`accept`: ids or "all") or from evidence (`cxctl reconcile`)."""
        self.report.resent_in_doubt, self.report.accepted_in_doubt = settle_by_id(
            self.db, self.now, resend, accept, self.moment
        )
        self.count_in_doubt()

    def start_run(self) -> None:
        """Record this run: the messages it hands over carry its id (evidence of a later run's message
        shows that a relay log covers an earlier run's crash)."""
        self.run_id = self.db.execute(
            "INSERT INTO send_runs (pid, started_at) VALUES (?, ?)", [os.getpid(), to_db(self.now)]
        ).lastrowid

    def finish_run(self) -> None:
        if self.run_id is not None:
            self.db.execute("UPDATE send_runs SET finished_at = ? WHERE id = ?", [to_db(self.clock()), self.run_id])

    def count_in_doubt(self) -> None:
        """Every message still in doubt (a dry run also counts the `sending` rows it leaves alone)."""
        ids = in_doubt_ids(self.db)
        self.report.in_doubt, self.report.in_doubt_ids = len(ids), ids[:100]

    def budget(self) -> int | None:
        """How many messages this run may hand over: --limit and the hourly/daily caps."""
        budgets: list[tuple[int, str]] = []
        if self.limit is not None:
            budgets.append((self.limit, "limit"))
        for cap, span, reason in (
            (self.limits.max_per_hour, timedelta(hours=1), "hourly_cap"),
            (self.limits.max_per_day, timedelta(days=1), "daily_cap"),
        ):
            if cap is not None and self.transport.name != "outbox":  # a provider's quota, for this channel alone
                used = self.db.execute(
                    "SELECT COUNT(*) FROM invitations WHERE sent_at > ? AND status IN ('sent', 'bounced')"
                    " AND channel = ?",
                    [to_db(self.now - span), self.channel],
                ).fetchone()[0]
                budgets.append((max(0, cap - used), reason))
        if not budgets:
            return None
        value, self.budget_reason = min(budgets)
        return value

    def check(self, row: dict[str, Any]) -> tuple[str, str | None] | None:
        """(reason, new status or None to leave the row as it is) when the row must not go now."""
        moment = self.ws.moments.get(row["moment"])
        if moment is None:
            return "unknown_moment", None
        if self.channel == "sms":
            refused = sms_refusal(
                self.ws, row, self.clock(), bool(row.get("suppressed")) or number_of(row) in self.bounced_now
            )
            if refused is not None:
                return refused
        if row["moment"] in self.stopped_moments:
            return "complaint_ceiling", None  # stays planned: it goes once the rate is back under the ceiling
        address = row["contact_email"] or row["email"]  # the contact's current address, if it changed since planning
        if self.channel == "sms":
            pass  # the number was checked above; the email address plays no part
        elif row["forgotten_at"] or not address:
            return "forgotten" if row["forgotten_at"] else "no_email", "cancelled"
        elif (
            row.get("suppressed")
            or address in self.bounced_now
            or (
                "suppressed" not in row
                and self.db.execute("SELECT 1 FROM suppressions WHERE email_hash = ?", [email_hash(address)]).fetchone()
            )
        ):
            return "suppressed", "cancelled"
        occurred = from_db(row["event_occurred_at"]) if moment.trigger is not None else None
        if moment.trigger is not None and occurred is not None and occurred + moment.trigger.expires < self.now:
            return "expired", "expired"
        if row["kind"] == "reminder":
            if row["answered"]:
                return "responded", "cancelled"
            if row["parent_status"] in ("bounced", "cancelled", "expired"):
                return f"parent_{row['parent_status']}", "cancelled"
            if row["parent_status"] != "sent":
                return "parent_not_sent", None
        if self.limits.max_attempts is not None and row["attempts"] >= self.limits.max_attempts:
            return "max_attempts", None
        if (
            self.channel == "email"
            and not self.smtp.smtputf8
            and self.transport.name == "smtp"
            and not address.rpartition("@")[0].isascii()
        ):
            # Decided here, not on the wire: the server would refuse it (no SMTPUTF8), every time.
            return "needs_smtputf8", "failed"
        return None

    def prepare(self, row: dict[str, Any]) -> Prepared | Outcome:
        """Render and build one message, or the outcome that replaces sending it."""
        refused = self.check(row)
        if refused is not None:
            return Outcome(row, "skip:" + refused[0], error=refused[1])
        address = row["contact_email"] or row["email"]
        if self.channel == "sms":
            try:
                return prepare_sms(
                    self.sms, row, self.renderer.language_for(row["language"] or row["contact_language"])
                )
            except TemplateError as exc:
                return Outcome(row, "rejected", tries=1, error=f"template: {exc}")
        try:
            lang, templates = self.renderer.templates(
                row["moment"],
                row["kind"] == "reminder",
                self.renderer.language_for(row["language"] or row["contact_language"]),
            )
            contact = contact_vars(
                {**row, "id": row["contact_id"], "email": address, "language": row["contact_language"]}
            )
            variables = self.renderer.variables(
                token=row["token"],
                moment_id=row["moment"],
                lang=lang,
                reminder=row["kind"] == "reminder",
                contact=contact,
                event=event_vars(row["event_type"], row["event_occurred_at"], row["event_attributes"]),
            )
            rendered = self.renderer.render(templates, variables)
        except TemplateError as exc:
            return Outcome(row, "rejected", tries=1, error=f"template: {exc}")
        message_id, data = self.builder.build(
            invitation_id=row["id"],
            token=row["token"],
            to_name=contact["name"],
            to_address=address,
            rendered=rendered,
            date=self.clock(),
            unsubscribe_url=variables["unsubscribe_url"],
        )
        return Prepared(
            row["id"], address, data, message_id, row["kind"], row["status"], row["attempts"], row.get("first_tried_at")
        )

    # --- the loop -----------------------------------------------------------------------------

    async def worker(
        self, queue: asyncio.Queue, results: list[Outcome], wake: asyncio.Event, limiter: RateLimiter
    ) -> None:
        holder: list = [None]  # this worker's connection, opened on first use and reused
        sender = self.ws.settings.sender.address
        if self.channel == "sms":
            sender = (
                getattr(self.transport, "sender", lambda: "")()
                or self.ws.settings.sms.sender
                or self.ws.settings.sender.name
            )
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if self.stopped:
                    results.append(Outcome(item, "untried"))
                else:
                    try:
                        results.append(await self._send_one(item, sender, limiter, holder))
                    except Exception as exc:  # a bug: record it as a temporary failure rather than hang
                        results.append(Outcome(item, "temporary", 1, f"{type(exc).__name__}: {exc}"))
                wake.set()
        finally:
            if holder[0] is not None:
                await holder[0].close()

    async def _send_one(self, item: Prepared, sender: str, limiter: RateLimiter, holder: list) -> Outcome:
        tries = 0
        allowed = len(self.retry_delays) + 1  # within this run: one attempt of the cross-run budget
        while True:
            try:
                if holder[0] is None:
                    holder[0] = self.transport.connect()
                await limiter.wait()
                tries += 1
                ref = await holder[0].send(sender, item.address, item.data, str(item.id))
                self.consecutive = 0
                return Outcome(item, "sent", tries, at=self.clock(), ref=ref)
            except TransportError as exc:  # authentication refused, outbox unwritable: nothing can go
                self.stopped = str(exc)
                return Outcome(item, "untried") if tries <= 1 else Outcome(item, "temporary", tries, str(exc))
            except SendFailure as failure:
                wait = failure.retry_after
                if wait is not None:  # 429 Retry-After: the provider asks every connection to wait, not only this one
                    limiter.hold(min(wait, MAX_HOLD_SECONDS))
                if (
                    failure.kind == "temporary"
                    and tries < allowed
                    and not self.stopped
                    and (wait or 0) <= MAX_HOLD_SECONDS
                ):
                    await asyncio.sleep(self.retry_delays[tries - 1])
                    continue
                if failure.kind != "bounce":
                    self.consecutive += 1
                    if self.consecutive >= self.limits.max_consecutive_failures and not self.stopped:
                        server = "SMS provider" if self.channel == "sms" else "mail server"
                        self.stopped = (
                            f"{self.consecutive} consecutive failures, the last: {failure}: is the {server} "
                            f"up? Untried invitations stay planned; rerun later"
                        )
                return Outcome(item, failure.kind, tries, str(failure), retry_after=wait, reason=failure.reason)

    async def run(self) -> None:
        concurrency = max(1, self.transport.concurrency)
        window = concurrency  # rows `sending` at once: only those a connection is working on
        queue: asyncio.Queue = asyncio.Queue()
        results: list[Outcome] = []
        wake = asyncio.Event()
        limiter = RateLimiter(self.transport.rate_per_second)
        workers = [asyncio.create_task(self.worker(queue, results, wake, limiter)) for _ in range(concurrency)]
        budget = self.budget()
        handed = 0
        outstanding = 0
        rows = due_rows(self.db, self.now, self.moment, self.channel)
        exhausted = False
        ahead: list[Prepared] = []  # rendered, not yet marked: still `planned` if the process dies
        try:
            while True:
                finished, results[:] = results[:], []
                outstanding -= sum(1 for o in finished)
                immediate: list[Outcome] = []
                while not exhausted and not self.stopped and len(ahead) < window:
                    if budget is not None and handed + len(ahead) >= budget:
                        exhausted = True
                        break
                    row = next(rows, None)
                    if row is None:
                        exhausted = True
                        break
                    prepared = self.prepare(row)
                    if isinstance(prepared, Prepared):
                        ahead.append(prepared)
                    else:
                        immediate.append(prepared)
                free = 0 if self.stopped else window - outstanding
                starting, ahead = ahead[:free], ahead[free:]
                marked = self.record(finished + immediate, starting)
                self.done += len(finished) + len(immediate)
                handed += len(marked)
                outstanding += len(marked)
                self.max_in_flight = max(self.max_in_flight, outstanding)
                for item in marked:
                    queue.put_nowait(item)
                if self.progress:
                    self.progress(self.done, self.total)
                if outstanding == 0 and (self.stopped or (exhausted and not ahead)):
                    break
                if not results and outstanding:
                    await wake.wait()
                    # One more turn of the loop: answers that arrived together are recorded in one transaction.
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
                wake.clear()
        finally:
            for _ in workers:
                queue.put_nowait(None)
            await asyncio.gather(*workers, return_exceptions=True)
            if results:  # after an unexpected error: record what did go, so it is not left in doubt
                self.record(results[:], [])
                results.clear()
        if self.done < self.total:
            reason = "not_tried" if self.stopped else (self.budget_reason or "limit")
            self.skipped[reason] += self.total - self.done

    def unrecorded_rows(self, plan: Any) -> Iterator[dict[str, Any]]:
        """Dry run: the plan's due rows not yet in the store, as rows with a throw-away token."""
        from cxctl.core.tokens import new_token

        secret = self.ws.secret()
        for p in plan.planned:
            if p.send_at > self.now or (self.moment and p.moment != self.moment) or p.channel != self.channel:
                continue
            if self.db.execute("SELECT 1 FROM invitations WHERE dedupe_key = ?", [p.dedupe_key]).fetchone():
                continue
            cursor = self.db.execute(CONTACT_SQL, [p.event_id, p.parent_id, p.parent_id, p.contact_id])
            names = [d[0] for d in cursor.description]
            found = cursor.fetchone()
            if found is None:
                continue
            row = dict(zip(names, found, strict=True))
            row.update(
                id=0,
                token=new_token(secret),
                moment=p.moment,
                kind=p.kind,
                parent_id=p.parent_id,
                language=p.language,
                email=p.email,
                attempts=0,
                status="planned",
                channel=p.channel,
                phone=p.phone,
            )
            self.total += 1
            yield row

    def dry_run_all(self, plan: Any = None) -> None:
        budget = self.budget()
        extra = self.unrecorded_rows(plan) if plan is not None else iter(())
        for row in itertools.chain(due_rows(self.db, self.now, self.moment, self.channel), extra):
            if budget is not None and self.report.would_send >= budget:
                break
            prepared = self.prepare(row)
            if isinstance(prepared, Prepared):
                self.report.would_send += 1
            elif prepared.result.startswith("skip:"):
                self.skipped[prepared.result[5:]] += 1
            else:
                self.report.failed += 1
                self.error(row["id"], "failed", prepared.error)
            self.done += 1
            if self.progress:
                self.progress(self.done, self.total)
        if self.done < self.total:
            self.skipped[self.budget_reason or "limit"] += self.total - self.done

    def count_due(self) -> int:
        return self.db.execute(
            f"SELECT COUNT(*) FROM invitations i WHERE {DUE_WHERE}",
            {"now": to_db(self.now), "moment": self.moment, "channel": self.channel},
        ).fetchone()[0]


def deliver(
    ws: Workspace,
    db: sqlite_utils.Database,
    now: datetime,
    transport: Transport,
    limit: int | None = None,
    moment: str | None = None,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    *,
    wait: bool = False,
    resend_in_doubt: Selection = None,
    accept_in_doubt: Selection = None,
    retry_delays: tuple[float, ...] = IN_RUN_RETRY_DELAYS,
    plan: Any = None,
    retry_failed: RetryFailed | None = None,
    check_secret: bool = True,
    sms_transport: Transport | None = None,
) -> SendReport:
    """Send the due invitations and reminders (planned with send_at ≤ now, and failed ones whose next
    try has come): the emails through `transport`, then the SMS through `sms_transport` (default: the
    workspace's, built only when an SMS is due). Both go through one state machine, one after the other, so
    at most one channel's concurrency is in flight when the process dies. Holds the send lock (LockedError
    when another run has it, unless `wait`). With dry_run, renders every due message (and those of `plan`
    not yet recorded) and changes nothing. Raises SecretChangedError when CXCTL_SECRET is not the one that
    signed the links already sent."""
    from cxctl.delivery.signing import keyring

    run = _Delivery(ws, db, now, transport, limit, moment, dry_run, progress, retry_delays)
    runs = [run]
    lock = contextlib.nullcontext() if dry_run else send_lock(database_file(db), wait)
    with lock:
        if check_secret:
            keyring(ws, db, now, record=not dry_run)
        if dry_run:
            run.count_in_doubt()
        else:
            run.settle_in_doubt(resend_in_doubt, accept_in_doubt)
            if retry_failed is not None:
                run.report.retried_failed = reopen_failed(db, now, moment, retry_failed.since)
        stopped = over_ceiling(ws, db, now, [moment] if moment else list(ws.moments))
        if not dry_run:
            run.start_run()
        try:
            for channel in ("email", "sms"):
                if channel == "sms":
                    probe = _Delivery(ws, db, now, transport, limit, moment, dry_run, progress, retry_delays, "sms")
                    if not probe.count_due() and not (
                        dry_run and plan is not None and any(p.channel == "sms" for p in plan.planned)
                    ):
                        continue
                    run = _Delivery(
                        ws,
                        db,
                        now,
                        sms_transport or make_sms_transport(ws),
                        limit,
                        moment,
                        dry_run,
                        progress,
                        retry_delays,
                        "sms",
                    )
                    run.run_id, run.started = runs[0].run_id, runs[0].started
                    if limit is not None:  # --limit counts messages of both channels
                        run.limit = max(
                            0, limit - sum(r.report.sent + r.report.failed + r.report.bounced for r in runs)
                        )
                    runs.append(run)
                run.stopped_moments = stopped
                run.total = run.report.due = run.count_due()
                if dry_run:
                    run.dry_run_all(plan)
                    run.report.due = run.total
                else:
                    asyncio.run(run.run())
        finally:
            if not dry_run:
                runs[0].finish_run()
    report = _merged(runs)
    report.stopped_moments = stopped
    report.rates = delivery_rates(
        ws,
        db,
        now - ws.deliverability.rate_window,
        runs[-1].clock() + timedelta(seconds=1),
        [moment] if moment else None,
    )
    return report


def _merged(runs: list[_Delivery]) -> SendReport:
    """One report for the run: the email run's, with the SMS run's counts added and each channel's apart."""
    report = runs[0].report
    skipped: Counter[str] = Counter()
    for run in runs:
        part = run.report
        skipped.update(run.skipped)
        report.by_channel[run.channel] = {
            "transport": part.transport,
            "due": part.due,
            "sent": part.sent,
            "failed": part.failed,
            "bounced": part.bounced,
            "would_send": part.would_send,
            "skipped": dict(sorted(run.skipped.items())),
            "stopped": run.stopped,
        }
        if run is runs[0]:
            continue
        report.transport += f"; {part.transport}"
        for name in ("due", "sent", "reminders", "failed", "bounced", "would_send"):
            setattr(report, name, getattr(report, name) + getattr(part, name))
        report.errors += part.errors[: max(0, 50 - len(report.errors))]
    if len(runs) > 1:
        runs[0].count_in_doubt()  # after both channels: what is left in doubt
    report.skipped = dict(sorted(skipped.items()))
    report.stopped = next((r.stopped for r in runs if r.stopped), None)
    report.max_in_flight = max(r.max_in_flight for r in runs)
    report.elapsed_seconds = round(time.monotonic() - runs[0].started, 3)
    if len(runs) == 1:
        report.by_channel = {}  # email only: the report reads as it always did
    return report


def send_campaign(
    ws: Workspace,
    db: sqlite_utils.Database,
    now: datetime,
    transport: Transport,
    limit: int | None = None,
    moment: str | None = None,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    *,
    wait: bool = False,
    resend_in_doubt: Selection = None,
    accept_in_doubt: Selection = None,
    retry_failed: RetryFailed | None = None,
    rotate_secret: bool = False,
    sms_transport: Transport | None = None,
) -> SendReport:
    """`cxctl send`: plan (compute_plan → record_plan) and deliver, all under the send lock, so two
    overlapping runs can neither plan nor send the same invitation twice."""
    from cxctl.delivery.signing import keyring
    from cxctl.planning.engine import compute_plan
    from cxctl.planning.plans import record_plan

    if resend_in_doubt == "all" and accept_in_doubt == "all":
        raise UsageError(
            "--resend-in-doubt all and --accept-in-doubt all contradict each other: each message in doubt "
            "either did not arrive (resend) or did (accept); give ids, or settle them from the relay's log "
            "with `cxctl reconcile`"
        )
    lock = contextlib.nullcontext() if dry_run else send_lock(database_file(db), wait)
    with lock:
        # Checked before anything is planned: new tokens are signed with this secret.
        keyring(ws, db, now, rotate=rotate_secret, record=not dry_run)
        plan = compute_plan(ws, db, now, moment=moment, list_exclusions=False)
        planned = 0 if dry_run else record_plan(db, ws, plan, now)
        report = deliver(
            ws,
            db,
            now,
            transport,
            limit,
            moment,
            dry_run,
            progress,
            resend_in_doubt=resend_in_doubt,
            accept_in_doubt=accept_in_doubt,
            plan=plan if dry_run else None,
            retry_failed=retry_failed,
            check_secret=False,
            sms_transport=sms_transport,
        )
    report.planned = planned if not dry_run else len(plan.planned)
    report.plan_exclusions = dict(plan.counts)
    return report
