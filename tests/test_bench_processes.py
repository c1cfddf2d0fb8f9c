"""``python -m bench.processes`` runs end to end, and fails in one line.

The quick run starts real writer processes against a scratch database made
from the session's PostgreSQL database, so it runs under PostgreSQL only.
Figures are not asserted (they are the benchmark's business), only that every
row was measured and printed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench import processes
from bench.processes import Row, Run, main

ROOT = Path(__file__).resolve().parent.parent

# (label, N) of every row of the table of a --quick run (N = 1 and 2).
QUICK_ROWS = [
    ("INSERT | log_event, one at a time", 1),
    ("INSERT | log_event, one at a time", 2),
    ("INSERT + pg_notify (info) | log_event", 2),
    ("10 tasks/process: INSERT | log_event", 1),
    ("10 tasks/process: INSERT | log_event", 2),
    ("bulk: COPY | log_events, 1,000 each", 1),
    ("bulk: one COPY (info) | log_events", 1),
    ("follow() under load: INSERT | log_event", 2),
]
_LINE = re.compile(
    r"^(?P<label>.+?)\s+(?P<n>\d+)\s+(?P<raw>[\d,]+)\s+(?P<logged>[\d,]+)\s+"
    r"(?P<ratio>\d+\.\d\d)x \((?P<low>\d+\.\d\d)-(?P<high>\d+\.\d\d)\)$"
)


@pytest.mark.postgres
def test_the_quick_run_prints_every_row(postgres_url: str) -> None:
    command = [sys.executable, "-m", "bench.processes", "--quick", "--postgres-url", postgres_url]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    lines = proc.stdout.splitlines()
    assert lines[0].startswith("PostgreSQL ")
    assert " CPUs; revision " in lines[0]
    rounds = [line for line in lines if line.startswith("round 1: ")]
    assert len(rounds) == len(QUICK_ROWS)
    assert "follow() median" in rounds[-1]

    header = next(i for i, line in enumerate(lines) if line.startswith("row "))
    table = [m for line in lines[header + 1 :] if (m := _LINE.match(line))]
    assert [(m["label"], int(m["n"])) for m in table] == QUICK_ROWS
    for m in table:
        assert int(m["raw"].replace(",", "")) > 0, m.string
        assert int(m["logged"].replace(",", "")) > 0, m.string
        # One round: the median is the only ratio, and it is the quotient of the two columns.
        assert m["ratio"] == m["low"] == m["high"], m.string
    delays = [line for line in lines if line.lstrip().startswith("follow() delay, ms:")]
    assert len(delays) == 2
    assert all(float(line.split()[4]) > 0 for line in delays)


def test_an_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--postgres-url", "postgresql+asyncpg://postgres@127.0.0.1:1/x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("PostgreSQL not reachable at postgresql+asyncpg://postgres@127.0.0.1:1")
    assert err.count("\n") == 1


@pytest.mark.postgres
def test_a_failing_worker_is_one_line(
    postgres_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Row("broken", 1, Run("no_such_mode", 1), Run("log_event", 1))
    monkeypatch.setattr(processes, "_rows", lambda ns: [broken])
    assert main(["--quick", "--postgres-url", postgres_url]) == 1
    err = capsys.readouterr().err
    assert err == (
        "bench.processes failed: a worker (no_such_mode, 1 process(es)) did not start: "
        "ValueError: unknown mode 'no_such_mode'; one of raw_insert, raw_insert_notify, "
        "log_event, raw_copy_batches, log_events_batches, raw_copy_once\n"
    )
