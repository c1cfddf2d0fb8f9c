"""A whole app around the router, and ``serve()``, which runs it with uvicorn."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from event_log import EventLogger

from ._auth import UNAUTHORIZED, TokenAuth
from ._fanout import DEFAULT_MAX_LAG, DEFAULT_MAX_STREAMS, StreamHub
from ._router import DEFAULT_HEARTBEAT, build_router
from ._server import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_KEEP_ALIVE,
    DEFAULT_MAX_CONNECTIONS,
    ServerLimits,
    run_server,
)

__all__ = ["SERVE_POLL_INTERVAL", "create_app", "is_loopback", "serve"]

# Seconds between the stream tail's polls for other processes' events in serve().
SERVE_POLL_INTERVAL = 0.05


def create_app(
    url: str | None = None,
    *,
    token: str | None = None,
    heartbeat: float = DEFAULT_HEARTBEAT,
    max_streams: int = DEFAULT_MAX_STREAMS,
    max_lag: int = DEFAULT_MAX_LAG,
    **options: Any,
) -> FastAPI:
    """A FastAPI app serving the router at ``/`` over a logger it opens in its lifespan.

    ``url`` falls back to ``$EVENT_LOG_URL``, then the default SQLite file, as in
    ``EventLogger.open()``, which receives ``options`` too. Nothing is opened
    until the server starts the app.

    With ``token``, only its holder reads the log: the API and the stream take
    ``Authorization: Bearer <token>``, the page a login form (``/login``) that
    sets a session cookie. A token that cannot be sent back raises ``ValueError``.

    ``heartbeat``, ``max_streams`` and ``max_lag`` are :func:`create_router`'s.
    While the app runs, ``app.state.event_log_streams`` is its streams' shared
    tail, whose ``shutdown()`` ends every stream (``serve`` calls it on a signal).
    """
    auth = None if token is None else TokenAuth(token)
    if not heartbeat > 0:
        raise ValueError("heartbeat must be > 0 seconds")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with EventLogger.open(url, **options) as log:
            # The router needs the open logger, which exists only from here on;
            # its routes leave again on shutdown, so a restarted app starts clean.
            before = list(app.router.routes)
            hub = StreamHub(log, heartbeat=heartbeat, max_streams=max_streams, max_lag=max_lag)
            app.state.event_log_streams = hub
            app.include_router(
                build_router(log, hub),
                dependencies=[] if auth is None else [Depends(auth)],
                responses={} if auth is None else UNAUTHORIZED,
            )
            app.openapi_schema = None
            try:
                yield
            finally:
                hub.shutdown()
                app.state.event_log_streams = None
                app.router.routes[:] = before
                app.openapi_schema = None

    app = FastAPI(
        title="event-log",
        summary="The swarm's audit trail: query, summarise and follow events.",
        version=_version(),
        lifespan=lifespan,
    )
    if auth is not None:
        auth.install(app)
    return app


def is_loopback(host: str) -> bool:
    """Whether a server listening on ``host`` is reachable from this machine only.

    ``localhost`` and the loopback addresses (127.0.0.0/8, ::1) are; anything else,
    ``0.0.0.0`` and host names included, may be reachable from elsewhere.
    """
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def serve(
    url: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    token: str | None = None,
    insecure_no_auth: bool = False,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_streams: int = DEFAULT_MAX_STREAMS,
    max_lag: int = DEFAULT_MAX_LAG,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    keep_alive: int = DEFAULT_KEEP_ALIVE,
    **options: Any,
) -> None:
    """Run :func:`create_app` with uvicorn until SIGINT or SIGTERM (``event-log serve``).

    On an interface other than loopback (see :func:`is_loopback`) anyone who can
    reach the port could read the audit trail, so a ``token`` is required there
    unless ``insecure_no_auth`` says to serve without one (``ValueError``
    otherwise, before anything starts). ``options`` go to ``EventLogger.open()``.

    The server holds its ground: past ``max_connections`` open connections, or
    ``max_streams`` streams, a client gets a 503 with ``Retry-After``; a
    connection that has not sent a request head within ``header_timeout``
    seconds, or sits idle between requests for ``keep_alive`` seconds, is
    closed; a stream client more than ``max_lag`` events behind is cut off with
    a ``lagged`` message. On a signal, every stream ends with a last comment
    and the server exits once requests in flight are answered. The streams'
    tail polls for other processes' events every ``SERVE_POLL_INTERVAL``
    seconds unless ``options`` say otherwise (``poll_interval``).
    """
    if token is None and not insecure_no_auth and not is_loopback(host):
        raise ValueError(
            f"serving on {host} needs a token (token=...), or insecure_no_auth=True "
            "to serve without one"
        )
    # The streams' one tail is the only follower here: it can poll often, so that
    # events from other processes (SQLite has no notifications) arrive promptly.
    options.setdefault("poll_interval", SERVE_POLL_INTERVAL)
    limits = ServerLimits(
        max_connections=max_connections, header_timeout=header_timeout, keep_alive=keep_alive
    )
    app = create_app(url, token=token, max_streams=max_streams, max_lag=max_lag, **options)

    def end_streams() -> None:
        hub = getattr(app.state, "event_log_streams", None)
        if hub is not None:
            hub.shutdown()

    run_server(app, host=host, port=port, limits=limits, on_exit=end_streams)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("event-log")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"
