"""Running the app under uvicorn so that it holds its ground, and stops cleanly.

uvicorn serves the app; what it leaves open is added here, on its own terms:

- a cap on connections, checked as each one is accepted: past it, an
  immediate ``503`` with ``Retry-After`` and the connection closed. (uvicorn's
  ``limit_concurrency`` counts idle connections too and answers without
  ``Retry-After``, so idle clients could turn away every real request.)
- a header timeout: a connection that has not sent a whole request head within
  ``header_timeout`` seconds of connecting (or of its last answer) is closed.
  uvicorn has none, so a client trickling headers held its connection forever.
- keep-alive: an idle connection is closed after ``keep_alive`` seconds
  (uvicorn's ``timeout_keep_alive``).
- failing accepts (out of file descriptors, say) are logged once per burst,
  with a count, instead of a traceback per attempt; the file descriptor limit
  is raised to the hard limit first.
- on SIGINT/SIGTERM every open stream ends at once with a last SSE comment
  (the app's :class:`StreamHub` does it), so shutdown does not wait for streams
  that never end, nor cancel them into tracebacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any

import uvicorn

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_KEEP_ALIVE",
    "DEFAULT_MAX_CONNECTIONS",
    "ServerLimits",
    "run_server",
]

DEFAULT_MAX_CONNECTIONS = 2000
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE = 5  # whole seconds: uvicorn takes no fraction

_log = logging.getLogger("event_log.web")

# What uvicorn logs when an app lets go of a response it could not finish: here,
# only a stream whose client stopped reading, which the stream logs itself.
_UNFINISHED = "ASGI callable returned without completing response."
# Open files kept for other than connections: the database, logs, the loop's own.
_RESERVED_FILES = 64
# Seconds between two log lines about failing accepts.
_ACCEPT_LOG_EVERY = 10.0
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: 63\r\n\r\n"
    b'{"detail":"this server holds too many connections; try again"}\n'
)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one ``serve`` accepts before it turns clients away."""

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    keep_alive: int = DEFAULT_KEEP_ALIVE
    # Seconds shutdown waits for requests in flight (streams end at once).
    graceful_shutdown: int = 3

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        for name in ("header_timeout", "keep_alive", "graceful_shutdown"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds")


def _guarded(base: type[asyncio.Protocol], limits: ServerLimits) -> type[asyncio.Protocol]:
    """The HTTP protocol class uvicorn chose, with the connection cap and header timeout."""

    class Guarded(base):  # type: ignore[valid-type,misc]
        _refused = False
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if len(self.connections) >= limits.max_connections:
                self._refused = True
                assert isinstance(transport, asyncio.Transport)
                transport.write(_BUSY)
                transport.close()
                return
            super().connection_made(transport)
            self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            self._stop_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._between_requests():
                self._await_head()
            else:
                self._stop_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._stop_timer()  # keep-alive's own timeout runs until the next request

        def _between_requests(self) -> bool:
            cycle = getattr(self, "cycle", None)
            return cycle is None or bool(cycle.response_complete)

        def _await_head(self) -> None:
            if self._head_timer is None:
                loop = asyncio.get_running_loop()
                self._head_timer = loop.call_later(limits.header_timeout, self._head_too_slow)

        def _stop_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            transport = getattr(self, "transport", None)
            if self._between_requests() and transport is not None and not transport.is_closing():
                transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


class _Server(uvicorn.Server):
    """uvicorn's server, which also ends the app's streams on exit and keeps failing
    accepts out of the log but for one line per burst."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refused_accepts = 0
        self._accept_logged_at: float | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        default = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._exception_handler(default))
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_exit)

    def _exception_handler(self, default: Any) -> Any:
        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if not _about_accepting(context):
                if default is not None:
                    default(loop, context)
                else:
                    loop.default_exception_handler(context)
                return
            self._refused_accepts += 1
            now = loop.time()
            if self._accept_logged_at is None or now - self._accept_logged_at >= _ACCEPT_LOG_EVERY:
                _log.warning(
                    "cannot accept connections: %s (%d failed accept(s) since the last "
                    "report); new clients wait until connections close",
                    context.get("exception") or context.get("message"),
                    self._refused_accepts,
                )
                self._refused_accepts = 0
                self._accept_logged_at = now

        return handle


def _about_accepting(context: dict[str, Any]) -> bool:
    """Whether a loop error is a failing accept, or one of the accept retries asyncio
    scheduled for it (which fail again once the listening socket is closed)."""
    if "accept" in str(context.get("message", "")):
        return True
    return any(name in repr(context.get("handle")) for name in ("_start_serving", "_accept_"))


class _DropUnfinished(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _UNFINISHED


def _raise_file_limit() -> int | None:
    """As many file descriptors as the hard limit allows (each connection takes one);
    returns the limit now in force (None where there is none to read)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _connection_cap(limits: ServerLimits, files: int | None) -> ServerLimits:
    """``limits`` with a connection cap the open-file limit can hold.

    The cap refuses a connection once it is accepted; if accepting itself failed
    for want of descriptors, asyncio would retry every pending accept, and again,
    in a storm that grows each second. So the cap stays below the limit, with
    room for the database's files and the server's own.
    """
    if files is None:
        return limits
    room = files - _RESERVED_FILES if files > 2 * _RESERVED_FILES else files // 2
    if limits.max_connections <= room:
        return limits
    _log.warning(
        "serving at most %d connections, not %d: the open-file limit is %d "
        "(raise it with ulimit -n)",
        max(room, 1),
        limits.max_connections,
        files,
    )
    return replace(limits, max_connections=max(room, 1))


def run_server(
    app: Any, *, host: str, port: int, limits: ServerLimits, on_exit: Callable[[], None]
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (see the module for what is added to
    uvicorn); ``on_exit`` runs on the server's loop as soon as a signal arrives."""
    limits = _connection_cap(limits, _raise_file_limit())
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        timeout_keep_alive=limits.keep_alive,
        timeout_graceful_shutdown=limits.graceful_shutdown,
        log_level="info",
    )
    config.load()
    config.http_protocol_class = _guarded(config.http_protocol_class, limits)
    logging.getLogger("uvicorn.error").addFilter(_DropUnfinished())
    # uvicorn raises the SIGINT it caught again once it has stopped.
    with contextlib.suppress(KeyboardInterrupt):
        _Server(config, on_exit).run()
