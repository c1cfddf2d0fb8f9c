"""The ``event-log`` command line, run through click's CliRunner on file SQLite and PostgreSQL.

Real processes (``tail -f`` stopped by SIGINT, a pipe into ``head``, the
console script itself) are in ``test_cli_process.py``.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from cli_helpers import cli, fails, ok
from event_log import Event, EventFilter, EventLogger
from event_log.cli._times import parse_duration, parse_time

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def _with_log(url: str, action: Any) -> Any:
    async with EventLogger.open(url) as log:
        return await action(log)


def with_log(url: str, action: Any) -> Any:
    return asyncio.run(_with_log(url, action))


def seed(url: str, events: Iterable[Mapping[str, Any]]) -> list[Event]:
    items = list(events)
    return with_log(url, lambda log: log.log_events(items))  # type: ignore[no-any-return]


def all_events(url: str) -> list[Event]:
    async def every(log: EventLogger) -> list[Event]:
        found, cursor = [], None
        while True:
            page = await log.list_events(limit=1000, cursor=cursor, newest_first=False)
            found += page.events
            if (cursor := page.next_cursor) is None:
                return found

    return with_log(url, every)  # type: ignore[no-any-return]


def story(t0: datetime = T0) -> list[dict[str, Any]]:
    """Two tasks, two agents, an error with a traceback, one event without data."""
    step = timedelta(milliseconds=250)
    rows: list[tuple[str, str, str | None, str | None, dict[str, Any] | None]] = [
        ("agent.joined", "coordinator", None, "a-1", {"skills": ["search"]}),
        ("agent.joined", "coordinator", None, "a-2", None),
        ("task.created", "coordinator", "t-1", None, {"title": "Find fees", "reward": 100}),
        ("bid.submitted", "a-1", "t-1", "a-1", {"bid_sats": 40}),
        ("bid.submitted", "a-2", "t-1", "a-2", {"bid_sats": 55}),
        ("task.assigned", "coordinator", "t-1", "a-1", {"bid_sats": 40}),
        ("tool.called", "a-1", "t-1", "a-1", {"tool": "web_search"}),
        ("tool.completed", "a-1", "t-1", "a-1", {"tool": "web_search", "ms": 12.5}),
        ("task.completed", "a-1", "t-1", "a-1", {"é": "ünïcode ✓", "nested": {"x": [1, None]}}),
        ("task.created", "coordinator", "t-2", None, {"title": "Plot"}),
        ("task.assigned", "coordinator", "t-2", "a-2", None),
        (
            "system.error",
            "swarm.coordinator",
            "t-2",
            "a-2",
            {"message": "crashed", "traceback": "Traceback (most recent call last):\n  boom\n"},
        ),
        ("task.failed", "coordinator", "t-2", "a-2", {"error": "crashed"}),
    ]
    return [
        {
            "event_type": t,
            "source": s,
            "task_id": task,
            "agent_id": agent,
            "data": data,
            "timestamp": t0 + i * step,
        }
        for i, (t, s, task, agent, data) in enumerate(rows)
    ]


@pytest.fixture
def url(migratable_url: str) -> str:
    """A migrated, empty database on file SQLite and PostgreSQL."""
    ok(cli(migratable_url, "db", "upgrade"))
    return migratable_url


@pytest.fixture
def filled(url: str) -> str:
    seed(url, story())
    return url


# -- parsing ------------------------------------------------------------------------------


def test_times_and_durations() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("1.5d") == timedelta(hours=36)
    assert parse_duration("2w") == timedelta(days=14)
    assert parse_time("2h", now=now) == now - timedelta(hours=2)
    assert parse_time("7d", now=now) == now - timedelta(days=7)
    assert parse_time("now", now=now) == now
    assert parse_time("2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_time("2026-03-01T12:00:00+02:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_time("2026-03-01T10:00:00.000001Z").microsecond == 1
    assert parse_time("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    for bad in ("", "15", "m", "15x", "1h 2", "-5m", "yesterday"):
        with pytest.raises(ValueError, match="neither an ISO time"):
            parse_time(bad, now=now)


# -- help, console script basics ----------------------------------------------------------


COMMANDS = [
    [],
    ["db"],
    ["db", "upgrade"],
    ["db", "downgrade"],
    ["db", "current"],
    ["db", "history"],
    ["db", "check"],
    ["db", "index-data"],
    ["log"],
    ["query"],
    ["task"],
    ["agent"],
    ["summary"],
    ["tail"],
    ["prune"],
    ["export"],
    ["import"],
    ["stats"],
    ["demo"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "event-log")
def test_every_command_has_help(command: list[str]) -> None:
    result = ok(cli(None, *command, "--help"))
    assert "Usage: event-log" in result.stdout


def test_no_command_shows_help_as_a_usage_error() -> None:
    result = cli(None)
    assert result.exit_code == 2
    assert "Commands:" in result.output
    assert "summary" in result.output


# -- db -----------------------------------------------------------------------------------


def test_db_commands(migratable_url: str) -> None:
    url = migratable_url
    assert "none (no event-log schema" in ok(cli(url, "db", "current")).stdout
    fails(cli(url, "query"), 1, "event-log db upgrade")
    assert "from an empty schema to 0004" in ok(cli(url, "db", "upgrade")).stdout
    assert "already at revision 0004" in ok(cli(url, "db", "upgrade")).stdout
    assert ok(cli(url, "db", "current")).stdout.strip() == "0004 (head)"
    history = ok(cli(url, "db", "history")).stdout.splitlines()
    assert history[0].startswith("0003 -> 0004 (head, current):")
    assert history[1].startswith("0002 -> 0003:")
    assert history[2].startswith("0001 -> 0002:")
    assert history[3].startswith("<base> -> 0001:")
    assert "matches event-log's model" in ok(cli(url, "db", "check")).stdout

    # Downgrading asks first; "no" changes nothing.
    refused = cli(url, "db", "downgrade", input="n\n")
    assert refused.exit_code == 1
    assert "Aborted" in refused.stderr
    assert ok(cli(url, "db", "current")).stdout.startswith("0004")
    assert "from 0004 to 0003" in ok(cli(url, "db", "downgrade", "--yes")).stdout
    assert "head is 0004" in ok(cli(url, "db", "current")).stdout
    fails(cli(url, "db", "check"), 1, "not up to date", "event-log db upgrade")
    fails(cli(url, "query"), 1, "revision 0003", "needs 0004", "event-log db upgrade")
    fails(cli(url, "db", "upgrade", "nope"), 2, "nope")
    ok(cli(url, "db", "upgrade"))

    # A schema that differs from the model is drift, found by `db check`.
    with_log(url, lambda log: _exec(log, "CREATE INDEX ix_extra ON event_log (source)"))
    fails(cli(url, "db", "check"), 1, "differs from event-log's model", "ix_extra")
    on_table = " ON event_log" if make_url(url).get_backend_name() == "mysql" else ""
    with_log(url, lambda log: _exec(log, f"DROP INDEX ix_extra{on_table}"))
    ok(cli(url, "db", "check"))

    assert "to base" in ok(cli(url, "db", "downgrade", "base", "--yes")).stdout
    assert ok(cli(url, "db", "current")).stdout.startswith("none")


async def _exec(log: EventLogger, sql: str) -> None:
    async with log.engine.begin() as conn:
        await conn.exec_driver_sql(sql)


def test_url_from_the_environment_and_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ok(cli(None, "db", "upgrade"))
    assert (tmp_path / "data" / "events.db").is_file()
    ok(cli(None, "log", "task.created", "--source", "me"))
    assert json_lines(ok(cli(None, "query")).stdout)[0]["source"] == "me"

    other = f"sqlite:///{tmp_path / 'env.db'}"  # a bare sqlite:// URL gets aiosqlite
    result = ok(cli(None, "log", "task.created", "-s", "env", env={"EVENT_LOG_URL": other}))
    assert json.loads(result.stdout)["source"] == "env"
    assert (tmp_path / "env.db").is_file()
    assert len(json_lines(ok(cli(None, "query")).stdout)) == 1


# -- log, query ---------------------------------------------------------------------------


def test_log_prints_the_stored_event(url: str) -> None:
    result = ok(
        cli(
            url,
            "log",
            "payment.settled",
            "--source",
            "a-7",
            "--task-id",
            "t-9",
            "--agent-id",
            "a-7",
            "--data",
            '{"sats": 420, "ok": true}',
            "--timestamp",
            "2026-03-01T12:00:00.000001+01:00",
        )
    )
    printed = json.loads(result.stdout)
    assert printed["event_type"] == "payment.settled"
    assert printed["data"] == {"sats": 420, "ok": True}
    assert printed["timestamp"] == "2026-03-01T11:00:00.000001Z"
    stored = all_events(url)
    assert [e.model_dump(mode="json") for e in stored] == [printed]

    table = ok(cli(url, "log", "task.created", "-s", "me", "-F", "table")).stdout
    assert "task.created" in table
    assert "source" in table

    fails(cli(url, "log", "NotAType", "-s", "me"), 2, "NotAType")
    fails(cli(url, "log", "task.created", "-s", "me", "--data", "{nope"), 2, "--data")
    fails(cli(url, "log", "task.created", "-s", "me", "--data", "[1]"), 2, "JSON object")
    fails(cli(url, "log", "task.created", "-s", "x" * 300), 2, "source")
    assert cli(url, "log", "task.created").exit_code == 2  # --source is required


def test_query_filters_and_formats(filled: str) -> None:
    url = filled

    def ids(*args: str) -> list[str]:
        return [e["event_type"] for e in json_lines(ok(cli(url, "query", *args)).stdout)]

    everything = ids("--all", "--oldest-first")
    assert len(everything) == 13
    assert everything[0] == "agent.joined"
    assert ids() == everything[::-1]  # newest first, JSON lines when not a terminal
    assert ids("--limit", "3") == everything[::-1][:3]
    assert ids("--limit", "2", "--oldest-first") == everything[:2]
    assert ids("--type", "task.created") == ["task.created"] * 2
    assert ids("-t", "task.*", "--task-id", "t-1", "--oldest-first") == [
        "task.created",
        "task.assigned",
        "task.completed",
    ]
    assert sorted(ids("--type", "bid.submitted", "--type", "system.error")) == sorted(
        ["bid.submitted", "bid.submitted", "system.error"]
    )
    assert sorted(ids("--type", "bid.*,tool.*")) == sorted(
        ["bid.submitted", "bid.submitted", "tool.called", "tool.completed"]
    )
    assert ids("--source", "a-2") == ["bid.submitted"]
    assert ids("--agent-id", "a-2", "--type", "task.*", "--oldest-first") == [
        "task.assigned",
        "task.failed",
    ]
    # --since inclusive, --until exclusive; ISO with or without an offset (UTC).
    at = (T0 + timedelta(milliseconds=500)).isoformat()
    assert ids("--since", at, "--until", "2026-03-01T12:00:01.123456", "--oldest-first") == [
        "task.created",
        "bid.submitted",
    ]
    assert ids("--until", "2026-03-01T13:00:00.2+01:00") == everything[:1]
    assert ids("--since", "1h") == []  # the story happened long before
    assert ids("--since", "3650d") == everything[::-1]

    rows = list(csv.DictReader(io.StringIO(ok(cli(url, "query", "-F", "csv")).stdout)))
    assert len(rows) == 13
    assert rows[0]["event_type"] == "task.failed"
    assert rows[0]["task_id"] == "t-2"
    assert json.loads(rows[0]["data"]) == {"error": "crashed"}
    assert rows[-1]["data"] == '{"skills":["search"]}'
    assert rows[-2]["data"] == ""

    table = ok(cli(url, "query", "-F", "table", "--task-id", "t-1")).stdout
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "TYPE"]
    assert len(lines) == 1 + 7
    assert "task.completed" in lines[1]
    assert "2026-03-01 12:00:02.123" in lines[1]

    empty = ok(cli(url, "query", "-F", "table", "--task-id", "nope"))
    assert empty.stdout == ""
    assert "No matching events" in empty.stderr

    fails(cli(url, "query", "--since", "3x"), 2, "--since", "15m")
    fails(cli(url, "query", "--until", "2026-13-01"), 2, "--until")
    fails(cli(url, "query", "--type", "Task"), 2, "'Task'")
    fails(cli(url, "query", "--type", "task."), 2, "task.")
    fails(cli(url, "query", "--limit", "0"), 2, "--limit")
    fails(cli(url, "query", "--all", "--limit", "5"), 2, "--all")
    fails(cli(url, "query", "-F", "xml"), 2, "xml")


def parse_where(text: str) -> tuple[str, str, Any]:
    """What ``--where TEXT`` filters on (the option's text goes to EventFilter.from_texts)."""
    conditions = EventFilter.from_texts({"data_where": [text]}).data_where
    assert conditions is not None
    assert len(conditions) == 1
    return conditions[0]


def test_parse_where() -> None:
    assert parse_where("bid_sats>100") == ("bid_sats", ">", 100)
    assert parse_where(" bid_sats >= 1.5 ") == ("bid_sats", ">=", 1.5)
    assert parse_where("model=gpt-4") == ("model", "=", "gpt-4")
    assert parse_where('model="42"') == ("model", "=", "42")
    assert parse_where("n=42") == ("n", "=", 42)
    assert parse_where("ok!=true") == ("ok", "!=", True)
    assert parse_where("x=null") == ("x", "=", None)
    assert parse_where("x<=NaN") == ("x", "<=", "NaN")
    assert parse_where("a!b<z") == ("a!b", "<", "z")
    assert parse_where("x=a=b") == ("x", "=", "a=b")
    assert parse_where("x=") == ("x", "=", "")
    with pytest.raises(ValueError, match="KEY OP VALUE"):
        parse_where("bid_sats")
    with pytest.raises(ValueError, match="key"):
        parse_where(" >= 3")


def test_query_tail_and_export_filter_on_data(filled: str) -> None:
    url = filled

    def sources(command: str, *args: str) -> list[str]:
        out = ok(cli(url, command, *args, *(["-o", "-"] if command == "export" else []))).stdout
        return [e["source"] for e in json_lines(out)]

    assert sources("query", "--where", "bid_sats>40") == ["a-2"]
    assert sources("query", "--where", "bid_sats >= 40", "--where", "bid_sats<50") == [
        "coordinator",
        "a-1",
    ]
    assert sources("query", "--data-contains", '{"bid_sats": 40}', "--type", "bid.*") == ["a-1"]
    assert sources("query", "--data-contains", '{"nested": {"x": [null]}}') == ["a-1"]
    assert sources("query", "--where", "tool=web_search", "--oldest-first") == ["a-1", "a-1"]
    assert sources("query", "--where", 'reward="100"') == []  # a string is not a number
    assert sources("tail", "-n", "5", "--where", "bid_sats=40") == ["a-1", "coordinator"]
    assert sources("export", "--data-contains", '{"error": "crashed"}') == ["coordinator"]

    fails(cli(url, "query", "--where", "bid_sats"), 2, "--where", "KEY OP VALUE")
    fails(cli(url, "query", "--where", "=5"), 2, "--where", "key")
    fails(cli(url, "query", "--where", "ok<true"), 2, "--where", "= or !=")
    fails(cli(url, "query", "--where", "x=[1]"), 2, "--where", "str, int, float")
    fails(cli(url, "query", "--where", "x>1e999"), 2, "--where", "finite")
    fails(cli(url, "tail", "--data-contains", "[1]"), 2, "--data-contains", "JSON object")
    fails(cli(url, "query", "--data-contains", "{nope"), 2, "--data-contains", "not valid JSON")
    fails(cli(url, "export", "-o", "-", "--data-contains", '{"x": NaN}'), 2, "NaN")


def test_db_index_data(url: str) -> None:
    out = ok(cli(url, "db", "index-data")).stdout
    if not url.startswith("postgresql"):  # SQLite, MariaDB
        assert "Nothing to build" in out
        return
    assert "Built ix_event_log_data_gin" in out
    assert "already exists" in ok(cli(url, "db", "index-data")).stdout
    ok(cli(url, "db", "check"))  # the optional index is not drift


def test_db_index_data_needs_the_schema(postgres_only_url: str) -> None:
    fails(cli(postgres_only_url, "db", "index-data"), 1, "event-log db upgrade")


def test_query_all_pages_through_with_cursors(url: str) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    # 2,150 events, many sharing a timestamp: pages of 1,000 must neither skip nor repeat.
    seed(
        url,
        (
            {
                "event_type": "tool.called",
                "source": "a",
                "timestamp": t0 + timedelta(seconds=i // 3),
            }
            for i in range(2150)
        ),
    )
    stored = [e.id for e in all_events(url)]
    newest_first = [e["id"] for e in json_lines(ok(cli(url, "query", "--all")).stdout)]
    assert newest_first == stored[::-1]
    oldest = json_lines(ok(cli(url, "query", "--all", "--oldest-first")).stdout)
    assert [e["id"] for e in oldest] == stored
    assert len(json_lines(ok(cli(url, "query", "--limit", "1500")).stdout)) == 1500


# -- task, agent, summary, tail -----------------------------------------------------------


def test_task_timeline(filled: str) -> None:
    url = filled
    out = ok(cli(url, "task", "t-2", "-F", "table")).stdout
    lines = out.splitlines()
    assert lines[0].startswith("Task t-2  4 events over 0.750s")
    assert lines[1].split() == ["TIME", "STEP", "TYPE", "WHO", "DATA"]
    assert "task.created" in lines[2]
    assert "+" not in lines[2].split("task.created")[0]
    assert "+0.250s" in lines[3]
    assert "task.assigned" in lines[3]
    assert "coordinator → a-2" in lines[3]
    assert "system.error" in lines[4]
    assert "| Traceback (most recent call last):" in lines[5]
    assert "|   boom" in lines[6]
    assert "task.failed" in lines[7]

    as_json = json_lines(ok(cli(url, "task", "t-1")).stdout)
    assert [e["event_type"] for e in as_json][:2] == ["task.created", "bid.submitted"]
    assert len(as_json) == 7
    fails(cli(url, "task", "t-404"), 1, "no events for task 't-404'")


def test_agent_events(filled: str) -> None:
    url = filled
    events = json_lines(ok(cli(url, "agent", "a-1")).stdout)
    assert [e["event_type"] for e in events][:2] == ["task.completed", "tool.completed"]
    assert {e["agent_id"] for e in events} == {"a-1"}
    assert len(events) == 6
    assert len(json_lines(ok(cli(url, "agent", "a-1", "-n", "2")).stdout)) == 2
    assert "task.completed" in ok(cli(url, "agent", "a-1", "-F", "table")).stdout
    fails(cli(url, "agent", "a-404"), 1, "no events for agent")


def test_summary(url: str) -> None:
    # The story (3 s long) starts 2 minutes into an epoch-aligned 10-minute bucket, 28 to
    # 38 minutes ago: inside the default hour and one --every 10m bucket wherever now is.
    ten = timedelta(minutes=10)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    start = epoch + (datetime.now(UTC) - timedelta(minutes=30) - epoch) // ten * ten
    start += timedelta(minutes=2)
    seed(url, story(start))
    seed(url, story(start - timedelta(hours=5)))  # outside the default hour

    counts = json.loads(ok(cli(url, "summary")).stdout)
    assert counts["by"] == "type"
    assert counts["counts"]["task.created"] == 2
    assert sum(counts["counts"].values()) == 13
    assert list(counts["counts"].values()) == sorted(counts["counts"].values(), reverse=True)
    assert sum(json.loads(ok(cli(url, "summary", "-m", "600")).stdout)["counts"].values()) == 26
    # The window is a duration, as everywhere else; --minutes stays for older scripts.
    wide = json.loads(ok(cli(url, "summary", "--since", "10h")).stdout)
    assert sum(wide["counts"].values()) == 26
    assert wide["since"].endswith("Z")
    assert wide["until"].endswith("Z")
    assert sum(json.loads(ok(cli(url, "summary", "--since", "2h")).stdout)["counts"].values()) == 13
    fails(cli(url, "summary", "--since", "2h", "--minutes", "5"), 2, "--since", "--minutes")

    by_agent = json.loads(ok(cli(url, "summary", "--by", "agent")).stdout)["counts"]
    assert by_agent == {"a-1": 6, "a-2": 5, "": 2}
    by_source = json.loads(ok(cli(url, "summary", "--by", "source")).stdout)["counts"]
    assert by_source["coordinator"] == 7
    assert by_source["swarm.coordinator"] == 1

    table = ok(cli(url, "summary", "-F", "table")).stdout
    assert table.startswith("Last 1h: 13 events")
    top = next(line for line in table.splitlines() if line.startswith("task.created"))
    assert "2" in top.split()
    assert "█" in top
    table = ok(cli(url, "summary", "--by", "agent", "-F", "table")).stdout
    assert "(none)" in table
    assert "a-1" in table

    buckets = json_lines(ok(cli(url, "summary", "--every", "10m", "--by", "type")).stdout)
    assert 6 <= len(buckets) <= 7
    assert sum(b["total"] for b in buckets) == 13
    busy = next(b for b in buckets if b["total"])
    assert busy["counts"]["task.created"] == 2
    histogram = ok(cli(url, "summary", "--every", "10m", "-F", "table")).stdout
    assert "every 10m: 13 events" in histogram
    assert "█" in histogram

    # Buckets wider than 2**31 microseconds (once an int32 overflow on PostgreSQL).
    hourly = json_lines(
        ok(cli(url, "summary", "--every", "1h", "-m", "600", "--by", "agent")).stdout
    )
    assert all(b["end"] > b["start"] for b in hourly)
    assert [b["start"][14:] for b in hourly] == ["00:00Z"] * len(hourly)
    assert sum(b["total"] for b in hourly) == 26
    assert sum(b["counts"].get("a-1", 0) for b in hourly) == 12
    daily = json_lines(ok(cli(url, "summary", "--every", "1d", "-m", "43200")).stdout)
    assert sum(b["total"] for b in daily) == 26
    assert len(daily) in (30, 31)
    tiny = json.loads(ok(cli(url, "summary", "--by", "agent", "-m", "0.001")).stdout)
    assert tiny["counts"] == {}
    by_type = json.loads(ok(cli(url, "summary", "--by", "type", "-m", "5000000")).stdout)
    assert sum(by_type["counts"].values()) == 26

    fails(cli(url, "summary", "--every", "1s", "--minutes", "600"), 2, "buckets")
    fails(cli(url, "summary", "--every", "0s"), 2, "--every")
    fails(cli(url, "summary", "--by", "colour"), 2, "colour")
    fails(cli(url, "summary", "--minutes", "-5"), 2, "--minutes")
    fails(cli(url, "summary", "--since", "-5m"), 2, "--since")


def test_tail_shows_the_newest_events_oldest_first(filled: str) -> None:
    url = filled
    last = json_lines(ok(cli(url, "tail", "-n", "3")).stdout)
    assert [e["event_type"] for e in last] == ["task.assigned", "system.error", "task.failed"]
    assert len(json_lines(ok(cli(url, "tail")).stdout)) == 10
    filtered = json_lines(ok(cli(url, "tail", "--type", "bid.*")).stdout)
    assert [e["source"] for e in filtered] == ["a-1", "a-2"]
    lines = ok(cli(url, "tail", "-n", "2", "-F", "table")).stdout.splitlines()
    assert len(lines) == 2
    assert "task.failed" in lines[1]
    assert "task=t-2" in lines[1]
    assert ok(cli(url, "tail", "-n", "0")).stdout == ""


# -- prune --------------------------------------------------------------------------------


def test_prune(url: str) -> None:
    now = datetime.now(UTC)
    seed(url, story(now - timedelta(days=40)))
    seed(url, story(now - timedelta(days=1)))

    assert (
        "Would delete 13 events older than 30d"
        in ok(cli(url, "prune", "--older-than", "30d", "--dry-run")).stdout
    )
    assert len(all_events(url)) == 26

    refused = cli(url, "prune", "--older-than", "30d", input="n\n")
    assert refused.exit_code == 1
    assert "Delete 13 events older than 30d" in refused.stdout
    assert len(all_events(url)) == 26

    result = ok(cli(url, "prune", "--older-than", "30d", input="y\n"))
    assert "Deleted 13 events older than 30d" in result.stdout
    assert len(all_events(url)) == 13
    assert "No events older than 30d" in ok(cli(url, "prune", "--older-than", "30d")).stdout
    result = ok(cli(url, "prune", "--older-than", "12h", "--yes"))
    assert "Deleted 13 events" in result.stdout
    assert all_events(url) == []

    fails(cli(url, "prune", "--older-than", "30"), 2, "--older-than")
    assert cli(url, "prune").exit_code == 2  # --older-than is required


# -- export, import -----------------------------------------------------------------------


def test_export_then_import_reproduces_every_event(tmp_path: Path, migratable_url: str) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path / 'source.db'}"
    events = seed(source, story())
    # Microseconds, far-away and odd timestamps, big and awkward data survive the trip.
    events += seed(
        source,
        [
            {
                "event_type": "payment.settled",
                "source": "bank",
                "data": {"amount": 0.1, "big": 2**53 + 1, "quote": 'a "b" \\ c', "list": []},
                "timestamp": datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            },
            {"event_type": "system.info", "source": "x", "data": {}, "timestamp": T0},
        ],
    )
    stored = all_events(source)
    assert len(stored) == len(events) == 15

    plain, packed, table = (tmp_path / n for n in ("all.jsonl", "all.jsonl.gz", "all.csv"))
    assert "Exported 15 events" in ok(cli(source, "export", "-o", str(plain))).stdout
    ok(cli(source, "export", "-o", str(packed)))
    ok(cli(source, "export", "-o", str(table)))
    lines = plain.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [e.model_dump(mode="json") for e in stored]
    assert gzip.decompress(packed.read_bytes()).decode("utf-8").splitlines() == lines
    with table.open(encoding="utf-8", newline="") as f:
        assert [r["id"] for r in csv.DictReader(f)] == [e.id for e in stored]

    # Into an empty database: every event exactly (ids, microseconds, data).
    target = migratable_url
    result = ok(cli(target, "import", str(packed)))
    assert "Imported 15 new events" in result.stdout
    assert "0 already present" in result.stdout
    assert all_events(target) == stored
    assert "Imported 0 new events" in ok(cli(target, "import", str(plain))).stdout
    assert "15 already present" in ok(cli(target, "import", str(packed))).stdout
    assert all_events(target) == stored

    # The imported events got commit sequence numbers: follow() sees later writes after them.
    again = tmp_path / "again.jsonl"
    ok(cli(target, "export", "-o", str(again)))
    # (PostgreSQL's jsonb orders object keys its own way: compare values, not text.)
    assert json_lines(again.read_text(encoding="utf-8")) == json_lines(plain.read_text("utf-8"))
    ok(cli(target, "log", "task.created", "-s", "after"))
    assert len(all_events(target)) == 16

    # Filters and stdout.
    out = ok(cli(source, "export", "-o", "-", "--type", "task.*", "--since", "2026-01-01"))
    assert [e["event_type"] for e in json_lines(out.stdout)] == [
        "task.created",
        "task.assigned",
        "task.completed",
        "task.created",
        "task.assigned",
        "task.failed",
    ]
    assert "Exported 6 events to stdout" in out.stderr

    fails(cli(source, "export", "-o", str(tmp_path / "x.txt")), 2, "x.txt", ".jsonl")
    fails(cli(source, "export", "-o", str(tmp_path / "no" / "dir.jsonl")), 1, "cannot write")
    assert not list(tmp_path.glob("**/*.part"))


def test_import_reports_bad_lines_and_keeps_good_ones(url: str, tmp_path: Path) -> None:
    good = [
        e.model_dump(mode="json") for e in seed(f"sqlite+aiosqlite:///{tmp_path / 's.db'}", story())
    ]
    bad_lines = {
        2: "not json at all",
        4: json.dumps({**good[0], "id": good[0]["id"][:-1] + "z", "event_type": "Nope"}),
        5: json.dumps({**good[1], "timestamp": "2026-03-01T12:00:00"}),  # no offset
        6: json.dumps({**good[1], "colour": "red"}),
        7: json.dumps([1, 2]),
        8: json.dumps({k: v for k, v in good[2].items() if k != "id"}),
        9: json.dumps({**good[2], "id": "x" * 37}),
        10: json.dumps({**good[2], "data": {"n": float("nan")}}),
    }
    lines = [json.dumps(good[0]), bad_lines[2], "", bad_lines[4], bad_lines[5], bad_lines[6]]
    lines += [bad_lines[7], bad_lines[8], bad_lines[9], bad_lines[10], json.dumps(good[1])]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe not utf-8\n")

    result = cli(url, "import", str(path))
    assert result.exit_code == 1
    assert "Imported 2 new events" in result.stdout
    assert "9 bad lines skipped" in result.stdout
    reported = result.stderr.splitlines()
    assert [line.split(":")[1] for line in reported] == [
        "2",
        "4",
        "5",
        "6",
        "7",
        "8",
        "9",
        "10",
        "12",
    ]
    assert "not valid JSON" in reported[0]
    assert "'Nope'" in reported[1]
    assert "no UTC offset" in reported[2]
    assert "colour" in reported[3]
    assert "JSON object" in reported[4]
    assert "missing field(s): id" in reported[5]
    assert "at most 36" in reported[6]
    assert "NaN" in reported[7]
    assert "UTF-8" in reported[8]
    assert "Traceback" not in result.output
    assert [e.id for e in all_events(url)] == [good[0]["id"], good[1]["id"]]


def test_import_malformed_files(url: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl.gz"
    lines = (
        json.dumps(
            {
                "id": f"event-{i}",
                "event_type": "tool.called",
                "source": "a",
                "timestamp": T0.isoformat(),
                "data": {"noise": os.urandom(16).hex()},
            }
        )
        for i in range(2000)
    )
    packed = gzip.compress(("\n".join(lines) + "\n").encode())
    broken.write_bytes(packed[: len(packed) // 2])
    message = fails(cli(url, "import", str(broken)), 1, "not a valid gzip file after line")
    kept = len(all_events(url))
    assert 500 < kept < 2000
    assert f"{kept} new event(s) before it were imported" in message
    fails(cli(url, "import", str(tmp_path / "missing.jsonl")), 1, "cannot read")
    fails(cli(url, "import", str(tmp_path / "events.csv")), 1, "JSON lines")

    stdin = json.dumps(
        story()[0] | {"id": "0190a0a0-0000-7000-8000-000000000001", "timestamp": T0.isoformat()}
    )
    assert "Imported 1 new event " in ok(cli(url, "import", "-", input=stdin + "\n")).stdout


# -- stats, demo --------------------------------------------------------------------------


def test_stats(filled: str) -> None:
    url = filled
    stats = json.loads(ok(cli(url, "stats")).stdout)
    assert stats["rows"] == 13
    assert stats["revision"] == "0004"
    # Times as every JSON output writes them, an event's timestamp included: UTC with Z.
    assert stats["oldest"] == T0.isoformat().replace("+00:00", "Z")
    newest = T0 + 12 * timedelta(milliseconds=250)
    assert stats["newest"] == newest.isoformat().replace("+00:00", "Z")
    first = json.loads(ok(cli(url, "query", "--oldest-first", "-n", "1", "-F", "json")).stdout)
    assert first["timestamp"] == stats["oldest"]
    assert stats["by_type"]["task.created"] == 2
    assert sum(stats["by_type"].values()) == 13
    assert stats["size_bytes"] > 0
    table = ok(cli(url, "stats", "-F", "table")).stdout
    assert "revision  0004 (head)" in table
    assert "events    13" in table
    assert "By type: 13 events" in table


def test_demo_fills_the_database(migratable_url: str) -> None:
    url = migratable_url
    result = ok(
        cli(url, "demo", "--agents", "2", "--tasks", "3", "--seed", "3", "--time-scale", "0")
    )
    assert "Last hour's summary:" in result.stdout
    assert "Timeline of" in result.stdout
    assert "Run " in result.stderr
    assert "event-log --url" in result.stderr
    counts = json.loads(ok(cli(url, "summary")).stdout)["counts"]
    assert counts["task.created"] == 3
    assert counts["agent.joined"] == 2
    fails(cli(url, "demo", "--agents", "0"), 2, "--agents")


# -- errors -------------------------------------------------------------------------------


def test_expected_errors_are_one_line(tmp_path: Path) -> None:
    fails(cli("nope://", "query"), 2, "unsupported database 'nope'")
    fails(cli("::not a url::", "query"), 2, "not a database URL")
    fails(cli("mysql+pymysql://u@h/db", "stats"), 2, "mysql")
    fails(cli("sqlite+pysqlite:///x.db", "stats"), 2, "not async")
    fails(
        cli("postgresql+asyncpg://postgres@127.0.0.1:1/x", "query"),
        1,
        "cannot open",
        "server is running",
    )
    fails(cli("postgresql+asyncpg://postgres@127.0.0.1:1/x", "db", "upgrade"), 1, "127.0.0.1")
    fails(cli("postgresql+asyncpg://postgres@127.0.0.1:1/x", "log", "a.b", "-s", "x"), 1)
    missing = tmp_path / "missing.db"
    fails(cli(f"sqlite:///{missing}", "query"), 1, "no event log at", "does not exist")
    fails(cli(f"sqlite:///{missing}", "stats"), 1, "does not exist")
    fails(cli(f"sqlite:///{missing}", "db", "check"), 1, "does not exist")
    assert not missing.exists()  # readers never create a database
    fails(cli("sqlite+aiosqlite://", "summary"), 1, "no event-log schema")


@pytest.mark.postgres
def test_expected_errors_on_postgres_name_the_database(postgres_url: str) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database_here"
    message = fails(cli(missing, "query"), 1, "no_such_database_here", "does not exist")
    assert "postgres@" in message
