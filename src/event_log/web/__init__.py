"""The optional web layer: a mountable FastAPI router with a JSON API and a live page.

Two lines mount it in a coordinator's own app::

    from event_log.web import create_router
    app.include_router(create_router(log, prefix="/events-ui"))

The router checks no credentials; a host app adds its own with
``include_router(..., dependencies=[Depends(check)])`` (see ``create_router``).
``create_app(url, token=...)`` is a whole app that opens its own logger and, with
a token, lets only its holder read (a bearer token for the API, a login form for
the page); ``serve()`` runs that app with uvicorn (``event-log serve``) and wants
a token on any interface but loopback. Needs the ``web`` extra:
``pip install 'event-log[web]'``.
"""

from __future__ import annotations

try:
    import fastapi as _fastapi  # noqa: F401
except ImportError as exc:
    # Only a module of the extra missing means the extra is; the message then says
    # which and the fix once, and keeps the module's name for callers that ask.
    if (exc.name or "").partition(".")[0] not in ("fastapi", "starlette"):
        raise
    raise ImportError(
        f"event_log.web needs the web extra ({exc.name} is not installed): "
        "pip install 'event-log[web]'",
        name=exc.name,
    ) from None

from ._app import create_app, is_loopback, serve
from ._auth import check_token
from ._models import ErrorBody, Summary
from ._router import create_router

__all__ = [
    "ErrorBody",
    "Summary",
    "check_token",
    "create_app",
    "create_router",
    "is_loopback",
    "serve",
]
