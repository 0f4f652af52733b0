"""`cxctl demo`: the whole loop on the shipped e-commerce example, in a folder of its own.

copy the example → validate → import contacts and events → plan → send through an SMTP server on
127.0.0.1 that keeps the messages in a Maildir → generate responses for a share of the invitations →
import them → scorecard and follow-ups. Every step calls the same core functions as the commands, so
the demo shows what cxctl really does. Deterministic: the clock is `now` (a fixed default inside the
examples' data) and the generated answers come from a seeded random generator.
"""

from __future__ import annotations

import csv
import mailbox
import os
import random
import re
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cxctl import store
from cxctl.core.errors import CxError, UsageError
from cxctl.core.resources import examples_dir
from cxctl.core.timeutil import to_db

EXAMPLE = "ecommerce"
# Friday 20 November 2026, 10:00 in Paris: the end of the shipped example's data (orders delivered,
# tickets closed and calls from 2 to 20 November 2026), so the plan finds due invitations for every
# moment, and the output is the same on every machine and every day.
DEFAULT_NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DEMO_SECRET = "cxctl-demo-secret-not-for-production"
RESPONSE_SHARE = 0.6
RESPONSE_DELAY = timedelta(days=3)
SEED = 20261116
MAILDIR = "maildir"
# The example's 40 customers give a few responses per moment: below the example's min_responses (30)
# every scorecard cell would read "insufficient", so the demo's copy shows cells from this n on.
DEMO_MIN_RESPONSES = 5
RESPONSES_FILE = "demo-responses.csv"
REPORT_FILE = "report.html"
MARKER = ".cxctl-demo"

Progress = Callable[[str], None]


@dataclass
class DemoStep:
    """One step of the demo: what it did in one line, and its figures."""

    name: str
    status: str  # ok | skipped | failed
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    output: str = ""


@dataclass
class DemoResult:
    folder: str
    database: str
    maildir: str
    now: str
    responses_now: str
    secret_note: str | None
    steps: list[DemoStep] = field(default_factory=list)
    link: str | None = None  # with --serve: a link to open in a browser

    @property
    def failed(self) -> bool:
        return any(step.status == "failed" for step in self.steps)

    def step(self, name: str) -> DemoStep | None:
        return next((s for s in self.steps if s.name == name), None)

    def where_to_look(self) -> str:
        """The closing paragraph: where the files are and what to run next."""
        folder = self.folder
        lines = [
            "",
            "Where to look:",
            f"  workspace   {folder}/cxctl.yaml (and the other YAML files: journeys, moments, questions, rules)",
            f"  messages    {self.maildir}  (a Maildir: open it with `mutt -f {self.maildir}` or any mail client)",
            f"  SMS         {folder}/outbox/sms  (one .sms file per SMS: number, encoding, segments, text)",
            f"  database    {self.database}  (SQLite: `sqlite3 {self.database} .tables`)",
            f"  responses   {folder}/{RESPONSES_FILE}  (the generated survey export that was imported)",
            f"  report      {folder}/{REPORT_FILE}  (the results as one HTML page: open it in a browser, print it to PDF)",
            "",
            "Next, try:",
            f"  cxctl validate {folder}",
            f"  cxctl plan -w {folder} --now {self.now}",
            f"  cxctl scorecard -w {folder} --now {self.responses_now}",
            f"  cxctl followups -w {folder}",
            f"  cxctl report -w {folder} --now {self.responses_now} --lang en -o report-en.html",
            f"  cxctl export-person <external id or email> -w {folder}",
        ]
        if self.secret_note:
            lines += ["", self.secret_note]
        return "\n".join(lines)


def example_timezone() -> str:
    """The shipped example's time zone, in which a naive `--now` is read."""
    from cxctl.validation import load_workspace

    try:
        return load_workspace(examples_dir() / EXAMPLE).settings.timezone
    except CxError:
        return "UTC"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare_folder(folder: Path, force: bool) -> Path:
    """Copy the shipped example into `folder`; refuse a non-empty folder unless `force`."""
    source = examples_dir() / EXAMPLE
    if not (source / "cxctl.yaml").is_file():
        raise CxError(f"the shipped example {source} is missing its cxctl.yaml: reinstall cxctl")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file: name a folder for the demo, e.g. `cxctl demo ./cxctl-demo`")
    if folder.is_dir() and any(folder.iterdir()):
        foreign = (folder / "cxctl.yaml").exists() and not (folder / MARKER).exists()
        if foreign:  # said first: suggesting --force here would only lead to this refusal
            raise UsageError(
                f"{folder} holds a workspace that cxctl demo did not create: name another folder "
                f"(--force only restarts a demo folder)"
            )
        if not force:
            raise UsageError(f"{folder} is not empty: name a new folder, or add --force to start the demo in it again")
        # A fresh start: the demo's database, messages and generated files go; anything else stays.
        for target in (
            [folder / n for n in (MAILDIR, "outbox", RESPONSES_FILE, REPORT_FILE)]
            + sorted(folder.glob("cxctl.db*"))
            + sorted((folder / "data").glob("*.rejects.csv"))
        ):
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    # Only the example's sources: never a database or outputs left by someone running it in place.
    leftovers = shutil.ignore_patterns("*.db", "*.db-*", "*.lock", "*.rejects.csv", "outbox", MAILDIR, "__pycache__")
    shutil.copytree(source, folder, dirs_exist_ok=True, ignore=leftovers)
    (folder / MARKER).write_text(
        "created by `cxctl demo`; `cxctl demo --force` may reset this folder\n", encoding="utf-8"
    )
    config = folder / "cxctl.yaml"
    text = config.read_text(encoding="utf-8")
    lowered = re.sub(
        r"(?m)^(\s+)min_responses:\s*\d+.*$",
        rf"\g<1>min_responses: {DEMO_MIN_RESPONSES}   # lowered by cxctl demo: the sample data is small",
        text,
        count=1,
    )
    if lowered != text:
        config.write_text(lowered, encoding="utf-8")
    return folder


class MailServer:
    """aiosmtpd on 127.0.0.1 on a free port, storing every message it receives in a Maildir."""

    def __init__(self, maildir: Path):
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Mailbox

        # mailbox.Maildir creates tmp/new/cur only when it creates the folder itself.
        maildir.parent.mkdir(parents=True, exist_ok=True)
        self.maildir = maildir
        self.port = free_port()
        self.controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> MailServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()


def generate_responses(
    ws, db, path: Path, answered_at: datetime, seed: int = SEED, share: float = RESPONSE_SHARE
) -> int:
    """Write a generic CSV export with answers for a seeded share of the sent invitations.

    Scores lean positive with a realistic tail of detractors; open questions get short French or
    English comments; a question with `ask_if` is answered only when its condition holds. Returns
    the number of rows written.
    """
    rng = random.Random(seed)
    rows = db.execute(
        "SELECT id, token, moment, language, COALESCE(sent_at, send_at) FROM invitations "
        "WHERE status = 'sent' AND kind = 'invitation' ORDER BY id"
    ).fetchall()
    question_ids = sorted({q for m in ws.moments.values() for q in m.questions})
    written = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["response_id", "token", "moment", "submitted_at", *question_ids])
        for inv_id, token, moment_id, language, sent_at in rows:
            if rng.random() >= share or moment_id not in ws.moments:
                continue
            sent = datetime.strptime(sent_at[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            latest = max(answered_at, sent + timedelta(minutes=10))
            submitted = sent + (latest - sent) * rng.uniform(0.05, 0.95)
            mood = rng.random()
            answers = _answers(ws, ws.moments[moment_id].questions, language or ws.settings.default_language, mood, rng)
            writer.writerow(
                [
                    f"demo-{inv_id}",
                    token,
                    moment_id,
                    submitted.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    *(answers.get(q, "") for q in question_ids),
                ]
            )
            written += 1
    return written


COMMENTS = {
    "fr": {
        "low": [
            "Livraison en retard et aucune nouvelle du transporteur.",
            "Colis abîmé, service client difficile à joindre.",
            "Trop d'attente au téléphone.",
            "Le produit ne correspond pas à la description.",
        ],
        "mid": ["Correct, mais la livraison pourrait être plus rapide.", "Bien dans l'ensemble, site un peu lent."],
        "high": ["Rapide et soigné, merci !", "Très bon conseil en magasin.", "Parfait, rien à redire."],
    },
    "en": {
        "low": ["Late delivery and no news from the carrier.", "Damaged parcel, support hard to reach."],
        "mid": ["Fine, but delivery could be faster.", "Good overall, the website is a bit slow."],
        "high": ["Fast and careful, thanks!", "Great advice in store.", "Perfect."],
    },
}


def _answers(ws, question_ids: list[str], language: str, mood: float, rng: random.Random) -> dict[str, str]:
    """Answers of one respondent; `mood` in [0, 1) drives every score so a response is consistent."""
    out: dict[str, Any] = {}
    numeric: dict[str, float] = {}
    for qid in question_ids:
        q = ws.questions.get(qid)
        if q is None:
            continue
        if q.ask_if is not None:
            base = numeric.get(q.ask_if.question)
            cond = q.ask_if
            if (
                base is None
                or (cond.at_most is not None and base > cond.at_most)
                or (cond.at_least is not None and base < cond.at_least)
            ):
                continue
            if cond.equals is not None and str(out.get(cond.question)) != str(cond.equals):
                continue
            if cond.any_of is not None and str(out.get(cond.question)) not in cond.any_of:
                continue
        if q.scale is not None:
            lo, hi = q.scale
            # Most customers are satisfied; a fifth are not. Noise keeps answers from being identical.
            happy = mood >= 0.2
            position = min(
                1.0,
                max(0.0, (0.85 if happy else 0.25) + rng.uniform(-0.15 if happy else -0.25, 0.15 if happy else 0.25)),
            )
            value = lo + round(position * (hi - lo))
            numeric[qid] = value
            out[qid] = str(value)
        elif q.type == "open":
            band = "low" if mood < 0.2 else "mid" if mood < 0.45 else "high"
            comments = COMMENTS.get(language.split("-")[0], COMMENTS["en"])[band]
            if band != "high" or rng.random() < 0.4:
                out[qid] = rng.choice(comments)
        elif q.type == "single_choice" and q.choices:
            out[qid] = rng.choice(q.choices).id
        elif q.type == "multiple_choice" and q.choices:
            picked = rng.sample(q.choices, k=rng.randint(1, min(2, len(q.choices))))
            out[qid] = ";".join(c.id for c in picked)
    return out


def count_messages(maildir: Path) -> int:
    return len(mailbox.Maildir(maildir, create=False)) if maildir.is_dir() else 0


def run_demo(
    folder: Path | str,
    now: datetime | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    serve_port: int | None = None,
) -> DemoResult:
    """Run every step; a missing piece or a failure is reported in its step, the rest still tells
    the user where to look. Raises UsageError only for a folder it must not touch.

    With `serve_port`, the invitations link to cxctl's own pages on 127.0.0.1:`serve_port` (the copy's
    public_url), and `result.link` is a one-click link of a message nobody answered yet, to open once
    `cxctl serve` runs there."""
    from cxctl.validation import check_workspace

    say = progress or (lambda message: None)
    folder = Path(folder).resolve() if not Path(folder).is_absolute() else Path(folder)
    now = now or DEFAULT_NOW
    responses_now = now + RESPONSE_DELAY
    maildir = folder / MAILDIR
    prepare_folder(folder, force)
    if serve_port is not None:
        serve_locally(folder, serve_port)
    say(
        f"demo workspace copied from the shipped example '{EXAMPLE}' into {folder} "
        f"(min_responses lowered to {DEMO_MIN_RESPONSES}: the sample data is small)"
    )

    secret_note = None
    result = DemoResult(str(folder), "", str(maildir), now.isoformat(), responses_now.isoformat(), None)

    def add(step: DemoStep) -> DemoStep:
        result.steps.append(step)
        say(f"[{step.status}] {step.name}: {step.summary}")
        return step

    # 1. validate
    checked = check_workspace([folder])
    ws = checked.workspace
    if ws is None:
        add(
            DemoStep(
                "validate",
                "failed",
                f"{len(checked.errors)} error(s) in the example: run `cxctl validate {folder}`",
                {"errors": [p.format() for p in checked.errors]},
            )
        )
        return result
    add(
        DemoStep(
            "validate",
            "ok",
            f"{len(ws.journeys)} journey(s), {len(ws.moments)} key moment(s), "
            f"{len(ws.questions)} question(s), {len(checked.warnings)} warning(s)",
            {"moments": sorted(ws.moments), "warnings": len(checked.warnings)},
        )
    )
    secret_env = ws.settings.token_secret_env
    if not os.environ.get(secret_env):
        os.environ[secret_env] = DEMO_SECRET
        secret_note = (
            f"note: {secret_env} was not set, so the demo signed its survey links with a fixed, public demo secret. "
            f"To keep working in {folder}: export {secret_env}={DEMO_SECRET} — "
            f"for real campaigns use your own: export {secret_env}=$(openssl rand -hex 32)"
        )
    result.secret_note = secret_note
    db = store.connect(ws.database)
    result.database = str(ws.database)

    # 2. import contacts and events
    _import_audience(ws, db, folder, now, add)
    # 3. plan, 4. send
    _plan_and_send(ws, db, now, maildir, add)
    # 5. responses, 6. import, and the cases they open, with their alerts
    _responses(ws, db, folder, responses_now, add)
    _cases(ws, db, responses_now, maildir, add)
    # 7. scorecard and follow-ups, 8. the report
    _results(ws, db, responses_now, add)
    _report(ws, db, folder / REPORT_FILE, responses_now, add)
    if serve_port is not None:
        result.link = unanswered_link(db, maildir)
    return result


def serve_locally(folder: Path, port: int) -> None:
    """Point the copy's links at `cxctl serve` on this machine: public_url instead of the example's survey
    and unsubscribe addresses (which name a site that does not exist)."""
    config = folder / "cxctl.yaml"
    text = config.read_text(encoding="utf-8")
    text = re.sub(
        r"(?m)^(\s+)survey_url:.*$",
        rf'\g<1>public_url: "http://127.0.0.1:{port}"   # set by cxctl demo --serve',
        text,
        count=1,
    )
    text = re.sub(r"(?m)^\s+unsubscribe_url:.*\n", "", text, count=1)
    config.write_text(text, encoding="utf-8")


def unanswered_link(db, maildir: Path) -> str | None:
    """A one-click score link (the highest score) from a message in the Maildir whose invitation has no
    response yet, else any message's survey link."""
    import email
    import email.policy
    import html as html_text

    if not maildir.is_dir():
        return None
    box = mailbox.Maildir(maildir, create=False)
    fallback = None
    for key in sorted(box.keys()):
        message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        body = message.get_body(("html",))
        links = [
            html_text.unescape(h)
            for h in re.findall(r'href="(http://127\.0\.0\.1:[^"]+/s/[^"]+)"', body.get_content() if body else "")
        ]
        if not links:
            continue
        fallback = fallback or links[0]
        token = links[0].split("/s/", 1)[1].split("?", 1)[0]
        answered = db.execute(
            "SELECT 1 FROM responses r JOIN invitations i ON i.id = r.invitation_id WHERE i.token = ? LIMIT 1", [token]
        ).fetchone()
        scored = [link for link in links if "&score=" in link]
        if not answered and scored:
            return scored[-1]
    return fallback


def _import_audience(ws, db, folder: Path, now: datetime, add) -> None:
    from cxctl.audience.contacts import import_contacts
    from cxctl.audience.events import import_events

    data = folder / "data"
    for kind, function, name in (
        ("contacts", import_contacts, "contacts.csv"),
        ("events", import_events, "events.csv"),
    ):
        step = f"import {kind}"
        path = data / name
        if not path.is_file():
            add(DemoStep(step, "skipped", f"the example has no data/{name}"))
            continue
        # The example's CRM exports need its column mapping (`;`, dd/mm/yyyy, French headers).
        mapping_id = next((mid for mid, m in ws.mappings.items() if m.kind == kind), None)
        try:
            imported = function(ws, db, path, now, mapping_id=mapping_id)
        except CxError as exc:
            add(DemoStep(step, "failed", str(exc)))
            continue
        counts = imported.counts()
        add(
            DemoStep(
                step,
                "ok",
                f"data/{name}: {counts.get('read', 0)} row(s) read, {counts.get('inserted', 0)} new, "
                f"{counts.get('rejected', 0)} rejected",
                counts,
            )
        )


def _plan_and_send(ws, db, now: datetime, maildir: Path, add) -> None:
    """`cxctl plan` (read-only, for the report) then `cxctl send` (plan → record → deliver)."""
    from cxctl.delivery.send import send_campaign
    from cxctl.planning.engine import compute_plan

    try:
        plan = compute_plan(ws, db, now)
    except CxError as exc:
        add(DemoStep("plan", "failed", str(exc)))
        return
    by_moment: dict[str, int] = {}
    for item in plan.planned:
        by_moment[item.moment] = by_moment.get(item.moment, 0) + 1
    excluded = dict(sorted(plan.counts.items()))
    reasons = ", ".join(f"{n} {reason}" for reason, n in excluded.items())
    add(
        DemoStep(
            "plan",
            "ok",
            f"{len(plan.planned)} invitation(s) and reminder(s) due or scheduled; "
            f"{len(plan.exclusions)} exclusion(s)" + (f" ({reasons})" if reasons else ""),
            {"planned": dict(sorted(by_moment.items())), "exclusions": excluded},
        )
    )
    from cxctl.delivery.transport import make_transport

    # The run sends over SMTP to the embedded server; cxctl.yaml keeps its own transport (outbox).
    saved = ws.settings.transport, ws.settings.smtp
    ws.settings.transport = "smtp"
    ws.settings.smtp = ws.settings.smtp.model_copy(
        update={
            "host": "127.0.0.1",
            "security": "none",
            "username_env": None,
            "password_env": None,
            "rate_per_second": None,
            "max_per_hour": None,
            "max_per_day": None,
        }
    )
    try:
        with MailServer(maildir) as server:
            ws.settings.smtp.port = server.port
            report = send_campaign(ws, db, now, make_transport(ws))
    except CxError as exc:
        add(DemoStep("send", "failed", str(exc)))
        return
    finally:
        ws.settings.transport, ws.settings.smtp = saved
    messages = count_messages(maildir)
    sms_folder = ws.root / ws.settings.sms.outbox
    sms = len(list(sms_folder.glob("*.sms"))) if sms_folder.is_dir() else 0
    later = db.execute("SELECT COUNT(*) FROM invitations WHERE status = 'planned'").fetchone()[0]
    texts = f", {sms} SMS in {ws.settings.sms.outbox}/ (the contacts who accepted SMS)" if sms else ""
    add(
        DemoStep(
            "send",
            "ok" if report.stopped is None and report.failed == 0 else "failed",
            f"{report.sent} message(s) sent over SMTP to 127.0.0.1:{server.port}, {messages} in the Maildir{texts}, "
            f"{report.failed} failed, {later} scheduled for later (send window, delay, spread)",
            {
                "sent": report.sent,
                "failed": report.failed,
                "bounced": report.bounced,
                "maildir_messages": messages,
                "sms_outbox": sms,
                "scheduled_later": later,
                "skipped": report.skipped,
            },
        )
    )


def _responses(ws, db, folder: Path, responses_now: datetime, add) -> None:
    path = folder / RESPONSES_FILE
    written = generate_responses(ws, db, path, responses_now)
    if written == 0:
        add(DemoStep("generate responses", "skipped", "no invitation was sent, so nobody can answer"))
        add(DemoStep("import responses", "skipped", "no responses to import"))
        return
    add(
        DemoStep(
            "generate responses",
            "ok",
            f"{written} response(s) written to {RESPONSES_FILE} "
            f"({int(RESPONSE_SHARE * 100)}% of the sent invitations, seeded, submitted by {to_db(responses_now)} UTC)",
            {"written": written},
        )
    )
    from cxctl.results.importer import import_responses

    try:
        imported = import_responses(ws, db, path, responses_now)
    except CxError as exc:
        add(DemoStep("import responses", "failed", str(exc)))
        return
    counts = {
        "read": imported.rows_read,
        "inserted": imported.inserted,
        "counted": imported.counted,
        "quarantined": imported.quarantined_total,
    }
    add(
        DemoStep(
            "import responses",
            "ok",
            f"{imported.rows_read} row(s) read, {imported.counted} counted, {imported.quarantined_total} quarantined",
            counts,
        )
    )


def _cases(ws, db, responses_now: datetime, maildir: Path, add) -> None:
    """What `responses import` does next: open the follow-up cases, each with its owner and due date, and
    alert the owners — by email through the same SMTP server, so the alerts land in the demo's Maildir."""
    from cxctl.delivery.transport import make_transport
    from cxctl.results.alerts import answers_stored

    saved = ws.settings.transport, ws.settings.smtp
    ws.settings.transport = "smtp"
    ws.settings.smtp = ws.settings.smtp.model_copy(
        update={"host": "127.0.0.1", "security": "none", "username_env": None, "password_env": None}
    )
    try:
        with MailServer(maildir) as server:
            ws.settings.smtp.port = server.port
            done = answers_stored(ws, db, responses_now, transport=make_transport(ws))
    except CxError as exc:
        add(DemoStep("follow-up cases", "failed", str(exc)))
        return
    finally:
        ws.settings.transport, ws.settings.smtp = saved
    if not done.opened:
        add(DemoStep("follow-up cases", "skipped", "no unhappy answer, so no case to open"))
        return
    first = db.execute(
        "SELECT response_id, owner, due_at FROM followups WHERE response_id = ?", [done.opened[0]]
    ).fetchone()
    sent = done.alerts.sent if done.alerts else 0
    add(
        DemoStep(
            "follow-up cases",
            "ok" if done.alerts is None or done.alerts.ok else "failed",
            f"{len(done.opened)} case(s) opened; case {first[0]} goes to {first[1] or 'nobody'}, due {first[2]} UTC; "
            f"{sent} alert(s) emailed to the owners, in the Maildir",
            {
                "opened": len(done.opened),
                "first_case": {"id": first[0], "owner": first[1], "due_at": first[2]},
                "alerts_sent": sent,
            },
        )
    )


def _results(ws, db, responses_now: datetime, add) -> None:
    from cxctl.results.followups import list_followups
    from cxctl.results.scorecard import compute_scorecard

    try:
        card = compute_scorecard(ws, db, responses_now)
    except CxError as exc:
        add(DemoStep("scorecard", "failed", str(exc)))
    else:
        responses = sum(row.responses for row in card.rows)
        add(
            DemoStep(
                "scorecard",
                "ok",
                f"{len(card.rows)} moment(s), {responses} response(s) from {card.since} "
                f"to {card.until} (cells under {card.min_responses} responses are marked insufficient)",
                {"scorecard": card},
            )
        )
    try:
        found = list_followups(ws, db, now=responses_now)
    except CxError as exc:
        add(DemoStep("follow-ups", "failed", str(exc)))
        return
    add(
        DemoStep(
            "follow-ups", "ok", f"{len(found.items)} unhappy respondent(s) to call back", {"followups": found.items}
        )
    )


def _report(ws, db, path: Path, responses_now: datetime, add) -> None:
    """`cxctl report`: the same figures as the scorecard, as one HTML page next to the workspace."""
    from cxctl.results.report import build_report
    from cxctl.results.report_render import render_report

    try:
        html = render_report(build_report(ws, db, responses_now))
    except CxError as exc:
        add(DemoStep("report", "failed", str(exc)))
        return
    path.write_text(html, encoding="utf-8")
    add(
        DemoStep(
            "report",
            "ok",
            f"the results as one HTML page: {path} ({len(html.encode('utf-8')) // 1024} KB, open it in a browser)",
            {"report": str(path)},
        )
    )
