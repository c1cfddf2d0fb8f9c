"""``python -m bench --peers --quick`` runs end to end and reports every peer.

The quick run goes in a subprocess, as a user would run it, with its data and
JSON in a temporary directory. Its PostgreSQL rows run when the server
(``$EVENT_LOG_TEST_POSTGRES_URL``, else the local default) answers, and may be
skipped when it does not, except under ``CI=true``, where the run itself
reports them as errors. Figures are not asserted (they are the benchmark's
business), only that every row was measured, checked and printed.

The ``eventsourcing`` rows need the package (the ``bench`` and ``test``
extras): without it the module skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "eventsourcing", reason="eventsourcing is not installed: pip install -e '.[test]'"
)

from bench import peers
from bench.report import Row

ROOT = Path(__file__).resolve().parent.parent
PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
CLOSED_PORT_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/postgres"

PEERS = (
    ("log_event_sequential", "event-log", 100),
    ("log_event_concurrent", "event-log", 500),
    ("log_events_batches", "event-log", 500),
    ("original_sequential", "original module", 100),
    ("orm_sequential", "SQLAlchemy ORM repository", 100),
    ("orm_concurrent", "SQLAlchemy ORM repository", 500),
    ("eventsourcing_sequential", "eventsourcing recorder", 100),
    ("eventsourcing_batches", "eventsourcing recorder", 500),
)


def _cells(line: str) -> list[str]:
    """The cells of a line of a markdown table."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def test_the_quick_run_reports_every_peer(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    pg_url = os.environ.get("EVENT_LOG_TEST_POSTGRES_URL", PG_DEFAULT)
    command = [
        *(sys.executable, "-m", "bench", "--peers", "--quick"),
        *("--json", str(out), "--data-dir", str(tmp_path / "data"), "--postgres-url", pg_url),
    ]
    env = {k: v for k, v in os.environ.items() if k != "EVENT_LOG_URL"}
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr

    report = json.loads(out.read_text())
    rows = {row["id"]: row for row in report["rows"]}
    expected = [f"peers.{b}.{key}" for b in ("sqlite", "postgres") for key, _, _ in PEERS]
    assert list(rows) == expected
    assert report["meta"]["mode"] == "quick"

    pg_statuses = {rows[f"peers.postgres.{key}"]["status"] for key, _, _ in PEERS}
    # Without CI the PostgreSQL rows all run or are all skipped (one reason);
    # under CI they must have run.
    assert pg_statuses == {"ok"} or (not _in_ci() and pg_statuses == {"skipped"}), pg_statuses
    printed = [_cells(ln) for ln in proc.stdout.splitlines() if ln.startswith("| ")]
    for backend, title in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        for key, writer, events in PEERS:
            row = rows[f"peers.{backend}.{key}"]
            how = row["label"].split(" | ")[2]
            assert [title, writer, how] in [cells[:3] for cells in printed], row["label"]
            if row["status"] == "skipped":
                assert row["note"].startswith("PostgreSQL not reachable at"), row
                continue
            assert row["status"] == "ok", row
            m = row["metrics"]
            assert m["events"] == events, row
            assert m["rows_in_table"] == m["expected_rows"] == events - m["errors"] + 1, row
            assert m["events_per_s"] > 0, row
            assert m["ratio"] > 0, row
            assert m["errors_all_runs"] >= 0, row
        baseline = rows[f"peers.{backend}.log_event_sequential"]
        if baseline["status"] == "ok":
            assert baseline["metrics"]["ratio"] == pytest.approx(1.0)
            # event-log's own rows raise rather than count: an error there fails the run.
            for key, _, _ in PEERS[:3]:
                assert rows[f"peers.{backend}.{key}"]["metrics"]["errors"] == 0


def test_postgres_is_skipped_when_asked_or_unreachable_and_an_error_under_ci() -> None:
    assert peers.postgres_skip(None, ci=True) == ("skipped", "skipped (--skip-postgres)")
    skipped = peers.postgres_skip(CLOSED_PORT_URL, ci=False)
    assert skipped is not None
    assert skipped[0] == "skipped"
    assert skipped[1].startswith(f"PostgreSQL not reachable at {CLOSED_PORT_URL}")
    failed = peers.postgres_skip(CLOSED_PORT_URL, ci=True)
    assert failed is not None
    assert failed[0] == "error"
    assert failed[1].endswith("(CI=true: PostgreSQL is required)")


def test_the_table_shows_skipped_and_failed_rows_with_one_note_each() -> None:
    measured = Row("peers.sqlite.a", "writes", "SQLite | event-log | log_event, sequential")
    measured.metrics = {
        "events": 100,
        "events_per_s": 500.0,
        "events_per_s_runs": [450.0, 500.0, 1234.0],
        "ratio": 1.0,
        "errors_all_runs": 3,
    }
    measured.note = "3 x (sqlite3.OperationalError) database is locked"
    skipped = [
        Row(f"peers.postgres.{k}", "writes", f"PostgreSQL | w | {k}", status="skipped", note="down")
        for k in ("a", "b")
    ]
    failed = Row("peers.sqlite.b", "writes", "SQLite | w | b", status="error", note="boom")
    lines = peers.render([measured, *skipped, failed], ["heading"]).splitlines()

    assert lines[0] == "heading"
    table = [ln for ln in lines if ln.startswith("|")]
    assert len(table) == 2 + 4  # header, rule, a line per row
    header = ["events", "events/s", "runs: min-max", "vs log_event sequential", "errors"]
    assert _cells(table[0])[3:8] == header
    assert _cells(table[2])[3:8] == ["100", "500", "450-1,234", "1.00x", "3"]
    assert [_cells(ln)[4] for ln in table[3:]] == ["SKIP", "SKIP", "ERROR"]
    notes = [ln for ln in lines if ln.startswith("- ")]
    assert notes == [
        "- SQLite, event-log, log_event, sequential: "
        "3 x (sqlite3.OperationalError) database is locked",
        "- PostgreSQL, 2 rows: down",
        "- SQLite, w, b: boom",
    ]
