"""``python -m bench.stream``: the SSE stream of ``event-log serve`` as a production fan-out.

Everything runs on this host over loopback. Each measurement creates a fresh
SQLite database (``event-log db upgrade`` and one warm-up event, so streams
start after it as they would in production), starts ``event-log --url ...
serve`` on a free port, measures, and stops it again. The writer is a
separate process logging through ``EventLogger.open(url)`` and ``log_event``
at a steady rate; each event's data carries its number and its send time
(``{"seq": n, "sent": time.time()}``). The SSE clients are raw asyncio
connections (HTTP/1.1 written by hand, the chunked body and the SSE messages
parsed by hand), many per client process, so they stay cheap beside the
server. See ``bench._stream_runs`` for what each measurement does.

1. Fan-out: N clients while the writer logs R events/s for ``--seconds``;
   after it stops, the clients get up to ``--deadline`` seconds to receive the
   rest. Per row: events written, events delivered per client (min, median)
   and whether every client got every event exactly once, delivery latency
   (receive time minus ``sent``) p50/p99 over all clients, the server's CPU.
2. Slow readers: 100 reading clients at 500 events/s (each event padded with
   1 KiB, more than socket buffers hold) plus 20 that read nothing after the
   response head (small ``SO_RCVBUF``); whether the server
   closed those (and said ``event: lagged``), and its RSS over the run.
3. Idle: streams open, nothing written, ``--idle-seconds``: the server's CPU.
4. JSON API: ``GET /events?limit=50`` and ``GET /summary`` in a loop over
   keep-alive connections, without and with the writer at 500 events/s.

Results are printed as markdown tables; progress goes to stderr. An expected
failure (the server does not start, a client process fails) is one line on
stderr and exit status 1. Every process started is stopped at the end, on an
error or Ctrl-C too, and the temporary directory is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import _stream_runs as runs
from ._stream_procs import BenchError, Processes, child_env
from ._stream_runs import ApiResult, FanOutResult, Settings, progress
from ._stream_wire import WireError
from .common import ROOT, percentile

__all__ = ["main"]

SCENARIOS = ("fanout", "slow", "idle", "api")
SLOW_READERS = 100
STALLED = 20
SLOW_RATE = 500.0
# Filler in each event of the slow-reader run: 1 KiB makes 10 MB per stalled
# client over 20 s, more than loopback's socket buffers hold (a few MB), so the
# server itself has to hold or cut off what a stalled client does not read.
SLOW_PADDING = 1024
IDLE_STREAMS = (0, 100, 300)
API_RATE = 500.0
API_CONNECTIONS = 4


def _numbers(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("every number must be at least 1")
    return values


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: one fan-out row, 10 clients at 200 events/s for 3 s",
    )
    parser.add_argument("--seconds", type=float, help="the writer's seconds per row (default 20)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=5.0,
        help="seconds the clients may take to receive the rest once the writer stops (default 5)",
    )
    parser.add_argument(
        "--clients", type=_numbers, help="fan-out clients per row (default 10,100,300)"
    )
    parser.add_argument("--rates", type=_numbers, help="fan-out events/s (default 500,2000)")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=2,
        help="processes the reading clients are split over (default 2)",
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=10.0, help="seconds of each idle row (default 10)"
    )
    parser.add_argument(
        "--src",
        type=Path,
        metavar="DIR",
        help="run event-log (migrations, server, writer) from the event_log package in DIR "
        "rather than the installed one: e.g. `git archive REV src migrations | tar -x -C D`, "
        "then --src D/src",
    )
    parser.add_argument(
        "--serve-options",
        type=shlex.split,
        default=[],
        metavar="OPTIONS",
        help="more options of `event-log serve` as one string, e.g. its limits: "
        "--serve-options='--option VALUE'",
    )
    parser.add_argument(
        "--only",
        choices=SCENARIOS,
        action="append",
        help="run only this part (repeatable; default: all four)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 3.0 if args.seconds is None else args.seconds
        args.clients = args.clients or [10]
        args.rates = args.rates or [200]
        args.only = args.only or ["fanout"]
    args.seconds = 20.0 if args.seconds is None else args.seconds
    args.clients = args.clients or [10, 100, 300]
    args.rates = args.rates or [500, 2000]
    args.only = args.only or list(SCENARIOS)
    if not args.seconds > 0 or args.deadline < 0 or not args.idle_seconds > 0:
        parser.error("--seconds and --idle-seconds must be above 0, --deadline at least 0")
    if args.client_processes < 1:
        parser.error("--client-processes must be at least 1")
    if args.src is not None:
        args.src = args.src.resolve()
        if not (args.src / "event_log" / "__init__.py").is_file():
            parser.error(f"--src {args.src}: no event_log package there")
    return args


# -- tables -------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table; every column but the first right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(parts) + " |"

    rules = ["-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)]
    rule = "|" + "|".join(rules) + "|"
    return [line(headers), rule, *(line(r) for r in rows)]


def _f(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _exact(result: FanOutResult) -> str:
    if result.exact():
        return "yes"
    parts = []
    if incomplete := result.incomplete():
        parts.append(f"{incomplete} incomplete")
    if duplicates := result.duplicates():
        parts.append(f"{duplicates} duplicates")
    for status, count in result.refused().items():
        parts.append(f"{count} refused ({status})")
    if not result.per_client:
        parts.append("no clients")
    return "no: " + ", ".join(parts)


def _ended(result: FanOutResult) -> str:
    """Streams the server ended, and how many of those it told they lagged."""
    ended = result.ended_by_server()
    return f"{ended} ({result.lagged()} lagged)" if ended or result.lagged() else "0"


def _all_in(result: FanOutResult, deadline: float) -> str:
    if result.complete_after_s is None:
        return f"> {deadline:g}"
    return _f(result.complete_after_s, 2)


def _fan_out_table(results: list[FanOutResult], deadline: float) -> list[str]:
    headers = (
        "clients",
        "target ev/s",
        "written",
        "writes/s",
        "delivered min",
        "delivered median",
        "delivered %",
        "every event once",
        "ended by server",
        "p50 ms",
        "p99 ms",
        "all in after (s)",
        "server CPU %",
        "clients CPU %",
        "writer CPU %",
        "host busy %",
    )
    rows = []
    for r in results:
        delivered = r.delivered()
        expected = r.written * len(delivered)
        share = 100.0 * sum(delivered) / expected if expected else float("nan")
        rows.append(
            (
                f"{r.clients:,}",
                f"{r.rate:,.0f}",
                f"{r.written:,}",
                _f(r.writes_per_s, 0),
                f"{min(delivered):,}" if delivered else "-",
                _f(runs.median_int(delivered), 0),
                _f(share),
                _exact(r),
                _ended(r),
                _f(r.histogram.percentile(0.50)),
                _f(r.histogram.percentile(0.99)),
                _all_in(r, deadline),
                _f(r.server_cpu_pct, 0),
                _f(r.clients_cpu_pct, 0),
                _f(r.writer_cpu_pct, 0),
                _f(r.host_busy_pct, 0),
            )
        )
    return _table(headers, rows)


def _slow_tables(r: FanOutResult, deadline: float) -> list[str]:
    refused = sum(s["refused"] is not None for s in r.stalled)
    stalled = [s for s in r.stalled if s["refused"] is None]
    closed = sum(s["closed"] for s in stalled)
    lagged = sum(s["lagged"] for s in stalled)
    sending = sum(s["still_sending"] for s in stalled)
    drained = [s["events"] for s in stalled]
    lines = _fan_out_table([r], deadline)
    lines += [""]
    lines += _table(
        (
            "stalled clients",
            "refused",
            "closed by the server",
            "with event: lagged",
            "still sending after the drain",
            "events drained, median",
            "events drained, max",
        ),
        [
            (
                f"{len(r.stalled)}",
                f"{refused}",
                f"{closed} of {len(stalled)}",
                f"{lagged} of {len(stalled)}",
                f"{sending} of {len(stalled)}",
                _f(runs.median_int(drained), 0),
                f"{max(drained, default=0):,}",
            )
        ],
    )
    lines += [""]
    rss = r.rss_mb
    lines += _table(
        ("server RSS MiB", "start", "middle", "end", "peak (VmHWM)", "end / start"),
        [
            (
                "",
                _f(rss.get("start")),
                _f(rss.get("middle")),
                _f(rss.get("end")),
                _f(rss.get("peak")),
                f"{rss['end'] / rss['start']:.2f}x" if rss.get("start") else "-",
            )
        ],
    )
    return lines


def _idle_table(results: list[runs.IdleResult]) -> list[str]:
    base = next((r.server_cpu_pct for r in results if r.streams == 0), None)
    rows = []
    for r in results:
        pct = r.server_cpu_pct
        per_100 = 100.0 * pct / r.open if r.open else None
        above = 100.0 * (pct - base) / r.open if r.open and base is not None else None
        rows.append(
            (
                f"{r.streams:,}",
                f"{r.open:,}",
                f"{r.ended:,}",
                _f(pct, 2),
                _f(per_100, 2),
                _f(above, 2),
                _f(r.host_busy_pct, 0),
            )
        )
    return _table(
        (
            "streams asked for",
            "open",
            "ended by server",
            "server CPU %",
            "per 100 streams",
            "per 100 streams, above 0 streams",
            "host busy %",
        ),
        rows,
    )


def _p99_all(result: ApiResult) -> float:
    return percentile([ms for values in result.latencies_ms.values() for ms in values], 0.99)


def _api_table(results: list[ApiResult]) -> list[str]:
    base = next((r for r in results if r.writer_rate is None), None)
    base_p99 = _p99_all(base) if base else None
    rows = []
    for r in results:
        events = r.latencies_ms["/events?limit=50"]
        summary = r.latencies_ms["/summary"]
        p99 = _p99_all(r)
        rows.append(
            (
                "none" if r.writer_rate is None else f"{r.writer_rate:,.0f} ev/s ({r.written:,})",
                _f(r.requests_per_s, 0),
                f"{r.requests_per_s / base.requests_per_s:.2f}x" if base else "-",
                _f(percentile(events, 0.5)),
                _f(percentile(events, 0.99)),
                _f(percentile(summary, 0.5)),
                _f(percentile(summary, 0.99)),
                f"{p99 / base_p99:.2f}x" if base_p99 else "-",
                _f(r.server_cpu_pct, 0),
                _f(r.client_cpu_pct, 0),
                _f(r.host_busy_pct, 0),
            )
        )
    return _table(
        (
            "writer",
            "requests/s",
            "vs no writer",
            "/events p50 ms",
            "/events p99 ms",
            "/summary p50 ms",
            "/summary p99 ms",
            "p99 (both) vs no writer",
            "server CPU %",
            "client CPU %",
            "host busy %",
        ),
        rows,
    )


# -- the run ------------------------------------------------------------------------------


def _revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD")
    if not rev:
        return "unknown (not a git checkout)"
    return f"{rev} with src/ modified" if git("status", "--porcelain", "--", "src") else rev


def _code(args: argparse.Namespace) -> str:
    if args.src is not None:
        return f"event-log from {args.src} (bench revision {_revision()})"
    return f"revision {_revision()}"


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _heading(args: argparse.Namespace) -> list[str]:
    return [
        f"# bench.stream{' (quick)' if args.quick else ''}: `event-log serve` SSE fan-out",
        "",
        f"{_code(args)}; {datetime.now(UTC).isoformat(timespec='seconds')}; "
        f"Python {platform.python_version()}, uvicorn {_package('uvicorn')} "
        f"(httptools {_package('httptools')}, uvloop {_package('uvloop')}); "
        f"{platform.platform()}, {os.cpu_count()} CPUs. SQLite, loopback. "
        f"`event-log serve` options: {shlex.join(args.serve_options) or '(defaults)'}. Writer: "
        f"{args.seconds:g} s per row; delivery deadline {args.deadline:g} s after it "
        f"stops; reading clients split over {args.client_processes} processes. "
        "Latency: receive time minus the event's send time (before its log_event "
        "call). CPU: % of one core (the server's can pass 100: aiosqlite runs SQLite in a "
        "thread); host busy: % of all cores, everything on the host "
        f"(load average at the start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}).",
    ]


async def _run(args: argparse.Namespace, workdir: Path, out: list[str]) -> None:
    settings = Settings(args.seconds, args.deadline, args.client_processes)
    env = child_env(args.src)

    def emit(title: str, lines: list[str]) -> None:
        out.extend(["", f"## {title}", "", *lines])

    if "fanout" in args.only:
        results: list[FanOutResult] = []
        for clients in args.clients:
            for rate in args.rates:
                progress(f"fan-out: {clients} clients, {rate:,} events/s for {args.seconds:g} s")
                async with Processes(workdir, env, args.serve_options) as procs:
                    results.append(await runs.fan_out(procs, settings, clients, rate))
        emit("Fan-out", _fan_out_table(results, args.deadline))
    if "slow" in args.only:
        progress(
            f"slow readers: {SLOW_READERS} reading + {STALLED} stalled, {SLOW_RATE:,.0f}/s, "
            f"{SLOW_PADDING} bytes of padding per event"
        )
        async with Processes(workdir, env, args.serve_options) as procs:
            slow = await runs.fan_out(
                procs,
                settings,
                SLOW_READERS,
                SLOW_RATE,
                stalled=STALLED,
                padding=SLOW_PADDING,
                name="slow",
            )
        emit(
            f"Slow readers: {SLOW_READERS} reading clients + {STALLED} stalled ones",
            _slow_tables(slow, args.deadline),
        )
    if "idle" in args.only:
        idle: list[runs.IdleResult] = []
        for streams in IDLE_STREAMS:
            progress(f"idle: {streams} streams for {args.idle_seconds:g} s")
            async with Processes(workdir, env, args.serve_options) as procs:
                idle.append(await runs.idle(procs, settings, streams, args.idle_seconds))
        emit(f"Idle streams ({args.idle_seconds:g} s, no writes)", _idle_table(idle))
    if "api" in args.only:
        api_results: list[ApiResult] = []
        for rate in (None, API_RATE):
            progress(f"JSON API, writer {'off' if rate is None else f'{rate:,.0f}/s'}")
            async with Processes(workdir, env, args.serve_options) as procs:
                api_results.append(await runs.api(procs, settings, API_CONNECTIONS, rate))
        emit(
            f"JSON API: /events?limit=50 and /summary in turn, {API_CONNECTIONS} keep-alive "
            f"connections, {args.seconds:g} s",
            _api_table(api_results),
        )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    out = _heading(args)
    failure: str | None = None
    status = 0
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        try:
            asyncio.run(_run(args, Path(tmp), out))
        except (BenchError, WireError, OSError, TimeoutError) as exc:
            failure = f"bench.stream failed: {str(exc) or type(exc).__name__}"
            status = 1
        except KeyboardInterrupt:
            failure = "bench.stream: interrupted; every process it started was stopped"
            status = 130
    print("\n".join(out), flush=True)
    if failure is not None:
        print(failure, file=sys.stderr, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
