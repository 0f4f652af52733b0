"""Benchmark (issue 16): SMS send throughput of `deliver` end to end (choose the due rows, check consent, STOP and
SMS hours, render the text with its opt-out, commit `sending`, POST to the provider, record the outcome and the
provider's id) against a bare httpx loop that only POSTs the same pre-built requests, with the same concurrency,
in the same run, to the same local Twilio-contract server (tests/send/sms_providers.py, in its own process).
Rounds alternate (bare, cxctl, bare, cxctl…, bench/harness.py) so both see the same machine load; the goal
is ≥ 50 % of the bare loop's rate.

    .venv/bin/python bench/sms_send.py [--scale 0.1] [--rounds 3] [--concurrency 8] [--provider twilio|brevo]
                                                                   # --scale 1 = 3,000 SMS
"""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path

import harness
from harness import Row, Sample

HERE = Path(__file__).resolve().parent
NOW = "2026-11-23T10:00:00+00:00"  # a Monday, 11:00 in Paris: inside the SMS hours
SECRET = harness.SECRET

WORKSPACE = """\
workspace:
  name: Boutique bench
  default_language: fr
  languages: [fr, en]
  sender: {{name: Service Client, address: avis@boutique.example}}
  survey_url: "https://survey.example/s/{{moment}}?lang={{lang}}&t={{token}}"
  sms:
    transport: {provider}
    sender: BOUTIQUE
    opt_out: {{fr: STOP au 36111, en: Reply STOP to 36111}}
    concurrency: {concurrency}
    twilio: {{from_number: "+33644600000", base_url: "{url}"}}
    brevo: {{base_url: "{url}"}}
journeys:
  repairs: {{name: {{fr: Réparations, en: Repairs}}, stages: [repair]}}
questions:
  csat: {{type: csat, text: {{fr: Satisfait de la réparation ?, en: Happy with the repair?}}}}
moments:
  repair_sms:
    name: {{fr: votre réparation, en: your repair}}
    journey: repairs
    stage: repair
    kind: transactional
    trigger: {{event: repair_done, delay: 0s, expires: 7d}}
    questions: [csat]
    channels: [sms, email]
    targets: {{csat: 80}}
"""


def providers():
    spec = importlib.util.spec_from_file_location("sms_providers", HERE.parent / "tests" / "send" / "sms_providers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_server(port_box, ready) -> None:
    server = providers().ProviderServer()
    port_box.value = server.start()
    ready.set()
    while True:
        time.sleep(3600)


def credentials() -> None:
    server = providers().ProviderServer()  # the server's defaults: the same in every process
    os.environ.update(
        TWILIO_ACCOUNT_SID=server.account_sid,
        TWILIO_AUTH_TOKEN=server.auth_token,
        BREVO_API_KEY=server.api_key,
        CXCTL_SECRET=SECRET,
    )


def make_workspace(n: int, url: str, concurrency: int, provider: str) -> Path:
    root = harness.data_dir("sms") / f"ws-{n}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "cxctl.yaml").write_text(
        WORKSPACE.format(url=url, concurrency=concurrency, provider=provider), encoding="utf-8"
    )
    credentials()
    from cxctl import store
    from cxctl.audience.phones import phone_hash
    from cxctl.core import tokens
    from cxctl.validation import load_workspace

    ws = load_workspace(root)
    db = store.connect(ws.database)
    secret = ws.secret()
    stamp = "2026-11-23 09:00:00"
    names = ["Zoé", "Jérôme", "Anaïs", "John", "Li", "Maëlle", "François", "Chloé"]
    db.execute("BEGIN")
    db.conn.executemany(
        "INSERT INTO contacts (id, external_id, phone, phone_hash, sms_consent, first_name, language, country, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, 1, ?, ?, 'FR', ?, ?)",
        [
            (
                i,
                f"C{i}",
                f"+336{i:08d}",
                phone_hash(f"+336{i:08d}"),
                names[i % 8],
                "en" if i % 5 == 0 else "fr",
                stamp,
                stamp,
            )
            for i in range(1, n + 1)
        ],
    )
    db.conn.executemany(
        "INSERT INTO events (id, event_key, contact_id, type, occurred_at, attributes, imported_at)"
        " VALUES (?, ?, ?, 'repair_done', ?, '{}', ?)",
        [(i, f"E{i}", i, stamp, stamp) for i in range(1, n + 1)],
    )
    db.conn.executemany(
        "INSERT INTO invitations (dedupe_key, token, contact_id, moment, event_id, kind, language, channel, phone, send_at,"
        " status, created_at, updated_at) VALUES (?, ?, ?, 'repair_sms', ?, 'invitation', ?, 'sms', ?, ?, 'planned', ?, ?)",
        [
            (
                f"repair_sms|{i}|e{i}",
                tokens.new_token(secret),
                i,
                i,
                "en" if i % 5 == 0 else "fr",
                f"+336{i:08d}",
                stamp,
                stamp,
                stamp,
            )
            for i in range(1, n + 1)
        ],
    )
    db.execute("COMMIT")
    db.conn.close()
    shutil.copy(root / "cxctl.db", root / "pristine.db")
    return root


def end_to_end(root: str, result) -> None:
    credentials()
    from cxctl import store
    from cxctl.core.timeutil import parse_now
    from cxctl.delivery.send import deliver
    from cxctl.delivery.sms_transport import make_sms_transport
    from cxctl.delivery.transport import OutboxTransport
    from cxctl.validation import load_workspace

    for suffix in ("", "-wal", "-shm"):
        Path(f"{root}/cxctl.db{suffix}").unlink(missing_ok=True)
    shutil.copy(f"{root}/pristine.db", f"{root}/cxctl.db")
    ws = load_workspace(Path(root))
    db = store.connect(ws.database)
    start = time.perf_counter()
    report = deliver(ws, db, parse_now(NOW), OutboxTransport(ws.outbox_dir), sms_transport=make_sms_transport(ws))
    result.put({"sent": report.sent, "failed": report.failed, "seconds": time.perf_counter() - start})


def bare_loop(root: str, concurrency: int, result) -> None:
    """Pre-build the requests cxctl would send (not timed), then only POST them with httpx, `concurrency` at once."""
    credentials()
    import asyncio

    import httpx

    from cxctl import store
    from cxctl.delivery.sms_transport import make_sms_transport
    from cxctl.validation import load_workspace

    ws = load_workspace(Path(root))
    transport = make_sms_transport(ws)
    db = store.connect(Path(root) / "pristine.db")
    texts = [
        (phone, f"Bonjour {name}, votre avis ? https://survey.example/s/repair_sms?lang=fr&t={token}\nSTOP au 36111")
        for phone, name, token in db.execute(
            "SELECT i.phone, c.first_name, i.token FROM invitations i JOIN contacts c "
            "ON c.id = i.contact_id ORDER BY i.id"
        )
    ]

    async def main() -> tuple[float, int]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=15, limits=limits) as client:  # one shared pool, as httpx users write it
            requests = [
                transport.request(client, transport.sender(), phone, text, str(n))
                for n, (phone, text) in enumerate(texts)
            ]
            queue = list(reversed(requests))
            sent = 0

            async def worker() -> None:
                nonlocal sent
                while queue:
                    response = await client.send(queue.pop())
                    sent += response.status_code == 201

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.perf_counter() - start, sent

    seconds, sent = asyncio.run(main())
    result.put({"sent": sent, "failed": len(texts) - sent, "seconds": seconds})


def in_child(target, *args) -> dict:
    queue = mp.get_context("fork").Queue()
    process = mp.get_context("fork").Process(target=target, args=(*args, queue))
    process.start()
    outcome = queue.get(timeout=900)
    process.join()
    return outcome


def run(scale: float, rounds: int, concurrency: int = 8, provider: str = "twilio") -> list[Row]:
    n = harness.scaled(3_000, scale, 100)
    context = mp.get_context("fork")
    port, ready = context.Value("i", 0), context.Event()
    server = context.Process(target=run_server, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    try:
        root = make_workspace(n, f"http://127.0.0.1:{port.value}", concurrency, provider)

        def contender(target, *args) -> Sample:
            outcome = in_child(target, str(root), *args)
            assert outcome["sent"] == n, outcome
            return Sample(outcome["seconds"])

        series = harness.alternate(
            {"bare": lambda: contender(bare_loop, concurrency), "deliver": lambda: contender(end_to_end)}, rounds
        )
    finally:
        server.kill()
        shutil.rmtree(harness.data_dir("sms"), ignore_errors=True)
    bare, cxctl = series["bare"], series["deliver"]
    bare.label = f"bare httpx loop, {n:,} prebuilt requests"
    return [
        Row(
            "sms",
            f"`deliver` SMS end to end ({provider}, {concurrency} at once)",
            f"{n:,} SMS",
            cxctl,
            bare,
            "≥ 0.5 of the bare loop's rate",
            f"{n / cxctl.median:,.0f} SMS/s = {bare.median / cxctl.median:.2f} of the bare loop's rate",
        )
    ]


def main() -> None:
    parser = harness.arguments(__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--provider", choices=("twilio", "brevo"), default="twilio")
    args = parser.parse_args()
    rows = run(args.scale, args.rounds, args.concurrency, args.provider)
    print(harness.machine_line(rows))
    print()
    print(harness.table(rows))


if __name__ == "__main__":
    main()
