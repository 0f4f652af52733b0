"""A bounded load test on 127.0.0.1 (the suite's size of bench/serve_answers.py): concurrent clients answer
distinct invitations through a real `cxctl serve` while a real `cxctl send` delivers on the same store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "serve_answers.py"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_answer_is_stored_once_while_a_send_runs_on_the_same_store(record_property):
    done = subprocess.run(
        [sys.executable, str(BENCH), "--clients", "20", "--answers", "1000", "--send", "200", "--no-bare", "--json"],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    result = json.loads(done.stdout)
    run = result["with_send"]
    store = run["store"]
    # Every answer stored once: one counted response per invitation, none lost, none doubled.
    assert (store["responses"], store["invitations_answered"], store["counted"], store["rollup_total"]) == (1000,) * 4
    assert run["answers"] == 1000 and run["failures"] == 0, run
    # The send lost nothing: every planned invitation delivered and recorded, none left sending or in doubt.
    assert store["sent"] == 200 and store["sink_messages"] == 200 and store["left_sending_or_in_doubt"] == 0
    assert result["send_report"]["sent"] == 200 and result["send_report"]["in_doubt"] == 0
    assert run["tokens_in_log"] == 0
    assert result["ok"]
    for key in ("answers_per_second", "p50_ms", "p99_ms"):
        record_property(key, run[key])
    print(
        f"\n{run['answers']} answers from 20 clients during a send of 200: {run['answers_per_second']} answers/s, "
        f"p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms"
    )
