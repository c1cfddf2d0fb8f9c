"""``event-log prune --override``, reclaimable space in ``stats`` and ``import --from-sqlite``
on file SQLite and PostgreSQL through click's CliRunner."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import cli, fails, ok
from event_log import Event, EventLogger


def seed(url: str, events: list[dict[str, Any]]) -> None:
    async def go() -> None:
        async with EventLogger.open(url) as log:
            await log.log_events(events)

    asyncio.run(go())


def all_events(url: str) -> list[Event]:
    async def go() -> list[Event]:
        found: list[Event] = []
        cursor = None
        async with EventLogger.open(url) as log:
            while True:
                page = await log.list_events(limit=1000, cursor=cursor, newest_first=False)
                found += page.events
                if (cursor := page.next_cursor) is None:
                    return found

    return asyncio.run(go())


# -- prune --override ---------------------------------------------------------------------


@pytest.fixture
def url(migratable_url: str) -> str:
    ok(cli(migratable_url, "db", "upgrade"))
    return migratable_url


def _aged(now: datetime, event_type: str, days: float) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "source": "test",
        "data": {"age_days": days},
        "timestamp": now - timedelta(days=days),
    }


def test_prune_with_overrides_longest_match_wins(url: str) -> None:
    now = datetime.now(UTC)
    types = ["tool.called", "tool.failed", "system.error", "task.created"]
    ages = [3, 10, 40, 100]
    seed(url, [_aged(now, t, a) for t in types for a in ages])
    args = ["prune", "--older-than", "30d", "--override", "tool.*=7d"]
    args += ["--override", "tool.failed=60d", "--override", "system.error=90d"]
    # tool.called: 10, 40, 100 days (tool.* 7d); tool.failed: 100 (its own 60d beats tool.*);
    # system.error: 100 (90d); task.created: 40, 100 (the default, 30d).
    expected_gone = {
        ("tool.called", 10),
        ("tool.called", 40),
        ("tool.called", 100),
        ("tool.failed", 100),
        ("system.error", 100),
        ("task.created", 40),
        ("task.created", 100),
    }

    dry = ok(cli(url, *args, "--dry-run")).stdout
    assert "Would delete 7 events older than 30d" in dry
    assert "tool.* older than 7d" in dry
    assert len(all_events(url)) == 16

    refused = cli(url, *args, input="n\n")
    assert refused.exit_code == 1
    assert "Delete 7 events" in refused.stdout
    assert len(all_events(url)) == 16

    assert "Deleted 7 events" in ok(cli(url, *args, "--yes")).stdout
    left = {(e.event_type, e.data["age_days"]) for e in all_events(url) if e.data}
    assert left == {(t, a) for t in types for a in ages} - expected_gone
    assert "No events older than 30d" in ok(cli(url, *args, "--dry-run")).stdout

    # An override longer than the default keeps what the default would delete, and
    # an override equal to the default changes nothing.
    seed(url, [_aged(now, "task.created", 45), _aged(now, "task.failed", 45)])
    keep = ["--override", "tool.failed=60d", "--override", "system.error=90d"]
    longer = ["prune", "--older-than", "30d", "--override", "task.*=60d", *keep, "-y"]
    assert "No events" in ok(cli(url, *longer)).stdout
    same = [*longer[:-1], "--override", "task.failed=30d", "-y"]
    assert "Deleted 1 event " in ok(cli(url, *same)).stdout
    assert ("task.failed", 45) not in {
        (e.event_type, e.data["age_days"]) for e in all_events(url) if e.data
    }


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("tool.*", ["TYPE=DURATION"]),
        ("=7d", ["TYPE=DURATION"]),
        ("BadType=7d", ["'BadType'", "prefix pattern"]),
        ("tool.*=7", ["'7'", "duration"]),
        ("tool.*=soon", ["'soon'", "duration"]),
    ],
)
def test_prune_bad_override_is_a_usage_error(
    tmp_path: Path, override: str, words: list[str]
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'never-created.db'}"
    fails(cli(db, "prune", "--older-than", "30d", "--override", override), 2, "--override", *words)
    twice = ["--override", "tool.*=7d", "--override", "tool.*=8d"]
    fails(cli(db, "prune", "--older-than", "30d", *twice), 2, "twice")
    assert not (tmp_path / "never-created.db").exists()


# -- stats: reclaimable space -------------------------------------------------------------


@pytest.mark.sqlite
def test_stats_shows_reclaimable_space_on_sqlite(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    ok(cli(db, "db", "upgrade"))
    now = datetime.now(UTC)
    seed(db, [{**_aged(now, "tool.called", 40), "data": {"pad": "x" * 2000}}] * 500)
    stats = json.loads(ok(cli(db, "stats", "-F", "json")).stdout)
    assert stats["auto_vacuum"] == "incremental"
    assert stats["reclaimable_bytes"] == 0
    assert stats["dead_rows"] is None
    size_before = stats["size_bytes"]

    assert "Deleted 500 events" in ok(cli(db, "prune", "--older-than", "30d", "-y")).stdout
    stats = json.loads(ok(cli(db, "stats", "-F", "json")).stdout)
    assert stats["rows"] == 0
    assert isinstance(stats["reclaimable_bytes"], int)
    assert stats["reclaimable_bytes"] >= 0  # prune already handed the free pages back
    assert stats["auto_vacuum"] == "incremental"
    table = ok(cli(db, "stats", "-F", "table")).stdout
    assert "reclaimable" in table
    assert "incremental auto-vacuum" in table
    assert size_before > 0

    # An older file without auto-vacuum: its free pages show, with what to run.
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("PRAGMA auto_vacuum = NONE")
        conn.execute("CREATE TABLE filler (x TEXT)")
        conn.executemany("INSERT INTO filler VALUES (?)", [("y" * 4000,)] * 200)
    conn.close()
    old_url = f"sqlite+aiosqlite:///{old}"
    ok(cli(old_url, "db", "upgrade"))
    with sqlite3.connect(old) as conn:
        conn.execute("DROP TABLE filler")
    conn.close()
    stats = json.loads(ok(cli(old_url, "stats", "-F", "json")).stdout)
    assert stats["auto_vacuum"] == "none"
    assert stats["reclaimable_bytes"] >= 200 * 4000
    assert "VACUUM" in ok(cli(old_url, "stats", "-F", "table")).stdout


@pytest.mark.postgres
def test_stats_on_postgres_shows_dead_rows(postgres_only_url: str) -> None:
    ok(cli(postgres_only_url, "db", "upgrade"))
    stats = json.loads(ok(cli(postgres_only_url, "stats", "-F", "json")).stdout)
    assert stats["reclaimable_bytes"] is None
    assert stats["auto_vacuum"] is None
    assert "dead_rows" in stats


# -- import --from-sqlite -----------------------------------------------------------------

LAYOUTS = {
    # The original design: data is JSON text or NULL.
    "event_log": """CREATE TABLE event_log (
        id TEXT PRIMARY KEY, event_type TEXT NOT NULL, source TEXT NOT NULL,
        task_id TEXT, agent_id TEXT, data TEXT, timestamp TEXT NOT NULL)""",
    # data/events.db: '' ids and '{}' data by default.
    "events": """CREATE TABLE events (
        id TEXT PRIMARY KEY, event_type TEXT NOT NULL, source TEXT NOT NULL,
        task_id TEXT DEFAULT '', agent_id TEXT DEFAULT '', data TEXT DEFAULT '{}',
        timestamp TEXT NOT NULL)""",
}
LEGACY_TYPES = [
    "task.created",
    "tool.called",
    "timmy.thought",
    "error.captured",
    "bug_report.created",
]
BASE = datetime(2025, 6, 1, 8, 0, 0)  # naive, as the original system wrote it
N_GOOD = 3000


def _legacy_timestamp(i: int) -> tuple[str, datetime]:
    naive = BASE + timedelta(seconds=i, microseconds=(i * 7919) % 1_000_000)
    kind = i % 5
    if kind == 0:  # naive with a fraction: UTC
        return naive.isoformat(), naive.replace(tzinfo=UTC)
    if kind == 1:  # naive without a fraction
        whole = naive.replace(microsecond=0)
        return whole.isoformat(), whole.replace(tzinfo=UTC)
    if kind == 2:  # an offset
        aware = naive.replace(tzinfo=timezone(timedelta(hours=2)))
        return aware.isoformat(), aware.astimezone(UTC)
    if kind == 3:  # UTC with +00:00
        aware = naive.replace(tzinfo=UTC)
        return aware.isoformat(), aware
    aware = naive.replace(tzinfo=UTC)  # Z
    return aware.isoformat().replace("+00:00", "Z"), aware


def build_legacy(path: Path, layout: str) -> tuple[dict[str, tuple[Any, ...]], list[str]]:
    """A legacy database with N_GOOD good rows and a few bad ones; the expected events by
    id, and the bad rows' ids."""
    expected: dict[str, tuple[Any, ...]] = {}
    rows: list[tuple[Any, ...]] = []
    for i in range(N_GOOD):
        event_id = str(uuid.uuid4())
        event_type = LEGACY_TYPES[i % len(LEGACY_TYPES)]
        text, when = _legacy_timestamp(i)
        task = f"t-{i % 50}" if i % 3 else ""
        agent = f"a-{i % 7}" if i % 4 else ("" if layout == "events" else None)
        if i % 6 == 0:
            data, plain = "{}", None
        elif i % 6 == 1:
            data, plain = ("null" if layout == "events" else None), None
        else:
            plain = {"n": i, "text": "ünïcode ✓", "nested": {"ok": [1, None]}}
            data = json.dumps(plain)
        rows.append((event_id, event_type, f"src-{i % 3}", task, agent, data, text))
        expected[event_id] = (event_type, f"src-{i % 3}", task or None, agent or None, plain, when)
    bad = [
        ("bad-type-1", "BadType", "x", "", "", "{}", BASE.isoformat()),
        ("bad-time-1", "task.created", "x", "", "", "{}", "yesterday"),
        ("bad-data-1", "task.created", "x", "", "", "{not json", BASE.isoformat()),
        ("bad-type-2", "no dots", "x", "", "", "{}", BASE.isoformat()),
    ]
    conn = sqlite3.connect(path)
    try:
        conn.execute(LAYOUTS[layout])
        columns = "id, event_type, source, task_id, agent_id, data, timestamp"
        insert = f"INSERT INTO {layout} ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        conn.executemany(insert, rows[:1500] + bad + rows[1500:])
        if layout == "events":  # rows written by the defaults
            conn.execute(
                "INSERT INTO events (id, event_type, source, timestamp) VALUES (?, ?, ?, ?)",
                ("defaults-1", "timmy.thought", "timmy", "2025-06-02T00:00:00"),
            )
            expected["defaults-1"] = (
                "timmy.thought",
                "timmy",
                None,
                None,
                None,
                datetime(2025, 6, 2, tzinfo=UTC),
            )
        conn.commit()
    finally:
        conn.close()
    return expected, [row[0] for row in bad]


def _stored(event: Event) -> tuple[Any, ...]:
    return (
        event.event_type,
        event.source,
        event.task_id,
        event.agent_id,
        event.data,
        event.timestamp,
    )


@pytest.mark.parametrize("layout", ["event_log", "events"])
def test_import_from_legacy_sqlite(migratable_url: str, tmp_path: Path, layout: str) -> None:
    legacy = tmp_path / f"legacy-{layout}.db"
    expected, bad_ids = build_legacy(legacy, layout)
    total = len(expected) + len(bad_ids)

    # Into an empty database: the schema is created first, as for a JSON lines import.
    first = cli(migratable_url, "import", "--from-sqlite", str(legacy))
    assert first.exit_code == 1, (first.stdout, first.stderr)
    assert f"Read {total} rows" in first.stdout
    assert f"(table {layout})" in first.stdout
    assert f"imported {len(expected)} new events" in first.stdout
    assert "0 already present" in first.stdout
    assert f"{len(bad_ids)} bad rows skipped" in first.stdout
    reported = first.stderr.splitlines()
    assert len(reported) == len(bad_ids)
    for bad_id, line in zip(bad_ids, reported, strict=True):
        assert f"id='{bad_id}'" in line
    assert "'BadType'" in reported[0]
    assert "'yesterday'" in reported[1]
    assert "not JSON" in reported[2]
    assert "Traceback" not in first.output

    stored = {e.id: _stored(e) for e in all_events(migratable_url)}
    assert stored == expected  # zero rows lost, every value as converted

    # The JSON output of the CLI agrees.
    lines = ok(cli(migratable_url, "query", "--all", "-F", "json")).stdout.splitlines()
    assert len(lines) == len(expected)

    second = cli(migratable_url, "import", "--from-sqlite", str(legacy))
    assert second.exit_code == 1
    assert "imported 0 new events" in second.stdout
    assert f"{len(expected)} already present" in second.stdout
    assert len(all_events(migratable_url)) == len(expected)


def test_import_from_legacy_sqlite_without_bad_rows_exits_0(url: str, tmp_path: Path) -> None:
    legacy = tmp_path / "clean.db"
    conn = sqlite3.connect(legacy)
    conn.execute(LAYOUTS["events"])
    conn.execute(
        "INSERT INTO events (id, event_type, source, timestamp) VALUES "
        "('e-1', 'error.captured', 'timmy', '2025-06-01T10:00:00.5+01:00'), "
        "('e-2', 'bug_report.created', 'user', '2025-06-01T10:00:00')"
    )
    conn.commit()
    conn.close()
    result = ok(cli(url, "import", "--from-sqlite", str(legacy)))
    assert "imported 2 new events (0 already present)" in result.stdout
    events = {e.id: e for e in all_events(url)}
    assert events["e-1"].timestamp == datetime(2025, 6, 1, 9, 0, 0, 500000, tzinfo=UTC)
    assert events["e-1"].data is None
    assert events["e-2"].task_id is None
    assert "2 already present" in ok(cli(url, "import", "--from-sqlite", str(legacy))).stdout


@pytest.mark.sqlite
def test_import_from_sqlite_errors(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'target.db'}"
    fails(cli(db, "import"), 2, "--from-sqlite")
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE things (id TEXT)")
    conn.close()
    fails(cli(db, "import", "x.jsonl", "--from-sqlite", str(other)), 2, "either")
    fails(cli(db, "import", "--from-sqlite", str(other)), 1, "event_log", "events")
    fails(cli(db, "import", "--from-sqlite", str(tmp_path / "missing.db")), 1, "does not exist")
    not_sqlite = tmp_path / "text.db"
    not_sqlite.write_text("hello, not a database\n" * 100)
    fails(cli(db, "import", "--from-sqlite", str(not_sqlite)), 1, "cannot")
