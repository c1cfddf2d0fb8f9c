"""The client side of HTTP/1.1 and Server-Sent Events for ``bench.stream``, kept cheap.

The benchmark's clients share two cores with the server they measure, so they
use no HTTP library: a request is a few bytes written to an asyncio stream,
a response head is read up to its blank line, a chunked body is decoded by
hand and SSE messages are split on their blank lines. Events are recognised
by the numbers the writer put in their ``data`` (``"seq"`` and ``"sent"``),
found with a regular expression rather than by parsing the whole JSON.

Delivery latencies go into a :class:`Histogram` of 1% wide buckets, so a
process can merge millions of them and report percentiles in a few kilobytes.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "ChunkedDecoder",
    "Histogram",
    "IdentityDecoder",
    "Response",
    "SseSplitter",
    "WireError",
    "body_decoder",
    "event_numbers",
    "read_response",
    "read_response_head",
    "request",
]

_SEQ = re.compile(rb'"seq":(\d+)')
_SENT = re.compile(rb'"sent":([0-9.eE+-]+)')


class WireError(RuntimeError):
    """The server answered something the benchmark cannot read."""


def request(path: str, port: int, *, accept: str = "application/json") -> bytes:
    """An HTTP/1.1 GET of ``path`` on the loopback server at ``port`` (keep-alive)."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: {accept}\r\n"
        "User-Agent: bench.stream\r\n\r\n"
    ).encode("ascii")


@dataclass(frozen=True, slots=True)
class Response:
    """A response's status and headers (names lower-cased), and its body when read."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()


def parse_head(head: bytes) -> Response:
    """The status and headers of ``head`` (the bytes up to and with the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise WireError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise WireError(f"malformed header line: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return Response(int(parts[1]), headers)


async def read_response_head(reader: asyncio.StreamReader) -> Response:
    """Read a response's status line and headers (not its body)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise WireError("the server closed the connection before answering") from exc
    except asyncio.LimitOverrunError as exc:
        raise WireError("the response head is larger than the reader's limit") from exc
    return parse_head(head)


async def read_response(reader: asyncio.StreamReader) -> Response:
    """Read a whole response (``Content-Length`` or chunked) and keep the connection."""
    head = await read_response_head(reader)
    try:
        if head.chunked:
            decoder = ChunkedDecoder()
            body = bytearray()
            while not decoder.done:
                data = await reader.read(65536)
                if not data:
                    raise WireError("the server closed the connection inside a chunked body")
                body += decoder.feed(data)
            return Response(head.status, head.headers, bytes(body))
        length = int(head.headers.get("content-length", "0"))
        return Response(head.status, head.headers, await reader.readexactly(length))
    except asyncio.IncompleteReadError as exc:
        raise WireError("the server closed the connection inside a response body") from exc


class ChunkedDecoder:
    """Incremental decoding of ``Transfer-Encoding: chunked``: feed bytes, get body bytes.

    The last chunk (size 0) sets :attr:`done`; trailers after it are ignored.
    """

    __slots__ = ("_buf", "done")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self._buf
        buf += data
        out = bytearray()
        pos = 0
        while not self.done:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                break
            size_field = bytes(buf[pos:end]).split(b";", 1)[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError:
                raise WireError(f"bad chunk size {size_field[:20]!r}") from None
            if size == 0:
                self.done = True
                pos = len(buf)
                break
            start = end + 2
            stop = start + size
            if len(buf) < stop + 2:
                break
            if buf[stop : stop + 2] != b"\r\n":
                raise WireError("a chunk does not end with CRLF")
            out += buf[start:stop]
            pos = stop + 2
        del buf[:pos]
        return bytes(out)


class IdentityDecoder:
    """A body that is not chunked: ``Content-Length`` bytes, or (without one) up to the
    connection's end. Same interface as :class:`ChunkedDecoder`."""

    __slots__ = ("_left", "done")

    def __init__(self, length: int | None) -> None:
        self._left = length
        self.done = length == 0

    def feed(self, data: bytes) -> bytes:
        if self._left is None:
            return data
        data = data[: self._left]
        self._left -= len(data)
        self.done = self._left == 0
        return data


def body_decoder(response: Response) -> ChunkedDecoder | IdentityDecoder:
    """The decoder of ``response``'s body, by its headers."""
    if response.chunked:
        return ChunkedDecoder()
    length = response.headers.get("content-length")
    if length is None:
        return IdentityDecoder(None)
    if not length.isdigit():
        raise WireError(f"bad Content-Length {length[:20]!r}")
    return IdentityDecoder(int(length))


class SseSplitter:
    """Incremental splitting of an SSE body into messages (each without its blank line).

    Lines may end in LF or CRLF; a message ends at an empty line.
    """

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> list[bytes]:
        text = self._rest + data
        if b"\r" in text:
            text = text.replace(b"\r\n", b"\n")
        messages = text.split(b"\n\n")
        self._rest = messages.pop()
        return messages


def event_numbers(message: bytes) -> tuple[int, float] | None:
    """A bench event's ``(seq, sent)`` from its SSE message; None for anything else."""
    seq = _SEQ.search(message)
    sent = _SENT.search(message)
    if seq is None or sent is None:
        return None
    return int(seq[1]), float(sent[1])


# -- latencies ------------------------------------------------------------------------

_FLOOR_MS = 0.01  # bucket 0 holds everything up to 10 us (and clock oddities below 0)
_LOG_STEP = math.log(1.01)  # each bucket 1% wider than the one before


@dataclass(slots=True)
class Histogram:
    """Counts of latencies (milliseconds) in buckets 1% wide; percentiles within 1%."""

    counts: dict[int, int] = field(default_factory=dict)

    def add(self, ms: float) -> None:
        bucket = 0 if ms <= _FLOOR_MS else int(math.log(ms / _FLOOR_MS) / _LOG_STEP) + 1
        self.counts[bucket] = self.counts.get(bucket, 0) + 1

    def merge(self, other: Mapping[int, int] | Mapping[str, int]) -> None:
        for bucket, count in other.items():
            key = int(bucket)
            self.counts[key] = self.counts.get(key, 0) + count

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0..1) in ms (a bucket's upper edge); NaN when empty."""
        total = self.total
        if total == 0:
            return float("nan")
        rank = max(1, math.ceil(q * total))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return _FLOOR_MS * math.exp(bucket * _LOG_STEP)
        raise AssertionError("unreachable: the ranks add up to the total")

    def as_json(self) -> dict[str, int]:
        return {str(bucket): count for bucket, count in self.counts.items()}

    @classmethod
    def of(cls, parts: Iterable[Mapping[str, int]]) -> Histogram:
        merged = cls()
        for part in parts:
            merged.merge(part)
        return merged
