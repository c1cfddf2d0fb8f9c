"""A process of ``bench.stream`` SSE clients: ``python -m bench._stream_client KIND PORT COUNT``.

It opens COUNT connections to ``GET /stream`` of the server on 127.0.0.1:PORT
and prints one JSON line once all of them stream (``{"ready": STREAMING, ...}``).
A response other than 200 (a server at its stream limit, say) is noted as that
connection's refusal, not a failure.

KIND ``reader``: each connection reads everything the server sends, decodes
the body (chunked, or not), splits it into SSE messages and, for each bench event
(``data`` with ``"seq"`` and ``"sent"``), counts its sequence number and adds
its delivery latency (the time of the read that brought it, minus ``sent``)
to the process's histogram. The command ``finish N DEADLINE`` waits until
every connection holds each of the events 0..N-1, or DEADLINE seconds, then
prints the result: per connection, the distinct events, duplicates, whether
the server ended the stream (and with an ``event: lagged`` or
``event: error`` message); the latency histogram; the process's CPU seconds.

KIND ``stalled``: each connection has a small receive buffer (``SO_RCVBUF``)
and reads nothing after the response head. ``finish N DEADLINE`` then reads
what the kernel and the server hold for each, for at most DEADLINE seconds
and until it has been idle for a second, and reports whether the server had
closed it (end of stream) and whether an ``event: lagged`` message came.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._stream_child import ChildError, Commands, report, run_child
from ._stream_wire import (
    ChunkedDecoder,
    Histogram,
    IdentityDecoder,
    SseSplitter,
    WireError,
    body_decoder,
    event_numbers,
    parse_head,
    read_response_head,
    request,
)

__all__ = ["KINDS"]

KINDS = ("reader", "stalled")
STREAM_PATH = "/stream"
_CONNECT_TIMEOUT_S = 60.0  # for every connection of the process to stream
_CONNECTING_AT_ONCE = 25
_READ_SIZE = 256 * 1024
_STALLED_RCVBUF = 4096  # the kernel doubles it and keeps a floor; a few kB either way
_IDLE_S = 1.0  # a stalled connection's drain ends after this long without data
_MARK_LAGGED = b"event: lagged"

_T = TypeVar("_T")


@dataclass(slots=True)
class _Reader:
    """One reading connection's tally."""

    counts: bytearray = field(default_factory=bytearray)  # per seq, saturating at 255
    distinct: int = 0
    duplicates: int = 0
    other_messages: int = 0
    lagged: bool = False
    error: str | None = None
    ended: bool = False  # the server ended the stream (last chunk, or the connection closed)
    reset: bool = False  # ... by resetting the connection
    refused: int | None = None  # the status of a response other than 200
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def has_all(self, n: int) -> bool:
        return self.distinct >= n and self.counts[:n].count(0) == 0

    def result(self, n: int) -> dict[str, Any]:
        below = self.counts[:n]
        have = len(below) - below.count(0)
        return {
            "delivered": have,
            "missing": n - have,
            "duplicates": self.duplicates,
            "beyond": self.distinct - have,  # events numbered n or above: none are expected
            "lagged": self.lagged,
            "error": self.error,
            "ended": self.ended,
            "reset": self.reset,
            "refused": self.refused,
        }


def _message(state: _Reader, histogram: Histogram, message: bytes, now: float) -> None:
    numbers = event_numbers(message)
    if numbers is None:
        if b"event:" in message:
            for line in message.split(b"\n"):
                if line.startswith(b"event:"):
                    kind = line[6:].strip()
                    if kind == b"lagged":
                        state.lagged = True
                    elif kind == b"error":
                        state.error = message.decode(errors="replace")[-200:]
        if b": connected" in message:
            state.connected.set()
        state.other_messages += 1
        return
    seq, sent = numbers
    counts = state.counts
    if seq >= len(counts):
        counts.extend(bytes(max(seq + 1 - len(counts), len(counts))))
    seen = counts[seq]
    if seen == 0:
        state.distinct += 1
    else:
        state.duplicates += 1
    if seen < 255:
        counts[seq] = seen + 1
    histogram.add((now - sent) * 1000.0)
    state.connected.set()  # an event before the opening message: it streams all the same


async def _read_stream(
    reader: asyncio.StreamReader,
    decoder: ChunkedDecoder | IdentityDecoder,
    state: _Reader,
    histogram: Histogram,
) -> None:
    splitter = SseSplitter()
    data = b""
    while True:
        now = time.time()
        if data:
            for message in splitter.feed(decoder.feed(data)):
                _message(state, histogram, message, now)
        if decoder.done:
            state.ended = True
            return
        try:
            data = await reader.read(_READ_SIZE)
        except ConnectionError:
            state.ended = state.reset = True
            return
        if not data:
            state.ended = True
            return


async def _open_reader(
    port: int, histogram: Histogram, tasks: list[asyncio.Task[None]]
) -> tuple[_Reader, asyncio.StreamWriter]:
    """A streaming connection, or a refused one (its status noted, the connection closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(STREAM_PATH, port, accept="text/event-stream"))
    head = await read_response_head(reader)
    state = _Reader()
    if head.status != 200:
        state.refused = head.status
        writer.close()
        return state, writer
    task = asyncio.create_task(_read_stream(reader, body_decoder(head), state, histogram))
    tasks.append(task)
    connected = asyncio.ensure_future(state.connected.wait())
    try:
        await asyncio.wait({task, connected}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        connected.cancel()
    if not state.connected.is_set():
        task.result()  # raises what ended it, if anything did
        raise WireError(
            f"GET {STREAM_PATH} ended before its opening message (response headers: "
            f"{dict(head.headers)})"
        )
    return state, writer


async def _open_all(count: int, opener: Callable[[], Awaitable[_T]]) -> list[_T]:
    gate = asyncio.Semaphore(_CONNECTING_AT_ONCE)

    async def one() -> _T:
        async with gate:
            return await opener()

    async with asyncio.timeout(_CONNECT_TIMEOUT_S):
        return list(await asyncio.gather(*(one() for _ in range(count))))


async def _delivered(
    streaming: list[_Reader], tasks: list[asyncio.Task[None]], n: int, deadline: float
) -> float | None:
    """Seconds until every stream holds events 0..n-1; None if not within ``deadline``."""
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        if all(state.has_all(n) for state in streaming):
            return time.monotonic() - started
        if all(task.done() for task in tasks):
            break
        await asyncio.sleep(0.05)
    return None


async def _readers(port: int, count: int, commands: Commands) -> None:
    histogram = Histogram()
    tasks: list[asyncio.Task[None]] = []
    opened: list[tuple[_Reader, asyncio.StreamWriter]] = await _open_all(
        count, lambda: _open_reader(port, histogram, tasks)
    )
    states = [state for state, _ in opened]
    streaming = [state for state in states if state.refused is None]
    report({"ready": len(streaming), "cpu_s": time.process_time()})
    n_text, deadline_text = await commands.next("finish")
    n, deadline = int(n_text), float(deadline_text)
    complete_after = await commands.unless_closed(_delivered(streaming, tasks, n, deadline))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise ChildError(f"a stream failed: {task.exception()}")
        task.cancel()
    for _, writer in opened:
        writer.close()
    report(
        {
            "clients": [state.result(n) for state in states],
            "histogram": histogram.as_json(),
            "complete_after_s": complete_after,
            "cpu_s": time.process_time(),
        }
    )


async def _open_stalled(port: int) -> socket.socket | int:
    """A connection that reads nothing after the response head, or a refusal's status."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _STALLED_RCVBUF)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, request(STREAM_PATH, port, accept="text/event-stream"))
        head = b""
        while not head.endswith(b"\r\n\r\n"):  # a byte at a time: not one byte of the body
            byte = await loop.sock_recv(sock, 1)
            if not byte:
                raise WireError("the server closed a stalled connection before answering")
            head += byte
        status = parse_head(head).status
        if status != 200:
            sock.close()
            return status
    except BaseException:
        sock.close()
        raise
    return sock


async def _drain(sock: socket.socket, deadline: float) -> dict[str, Any]:
    """Read what a stalled connection holds: whether it was closed, and how."""
    loop = asyncio.get_running_loop()
    received = events = 0
    lagged = eof = False
    tail = b""
    end = time.monotonic() + deadline
    while (left := end - time.monotonic()) > 0:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, _READ_SIZE), min(_IDLE_S, left))
        except TimeoutError:
            break
        except ConnectionError:
            eof = True
            break
        if not data:
            eof = True
            break
        received += len(data)
        events += data.count(b'"seq":')
        window = tail + data
        lagged = lagged or _MARK_LAGGED in window
        tail = window[-len(_MARK_LAGGED) :]
    still_sending = not eof and end - time.monotonic() <= 0
    sock.close()
    return {
        "refused": None,
        "closed": eof,
        "lagged": lagged,
        "bytes": received,
        "events": events,
        "still_sending": still_sending,
    }


async def _stalled(port: int, count: int, commands: Commands) -> None:
    opened: list[socket.socket | int] = await _open_all(count, lambda: _open_stalled(port))
    socks = [sock for sock in opened if isinstance(sock, socket.socket)]
    refused = [{"refused": status} for status in opened if isinstance(status, int)]
    try:
        report({"ready": len(socks), "cpu_s": time.process_time()})
        _, deadline_text = await commands.next("finish")
        results = await commands.unless_closed(
            asyncio.gather(*(_drain(sock, float(deadline_text)) for sock in socks))
        )
    finally:
        for sock in socks:
            sock.close()
    report({"stalled": [*results, *refused], "cpu_s": time.process_time()})


async def _main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] not in KINDS:
        raise ChildError(f"usage: python -m bench._stream_client {{{','.join(KINDS)}}} PORT COUNT")
    kind, port, count = argv[0], int(argv[1]), int(argv[2])
    commands = await Commands.open()
    if kind == "reader":
        await _readers(port, count, commands)
    else:
        await _stalled(port, count, commands)


if __name__ == "__main__":
    raise SystemExit(run_child("bench stream client", _main))
