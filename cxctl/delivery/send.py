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
import json
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
from cxctl.delivery.render import Renderer, TemplateError, contact_vars, event_vars
from cxctl.delivery.retries import RetryFailed, next_try, reopen_failed  # noqa: F401  (RetryFailed: part of this API)
from cxctl.delivery.transport import RateLimiter, SendFailure, Transport
from cxctl.store import email_hash
from cxctl.workspace.loader import Workspace

IN_RUN_RETRY_DELAYS = (1.0, 5.0)  # seconds before each retry of a temporary failure within a run

ProgressCallback = Callable[[int, int], None]


class _Delivery:
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
    ):
        self.ws, self.db, self.now, self.transport = ws, db, now, transport
        self.limit, self.moment, self.dry_run, self.progress = limit, moment, dry_run, progress
        self.retry_delays = retry_delays
        self.smtp = ws.settings.smtp
        self.renderer = Renderer(ws, ws.secret())
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
            (self.smtp.max_per_hour, timedelta(hours=1), "hourly_cap"),
            (self.smtp.max_per_day, timedelta(days=1), "daily_cap"),
        ):
            if cap is not None and self.transport.name == "smtp":
                used = self.db.execute(
                    "SELECT COUNT(*) FROM invitations WHERE sent_at > ? AND status IN ('sent', 'bounced')",
                    [to_db(self.now - span)],
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
        if row["moment"] in self.stopped_moments:
            return "complaint_ceiling", None  # stays planned: it goes once the rate is back under the ceiling
        address = row["contact_email"] or row["email"]  # the contact's current address, if it changed since planning
        if row["forgotten_at"] or not address:
            return "forgotten" if row["forgotten_at"] else "no_email", "cancelled"
        if (
            row.get("suppressed")
            or address in self.bounced_now
            or (
                "suppressed" not in row
                and self.db.execute("SELECT 1 FROM suppressions WHERE email_hash = ?", [email_hash(address)]).fetchone()
            )
        ):
            return "suppressed", "cancelled"
        if (
            moment.trigger is not None
            and row["event_occurred_at"]
            and from_db(row["event_occurred_at"]) + moment.trigger.expires < self.now
        ):
            return "expired", "expired"
        if row["kind"] == "reminder":
            if row["answered"]:
                return "responded", "cancelled"
            if row["parent_status"] in ("bounced", "cancelled", "expired"):
                return f"parent_{row['parent_status']}", "cancelled"
            if row["parent_status"] != "sent":
                return "parent_not_sent", None
        if self.smtp.max_attempts is not None and row["attempts"] >= self.smtp.max_attempts:
            return "max_attempts", None
        if not self.smtp.smtputf8 and self.transport.name == "smtp" and not address.rpartition("@")[0].isascii():
            # Decided here, not on the wire: the server would refuse it (no SMTPUTF8), every time.
            return "needs_smtputf8", "failed"
        return None

    def prepare(self, row: dict[str, Any]) -> Prepared | Outcome:
        """Render and build one message, or the outcome that replaces sending it."""
        refused = self.check(row)
        if refused is not None:
            return Outcome(row, "skip:" + refused[0], error=refused[1])
        address = row["contact_email"] or row["email"]
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

    # --- recording ----------------------------------------------------------------------------

    def record(self, finished: list[Outcome], starting: list[Prepared]) -> list[Prepared]:
        """One transaction: the outcomes of finished messages, then the next rows marked `sending`.
        Returns the rows actually marked (a row changed by someone else is left alone)."""
        if not finished and not starting:
            return []
        stamp = to_db(self.clock())
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            sent = [o for o in finished if o.result == "sent"]
            for outcome in sent:
                self.report.sent += 1
                self.report.reminders += outcome.item.kind == "reminder"
            conn.executemany(
                "UPDATE invitations SET status = 'sent', sent_at = ?, message_id = ?, attempts = ?, last_error = NULL, "
                "next_attempt_at = NULL, updated_at = ? WHERE id = ?",
                [(to_db(o.at), o.item.message_id, o.item.prev_attempts + 1, stamp, o.item.id) for o in sent],
            )
            for outcome in finished:
                if outcome.result != "sent":
                    self._record_one(outcome, stamp)
            before = conn.total_changes
            # The Message-ID is stored before the message goes: the relay's log or a journal copy can then
            # say whether a message in doubt after a crash arrived (cxctl.delivery.in_doubt.reconcile).
            conn.executemany(
                "UPDATE invitations SET status = 'sending', message_id = ?, run_id = ?, "
                "first_tried_at = COALESCE(first_tried_at, ?), updated_at = ? WHERE id = ? AND status = ?",
                [(item.message_id, self.run_id, stamp, stamp, item.id, item.prev_status) for item in starting],
            )
            marked = starting
            if conn.total_changes - before != len(starting):  # a row changed under us: send only those we marked
                ids = {
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM invitations WHERE status = 'sending' AND id IN (SELECT value FROM json_each(?))",
                        [json.dumps([item.id for item in starting])],
                    )
                }
                marked = [item for item in starting if item.id in ids]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return marked

    def _record_one(self, outcome: Outcome, stamp: str) -> None:
        db, result, report = self.db, outcome.result, self.report
        item = outcome.item
        if result.startswith("skip:"):
            reason = result[5:]
            self.skipped[reason] += 1
            if outcome.error:  # the new status
                db.execute(
                    "UPDATE invitations SET status = ?, last_error = ?, next_attempt_at = NULL, updated_at = ? "
                    "WHERE id = ?",
                    [outcome.error, reason, stamp, item["id"]],
                )
            if reason == "needs_smtputf8":
                self.report.failed += 1
                self._error(
                    item["id"],
                    "failed",
                    "the address has a non-ASCII local part and the server is not declared "
                    "to accept SMTPUTF8 (smtp.smtputf8: false): correct the address, or set smtp.smtputf8: true "
                    "if the server supports it, then `cxctl send --retry-failed`",
                )
            return
        item_id = item.id if isinstance(item, Prepared) else item["id"]
        prev_attempts = item.prev_attempts if isinstance(item, Prepared) else item["attempts"]
        # Quick retries within this run are one attempt: the cross-run budget is counted in runs.
        attempts = prev_attempts + (1 if outcome.tries else 0)
        if result == "untried":
            db.execute(
                "UPDATE invitations SET status = ?, updated_at = ? WHERE id = ?", [item.prev_status, stamp, item_id]
            )
            self.skipped["not_tried"] += 1
        elif result == "bounce":
            report.bounced += 1
            self.bounced_now.add(item.address)
            db.execute(
                "UPDATE invitations SET status = 'bounced', attempts = ?, last_error = ?, updated_at = ? WHERE id = ?",
                [attempts, outcome.error, stamp, item_id],
            )
            db.execute(
                "INSERT OR IGNORE INTO suppressions (email_hash, email, reason, source, note, created_at) "
                "VALUES (?, ?, 'bounce', 'send', ?, ?)",
                [email_hash(item.address), item.address, f"invitation {item_id}: {outcome.error}", stamp],
            )
            self._error(item_id, "bounced", outcome.error)
        else:  # temporary or rejected: failed, retried later unless permanent or out of attempts
            report.failed += 1
            retry_at = (
                next_try(self.smtp, attempts, getattr(item, "first_tried_at", None), self.clock())
                if result == "temporary"
                else None
            )
            next_at = to_db(retry_at) if retry_at else None
            db.execute(
                "UPDATE invitations SET status = 'failed', attempts = ?, next_attempt_at = ?, last_error = ?, "
                "updated_at = ? WHERE id = ?",
                [attempts, next_at, outcome.error, stamp, item_id],
            )
            self._error(item_id, "failed", outcome.error, next_at)

    def _error(self, item_id: int, status: str, error: str | None, next_at: str | None = None) -> None:
        if len(self.report.errors) < 50:
            self.report.errors.append(
                {"invitation": item_id, "status": status, "error": error, "next_attempt_at": next_at}
            )

    # --- the loop -----------------------------------------------------------------------------

    async def worker(
        self, queue: asyncio.Queue, results: list[Outcome], wake: asyncio.Event, limiter: RateLimiter
    ) -> None:
        holder: list = [None]  # this worker's connection, opened on first use and reused
        sender = self.ws.settings.sender.address
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
                await holder[0].send(sender, item.address, item.data, str(item.id))
                self.consecutive = 0
                return Outcome(item, "sent", tries, at=self.clock())
            except TransportError as exc:  # authentication refused, outbox unwritable: nothing can go
                self.stopped = str(exc)
                return Outcome(item, "untried") if tries <= 1 else Outcome(item, "temporary", tries, str(exc))
            except SendFailure as failure:
                if failure.kind == "temporary" and tries < allowed and not self.stopped:
                    await asyncio.sleep(self.retry_delays[tries - 1])
                    continue
                if failure.kind != "bounce":
                    self.consecutive += 1
                    if self.consecutive >= self.smtp.max_consecutive_failures and not self.stopped:
                        self.stopped = (
                            f"{self.consecutive} consecutive failures, the last: {failure}: is the mail "
                            f"server up? Untried invitations stay planned; rerun later"
                        )
                return Outcome(item, failure.kind, tries, str(failure))

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
        rows = due_rows(self.db, self.now, self.moment)
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
                    (ahead if isinstance(prepared, Prepared) else immediate).append(prepared)
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
            if p.send_at > self.now or (self.moment and p.moment != self.moment):
                continue
            if self.db.execute("SELECT 1 FROM invitations WHERE dedupe_key = ?", [p.dedupe_key]).fetchone():
                continue
            cursor = self.db.execute(CONTACT_SQL, [p.event_id, p.parent_id, p.parent_id, p.contact_id])
            names = [d[0] for d in cursor.description]
            found = cursor.fetchone()
            if found is None:
                continue
            row = dict(zip(names, found))
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
            )
            self.total += 1
            yield row

    def dry_run_all(self, plan: Any = None) -> None:
        budget = self.budget()
        extra = self.unrecorded_rows(plan) if plan is not None else iter(())
        for row in itertools.chain(due_rows(self.db, self.now, self.moment), extra):
            if budget is not None and self.report.would_send >= budget:
                break
            prepared = self.prepare(row)
            if isinstance(prepared, Prepared):
                self.report.would_send += 1
            elif prepared.result.startswith("skip:"):
                self.skipped[prepared.result[5:]] += 1
            else:
                self.report.failed += 1
                self._error(row["id"], "failed", prepared.error)
            self.done += 1
            if self.progress:
                self.progress(self.done, self.total)
        if self.done < self.total:
            self.skipped[self.budget_reason or "limit"] += self.total - self.done

    def count_due(self) -> int:
        return self.db.execute(
            f"SELECT COUNT(*) FROM invitations i WHERE {DUE_WHERE}", {"now": to_db(self.now), "moment": self.moment}
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
) -> SendReport:
    """Send the due invitations and reminders (planned with send_at ≤ now, and failed ones whose next
    try has come). Holds the send lock (LockedError when another run has it, unless `wait`).
    With dry_run, renders every due message (and those of `plan` not yet recorded) and changes nothing.
    Raises SecretChangedError when CXCTL_SECRET is not the one that signed the links already sent."""
    from cxctl.delivery.signing import keyring

    run = _Delivery(ws, db, now, transport, limit, moment, dry_run, progress, retry_delays)
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
        run.stopped_moments = over_ceiling(ws, db, now, [moment] if moment else list(ws.moments))
        run.total = run.report.due = run.count_due()
        if dry_run:
            run.dry_run_all(plan)
            run.report.due = run.total
        else:
            run.start_run()
            try:
                asyncio.run(run.run())
            finally:
                run.finish_run()
    report = run.report
    report.skipped = dict(sorted(run.skipped.items()))
    report.stopped = run.stopped
    report.max_in_flight = run.max_in_flight
    report.stopped_moments = run.stopped_moments
    report.rates = delivery_rates(
        ws, db, now - ws.deliverability.rate_window, run.clock() + timedelta(seconds=1), [moment] if moment else None
    )
    report.elapsed_seconds = round(time.monotonic() - run.started, 3)
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
        )
    report.planned = planned if not dry_run else len(plan.planned)
    report.plan_exclusions = dict(plan.counts)
    return report
