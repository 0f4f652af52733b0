"""Load test and benchmark of `cxctl serve`'s answer endpoint, all on 127.0.0.1.

1. `cxctl serve` (a real process) takes POST /s/{token} from CLIENTS concurrent keep-alive clients, one
   answer per distinct invitation, while a real `cxctl send` delivers SEND planned invitations of the
   same store to an aiosmtpd sink. Checked afterwards: every answer stored once (one counted response per
   invitation, none lost, none doubled) and every invitation of the send delivered (none left sending).
2. The same answers again, on a fresh store, with no send beside them.
3. A bare Starlette endpoint that does one SQLite insert per request (WAL, autocommit), under the same
   uvicorn settings, with the same clients.
Reports answers/s and p50/p99 latency of each, and cxctl's share of the bare endpoint's throughput (goal
>= 50 %). The clients speak minimal HTTP/1.1 over asyncio streams, so the server, not the client
library, is what is measured; they share the machine with the server all the same.

    .venv/bin/python bench/serve_answers.py [--clients 200] [--answers 20000] [--send 5000] [--repeat 3] [--json]
    .venv/bin/python bench/serve_answers.py --clients 20 --answers 1000 --send 200 --no-bare --json   # the suite's size

`python -m bench` calls run(scale, rounds): 200 clients, 20,000 answers and a send of 5,000 at scale 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

NOW = "2026-11-23T12:00:00+00:00"
SECRET = "bench-secret-not-for-production-0123456789"
COMMENT = "Livraison rapide, emballage soigné, merci à l'équipe !"

WORKSPACE = """\
workspace:
  name: Bench
  default_language: fr
  languages: [fr, en]
  sender: {{name: Service Client, address: avis@bench.example}}
  public_url: "http://127.0.0.1:{port}"
  transport: smtp
  smtp: {{host: 127.0.0.1, port: {smtp_port}, concurrency: 4, timeout: 10s}}
  min_responses: 1
rules:
  quiet_period: 1d
  send_window: {{days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}}
journeys:
  achat: {{name: Achat, stages: [livraison]}}
questions:
  nps: {{type: nps, text: {{fr: "Recommanderiez-vous notre boutique ?", en: "Would you recommend us?"}}}}
  nps_pourquoi: {{type: open, text: {{fr: "Pourquoi ?", en: "Why?"}}}}
moments:
  nps_livraison:
    journey: achat
    stage: livraison
    kind: transactional
    trigger: {{event: order_delivered, delay: 1h, expires: 14d}}
    questions: [nps, nps_pourquoi]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not answer /healthz")


def build_workspace(root: Path, port: int, smtp_port: int, answers: int, to_send: int) -> list[str]:
    """A workspace with `answers` sent invitations (their tokens returned) and `to_send` planned ones, due now."""
    from cxctl import store
    from cxctl.core import tokens
    from cxctl.validation import load_workspace

    root.mkdir(parents=True)
    (root / "cxctl.yaml").write_text(WORKSPACE.format(port=port, smtp_port=smtp_port), encoding="utf-8")
    ws = load_workspace(root)
    db = store.connect(ws.database)
    secret = SECRET.encode()
    stamp, sent_at = "2026-11-22 10:00:00", "2026-11-23 09:00:00"
    contacts = [
        (
            f"C{i}",
            f"client{i}@bench.example",
            store.email_hash(f"client{i}@bench.example"),
            "fr" if i % 3 else "en",
            stamp,
            stamp,
        )
        for i in range(answers + to_send)
    ]
    db.execute("BEGIN")
    db.conn.executemany(
        "INSERT INTO contacts (external_id, email, email_hash, language, attributes, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, '{}', ?, ?)",
        contacts,
    )
    invitations, answer_tokens = [], []
    for i in range(answers + to_send):
        token = tokens.new_token(secret)
        sent = i < answers
        if sent:
            answer_tokens.append(token)
        invitations.append(
            (
                f"nps_livraison|{i + 1}|b",
                token,
                i + 1,
                "nps_livraison",
                contacts[i][3],
                contacts[i][1],
                sent_at if sent else "2026-11-23 11:00:00",
                "sent" if sent else "planned",
                sent_at if sent else None,
                stamp,
                stamp,
            )
        )
    db.conn.executemany(
        "INSERT INTO invitations (dedupe_key, token, contact_id, moment, language, email, send_at, status,"
        " sent_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        invitations,
    )
    db.execute("COMMIT")
    db.conn.close()
    return answer_tokens


# --- the clients --------------------------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    await reader.readexactly(length)
    return status, close


async def _client(port: int, jobs, latencies: list[float], failures: list) -> None:
    reader = writer = None
    for token, body in jobs:
        request = (
            f"POST /s/{token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        for attempt in range(3):
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                started = time.perf_counter()
                writer.write(request)
                await writer.drain()
                status, close = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    failures.append(status)
                if close:
                    writer.close()
                    writer = None
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                # The server closed an idle keep-alive connection: open another and send again (a second
                # identical answer is left unchanged by the store, so a retry cannot double it).
                writer = None
                if attempt == 2:
                    failures.append("connection")
    if writer is not None:
        writer.close()


def drive(port: int, tokens: list[str], clients: int) -> dict:
    """POST one answer per token from `clients` concurrent connections; latencies and throughput."""
    from urllib.parse import urlencode

    def bodies():
        for i, token in enumerate(tokens):
            yield token, urlencode({"nps": str(i % 11), "nps_pourquoi": COMMENT}).encode()

    shared = bodies()  # one iterator, consumed by every client (one event loop: no race)
    latencies: list[float] = []
    failures: list = []

    async def main():
        await asyncio.gather(*(_client(port, shared, latencies, failures) for _ in range(clients)))

    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else 0.0

    return {
        "answers": len(latencies),
        "seconds": round(elapsed, 2),
        "answers_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "failures": len(failures),
        "failure_kinds": sorted(set(map(str, failures))),
    }


# --- the servers -----------------------------------------------------------------------------------------


def start_cxctl(root: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "CXCTL_SECRET": SECRET}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cxctl",
            "serve",
            "-w",
            str(root),
            "--port",
            str(port),
            "--posts-per-minute",
            "0",
            "--now",
            NOW,
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    wait_for(port, process)
    return process


def start_bare(db_path: Path, port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, __file__, "--bare-server", str(port), str(db_path)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_for(port, process)
    return process


def stop(process: subprocess.Popen) -> None:
    import signal

    process.send_signal(signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def run_bare_server(port: int, db_path: str) -> None:
    """The bare endpoint: read the form, one INSERT (autocommit, WAL), a short HTML answer; the uvicorn
    settings are those of `cxctl serve` (cxctl.web.server.uvicorn_settings)."""
    from urllib.parse import parse_qsl

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    from cxctl.web.server import ServeOptions, uvicorn_settings

    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS answers (id INTEGER PRIMARY KEY, token TEXT, nps INTEGER, comment TEXT)")

    async def answer(request):
        fields = dict(parse_qsl((await request.body()).decode("ascii")))
        conn.execute(
            "INSERT INTO answers (token, nps, comment) VALUES (?, ?, ?)",
            [request.path_params["token"], int(fields["nps"]), fields.get("nps_pourquoi")],
        )
        return HTMLResponse("<!doctype html><title>Merci</title><p>Merci !</p>")

    async def healthz(request):
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/s/{token}", answer, methods=["POST"]), Route("/healthz", healthz)])
    settings = uvicorn_settings(Path(db_path).parent, ServeOptions(port=port))
    uvicorn.run(app, **settings)


# --- the runs ----------------------------------------------------------------------------------------------


class Sink:
    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
        return "250 OK"


def check_store(root: Path, answers: int, to_send: int | None) -> dict:
    db = sqlite3.connect(root / "cxctl.db")
    q = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    checks = {
        "responses": q("SELECT COUNT(*) FROM responses"),
        "invitations_answered": q("SELECT COUNT(DISTINCT invitation_id) FROM responses"),
        "counted": q("SELECT COUNT(*) FROM responses WHERE status = 'counted'"),
        "answers_with_comment": q("SELECT COUNT(*) FROM answers WHERE question = 'nps_pourquoi'"),
        "rollup_total": q("SELECT COALESCE(SUM(n), 0) FROM response_rollup"),
    }
    ok = all(
        checks[k] == answers
        for k in ("responses", "invitations_answered", "counted", "answers_with_comment", "rollup_total")
    )
    if to_send is not None:
        checks["sent"] = q("SELECT COUNT(*) FROM invitations WHERE status = 'sent'") - answers
        checks["left_sending_or_in_doubt"] = q(
            "SELECT COUNT(*) FROM invitations WHERE status IN ('sending', 'in_doubt', 'planned', 'failed')"
        )
        ok = ok and checks["sent"] == to_send and checks["left_sending_or_in_doubt"] == 0
    db.close()
    checks["ok"] = ok
    return checks


def load_test(clients: int, answers: int, to_send: int, bare: bool, quiet: bool, repeat: int = 3) -> dict:
    from aiosmtpd.controller import Controller

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    result: dict = {"clients": clients, "answers": answers, "send": to_send, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="cxctl-serve-bench-") as tmp:
        tmp_path = Path(tmp)
        # 1. cxctl serve under a concurrent cxctl send.
        port, smtp_port = free_port(), free_port()
        root = tmp_path / "with-send"
        tokens = build_workspace(root, port, smtp_port, answers, to_send)
        sink = Sink()
        controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
        controller.start()
        server = start_cxctl(root, port, tmp_path / "serve-1.log")
        try:
            say(f"cxctl serve: {clients} clients × {answers} answers while cxctl send delivers {to_send} …")
            send = subprocess.Popen(
                [sys.executable, "-m", "cxctl", "send", "-w", str(root), "--now", NOW, "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "CXCTL_SECRET": SECRET},
            )
            result["with_send"] = drive(port, tokens, clients)
            out, err = send.communicate(timeout=600)
            report = json.loads(out) if send.returncode in (0, 1) and out.strip() else {"error": err.decode()[-2000:]}
            result["send_report"] = {
                k: report.get(k) for k in ("sent", "failed", "in_doubt", "skipped", "elapsed_seconds", "error")
            }
        finally:
            stop(server)
            controller.stop()
        result["with_send"]["store"] = check_store(root, answers, to_send)
        result["with_send"]["store"]["sink_messages"] = sink.count
        result["with_send"]["store"]["ok"] &= sink.count == to_send
        log_text = (tmp_path / "serve-1.log").read_text(errors="replace")
        result["with_send"]["tokens_in_log"] = sum(1 for t in tokens[:200] if t.split(".")[0] in log_text)
        say(json.dumps(result["with_send"]))
        if bare:
            # 2 and 3, alternated `repeat` times on fresh stores (the machine is shared: the median of each
            # side is reported, and the ratio is taken between runs made moments apart).
            alone_runs, bare_runs = [], []
            for round_ in range(repeat):
                port = free_port()
                root = tmp_path / f"alone-{round_}"
                tokens = build_workspace(root, port, free_port(), answers, 0)
                server = start_cxctl(root, port, tmp_path / f"serve-alone-{round_}.log")
                try:
                    say(f"round {round_ + 1}/{repeat}: cxctl serve alone …")
                    run_ = drive(port, tokens, clients)
                finally:
                    stop(server)
                run_["store"] = check_store(root, answers, None)
                alone_runs.append(run_)
                say(json.dumps(run_))
                port = free_port()
                bare_root = tmp_path / f"bare-{round_}"
                bare_root.mkdir()
                server = start_bare(bare_root / "bare.db", port, tmp_path / f"bare-{round_}.log")
                try:
                    say(f"round {round_ + 1}/{repeat}: bare Starlette endpoint …")
                    run_ = drive(port, tokens, clients)
                finally:
                    stop(server)
                db = sqlite3.connect(bare_root / "bare.db")
                run_["rows"] = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
                db.close()
                bare_runs.append(run_)
                say(json.dumps(run_))

            def median(runs):
                return sorted(runs, key=lambda r: r["answers_per_second"])[len(runs) // 2]

            result["cxctl_alone"], result["bare"] = median(alone_runs), median(bare_runs)
            result["alone_runs"], result["bare_runs"] = alone_runs, bare_runs
            result["rounds"] = [
                {
                    "cxctl": a["answers_per_second"],
                    "bare": b["answers_per_second"],
                    "share": round(a["answers_per_second"] / b["answers_per_second"], 3),
                }
                for a, b in zip(alone_runs, bare_runs, strict=True)
            ]
            shares = sorted(r["share"] for r in result["rounds"])
            result["share_median_of_rounds"] = shares[len(shares) // 2]  # each round pairs two runs made moments apart
            result["share_of_bare_throughput"] = round(
                result["cxctl_alone"]["answers_per_second"] / result["bare"]["answers_per_second"], 3
            )
            result["share_of_bare_throughput_under_send"] = round(
                result["with_send"]["answers_per_second"] / result["bare"]["answers_per_second"], 3
            )
            result["p99_vs_bare"] = round(result["cxctl_alone"]["p99_ms"] / max(result["bare"]["p99_ms"], 0.01), 2)
            result["alone_all_stored"] = all(r["store"]["ok"] for r in alone_runs)
    result["ok"] = (
        result["with_send"]["store"]["ok"]
        and result["with_send"]["failures"] == 0
        and result["with_send"]["tokens_in_log"] == 0
        and (not bare or result["alone_all_stored"])
    )
    return result


def run(scale: float, rounds: int) -> list:
    """The shared harness's entry: the load test at `scale`, `rounds` alternating rounds, as table rows."""
    import harness
    from harness import Row, Sample, Series

    clients = harness.scaled(200, scale, 10)
    answers = harness.scaled(20_000, scale, 200)
    to_send = harness.scaled(5_000, scale, 50)
    result = load_test(clients, answers, to_send, True, False, rounds)
    assert result["ok"], json.dumps(result)[:3000]

    def series(label: str, runs: list[dict]) -> Series:
        return Series(label, [Sample(r["seconds"]) for r in runs])

    bare = series("bare Starlette endpoint, one INSERT a request", result["bare_runs"])
    text = f"{answers:,} answers, {clients} clients"
    share = result["share_median_of_rounds"]
    return [
        Row(
            "serve",
            "`cxctl serve`, answers alone",
            text,
            series("alone", result["alone_runs"]),
            bare,
            "≥ 0.5 of the bare rate",
            f"{share:.2f} of the bare rate (median of rounds); p99 {result['cxctl_alone']['p99_ms']} ms",
        ),
        Row(
            "serve",
            f"`cxctl serve` while `cxctl send` delivers {to_send:,}",
            text,
            series("with send", [result["with_send"]]),
            bare,
            "",
            f"{result['with_send']['answers_per_second']:,.0f} answers/s; once",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--answers", type=int, default=20000)
    parser.add_argument("--send", type=int, default=5000)
    parser.add_argument("--no-bare", action="store_true", help="skip the runs without send and the bare endpoint")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of (cxctl alone, bare endpoint); medians reported"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    parser.add_argument("--bare-server", nargs=2, metavar=("PORT", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        run_bare_server(int(args.bare_server[0]), args.bare_server[1])
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    result = load_test(args.clients, args.answers, args.send, not args.no_bare, args.json, args.repeat)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
