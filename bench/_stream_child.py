"""What every child process of ``bench.stream`` shares: its line protocol with the parent.

A child reads commands from stdin, one line each, and answers with one JSON
line on stdout. stdin is read through the event loop (no thread that could
keep the process alive), and its end, the parent gone or done, ends the child.
An expected failure (the server refused or dropped a connection, say) is one
line on stderr and exit status 1; the parent shows that line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ._stream_wire import WireError

__all__ = ["ChildError", "Commands", "report", "run_child"]

_T = TypeVar("_T")


class ChildError(RuntimeError):
    """A failure the child reports in one line."""


class Commands:
    """The parent's commands, read from this process's stdin."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    @classmethod
    async def open(cls) -> Commands:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        return cls(reader)

    async def next(self, expected: str) -> list[str]:
        """The next command's words; it must be ``expected``. stdin's end is a failure."""
        line = await self._reader.readline()
        if not line:
            raise ChildError("the parent closed stdin")
        words = line.decode().split()
        if not words or words[0] != expected:
            raise ChildError(f"expected the command {expected!r}, got {line!r}")
        return words[1:]

    async def unless_closed(self, work: Awaitable[_T]) -> _T:
        """``work``'s result; should stdin end first (the parent is stopping this
        process), ``work`` is cancelled and a ChildError raised. No command may come
        meanwhile."""
        job = asyncio.ensure_future(work)
        closed = asyncio.ensure_future(self._reader.read())
        try:
            await asyncio.wait({job, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
            raise ChildError("the parent closed stdin")
        return job.result()


def report(result: dict[str, Any]) -> None:
    """One JSON line to the parent."""
    sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def run_child(name: str, main: Callable[[list[str]], Coroutine[Any, Any, None]]) -> int:
    """Run ``main(argv)``; an expected failure is one line on stderr and exit status 1."""
    try:
        asyncio.run(main(sys.argv[1:]))
    except (ChildError, WireError, OSError, TimeoutError, ValueError) as exc:
        print(f"{name}: {str(exc) or type(exc).__name__}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
