"""The measurements of ``bench.stream``: each starts a server of its own and reports a result.

- :func:`fan_out`: reading clients (and, optionally, stalled ones) on ``/stream``
  while a writer process logs at a steady rate; afterwards, what each client
  received and when, and the server's CPU and memory.
- :func:`idle`: streams open, nothing written: the server's CPU.
- :func:`api`: a client process asking ``/events?limit=50`` and ``/summary`` in
  turn over keep-alive connections, with or without the writer.

The server's CPU is ``/proc/<pid>/stat``'s user plus system time over a
measurement's window, as a percentage of one core: from the writer's ``go`` to
the clients' last report (the delivery wait included), or the idle seconds.
It can pass 100%: aiosqlite runs SQLite's work in a thread, outside the GIL.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ._stream_procs import Child, Processes, Server, host_busy_pct, host_ticks
from ._stream_wire import Histogram

__all__ = [
    "ApiResult",
    "FanOutResult",
    "IdleResult",
    "Settings",
    "api",
    "fan_out",
    "idle",
    "median_int",
    "progress",
]


def progress(message: str) -> None:
    print(f"[bench.stream] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Settings:
    """What every measurement of one run shares."""

    seconds: float  # the writer's seconds (and the API client's)
    deadline: float  # seconds the clients may take to receive everything once the writer stops
    client_processes: int  # the reading clients are split over this many processes


@dataclass(slots=True)
class FanOutResult:
    clients: int
    rate: float
    written: int
    write_seconds: float
    behind_max_ms: float
    per_client: list[dict[str, Any]]
    histogram: Histogram
    complete_after_s: float | None  # after the writer stopped; None: not within the deadline
    window_s: float
    server_cpu_s: float
    clients_cpu_s: float
    writer_cpu_s: float
    host_busy_pct: float  # of all the host's cores, over the window
    rss_mb: dict[str, float] = field(default_factory=dict)  # start, middle, end, peak
    stalled: list[dict[str, Any]] = field(default_factory=list)

    @property
    def writes_per_s(self) -> float:
        return self.written / self.write_seconds if self.write_seconds else float("nan")

    @property
    def server_cpu_pct(self) -> float:
        return 100.0 * self.server_cpu_s / self.window_s

    @property
    def clients_cpu_pct(self) -> float:
        return 100.0 * self.clients_cpu_s / self.window_s

    @property
    def writer_cpu_pct(self) -> float:
        return 100.0 * self.writer_cpu_s / self.window_s

    def streaming(self) -> list[dict[str, Any]]:
        """The clients whose stream the server accepted."""
        return [c for c in self.per_client if c["refused"] is None]

    def refused(self) -> dict[int, int]:
        """How many clients the server refused, by status."""
        statuses = [c["refused"] for c in self.per_client if c["refused"] is not None]
        return {status: statuses.count(status) for status in sorted(set(statuses))}

    def delivered(self) -> list[int]:
        return [c["delivered"] for c in self.streaming()]

    def incomplete(self) -> int:
        return sum(c["missing"] > 0 for c in self.streaming())

    def duplicates(self) -> int:
        return sum(c["duplicates"] + c["beyond"] for c in self.streaming())

    def ended_by_server(self) -> int:
        """Streams the server ended before the clients let go (with lagged or not)."""
        return sum(bool(c["ended"]) for c in self.streaming())

    def lagged(self) -> int:
        return sum(bool(c["lagged"]) for c in self.streaming())

    def exact(self) -> bool:
        """Every client got every event exactly once."""
        return (
            bool(self.per_client)
            and not self.refused()
            and self.incomplete() == 0
            and self.duplicates() == 0
        )


def _split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if k < total % parts else 0) for k in range(parts)]


async def _readers(procs: Processes, server: Server, clients: int, split: int) -> list[Child]:
    children = []
    for k, n in enumerate(_split(clients, split)):
        if n:
            what = f"client process {k + 1} ({n} streams)"
            children.append(await procs.child(what, "_stream_client", "reader", server.port, n))
    return children


async def fan_out(
    procs: Processes,
    settings: Settings,
    clients: int,
    rate: float,
    *,
    stalled: int = 0,
    padding: int = 0,
    name: str = "fan-out",
) -> FanOutResult:
    """``clients`` reading streams (+ ``stalled`` ones) while the writer logs at ``rate``."""
    server = await procs.server(name)
    readers = await _readers(procs, server, clients, settings.client_processes)
    stallers = []
    if stalled:
        what = f"stalled clients ({stalled})"
        stallers.append(await procs.child(what, "_stream_client", "stalled", server.port, stalled))
    writer = await procs.child(
        "writer", "_stream_writer", server.url, rate, settings.seconds, padding
    )
    ready = await procs.ready([*readers, *stallers, writer])
    cpu_ready = sum(float(r["cpu_s"]) for r in ready[: len(readers)])
    writer_cpu_ready = float(ready[-1]["cpu_s"])
    rss = {"start": server.rss_mb()}
    server_cpu = server.cpu_seconds()
    host = host_ticks()
    started = time.monotonic()
    writer.send("go")
    written = asyncio.ensure_future(writer.line(settings.seconds + 120))
    try:
        await asyncio.wait({written}, timeout=settings.seconds / 2)
        rss["middle"] = server.rss_mb()
        wrote = await written
    finally:
        written.cancel()
    n = int(wrote["events"])
    for child in [*readers, *stallers]:
        child.send(f"finish {n} {settings.deadline}")
    reports = await asyncio.gather(
        *(child.line(settings.deadline + 60) for child in [*readers, *stallers])
    )
    window = time.monotonic() - started
    server_cpu = server.cpu_seconds() - server_cpu
    host_busy = host_busy_pct(host, host_ticks())
    rss["end"] = server.rss_mb()
    rss["peak"] = server.peak_rss_mb()
    reader_reports = reports[: len(readers)]
    completes = [r["complete_after_s"] for r in reader_reports]
    return FanOutResult(
        clients=clients,
        rate=rate,
        written=n,
        write_seconds=float(wrote["seconds"]),
        behind_max_ms=float(wrote["behind_max_ms"]),
        per_client=[c for r in reader_reports for c in r["clients"]],
        histogram=Histogram.of(r["histogram"] for r in reader_reports),
        complete_after_s=None if None in completes else max(completes, default=0.0),
        window_s=window,
        server_cpu_s=server_cpu,
        clients_cpu_s=sum(float(r["cpu_s"]) for r in reader_reports) - cpu_ready,
        writer_cpu_s=float(wrote["cpu_s"]) - writer_cpu_ready,
        host_busy_pct=host_busy,
        rss_mb=rss,
        stalled=[s for r in reports[len(readers) :] for s in r["stalled"]],
    )


@dataclass(frozen=True, slots=True)
class IdleResult:
    streams: int  # asked for
    open: int  # accepted by the server
    ended: int  # ended by the server while idle
    server_cpu_pct: float
    host_busy_pct: float  # of all the host's cores


async def idle(procs: Processes, settings: Settings, streams: int, seconds: float) -> IdleResult:
    """The server's CPU, % of one core, over ``seconds`` with ``streams`` open and no writes."""
    server = await procs.server(f"idle-{streams}")
    readers = await _readers(procs, server, streams, settings.client_processes)
    ready = await procs.ready(readers)
    await asyncio.sleep(1.0)  # the streams' own start is not idling
    before = server.cpu_seconds()
    host = host_ticks()
    started = time.monotonic()
    await asyncio.sleep(seconds)
    used = server.cpu_seconds() - before
    host_busy = host_busy_pct(host, host_ticks())
    window = time.monotonic() - started
    for child in readers:
        child.send("finish 0 0")
    reports = await asyncio.gather(*(child.line(60) for child in readers))
    return IdleResult(
        streams=streams,
        open=sum(int(r["ready"]) for r in ready),
        ended=sum(bool(c["ended"]) for r in reports for c in r["clients"]),
        server_cpu_pct=100.0 * used / window,
        host_busy_pct=host_busy,
    )


@dataclass(slots=True)
class ApiResult:
    writer_rate: float | None
    requests: int
    seconds: float
    latencies_ms: dict[str, list[float]]
    server_cpu_pct: float
    written: int | None
    host_busy_pct: float
    client_cpu_pct: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds


async def api(
    procs: Processes, settings: Settings, connections: int, writer_rate: float | None
) -> ApiResult:
    """The API client for ``settings.seconds`` over ``connections`` (with the writer)."""
    name = "api" if writer_rate is None else "api-writer"
    server = await procs.server(name)
    client = await procs.child(
        f"API client ({connections} connections)",
        "_stream_api",
        server.port,
        connections,
        settings.seconds,
    )
    children = [client]
    if writer_rate is not None:
        children.append(
            await procs.child("writer", "_stream_writer", server.url, writer_rate, settings.seconds)
        )
    ready = await procs.ready(children)
    before = server.cpu_seconds()
    host = host_ticks()
    started = time.monotonic()
    for child in children:
        child.send("go")
    results = await asyncio.gather(*(child.line(settings.seconds + 120) for child in children))
    used = server.cpu_seconds() - before
    host_busy = host_busy_pct(host, host_ticks())
    window = time.monotonic() - started
    latencies: dict[str, list[float]] = results[0]["latencies_ms"]
    return ApiResult(
        writer_rate=writer_rate,
        requests=sum(len(v) for v in latencies.values()),
        seconds=float(results[0]["seconds"]),
        latencies_ms=latencies,
        server_cpu_pct=100.0 * used / window,
        written=int(results[1]["events"]) if writer_rate is not None else None,
        host_busy_pct=host_busy,
        client_cpu_pct=100.0 * (float(results[0]["cpu_s"]) - float(ready[0]["cpu_s"])) / window,
    )


def median_int(values: list[int]) -> float:
    return statistics.median(values) if values else float("nan")
