"""The optional web layer: a mountable FastAPI router with a JSON API and a live page.

Two lines mount it in a coordinator's own app::

    from event_log.web import create_router
    app.include_router(create_router(log, prefix="/events-ui"))

``create_app(url)`` is a whole app that opens its own logger, and ``serve()``
runs that app with uvicorn (``event-log serve``). Needs the ``web`` extra:
``pip install 'event-log[web]'``.
"""

from __future__ import annotations

try:
    import fastapi as _fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without the extra
    raise ImportError(
        "event_log.web needs FastAPI and uvicorn: pip install 'event-log[web]'"
    ) from exc

from ._app import create_app, serve
from ._models import ErrorBody, Summary
from ._router import create_router

__all__ = ["ErrorBody", "Summary", "create_app", "create_router", "serve"]
