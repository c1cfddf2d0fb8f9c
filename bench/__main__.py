"""``python -m bench``: run every benchmark, print the table, write the JSON.

Run it from the repository root. Progress goes to stderr; the table to stdout.
The exit status is 1 when a scenario failed to run (an exception, a timeout, or
events missing from the table afterwards), else 0: missed targets are reported
in the table and the JSON, not by the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

import sqlalchemy

import event_log

from . import peers, postgres
from .blocking import THREADS
from .common import DATA_DIR, ROOT, remove_sqlite_files, sequential_events, sqlite_url
from .dataset import ensure_dataset
from .follow import POLL_INTERVAL_S, follow_latency
from .histogram import EVERY, run_histogram
from .partition import run_partition_prune
from .pg_dataset import database_name, ensure_pg_dataset
from .pg_reads import pg_read_cases, run_pg_reads
from .prune import WRITERS, run_prune
from .reads import COMMON_TYPE, FILTER_TYPE, run_reads
from .report import Row, Target, at_least, below, render, write_json
from .writes import (
    BATCH_SIZE,
    CONCURRENT_TASKS,
    LARGE_BATCH_SIZE,
    PROCESSES,
    TASKS_PER_PROCESS,
    run_scenario,
)


@dataclass(frozen=True, slots=True)
class Config:
    """The sizes of one run."""

    mode: str
    events: int  # N of the write scenarios
    emits: int  # emit() calls of the memory check
    read_rows: int  # rows of the cached read database
    runs: int  # measured repetitions of each read
    offset_runs: int  # repetitions of the (slow) OFFSET comparison
    timeout: float  # seconds a write subprocess may take
    repeats: int  # runs of each write scenario (the median is reported)
    pg_rows: int  # rows of the cached PostgreSQL read database
    partition_rows: int = 200_000  # rows of the PostgreSQL partition-prune comparison

    @classmethod
    def for_mode(
        cls,
        *,
        quick: bool,
        events: int | None,
        repeats: int | None,
        pg_rows: int | None = None,
        partition_rows: int | None = None,
    ) -> Config:
        if quick:
            return cls(
                "quick",
                events or 5_000,
                50_000,
                20_000,
                20,
                10,
                180,
                repeats or 1,
                pg_rows or 20_000,
                partition_rows or 20_000,
            )
        return cls(
            "full",
            events or 50_000,
            1_000_000,
            1_000_000,
            50,
            10,
            900,
            repeats or 3,
            pg_rows or 10_000_000,
            partition_rows or 200_000,
        )


# -- scenario descriptions ----------------------------------------------------------------


# (scenario, label, SQLite targets); PostgreSQL has targets of its own (below).
def _write_scenarios(cfg: Config) -> list[tuple[str, str, tuple[Target, ...]]]:
    return [
        ("raw", "raw limit", ()),
        (
            "log_event_concurrent",
            f"log_event, {CONCURRENT_TASKS} concurrent tasks",
            (at_least("ratio", 0.5, ">= 0.5x raw"),),
        ),
        (
            "log_event_sequential",
            f"log_event, sequential ({sequential_events(cfg.events):,} = N/10)",
            (at_least("ratio", 0.1, ">= 0.1x raw"), below("p99_ms", 5, "p99 < 5 ms")),
        ),
        (
            "emit_flush",
            "emit() x N, sleep(0) every 1,000, flush()",
            (at_least("ratio", 0.7, ">= 0.7x raw"),),
        ),
        (
            "log_events_batches",
            f"log_events, batches of {BATCH_SIZE:,}",
            (at_least("ratio", 0.7, ">= 0.7x raw"),),
        ),
    ]


# SQLite only: blocking callers, through event_log.sync and the original module's way
# (a connection per call, bench.original), N/10 events each, one thread and 8.
def _blocking_scenarios(cfg: Config) -> list[tuple[str, str, tuple[Target, ...]]]:
    count = f"{sequential_events(cfg.events):,}"
    return [
        ("sync_sequential", f"event_log.sync.log_event, sequential ({count})", ()),
        ("sync_threads", f"event_log.sync.log_event, {THREADS} threads ({count})", ()),
        ("original_sequential", f"original module, a connection per call ({count})", ()),
        (
            "original_threads",
            f"original module, a connection per call, {THREADS} threads ({count})",
            (),
        ),
    ]


# The PostgreSQL targets (issue "PostgreSQL scale"): concurrent log_event and
# bulk log_events against asyncpg's COPY; the other rows are for information.
_PG_TARGETS = {
    "log_event_concurrent": (at_least("ratio", 0.3, ">= 0.3x raw"),),
    "log_events_batches": (at_least("ratio", 0.7, ">= 0.7x raw"),),
}


def _pg_write_scenarios(cfg: Config) -> list[tuple[str, str, tuple[Target, ...]]]:
    rows: list[tuple[str, str, tuple[Target, ...]]] = [
        (scenario, label, _PG_TARGETS.get(scenario, ()))
        for scenario, label, _ in _write_scenarios(cfg)
    ]
    # The driver's own limit for a commit per batch, beside the single-COPY one.
    rows.insert(1, ("raw_batches", f"raw: copy_records_to_table, 1 txn per {BATCH_SIZE:,}", ()))
    rows.append(
        (
            "log_events_large_batches",
            f"log_events, batches of {LARGE_BATCH_SIZE:,}",
            (),
        )
    )
    rows.append(
        (
            "processes_4x25",
            f"log_event, {PROCESSES} processes x {TASKS_PER_PROCESS} tasks",
            (),
        )
    )
    return rows


_RAW_LABELS = {
    "sqlite": "raw limit: sqlite3 executemany, 1 txn",
    "postgres": "raw limit: asyncpg copy_records_to_table",
}
_BACKEND_TITLES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _why(exc: BaseException) -> str:
    """An error's message, or its type when it has none (a bare TimeoutError)."""
    return str(exc) or type(exc).__name__


def _write_metrics(result: dict[str, Any]) -> dict[str, Any]:
    metrics = dict(result)
    seconds = metrics.get("seconds") or float("nan")
    metrics["events_per_s"] = metrics["events"] / seconds
    return metrics


def _check_rows(row: Row) -> None:
    """Every event must be in the table afterwards; anything else is a failed scenario."""
    have, want = row.metrics.get("rows_in_table"), row.metrics.get("expected_rows")
    if have != want:
        row.status = "error"
        row.note = f"the table holds {have} rows, expected {want}. {row.note}".strip()


def _median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput, plus every run's throughput and the worst RSS."""
    ordered = sorted(results, key=lambda r: r["events_per_s"])
    metrics = dict(ordered[(len(ordered) - 1) // 2])
    metrics["repeats"] = len(results)
    metrics["events_per_s_runs"] = [r["events_per_s"] for r in results]
    metrics["rss_growth_mb"] = max(r["rss_growth_mb"] for r in results)
    return metrics


def _measure_writes(
    rows: list[Row],
    backend: str,
    cfg: Config,
    fresh_database: Callable[[str], str],
    skipped: str | None,
) -> None:
    """Every write scenario on one backend, each run in a fresh database and subprocess.

    With ``cfg.repeats`` > 1 the scenarios run in rounds (every scenario once per
    round, so a passing disturbance hits all of them alike) and each row reports
    its median run; ratios are median over median.
    """
    title = _BACKEND_TITLES[backend]
    scenarios: list[tuple[str, Row]] = []
    specs = (
        _write_scenarios(cfg) + _blocking_scenarios(cfg)
        if backend == "sqlite"
        else _pg_write_scenarios(cfg)
    )
    for scenario, label, targets in specs:
        label = f"{title} {_RAW_LABELS[backend] if scenario == 'raw' else label}"
        row = Row(f"writes.{backend}.{scenario}", "writes", label, targets=targets)
        rows.append(row)
        scenarios.append((scenario, row))
        if skipped is not None:
            row.status, row.note = "skipped", skipped
    if skipped is not None:
        return

    runs: dict[str, list[dict[str, Any]]] = {scenario: [] for scenario, _ in scenarios}
    for round_ in range(1, cfg.repeats + 1):
        for scenario, row in scenarios:
            if row.status == "error":
                continue
            _progress(f"{row.label} (run {round_} of {cfg.repeats}) ...")
            started = perf_counter()
            try:
                url = fresh_database(scenario)
                result = run_scenario(scenario, url, cfg.events, timeout=cfg.timeout)
            except Exception as exc:  # reported as an ERROR row; the run goes on
                row.status, row.note = "error", _why(exc)
                _progress(f"  failed: {_why(exc)}")
                continue
            _progress(f"  done in {perf_counter() - started:.1f} s")
            runs[scenario].append(_write_metrics(result))

    raw_rate: float | None = None
    for scenario, row in scenarios:
        if not runs[scenario]:
            continue
        row.metrics = _median_run(runs[scenario])
        if scenario == "raw" and row.status == "ok":
            raw_rate = row.metrics["events_per_s"]
        row.metrics["ratio"] = row.metrics["events_per_s"] / raw_rate if raw_rate else None
        rejected = [r.get("rejected", 0) for r in runs[scenario]]
        if any(rejected):
            row.note = f"emit() refused {max(rejected):,} times in a run (backpressure)"
        for result in runs[scenario]:
            if result.get("rows_in_table") != result.get("expected_rows"):
                row.metrics.update(
                    rows_in_table=result.get("rows_in_table"),
                    expected_rows=result.get("expected_rows"),
                )
        _check_rows(row)


@contextmanager
def _sqlite_scratch(data_dir: Path) -> Iterator[Callable[[str], str]]:
    """A factory of fresh, migrated SQLite file databases, all deleted afterwards."""
    scratch = data_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []

    def fresh(name: str) -> str:
        for path in made:
            remove_sqlite_files(path)
        path = scratch / f"{name}.db"
        remove_sqlite_files(path)
        made.append(path)
        url = sqlite_url(path)
        asyncio.run(event_log.upgrade(url))
        return url

    try:
        yield fresh
    finally:
        for path in made:
            remove_sqlite_files(path)


def _measure_postgres(rows: list[Row], cfg: Config, admin_url: str | None) -> str | None:
    """The write scenarios on PostgreSQL in a scratch database; returns the server version."""
    reason = "skipped (--skip-postgres)" if admin_url is None else postgres.unreachable(admin_url)
    if admin_url is None or reason is not None:
        _measure_writes(rows, "postgres", cfg, lambda _: "", reason or "skipped")
        return None
    version: str | None = None
    first = len(rows)
    try:
        with postgres.scratch_database(admin_url) as url:
            asyncio.run(event_log.upgrade(url))
            version = postgres.server_version(url)

            def fresh(_: str) -> str:
                postgres.truncate(url)
                return url

            _measure_writes(rows, "postgres", cfg, fresh, None)
    except Exception as exc:  # no scratch database or schema: every PostgreSQL row is an ERROR
        del rows[first:]
        failure = f"PostgreSQL setup failed: {_why(exc)}"
        _measure_writes(rows, "postgres", cfg, lambda _: "", failure)
        for row in rows[first:]:
            row.status = "error"
        _progress(failure)
    return version


def _measure_on_scratch_postgres(
    row: Row,
    admin_url: str | None,
    measure: Callable[[str], Coroutine[Any, Any, dict[str, Any]]],
) -> bool:
    """Fill ``row.metrics`` with ``measure`` run on a scratch database; False when the
    row was skipped (no server) or failed (an ERROR row; the run goes on)."""
    reason = "skipped (--skip-postgres)" if admin_url is None else postgres.unreachable(admin_url)
    if admin_url is None or reason is not None:
        row.status, row.note = "skipped", reason or "skipped"
        return False
    _progress(f"{row.label} ...")
    try:
        with postgres.scratch_database(admin_url) as url:
            row.metrics = asyncio.run(measure(url))
    except Exception as exc:
        row.status, row.note = "error", _why(exc)
        _progress(f"  failed: {_why(exc)}")
        return False
    return True


def _measure_partition_prune(rows: list[Row], cfg: Config, admin_url: str | None) -> None:
    """PostgreSQL: prune_events dropping day partitions vs batched DELETE, same rows."""
    row = Row(
        "prune.postgres_partitions",
        "prune",
        f"PostgreSQL partition prune vs batched delete: half of {cfg.partition_rows:,} rows",
    )
    rows.append(row)
    if not _measure_on_scratch_postgres(
        row, admin_url, lambda url: run_partition_prune(url, cfg.partition_rows)
    ):
        return
    m = row.metrics
    row.note = (
        f"{m['partitions_dropped']} day partitions dropped; the same prune as batched "
        f"DELETE on a plain table took {m['delete_seconds']:.2f} s "
        f"({m['speedup']:.1f}x the partitioned time); converting the filled table took "
        f"{m['convert_seconds']:.2f} s"
    )


def _measure_pg_follow(rows: list[Row], cfg: Config, admin_url: str | None) -> None:
    """PostgreSQL: another process's event reaching a follower that does not poll."""
    row = Row(
        "reads.postgres.follow",
        "reads",
        "PostgreSQL follow(): another process's log_event to the follower, no polling",
        targets=(below("p50_ms", 50, "< 50 ms"),),
    )
    rows.append(row)

    async def measure(url: str) -> dict[str, Any]:
        await event_log.upgrade(url)
        return await follow_latency(url, cfg.runs)

    if not _measure_on_scratch_postgres(row, admin_url, measure):
        return
    row.note = (
        f"the follower's logger polls every {POLL_INTERVAL_S:.0f} s; timed from just before "
        f"the writer's log_event call; max {row.metrics['max_ms']:.1f} ms"
    )


def _measure_memory(rows: list[Row], cfg: Config, data_dir: Path) -> None:
    row = Row(
        "memory.emit_1m",
        "memory",
        f"{cfg.emits:,} emit() calls, sleep(0) every 1,000, then flush()",
        targets=(below("rss_growth_mb", 100, "RSS growth < 100 MB"),),
    )
    rows.append(row)
    _progress(f"{row.label} ...")
    started = perf_counter()
    try:
        with _sqlite_scratch(data_dir) as fresh:
            url = fresh("emit_memory")
            result = run_scenario("emit_memory", url, cfg.emits, timeout=cfg.timeout)
    except Exception as exc:  # reported as an ERROR row; the run goes on
        row.status, row.note = "error", _why(exc)
        _progress(f"  failed: {_why(exc)}")
        return
    _progress(f"  done in {perf_counter() - started:.1f} s")
    row.metrics = _write_metrics(result)
    row.note = (
        f"{result['queued_after_emit']:,} events still queued when the emit loop ended; "
        f"emit() refused {result['rejected']:,} times"
    )
    _check_rows(row)


def _read_rows(cfg: Config) -> list[tuple[str, str, tuple[Target, ...]]]:
    depth = cfg.read_rows // 2
    return [
        ("timeline", "get_task_events (a task's timeline)", (below("p50_ms", 5, "< 5 ms"),)),
        ("agent_latest", "get_agent_events(limit=100)", (below("p50_ms", 5, "< 5 ms"),)),
        ("summary", "get_event_summary(60)", (below("p50_ms", 20, "< 20 ms"),)),
        (
            "keyset_page",
            f"list_events(limit=100, cursor) at depth {depth:,}",
            (below("p50_ms", 5, "< 5 ms"),),
        ),
        ("offset_page", f"raw SQL LIMIT 100 OFFSET {depth:,} (comparison)", ()),
        (
            "count_filtered",
            f"count_events(event_type={FILTER_TYPE.value!r})",
            (below("p50_ms", 5, "< 5 ms"),),
        ),
        ("count_common", f"count_events(event_type={COMMON_TYPE.value!r}) (info)", ()),
    ]


def _measure_reads_and_prune(rows: list[Row], cfg: Config, data_dir: Path) -> None:
    specs = _read_rows(cfg)
    read_rows = [Row(f"reads.{key}", "reads", label, targets=t) for key, label, t in specs]
    prune_row = Row(
        "prune.during_logging",
        "prune",
        f"prune_events: half of {cfg.read_rows:,} rows, {WRITERS} tasks logging",
        targets=(
            below("log_event_p99_ms", 100, "log_event p99 < 100 ms"),
            below("max_batch_ms", 50, "batch < 50 ms"),
        ),
    )
    reclaim_row = Row(
        "prune.reclaim",
        "prune",
        f"prune + reclaim_space: file size after pruning half of {cfg.read_rows:,} rows",
        targets=(
            at_least("shrink_pct", 40, "shrinks >= 40%"),
            below("max_step_ms", 50, "lock held < 50 ms"),
        ),
    )
    rows.extend([*read_rows, prune_row, reclaim_row])
    _progress(f"read database: {cfg.read_rows:,} rows (cached under {data_dir}) ...")
    try:
        dataset = ensure_dataset(cfg.read_rows, data_dir)
    except Exception as exc:  # reported as an ERROR row; the run goes on
        for row in [*read_rows, prune_row, reclaim_row]:
            row.status, row.note = "error", f"no read database: {_why(exc)}"
        return

    _progress(f"reads ({cfg.runs} runs each) ...")
    try:
        results = asyncio.run(run_reads(dataset, runs=cfg.runs, offset_runs=cfg.offset_runs))
    except Exception as exc:  # reported as an ERROR row; the run goes on
        for row in read_rows:
            row.status, row.note = "error", _why(exc)
        _progress(f"  failed: {_why(exc)}")
    else:
        for row in read_rows:
            row.metrics = results[row.id.removeprefix("reads.")]
        by_id = {row.id: row for row in read_rows}
        timeline, summary = results["timeline"], results["summary"]
        by_id["reads.timeline"].note = f"{timeline['events_per_call']:.0f} events per timeline"
        by_id["reads.summary"].note = (
            f"{summary['events_in_window']:,} events in the newest hour of data "
            f"(window widened by the database's age, {dataset.age().total_seconds() / 60:.0f} min)"
        )
        by_id[
            "reads.offset_page"
        ].note = f"{cfg.offset_runs} runs, stdlib sqlite3, rows not decoded"
        for key in ("count_filtered", "count_common"):
            by_id[f"reads.{key}"].note = f"{results[key]['matched']:,} matching rows"

    _progress("prune under load ...")
    try:
        scratch = data_dir / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        prune_row.metrics = asyncio.run(run_prune(dataset, scratch / "prune.db"))
    except Exception as exc:  # reported as an ERROR row; the run goes on
        for row in (prune_row, reclaim_row):
            row.status, row.note = "error", _why(exc)
        _progress(f"  failed: {_why(exc)}")
    else:
        m = prune_row.metrics
        reclaim_row.metrics = {
            key: m[key]
            for key in (
                "size_before_mb",
                "size_after_mb",
                "shrink_pct",
                "reclaim_steps",
                "max_reclaim_step_ms",
                "max_step_ms",
            )
        }
        reclaim_row.note = (
            f"{m['size_before_mb']:.0f} MB -> {m['size_after_mb']:.0f} MB; "
            f"{m['reclaim_steps']} reclaim steps (longest {m['max_reclaim_step_ms']:.1f} ms), "
            f"{m['batches']} prune batches; longest step of either {m['max_step_ms']:.1f} ms"
        )
        prune_row.note = (
            f"{m['log_event_calls']:,} log_event calls during the prune (p50 "
            f"{m['log_event_p50_ms']:.2f} ms, max {m['log_event_max_ms']:.1f} ms); "
            f"median batch {m['p50_batch_ms']:.1f} ms; batches timed by {m['batch_timing']}"
        )


def _measure_histogram(rows: list[Row], cfg: Config, data_dir: Path) -> None:
    every = f"{EVERY.total_seconds() / 60:.0f}-minute"
    plain = Row(
        "histogram.day",
        "histogram",
        f"get_event_histogram: {cfg.read_rows:,} rows in a day, {every} buckets",
        targets=(below("p50_ms", 50, "< 50 ms"), at_least("index", 1, "index plan")),
    )
    by_type = Row(
        "histogram.by_type",
        "histogram",
        "the same, by='event_type' (info)",
        targets=(),
    )
    rows.extend([plain, by_type])
    _progress(f"histogram database: {cfg.read_rows:,} rows in one day ...")
    try:
        dataset = ensure_dataset(cfg.read_rows, data_dir, span_days=1)
        results = asyncio.run(run_histogram(dataset, runs=cfg.runs))
    except Exception as exc:  # reported as an ERROR row; the run goes on
        for row in (plain, by_type):
            row.status, row.note = "error", _why(exc)
        _progress(f"  failed: {_why(exc)}")
        return
    plain.metrics, by_type.metrics = results["plain"], results["by_type"]
    plan = str(plain.metrics.pop("plan"))
    plain.note = (
        f"{plain.metrics['rows_in_day']:,} rows in {plain.metrics['buckets']} buckets; plan: {plan}"
    )
    by_type.note = f"{by_type.metrics['runs']} runs"


def _measure_pg_reads(rows: list[Row], cfg: Config, admin_url: str | None) -> None:
    """The PostgreSQL reads (``pg_reads.pg_read_cases``) on the cached large database."""
    cases = pg_read_cases(cfg.pg_rows)
    title = f"PostgreSQL {cfg.pg_rows:,} rows:"
    read_rows = [
        Row(f"reads.postgres.{c.key}", "reads", f"{title} {c.label}", targets=c.targets)
        for c in cases
    ]
    rows.extend(read_rows)
    reason = "skipped (--skip-postgres)" if admin_url is None else postgres.unreachable(admin_url)
    if admin_url is None or reason is not None:
        for row in read_rows:
            row.status, row.note = "skipped", reason or "skipped"
        return
    _progress(f"PostgreSQL read database: {cfg.pg_rows:,} rows ({database_name(cfg.pg_rows)}) ...")
    try:
        dataset = ensure_pg_dataset(admin_url, cfg.pg_rows)
    except Exception as exc:  # reported as ERROR rows; the run goes on
        for row in read_rows:
            row.status, row.note = "error", f"no PostgreSQL read database: {_why(exc)}"
        _progress(f"  failed: {_why(exc)}")
        return
    _progress(f"PostgreSQL reads ({cfg.runs} runs each) ...")
    try:
        results = asyncio.run(run_pg_reads(dataset, cases, runs=cfg.runs))
    except Exception as exc:  # reported as ERROR rows; the run goes on
        for row in read_rows:
            row.status, row.note = "error", _why(exc)
        _progress(f"  failed: {_why(exc)}")
        return
    for case, row in zip(cases, read_rows, strict=True):
        result = results[case.key]
        if isinstance(result, Exception):
            row.status, row.note = "error", f"{type(result).__name__}: {result}"
            continue
        row.metrics = result
        if "events_in_window" in result:
            age_min = dataset.age().total_seconds() / 60
            row.note = (
                f"{result['events_in_window']:,} events in the newest hour of data "
                f"(window widened by the database's age, {age_min:.0f} min)"
            )
        elif "matched" in result:
            row.note = f"{result['matched']:,} matching rows"
    read_rows[0].note = (
        f"database {database_name(cfg.pg_rows)}, built once in {dataset.build_seconds:.0f} s "
        f"and reused while valid"
    )


# -- the run ------------------------------------------------------------------------------


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return None
    return f"{rev}{'+dirty' if dirty else ''}" if rev else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Benchmark event-log: writes against the driver's raw limit on SQLite "
            "and PostgreSQL, memory of a million emit() calls, reads on a cached million-row "
            "database, and prune_events under load. Prints a table; writes JSON."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (N=5,000, 50,000 emits, 20,000-row read database), for CI",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="where to write the JSON results (default: <data dir>/last-run.json)",
    )
    parser.add_argument(
        "--postgres-url",
        metavar="URL",
        default=os.environ.get(postgres.PG_URL_ENV, postgres.DEFAULT_ADMIN_URL),
        help=(
            "an asyncpg URL of a server where a scratch database may be created and dropped "
            f"(default: ${postgres.PG_URL_ENV}, else {postgres.DEFAULT_ADMIN_URL}); "
            "PostgreSQL rows are skipped when it is unreachable"
        ),
    )
    parser.add_argument("--skip-postgres", action="store_true", help="do not try PostgreSQL")
    parser.add_argument(
        "--peers",
        action="store_true",
        help=(
            "instead: event-log beside the original module, an SQLAlchemy ORM repository and "
            "eventsourcing's recorders, same events (N default 20,000; 500 with --quick; "
            "uses --quick, -n, --repeat, --postgres-url, --skip-postgres, --data-dir, --json)"
        ),
    )
    parser.add_argument(
        "-n",
        "--events",
        type=int,
        metavar="N",
        help="events per write scenario (default: 50,000; 5,000 with --quick)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="K",
        help="runs of each write scenario, the median reported (default: 3; 1 with --quick)",
    )
    parser.add_argument(
        "--partition-rows",
        type=int,
        metavar="N",
        help="rows of the PostgreSQL partition-prune comparison (default: 200,000; "
        "20,000 with --quick)",
    )
    parser.add_argument(
        "--pg-rows",
        type=int,
        metavar="ROWS",
        help=(
            "rows of the cached PostgreSQL read database, built once with COPY in a database "
            "named event_log_bench_<size> (default: 10,000,000; 20,000 with --quick)"
        ),
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        metavar="DIR",
        help=f"cached read databases and scratch files (default: {DATA_DIR})",
    )
    args = parser.parse_args(argv)
    if args.events is not None and args.events < CONCURRENT_TASKS:
        parser.error(f"--events must be at least {CONCURRENT_TASKS}")
    if args.partition_rows is not None and args.partition_rows < 1:
        parser.error("--partition-rows must be at least 1")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.pg_rows is not None and args.pg_rows < 1_000:
        parser.error("--pg-rows must be at least 1,000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.peers:
        return peers.run(
            peers.Options(
                quick=args.quick,
                events=args.events,
                repeats=args.repeat,
                postgres_url=None if args.skip_postgres else args.postgres_url,
                data_dir=args.data_dir,
                json_path=args.json,
            )
        )
    cfg = Config.for_mode(
        quick=args.quick,
        events=args.events,
        repeats=args.repeat,
        pg_rows=args.pg_rows,
        partition_rows=args.partition_rows,
    )
    data_dir: Path = args.data_dir.resolve()
    json_path: Path = args.json if args.json is not None else data_dir / "last-run.json"
    started_at = datetime.now(UTC)
    started = perf_counter()
    rows: list[Row] = []

    with _sqlite_scratch(data_dir) as fresh:
        _measure_writes(rows, "sqlite", cfg, fresh, None)
    pg_version = _measure_postgres(rows, cfg, None if args.skip_postgres else args.postgres_url)
    _measure_memory(rows, cfg, data_dir)
    _measure_reads_and_prune(rows, cfg, data_dir)
    _measure_partition_prune(rows, cfg, None if args.skip_postgres else args.postgres_url)
    _measure_histogram(rows, cfg, data_dir)
    _measure_pg_reads(rows, cfg, None if args.skip_postgres else args.postgres_url)
    _measure_pg_follow(rows, cfg, None if args.skip_postgres else args.postgres_url)

    meta: dict[str, Any] = {
        "mode": cfg.mode,
        "events": cfg.events,
        "sequential_events": sequential_events(cfg.events),
        "write_repeats": cfg.repeats,
        "emits": cfg.emits,
        "read_rows": cfg.read_rows,
        "read_runs": cfg.runs,
        "pg_read_rows": cfg.pg_rows,
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(perf_counter() - started, 1),
        "revision": _git_revision(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "postgres": pg_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    heading = [
        f"event-log benchmark, {cfg.mode} mode: N={cfg.events:,} events per write scenario "
        f"(median of {cfg.repeats} run{'s' if cfg.repeats > 1 else ''}); "
        f"revision {meta['revision']}; {meta['started_at']}; took {meta['duration_s']} s",
        f"Python {meta['python']}, SQLite {meta['sqlite']}, SQLAlchemy {meta['sqlalchemy']}, "
        f"PostgreSQL {pg_version or '-'}; {meta['platform']}, {meta['cpus']} CPUs",
        "Writes: ratios are to the raw limit of the same backend; latencies are per awaited",
        "call (emit: the emit call); RSS +MB is the peak RSS growth of the scenario's own",
        "process over its baseline after imports (the largest of its runs).",
    ]
    print(render(rows, heading))
    write_json(json_path, rows, meta)
    print(f"\nJSON: {json_path}")
    return 1 if any(row.status == "error" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
