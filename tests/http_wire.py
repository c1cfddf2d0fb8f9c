"""HTTP/1.1 responses as raw bytes off a socket: for tests that talk to a server directly."""

from __future__ import annotations

__all__ = ["dechunk", "split_response"]


def split_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """A response's status, headers (lower-case names) and body as sent (chunked or not).

    ``ConnectionError`` if ``data`` holds no whole response head.
    """
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        raise ConnectionError(f"no whole response head: {data[:200]!r}")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ", 2)[1]), headers, body


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """The payload of a chunked body (of as much of it as came), and whether its last,
    empty chunk came."""
    payload, pos = b"", 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            return payload, False
        size = int(body[pos:end].split(b";")[0], 16)
        if size == 0:
            return payload, True
        payload += body[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2
