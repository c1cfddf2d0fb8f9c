"""The JSON API client of ``bench.stream``.

``python -m bench._stream_api PORT CONNECTIONS SECONDS``

It opens CONNECTIONS keep-alive connections to the server on 127.0.0.1:PORT,
sends each one warm-up request of every path, prints ``{"ready": ...}``, waits
for ``go`` on stdin, and then, on every connection at once, asks for the
paths in turn (``GET /events?limit=50``, ``GET /summary``, again and again),
one request at a time per connection, for SECONDS. Each request is timed
from its first byte written to its whole response read. It prints the
latencies (ms) per path, the seconds the loop ran and its CPU seconds. Any
status but 200 is a failure.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ._stream_child import ChildError, Commands, report, run_child
from ._stream_wire import read_response, request

__all__ = ["PATHS"]

PATHS = ("/events?limit=50", "/summary")
_CONNECT_TIMEOUT_S = 30.0


class _Connection:
    def __init__(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._port = port
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(port, reader, writer)

    async def get(self, path: str) -> float:
        """One request; its latency in ms."""
        started = time.perf_counter()
        self._writer.write(request(path, self._port))
        response = await read_response(self._reader)
        elapsed = (time.perf_counter() - started) * 1000.0
        if response.status != 200:
            raise ChildError(f"GET {path} answered {response.status}: {response.body[:200]!r}")
        if response.headers.get("connection", "").lower() == "close":
            raise ChildError(f"GET {path}: the server closed the keep-alive connection")
        return elapsed

    def close(self) -> None:
        self._writer.close()


async def _loop(connection: _Connection, until: float, latencies: dict[str, list[float]]) -> None:
    turn = 0
    while time.monotonic() < until:
        path = PATHS[turn % len(PATHS)]
        latencies[path].append(await connection.get(path))
        turn += 1


async def _main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise ChildError("usage: python -m bench._stream_api PORT CONNECTIONS SECONDS")
    port, count, seconds = int(argv[0]), int(argv[1]), float(argv[2])
    commands = await Commands.open()
    async with asyncio.timeout(_CONNECT_TIMEOUT_S):
        connections = [await _Connection.open(port) for _ in range(count)]
        for connection in connections:
            for path in PATHS:
                await connection.get(path)
    try:
        report({"ready": count, "cpu_s": time.process_time()})
        await commands.next("go")
        latencies: dict[str, list[float]] = {path: [] for path in PATHS}
        started = time.monotonic()
        await commands.unless_closed(
            asyncio.gather(
                *(_loop(connection, started + seconds, latencies) for connection in connections)
            )
        )
        elapsed = time.monotonic() - started
    finally:
        for connection in connections:
            connection.close()
    result: dict[str, Any] = {
        "latencies_ms": latencies,
        "seconds": elapsed,
        "cpu_s": time.process_time(),
    }
    report(result)


if __name__ == "__main__":
    raise SystemExit(run_child("bench stream API client", _main))
