"""A whole app around the router, and ``serve()``, which runs it with uvicorn."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from event_log import EventLogger

from ._auth import UNAUTHORIZED, TokenAuth
from ._router import DEFAULT_HEARTBEAT, create_router

__all__ = ["create_app", "is_loopback", "serve"]

# Seconds uvicorn waits for open SSE streams on shutdown before cancelling them:
# a stream never ends by itself, so without a bound a shutdown would hang.
_GRACEFUL_SHUTDOWN = 3


def create_app(
    url: str | None = None,
    *,
    token: str | None = None,
    heartbeat: float = DEFAULT_HEARTBEAT,
    **options: Any,
) -> FastAPI:
    """A FastAPI app serving the router at ``/`` over a logger it opens in its lifespan.

    ``url`` falls back to ``$EVENT_LOG_URL``, then the default SQLite file, as in
    ``EventLogger.open()``, which receives ``options`` too. Nothing is opened
    until the server starts the app.

    With ``token``, only its holder reads the log: the API and the stream take
    ``Authorization: Bearer <token>``, the page a login form (``/login``) that
    sets a session cookie. A token that cannot be sent back raises ``ValueError``.
    """
    auth = None if token is None else TokenAuth(token)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with EventLogger.open(url, **options) as log:
            # The router needs the open logger, which exists only from here on;
            # its routes leave again on shutdown, so a restarted app starts clean.
            before = list(app.router.routes)
            app.include_router(
                create_router(log, heartbeat=heartbeat),
                dependencies=[] if auth is None else [Depends(auth)],
                responses={} if auth is None else UNAUTHORIZED,
            )
            app.openapi_schema = None
            try:
                yield
            finally:
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
    **options: Any,
) -> None:
    """Run :func:`create_app` with uvicorn until interrupted (``event-log serve``).

    On an interface other than loopback (see :func:`is_loopback`) anyone who can
    reach the port could read the audit trail, so a ``token`` is required there
    unless ``insecure_no_auth`` says to serve without one (``ValueError``
    otherwise, before anything starts). ``options`` go to ``EventLogger.open()``.
    """
    if token is None and not insecure_no_auth and not is_loopback(host):
        raise ValueError(
            f"serving on {host} needs a token (token=...), or insecure_no_auth=True "
            "to serve without one"
        )
    import uvicorn

    uvicorn.run(
        create_app(url, token=token, **options),
        host=host,
        port=port,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
        log_level="info",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("event-log")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"
