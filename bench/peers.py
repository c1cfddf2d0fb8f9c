"""``python -m bench --peers``: event-log beside the other ways to write the same events.

One run measures, on SQLite (a file) and on PostgreSQL (a scratch database;
skipped with a one-line note when the server is unreachable, an error under
``CI=true``), every writer logging the same events (:mod:`bench._peers_common`):

- event-log itself (:mod:`bench.writes`' scenarios): ``log_event`` awaited one
  after another, ``log_event`` from 100 concurrent tasks, ``log_events`` in
  batches of 1,000;
- the original module's way (:mod:`bench._peers_original`): a new connection,
  five DDL statements, one INSERT and a commit per call, synchronous;
- a straightforward async SQLAlchemy ORM repository (:mod:`bench._peers_orm`):
  an ``AsyncSession`` and a commit per event, sequential and from 100 tasks;
- the ``eventsourcing`` package's application recorders
  (:mod:`bench._peers_eventsourcing`): one stored event per call, and batches
  of 1,000 (skipped with a note when the package, from the ``bench`` extra, is
  not installed).

The sequential rows log N/10 events (at least 100), the others N. Each
measurement starts on a fresh database (a new SQLite file; a new PostgreSQL
scratch database, dropped afterwards), made by the writer itself, or by
``event_log.upgrade`` for event-log's rows; every writer logs one warm-up
event before its clock starts and the table must hold every event it stored
afterwards, else the row is an ERROR. The writers run in this process, one
after another; with ``--repeat`` K they run in K rounds (every row once per
round) and each row reports its median run.

Each writer keeps its own durability settings, and on SQLite they differ:
event-log runs WAL at ``synchronous=NORMAL`` (a commit survives a crash of
the process; an OS crash or power loss can roll back the last few commits),
eventsourcing WAL at SQLite's default ``FULL`` (an fsync per commit), the
original module and the ORM repository the rollback journal at ``FULL``
(several fsyncs per commit). On PostgreSQL every writer commits with the
server's settings.

Each row reports events stored per second, that figure over event-log's
sequential ``log_event`` on the same backend, the errors the writer met
(counted, not raised: "database is locked", a pool timeout), and the median
and p99 of a call (one event, or one batch). The table is markdown, on
stdout; progress goes to stderr; the rows go to a JSON file as well. The exit
status is 1 when a row failed to run, else 0.
"""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from time import perf_counter
from typing import Any, Literal

import sqlalchemy

import event_log

from . import postgres
from ._peers_common import CONCURRENT_TASKS, Result
from ._peers_eventsourcing import eventsourcing_batches, eventsourcing_sequential
from ._peers_eventsourcing import missing as eventsourcing_missing
from ._peers_original import original_sequential
from ._peers_orm import orm_concurrent, orm_sequential
from .common import ROOT, remove_sqlite_files, sequential_events, sqlite_url
from .report import Row, write_json
from .writes import BATCH_SIZE, log_event_concurrent, log_event_sequential, log_events_batches

__all__ = ["BACKENDS", "SCENARIOS", "Options", "Scenario", "postgres_skip", "run"]

QUICK_EVENTS = 500
FULL_EVENTS = 20_000
FULL_REPEATS = 3

Measure = Callable[[str, int], Coroutine[Any, Any, Result]]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One row per backend: a writer and the way it is called."""

    key: str
    writer: str
    how: str  # "{batch}": the batch size, or "one batch of N" when N is smaller
    measure: Measure  # (url, N) -> result; the sequential ones log N/10
    migrated: bool = False  # needs event-log's schema (event_log.upgrade) first


def _sequential(measure: Measure) -> Measure:
    """A writer measured with N/10 events, as event-log's sequential row is."""
    return lambda url, n: measure(url, sequential_events(n))


SCENARIOS = (
    Scenario(
        "log_event_sequential", "event-log", "log_event, sequential", log_event_sequential, True
    ),
    Scenario(
        "log_event_concurrent",
        "event-log",
        f"log_event, {CONCURRENT_TASKS} concurrent tasks",
        log_event_concurrent,
        True,
    ),
    Scenario(
        "log_events_batches",
        "event-log",
        "log_events, {batch}",
        log_events_batches,
        True,
    ),
    Scenario(
        "original_sequential",
        "original module",
        "a connection + 5 DDL per call, sequential",
        _sequential(original_sequential),
    ),
    Scenario(
        "orm_sequential",
        "SQLAlchemy ORM repository",
        "a session + commit per event, sequential",
        _sequential(orm_sequential),
    ),
    Scenario(
        "orm_concurrent",
        "SQLAlchemy ORM repository",
        f"a session + commit per event, {CONCURRENT_TASKS} concurrent tasks",
        orm_concurrent,
    ),
    Scenario(
        "eventsourcing_sequential",
        "eventsourcing recorder",
        "insert_events of 1, sequential",
        _sequential(eventsourcing_sequential),
    ),
    Scenario(
        "eventsourcing_batches",
        "eventsourcing recorder",
        "insert_events, {batch}",
        eventsourcing_batches,
    ),
)
BASELINE = "log_event_sequential"
BACKENDS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


@dataclass(frozen=True, slots=True)
class Options:
    """What ``python -m bench --peers`` was asked for."""

    quick: bool
    events: int | None
    repeats: int | None
    postgres_url: str | None  # None: --skip-postgres
    data_dir: Path
    json_path: Path | None


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _why(exc: BaseException) -> str:
    """An error's first line, or its type when it has none."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def postgres_skip(
    admin_url: str | None, ci: bool
) -> tuple[Literal["skipped", "error"], str] | None:
    """(status, note) of every PostgreSQL row when the server cannot be used, else None:
    skipped when asked to or unreachable, an error when unreachable under CI."""
    if admin_url is None:
        return "skipped", "skipped (--skip-postgres)"
    reason = postgres.unreachable(admin_url)
    if reason is None:
        return None
    if ci:
        return "error", f"{reason} (CI=true: PostgreSQL is required)"
    return "skipped", reason


def _cannot_run(scenario: Scenario, backend: str) -> str | None:
    """Why a scenario's package is missing here, or None."""
    if scenario.key.startswith("eventsourcing"):
        return eventsourcing_missing()
    if scenario.key == "original_sequential" and backend == "postgres":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "psycopg is not installed: pip install -e '.[bench]'"
    return None


# -- fresh databases ----------------------------------------------------------------------

Fresh = Callable[[str, bool], AbstractContextManager[str]]


def _sqlite_fresh(scratch: Path) -> Fresh:
    @contextmanager
    def fresh(name: str, migrated: bool) -> Iterator[str]:
        scratch.mkdir(parents=True, exist_ok=True)
        path = scratch / f"peers-{name}.db"
        remove_sqlite_files(path)
        try:
            url = sqlite_url(path)
            if migrated:
                asyncio.run(event_log.upgrade(url))
            yield url
        finally:
            remove_sqlite_files(path)

    return fresh


def _postgres_fresh(admin_url: str) -> Fresh:
    @contextmanager
    def fresh(name: str, migrated: bool) -> Iterator[str]:
        with postgres.scratch_database(admin_url) as url:
            if migrated:
                asyncio.run(event_log.upgrade(url))
            yield url

    return fresh


# -- measuring ----------------------------------------------------------------------------


def _rows(backend: str, n: int) -> list[tuple[Scenario, Row]]:
    batch = f"batches of {BATCH_SIZE:,}" if n >= BATCH_SIZE else f"one batch of {n:,}"
    return [
        (
            s,
            Row(
                f"peers.{backend}.{s.key}",
                "writes",
                f"{BACKENDS[backend]} | {s.writer} | {s.how.format(batch=batch)}",
            ),
        )
        for s in SCENARIOS
    ]


def _measure_backend(
    backend: str, rows: list[tuple[Scenario, Row]], n: int, repeats: int, fresh: Fresh
) -> None:
    """Every runnable row of one backend, ``repeats`` rounds; fills each row's metrics."""
    runs: dict[str, list[Result]] = {s.key: [] for s, _ in rows}
    for round_ in range(1, repeats + 1):
        for scenario, row in rows:
            if row.status != "ok":
                continue
            _progress(f"{row.label} (run {round_} of {repeats}) ...")
            gc.collect()
            started = perf_counter()
            try:
                with fresh(scenario.key, scenario.migrated) as url:
                    result = asyncio.run(scenario.measure(url, n))
            except Exception as exc:  # an ERROR row; the run goes on
                row.status, row.note = "error", _why(exc)
                _progress(f"  failed: {row.note}")
                continue
            _progress(f"  done in {perf_counter() - started:.1f} s")
            result.setdefault("errors", 0)
            stored = result["events"] - result["errors"]
            result["events_per_s"] = stored / result["seconds"] if result["seconds"] else None
            runs[scenario.key].append(result)
    for scenario, row in rows:
        if runs[scenario.key] and row.status == "ok":
            _summarize(row, runs[scenario.key])
    baseline = next(row for s, row in rows if s.key == BASELINE)
    base_rate = baseline.metrics.get("events_per_s") if baseline.status == "ok" else None
    for _, row in rows:
        rate = row.metrics.get("events_per_s")
        row.metrics["ratio"] = rate / base_rate if rate and base_rate else None


def _summarize(row: Row, results: list[Result]) -> None:
    """The median run's metrics, every run's throughput, errors over all runs; a table
    that does not hold what the writer stored makes the row an ERROR."""
    ordered = sorted(results, key=lambda r: r["events_per_s"] or 0.0)
    row.metrics = dict(ordered[(len(ordered) - 1) // 2])
    row.metrics["repeats"] = len(results)
    row.metrics["events_per_s_runs"] = [r["events_per_s"] for r in results]
    row.metrics["errors_all_runs"] = sum(r["errors"] for r in results)
    kinds: dict[str, int] = {}
    for r in results:
        for kind, count in r.get("error_kinds", {}).items():
            kinds[kind] = kinds.get(kind, 0) + count
    if kinds:
        row.note = "; ".join(f"{count:,} x {kind}" for kind, count in kinds.items())
    for r in results:
        if r.get("rows_in_table") != r.get("expected_rows"):
            row.status = "error"
            row.note = (
                f"the table holds {r.get('rows_in_table')} rows, expected "
                f"{r.get('expected_rows')}. {row.note}"
            ).strip()


# -- the table ----------------------------------------------------------------------------

_HEADER = (
    "backend",
    "writer",
    "how",
    "events",
    "events/s",
    "runs: min-max",
    "vs log_event sequential",
    "errors",
    "p50 ms",
    "p99 ms",
)


def _number(value: Any, kind: str) -> str:
    if not isinstance(value, int | float):
        return "-"
    if kind == "ratio":
        return f"{value:.2f}x"
    if kind == "ms":
        return f"{value:.3f}" if value < 1 else f"{value:.1f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.0f}"


def _cells(row: Row) -> list[str]:
    backend, writer, how = row.label.split(" | ")
    m = row.metrics
    if row.status != "ok":
        rate = "SKIP" if row.status == "skipped" else "ERROR"
        return [backend, writer, how, "-", rate, "-", "-", "-", "-", "-"]
    rates = [r for r in m.get("events_per_s_runs", []) if isinstance(r, int | float)]
    spread = f"{min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else "-"
    return [
        backend,
        writer,
        how,
        _number(m.get("events"), "int"),
        _number(m.get("events_per_s"), "int"),
        spread,
        _number(m.get("ratio"), "ratio"),
        _number(m.get("errors_all_runs"), "int"),
        _number(m.get("p50_ms"), "ms"),
        _number(m.get("p99_ms"), "ms"),
    ]


def render(rows: list[Row], heading: list[str]) -> str:
    """The heading, a markdown table of every row, and the rows' notes."""
    cells = [list(_HEADER), *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_HEADER))]

    def line(values: list[str]) -> str:
        parts = [
            v.ljust(w) if i < 3 else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join("-" * (w + 2) if i < 3 else "-" * (w + 1) + ":" for i, w in enumerate(widths))
        + "|"
    )
    out = [*heading, "", line(cells[0]), rule, *(line(c) for c in cells[1:])]
    by_note: dict[str, list[Row]] = {}
    for r in rows:
        if r.note:
            by_note.setdefault(r.note, []).append(r)
    notes = []
    for note, noted in by_note.items():  # e.g. one skip reason for a whole backend
        if len(noted) == 1:
            notes.append(f"- {noted[0].label.replace(' | ', ', ')}: {note}")
        else:
            backends = dict.fromkeys(r.label.split(" | ")[0] for r in noted)
            notes.append(f"- {' and '.join(backends)}, {len(noted)} rows: {note}")
    return "\n".join([*out, "", *notes] if notes else out)


# -- the run ------------------------------------------------------------------------------


def _revision() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return None
    return rev or None


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def run(options: Options) -> int:
    """Measure every row, print the table, write the JSON; 1 when a row failed to run."""
    n = options.events or (QUICK_EVENTS if options.quick else FULL_EVENTS)
    repeats = options.repeats or (1 if options.quick else FULL_REPEATS)
    data_dir = options.data_dir.resolve()
    json_path = options.json_path or data_dir / "peers-last-run.json"
    started_at = datetime.now(UTC)
    started = perf_counter()
    rows: list[Row] = []
    pg_version: str | None = None
    for backend in BACKENDS:
        pairs = _rows(backend, n)
        rows.extend(row for _, row in pairs)
        fresh: Fresh | None = _sqlite_fresh(data_dir / "scratch")
        if backend == "postgres":
            skip = postgres_skip(options.postgres_url, _in_ci())
            if skip is not None or options.postgres_url is None:
                fresh = None
                for _, row in pairs:
                    row.status, row.note = skip or ("skipped", "skipped")
            else:
                fresh = _postgres_fresh(options.postgres_url)
                pg_version = postgres.server_version(options.postgres_url)
        for scenario, row in pairs:
            why = _cannot_run(scenario, backend) if row.status == "ok" else None
            if why is not None:
                row.status, row.note = "skipped", why
        if fresh is not None:
            _measure_backend(backend, pairs, n, repeats, fresh)

    meta: dict[str, Any] = {
        "mode": "quick" if options.quick else "full",
        "events": n,
        "sequential_events": sequential_events(n),
        "repeats": repeats,
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(perf_counter() - started, 1),
        "revision": _revision(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "eventsourcing": _version("eventsourcing"),
        "psycopg": _version("psycopg"),
        "postgres": pg_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    runs = f"median of {repeats} runs" if repeats > 1 else "1 run"
    heading = [
        f"event-log beside its peers, {meta['mode']} mode: N={n:,} events "
        f"(sequential rows N/10 = {sequential_events(n):,}); {runs} per row; "
        f"revision {meta['revision']}; {meta['started_at']}; took {meta['duration_s']} s",
        f"Python {meta['python']}, SQLite {meta['sqlite']}, SQLAlchemy {meta['sqlalchemy']}, "
        f"eventsourcing {meta['eventsourcing']}, psycopg {meta['psycopg']}, "
        f"PostgreSQL {pg_version or '-'}; {meta['platform']}, {meta['cpus']} CPUs",
        "events/s: events stored per second (the median run; the lowest and highest run "
        "beside it); the ratio is to event-log's sequential log_event on the same backend; "
        "errors: events lost to an error, over all runs; p50/p99: one call (an event, or a "
        "batch), in the median run.",
    ]
    print(render(rows, heading))
    write_json(json_path, rows, meta)
    print(f"\nJSON: {json_path}")
    return 1 if any(row.status == "error" for row in rows) else 0
