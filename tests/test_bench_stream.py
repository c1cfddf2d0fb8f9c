"""``python -m bench.stream --quick`` runs end to end, and fails in one line.

The quick run starts ``event-log serve`` on a fresh SQLite file, ten SSE
clients in two processes and a writer process logging 200 events/s for 3 s.
At that load every client must get every event exactly once; latencies and
CPU are the benchmark's business, not asserted beyond being measured.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bench.stream import main

ROOT = Path(__file__).resolve().parent.parent


def _table(lines: list[str], title: str) -> list[dict[str, str]]:
    """The rows of the markdown table under ``## title``, as header -> cell."""
    start = lines.index(f"## {title}")
    table = [line for line in lines[start + 1 :] if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    header, rule, *rows = cells
    assert all(set(cell) <= set("-:") for cell in rule)
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_the_quick_run_delivers_every_event_to_every_client_once() -> None:
    command = [sys.executable, "-m", "bench.stream", "--quick"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    lines = proc.stdout.splitlines()
    assert lines[0].startswith("# bench.stream (quick)")
    [row] = _table(lines, "Fan-out")
    assert (row["clients"], row["target ev/s"], row["written"]) == ("10", "200", "600")
    assert row["every event once"] == "yes", row
    assert row["delivered min"] == row["delivered median"] == "600", row
    assert row["delivered %"] == "100.0", row
    assert row["ended by server"] == "0", row
    assert float(row["p50 ms"].replace(",", "")) > 0, row
    assert float(row["p99 ms"].replace(",", "")) >= float(row["p50 ms"].replace(",", "")), row
    assert float(row["server CPU %"]) > 0, row
    assert "## Slow readers" not in proc.stdout  # --quick is the one fan-out row


def test_a_server_that_does_not_start_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--serve-options=--no-such-option"]) == 1
    err = capsys.readouterr().err
    failure = [line for line in err.splitlines() if not line.startswith("[bench.stream] ")]
    assert failure == [
        "bench.stream failed: event-log serve exited with 2 before answering: "
        "Error: No such option '--no-such-option'. (see 'event-log serve --help')"
    ]
