"""EventLogger.import_events and LegacyDatabase: events kept as they were, on every backend."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_log import (
    Event,
    EventLogger,
    ImportResult,
    ImportSourceError,
    InvalidEventError,
    LegacyDatabase,
    LegacyImport,
)
from follow_helpers import started

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def item(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"imported-{n}",
        "event_type": "task.created",
        "source": "archive",
        "timestamp": T0 + timedelta(seconds=n),
        **fields,
    }


async def stored(log: EventLogger) -> list[Event]:
    return (await log.list_events(newest_first=False, limit=1000)).events


async def test_import_keeps_ids_and_timestamps_and_skips_stored_ids(log: EventLogger) -> None:
    original = Event(
        id="from-an-export",
        event_type="tool.called",
        source="a",
        task_id="t-1",
        agent_id="a-1",
        data={"n": 1},
        timestamp=T0,
    )
    texts = item(1, timestamp=(T0 + timedelta(seconds=1)).isoformat(), data={"k": "v"})
    result = await log.import_events([original, texts, item(2)])
    assert result == ImportResult(imported=3, already_present=0)
    events = await stored(log)
    assert events[0] == original
    assert [(e.id, e.timestamp) for e in events[1:]] == [
        ("imported-1", T0 + timedelta(seconds=1)),
        ("imported-2", T0 + timedelta(seconds=2)),
    ]
    assert events[1].data == {"k": "v"}

    # Again, and with an id repeated within the call: each id is stored once.
    again = await log.import_events([original, item(3), item(3), item(2)])
    assert again == ImportResult(imported=1, already_present=3)
    assert [e.id for e in await stored(log)][-1] == "imported-3"
    assert len(await stored(log)) == 4
    assert await log.import_events([]) == ImportResult(0, 0)


async def test_imported_events_are_validated_masked_and_limited(log: EventLogger) -> None:
    await log.import_events([item(1, data={"api_key": "sk-123", "n": 1})])
    assert (await stored(log))[0].data == {"api_key": "[REDACTED]", "n": 1}

    bad: list[tuple[Any, str]] = [
        ({**item(2), "colour": "red"}, "unknown field(s): colour"),
        ({k: v for k, v in item(3).items() if k != "id"}, "missing field(s): id"),
        (item(4, id="x" * 37), "at most 36"),
        (item(5, timestamp="2026-03-01T12:00:00"), "no UTC offset"),
        (item(6, timestamp="yesterday"), "not an ISO 8601 time"),
        (item(7, timestamp=datetime(2026, 3, 1)), "timezone-aware"),
        (item(8, event_type="Nope"), "'Nope'"),
        (item(9, data={"n": float("nan")}), "NaN"),
        (item(10, data={"big": "x" * 70_000}), "at most"),
        ("not a mapping", "expected an Event or a mapping"),
    ]
    for value, words in bad:
        with pytest.raises(InvalidEventError, match="event #1: ") as caught:
            await log.import_events([item(11), value])
        assert words in str(caught.value)
    assert len(await stored(log)) == 1  # nothing of a refused call was written

    result = await log.import_events([value for value, _ in bad] + [item(12)], skip_invalid=True)
    assert result.imported == 1
    assert [index for index, _ in result.invalid] == list(range(len(bad)))
    for (_, reason), (_, words) in zip(result.invalid, bad, strict=True):
        assert words in reason
    with pytest.raises(InvalidEventError, match="iterable"):
        await log.import_events(item(13))  # type: ignore[arg-type]


async def test_followers_see_imported_events_in_commit_order(log: EventLogger) -> None:
    follower = log.follow()
    first = asyncio.ensure_future(anext(follower))
    await started(follower)
    try:
        # Imported with a timestamp a year back, it still comes first: it committed first.
        await log.import_events([item(1, timestamp=T0 - timedelta(days=365))])
        await log.log_event("task.completed", "live")
        seen = [await asyncio.wait_for(first, 30), await asyncio.wait_for(anext(follower), 30)]
    finally:
        first.cancel()
        await follower.aclose()  # type: ignore[attr-defined]
    assert seen[0].id == "imported-1"
    assert seen[1].event_type == "task.completed"


async def test_an_import_wakes_followers_without_waiting_for_a_poll(backend_url: str) -> None:
    """Followers of the importing logger look as soon as the import commits: with a
    30 s poll, the imported event arrives within the 5 s this test waits."""
    async with EventLogger.open(backend_url, poll_interval=30) as log:
        follower = log.follow()
        first = asyncio.ensure_future(anext(follower))
        await started(follower)
        try:
            await log.import_events([item(1)])
            seen = await asyncio.wait_for(first, 5)
        finally:
            first.cancel()
            await follower.aclose()  # type: ignore[attr-defined]
    assert seen.id == "imported-1"


async def test_concurrent_imports_of_the_same_ids_store_each_once(log: EventLogger) -> None:
    batch = [item(n) for n in range(50)]
    results = await asyncio.gather(*(log.import_events(batch) for _ in range(4)))
    assert sum(r.imported for r in results) == 50
    assert sum(r.already_present for r in results) == 150
    assert sorted(e.id for e in await stored(log)) == sorted(i["id"] for i in batch)


import_items = st.dictionaries(
    st.sampled_from(["id", "event_type", "source", "task_id", "timestamp", "data", "extra"]),
    st.none()
    | st.text(max_size=40)
    | st.integers()
    | st.dictionaries(st.text(max_size=5), st.integers()),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(import_items, max_size=5))
def test_any_mapping_is_imported_or_reported(tmp_path: Path, items: list[dict[str, Any]]) -> None:
    async def go() -> ImportResult:
        async with EventLogger.open("sqlite+aiosqlite://") as log:
            return await log.import_events(items, skip_invalid=True)

    result = asyncio.run(go())
    assert result.imported + result.already_present + len(result.invalid) == len(items)
    assert all(reason and "\n" not in reason for _, reason in result.invalid)


# -- the original system's databases -----------------------------------------------------


def legacy_file(path: Path, rows: list[tuple[Any, ...]], table: str = "event_log") -> Path:
    conn = sqlite3.connect(path)
    conn.execute(
        f"CREATE TABLE {table} (id TEXT PRIMARY KEY, event_type TEXT, source TEXT, "
        "task_id TEXT, agent_id TEXT, data TEXT, timestamp TEXT)"
    )
    conn.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return path


async def test_legacy_database_import(log: EventLogger, tmp_path: Path) -> None:
    rows = [
        ("e1", "task.created", "c", "", "", "{}", "2026-03-01T12:00:00"),
        ("e2", "task.completed", "c", "t-1", None, '{"n": 1}', "2026-03-01T12:00:01.5+01:00"),
        ("e3", "task.created", "c", None, None, "not json", "2026-03-01T12:00:02"),
        ("e4", "Bad Type", "c", None, None, None, "2026-03-01T12:00:03"),
        ("e5", "task.created", "c", None, None, None, "no time"),
        ("e6", "task.created", "c", None, None, "[1, 2]", "2026-03-01T12:00:04Z"),
    ]
    path = legacy_file(tmp_path / "old.db", rows)
    invalid: list[tuple[str, str | None, str]] = []
    progress: list[int] = []
    with LegacyDatabase(path) as source:
        assert (source.tables, source.total) == (["event_log"], 6)
        result = await source.import_into(
            log,
            batch_rows=4,
            on_invalid=lambda *bad: invalid.append(bad),
            on_progress=progress.append,
        )
    assert (result.read, result.imported, result.already_present) == (6, 3, 0)
    assert [(t, i) for t, i, _ in result.invalid] == [
        ("event_log", "e3"),
        ("event_log", "e4"),
        ("event_log", "e5"),
    ]
    assert "not JSON" in result.invalid[0][2]
    assert list(result.invalid) == invalid
    assert progress == [4, 6]
    events = {e.id: e for e in await stored(log)}
    assert events["e1"].task_id is None
    assert events["e1"].data is None
    assert events["e1"].timestamp == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert events["e2"].timestamp == datetime(2026, 3, 1, 11, 0, 1, 500000, tzinfo=UTC)
    assert events["e6"].data == {"value": [1, 2]}

    with LegacyDatabase(path) as source:
        again = await source.import_into(log)
    assert again == LegacyImport(6, 0, 3, again.invalid)


def test_legacy_database_errors(tmp_path: Path) -> None:
    with pytest.raises(ImportSourceError, match="does not exist"):
        LegacyDatabase(tmp_path / "missing.db").__enter__()
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello " * 100)
    with pytest.raises(ImportSourceError, match="cannot"):
        LegacyDatabase(not_sqlite).__enter__()
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE events (id TEXT)")
    other.close()
    with pytest.raises(ImportSourceError, match="no table of the original system"):
        LegacyDatabase(tmp_path / "other.db").__enter__()
    source = LegacyDatabase(legacy_file(tmp_path / "ok.db", [], table="events"))
    with pytest.raises(ValueError, match="not open"):
        next(source.batches("events", 10))
    with source:
        assert source.tables == ["events"]
        with pytest.raises(ValueError, match="not one of its tables"):
            next(source.batches("event_log", 10))


async def test_a_legacy_file_damaged_midway_keeps_what_came_before(
    log: EventLogger, tmp_path: Path
) -> None:
    # Larger than SQLite's page cache, so the damaged pages are read from the file.
    rows = [
        (f"e{n}", "task.created", "c", None, None, json.dumps({"pad": "x" * 900}), T0.isoformat())
        for n in range(12_000)
    ]
    path = legacy_file(tmp_path / "old.db", rows)
    with LegacyDatabase(path) as source:
        size = path.stat().st_size
        with path.open("r+b") as f:
            f.seek(size // 2)
            f.write(b"\xff" * (size // 4))
        with pytest.raises(ImportSourceError, match=r"cannot read .*after \d+ rows") as caught:
            await source.import_into(log, batch_rows=1000)
    kept = len((await log.list_events(limit=1000)).events)
    assert kept > 0
    assert "new event(s) before it were imported" in str(caught.value)
