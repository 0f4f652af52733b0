"""Benchmark: `deliver` end to end (choose, render, sign, build MIME, send, record state) against a bare
aiosmtplib loop that only sends the same number of prebuilt messages, same concurrency, to the same local
aiosmtpd sink (in its own process), alternated in every round (bare loop first), each in a fresh process
on a fresh store. Memory: peak RSS of the end-to-end run at a quarter of the size too (flat is the goal).

    python bench/send_throughput.py [--scale 0.1] [--rounds 3]     # --scale 1 = 20,000 invitations
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import shutil
import socket
import time
from pathlib import Path

import harness
from harness import Row, Sample

NOW = "2026-11-23T10:00:00+00:00"
SECRET = harness.SECRET
CONCURRENCY = 8

WORKSPACE = """\
workspace:
  name: Boutique bench
  default_language: fr
  languages: [fr, en]
  sender: {{name: Service Client Élodie, address: avis@boutique.example, reply_to: service@boutique.example}}
  survey_url: "https://survey.example/s/{{moment}}?lang={{lang}}&t={{token}}"
  unsubscribe_url: "https://boutique.example/desinscription?t={{token}}"
  unsubscribe_mailto: desinscription@boutique.example
  transport: smtp
  smtp: {{host: 127.0.0.1, port: {port}, concurrency: {concurrency}, max_attempts: 3}}
journeys:
  ecommerce: {{name: {{fr: Parcours e-commerce, en: E-commerce journey}}, stages: [delivery]}}
questions:
  nps: {{type: nps, text: {{fr: Recommanderiez-vous notre boutique à un proche ?, en: Would you recommend us?}}}}
moments:
  delivery_nps:
    name: {{fr: votre livraison, en: your delivery}}
    journey: ecommerce
    stage: delivery
    kind: transactional
    trigger: {{event: order_delivered, delay: 1d, expires: 30d}}
    questions: [nps]
    targets: {{nps: 30}}
"""


# --- the sink, in its own process ---------------------------------------------------------------


class CountingSink:
    def __init__(self, counter):
        self.counter = counter

    async def handle_DATA(self, server, session, envelope):
        with self.counter.get_lock():
            self.counter.value += 1
        return "250 OK"


def run_sink(port: int, counter, ready) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(CountingSink(counter), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


# --- setup ----------------------------------------------------------------------------------------


def make_workspace(n: int, port: int, concurrency: int) -> Path:
    root = harness.data_dir("send") / f"ws-{n}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "cxctl.yaml").write_text(WORKSPACE.format(port=port, concurrency=concurrency), encoding="utf-8")
    os.environ["CXCTL_SECRET"] = SECRET
    from cxctl import store
    from cxctl.core import tokens
    from cxctl.validation import load_workspace

    ws = load_workspace(root)
    db = store.connect(ws.database)
    secret = ws.secret()
    stamp = "2026-11-22 09:00:00"
    first_names = ["Zoé", "Jérôme", "Anaïs", "John", "Li", "Maëlle", "François", "Chloé"]
    db.execute("BEGIN")
    db.conn.executemany(
        "INSERT INTO contacts (id, external_id, email, email_hash, first_name, last_name, language, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                i,
                f"C{i}",
                f"client{i}@example.com",
                store.email_hash(f"client{i}@example.com"),
                first_names[i % 8],
                "Lefèvre-Dupont",
                "en" if i % 5 == 0 else "fr",
                stamp,
                stamp,
            )
            for i in range(1, n + 1)
        ],
    )
    db.conn.executemany(
        "INSERT INTO events (id, event_key, contact_id, type, occurred_at, attributes, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (i, f"E{i}", i, "order_delivered", stamp, json.dumps({"order_id": f"A{i:06d}", "amount": 42.5}), stamp)
            for i in range(1, n + 1)
        ],
    )
    db.conn.executemany(
        "INSERT INTO invitations (dedupe_key, token, contact_id, moment, event_id, kind, language, email, send_at, status, created_at, updated_at) "
        "VALUES (?, ?, ?, 'delivery_nps', ?, 'invitation', ?, ?, ?, 'planned', ?, ?)",
        [
            (
                f"delivery_nps|{i}|e{i}",
                tokens.new_token(secret),
                i,
                i,
                "en" if i % 5 == 0 else "fr",
                f"client{i}@example.com",
                stamp,
                stamp,
                stamp,
            )
            for i in range(1, n + 1)
        ],
    )
    db.execute("COMMIT")
    db.conn.close()
    return root


# --- the two contenders (each in a fresh process, so peak RSS is its own) ----------------------------


def end_to_end(root: str, result) -> None:
    os.environ["CXCTL_SECRET"] = SECRET
    from cxctl import store
    from cxctl.core.timeutil import parse_now
    from cxctl.delivery.send import deliver
    from cxctl.delivery.transport import SmtpTransport
    from cxctl.validation import load_workspace

    ws = load_workspace(Path(root))
    db = store.connect(ws.database)
    start = time.perf_counter()
    report = deliver(ws, db, parse_now(NOW), SmtpTransport(ws.settings.smtp))
    elapsed = time.perf_counter() - start
    result.put(
        {
            "sent": report.sent,
            "failed": report.failed,
            "seconds": elapsed,
            "rss_mb": harness.own_peak_mb(),
        }
    )


def bare_loop(root: str, concurrency: int, result) -> None:
    """Prebuild the messages (not timed), then only send them: aiosmtplib, `concurrency` connections."""
    os.environ["CXCTL_SECRET"] = SECRET
    import aiosmtplib

    from cxctl import store
    from cxctl.core.timeutil import parse_now
    from cxctl.delivery.mime import MessageBuilder
    from cxctl.delivery.render import Renderer, contact_vars, event_vars
    from cxctl.validation import load_workspace

    ws = load_workspace(Path(root))
    db = store.connect(ws.database)
    renderer, builder = Renderer(ws, ws.secret()), MessageBuilder(ws)
    messages = []
    for row in db.execute(
        "SELECT i.id, i.token, c.email, c.first_name, c.last_name, c.language, e.type, e.occurred_at, "
        "e.attributes FROM invitations i JOIN contacts c ON c.id = i.contact_id JOIN events e ON e.id = i.event_id"
    ):
        lang, templates = renderer.templates("delivery_nps", False, renderer.language_for(row[5]))
        contact = contact_vars({"email": row[2], "first_name": row[3], "last_name": row[4], "language": row[5]})
        variables = renderer.variables(
            token=row[1],
            moment_id="delivery_nps",
            lang=lang,
            reminder=False,
            contact=contact,
            event=event_vars(row[6], row[7], row[8]),
        )
        _, data = builder.build(
            invitation_id=row[0],
            token=row[1],
            to_name=contact["name"],
            to_address=row[2],
            rendered=renderer.render(templates, variables),
            date=parse_now(NOW),
            unsubscribe_url=variables["unsubscribe_url"],
        )
        messages.append((row[2], data))
    smtp = ws.settings.smtp

    async def main() -> float:
        queue = iter(messages)

        async def worker() -> None:
            client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, start_tls=False)
            await client.connect()
            for address, data in queue:
                await client.sendmail(ws.settings.sender.address, [address], data)
            await client.quit()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    result.put({"sent": len(messages), "seconds": elapsed})


def in_child(target, *args):
    ctx = mp.get_context("spawn")
    result = ctx.Queue()
    process = ctx.Process(target=target, args=(*args, result))
    process.start()
    value = result.get()
    process.join()
    return value


def run(scale: float, rounds: int) -> list[Row]:
    n = harness.scaled(20_000, scale, 200)
    small = max(100, n // 4)
    ctx = mp.get_context("spawn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    counter, ready = ctx.Value("i", 0), ctx.Event()
    sink = ctx.Process(target=run_sink, args=(port, counter, ready), daemon=True)
    sink.start()
    ready.wait(10)

    def contender(size: int, target, *args) -> Sample:
        root = make_workspace(size, port, CONCURRENCY)
        before = counter.value
        result = in_child(target, str(root), *args)
        assert counter.value - before == result["sent"] == size, (counter.value - before, result)
        return Sample(result["seconds"], peak_mb=result.get("rss_mb"))

    try:
        series = harness.alternate(
            {
                "bare": lambda: contender(n, bare_loop, CONCURRENCY),
                "deliver": lambda: contender(n, end_to_end),
                "deliver, a quarter": lambda: contender(small, end_to_end),
            },
            rounds,
        )
    finally:
        sink.terminate()
        shutil.rmtree(harness.data_dir("send"), ignore_errors=True)
    bare, full, quarter = series["bare"], series["deliver"], series["deliver, a quarter"]
    bare.label = f"bare aiosmtplib loop, {n:,} prebuilt messages"
    share = bare.median / full.median
    rate = n / full.median
    quarter_bare = harness.Series(
        f"bare loop at {n:,}, scaled to {small:,}", [Sample(b.seconds * small / n, load=b.load) for b in bare.samples]
    )
    return [
        Row(
            "send",
            f"`deliver` end to end, {CONCURRENCY} connections",
            f"{n:,} invitations",
            full,
            bare,
            "≥ 0.5 of the bare loop's rate",
            f"{rate:,.0f} msg/s = {share:.2f} of the bare loop's rate",
        ),
        Row(
            "send",
            "`deliver` end to end, a quarter of the invitations (memory flat?)",
            f"{small:,} invitations",
            quarter,
            quarter_bare,
            "flat memory",
            f"{small / quarter.median:,.0f} msg/s",
        ),
    ]


if __name__ == "__main__":
    harness.cli(run, __doc__)
