"""The router: JSON routes over the public ``EventLogger`` API, SSE, and the page.

No SQL lives here; every answer comes from one ``EventLogger`` method. Library
errors become HTTP answers in one place, :class:`_ErrorMappingRoute`, because a
mountable ``APIRouter`` cannot register exception handlers on its host's app:

    InvalidCursorError, ValueError (bad filter)  -> 400 {"detail": ...}
    a query parameter the route does not take    -> 400 {"detail": ...}
    unknown event id                             -> 404 {"detail": ...}
    request validation (FastAPI)                 -> 422 {"detail": [...]}
    StorageError, LoggerClosedError              -> 503 {"detail": ...}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.convertors import Convertor, register_url_convertor

from event_log import Event, EventLogger, InvalidCursorError, LoggerClosedError, Page, StorageError

from ._fanout import DEFAULT_MAX_LAG, DEFAULT_MAX_STREAMS, StreamHub, StreamLimitError
from ._models import ErrorBody, Summary
from ._page import render_page
from ._query import FilterDep
from ._sse import StreamResponse

__all__ = ["DEFAULT_HEARTBEAT", "build_router", "create_router", "serves_html"]

_log = logging.getLogger("event_log.web")

# Seconds between SSE comments on an idle stream: keeps proxies from closing it
# and lets the server notice a vanished client (a failed write) on servers that
# do not report disconnects.
DEFAULT_HEARTBEAT = 15.0
_MAX_SUMMARY_MINUTES = 366 * 24 * 60
# How much of an unknown query parameter's name a 400 repeats.
_MAX_NAME_SHOWN = 40

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A bad filter or cursor."},
    503: {"model": ErrorBody, "description": "The database failed or the logger is closed."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No event has this id."}
}


class _AnyTextConvertor(Convertor[str]):
    """A path segment run that may hold any text, line breaks and slashes included.

    Task and agent ids are free text; Starlette's ``path`` convertor stops at a
    line break, which would make such an id unreachable (a 404 of no route).
    """

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


# Registered under a name of our own, so no host app's routes change meaning.
_ANY_TEXT = "event_log_text"


class _ErrorMappingRoute(APIRoute):
    """Turns the library's errors into JSON answers, for this router's routes only."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def mapped(request: Request) -> Response:
            try:
                return await handler(request)
            except ValidationError:
                raise  # our own model failing is a bug (500), not a bad request
            except (InvalidCursorError, ValueError) as exc:
                return JSONResponse({"detail": str(exc)}, status_code=400)
            except LoggerClosedError as exc:
                return JSONResponse({"detail": str(exc)}, status_code=503)
            except StorageError as exc:
                _log.warning("%s %s: %s", request.method, request.url.path, exc)
                return JSONResponse(
                    {"detail": "the event store is unavailable; try again"},
                    status_code=503,
                    headers={"Retry-After": "1"},
                )

        return mapped


def serves_html(request: Request) -> bool:
    """Whether the matched route answers with HTML (the page) rather than JSON."""
    route = request.scope.get("route")
    kind = route.response_class if isinstance(route, APIRoute) else None
    return isinstance(kind, type) and issubclass(kind, HTMLResponse)


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _shown(name: str) -> str:
    return repr(name if len(name) <= _MAX_NAME_SHOWN else name[:_MAX_NAME_SHOWN] + "...")


async def _refuse_unknown_query(request: Request) -> None:
    """A 400 for a query parameter the matched route does not take.

    A misspelt filter (``?event_typ=...``) would otherwise be ignored, and the
    answer be wider than asked for without a word. The known names are read from
    the route's dependant, so they are what the OpenAPI document lists. HTML
    routes (the page) are left alone: their query string is the page's own.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or serves_html(request):
        return
    known = _query_names(route.dependant)
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in known]
    if not unknown:
        return
    names = ", ".join(_shown(name) for name in unknown)
    noun = "parameter" if len(unknown) == 1 else "parameters"
    takes = f"known: {', '.join(sorted(known))}" if known else "this route takes none"
    raise HTTPException(400, f"unknown query {noun} {names} ({takes})")


def create_router(
    log: EventLogger,
    *,
    prefix: str = "",
    heartbeat: float = DEFAULT_HEARTBEAT,
    max_streams: int = DEFAULT_MAX_STREAMS,
    max_lag: int = DEFAULT_MAX_LAG,
) -> APIRouter:
    """An ``APIRouter`` serving ``log``'s events as JSON, as SSE and as a live page.

    Mount it with ``app.include_router(create_router(log, prefix="/events-ui"))``.
    ``heartbeat`` is the seconds between SSE keep-alive comments on an idle stream.

    Every stream of the router shares one tail of the log (one follower, each
    event encoded once). ``max_streams`` caps the open streams (past it, a 503
    with ``Retry-After``); a client more than ``max_lag`` events behind is sent
    a ``lagged`` message naming its position and disconnected. The tail runs
    from the first stream until ``log`` closes.

    The router checks no credentials: it answers whoever reaches the host app.
    To let only some callers read the audit trail, give ``include_router`` the
    host's own check, which runs before every route, the page and stream too::

        async def my_check(authorization: Annotated[str | None, Header()] = None) -> None:
            if authorization is None:
                raise HTTPException(401, "sign in first", {"WWW-Authenticate": "Bearer"})
            if not is_allowed(authorization):
                raise HTTPException(403, "not for you")

        app.include_router(create_router(log), dependencies=[Depends(my_check)])

    Take credentials from headers or cookies, never the query string: a route
    answers a query parameter it does not declare with a 400. (``create_app``'s
    ``token=`` is this pattern, with a login form for the page.)
    """
    if not heartbeat > 0:
        raise ValueError("heartbeat must be > 0 seconds")
    hub = StreamHub(log, heartbeat=heartbeat, max_streams=max_streams, max_lag=max_lag)
    return build_router(log, hub, prefix=prefix)


def build_router(log: EventLogger, hub: StreamHub, *, prefix: str = "") -> APIRouter:
    """The router of :func:`create_router`, its streams fed by ``hub``."""
    register_url_convertor(_ANY_TEXT, _AnyTextConvertor())
    router = APIRouter(
        prefix=prefix,
        route_class=_ErrorMappingRoute,
        tags=["event-log"],
        dependencies=[Depends(_refuse_unknown_query)],
    )

    @router.get(
        "/events",
        response_model=Page,
        responses=_ERRORS,
        summary="List events",
        description=(
            "One page of matching events, newest first (or oldest first). Pass "
            "`next_cursor` back as `cursor`, with the same filters and order, for the next "
            "page; it is null on the last page."
        ),
    )
    async def list_events(
        flt: FilterDep,
        limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
        cursor: Annotated[
            str | None, Query(description="`next_cursor` of the previous page.")
        ] = None,
        oldest_first: Annotated[
            bool, Query(description="Oldest first instead of newest first.")
        ] = False,
    ) -> Page:
        return await log.list_events(
            filter=flt, limit=limit, cursor=cursor, newest_first=not oldest_first
        )

    @router.get(
        "/events/{event_id}",
        response_model=Event,
        responses=_ERRORS | _NOT_FOUND,
        summary="One event",
    )
    async def get_event(event_id: Annotated[str, Path(description="The event's id.")]) -> Event:
        event = await log.get_event(event_id)
        if event is None:
            raise HTTPException(404, f"no event has the id {event_id!r}")
        return event

    @router.get(
        "/tasks/{task_id:" + _ANY_TEXT + "}/events",
        response_model=list[Event],
        responses=_ERRORS,
        summary="A task's timeline",
        description="Every event of the task, oldest first (empty for an unknown task).",
    )
    async def task_events(task_id: Annotated[str, Path(description="The task id.")]) -> list[Event]:
        return await log.get_task_events(task_id)

    @router.get(
        "/agents/{agent_id:" + _ANY_TEXT + "}/events",
        response_model=list[Event],
        responses=_ERRORS,
        summary="An agent's newest events",
        description="The agent's newest events, newest first.",
    )
    async def agent_events(
        agent_id: Annotated[str, Path(description="The agent id.")],
        limit: Annotated[int, Query(ge=1, le=1000, description="How many.")] = 100,
    ) -> list[Event]:
        return await log.get_agent_events(agent_id, limit=limit)

    @router.get(
        "/summary",
        response_model=Summary,
        responses=_ERRORS,
        summary="Counts of the last minutes",
        description=(
            "Event counts by type over the last `minutes`; with `every` (seconds), also "
            "per time bucket (at most 1,000 buckets, else 400)."
        ),
    )
    async def summary(
        minutes: Annotated[
            float,
            Query(gt=0, le=_MAX_SUMMARY_MINUTES, allow_inf_nan=False, description="Window."),
        ] = 60,
        every: Annotated[
            float | None,
            Query(
                gt=0,
                le=_MAX_SUMMARY_MINUTES * 60,
                allow_inf_nan=False,
                description="Bucket width in seconds, e.g. 60.",
            ),
        ] = None,
    ) -> Summary:
        until = datetime.now(UTC)
        since = until - timedelta(minutes=minutes)
        counts = await log.get_event_summary(minutes=minutes)
        buckets = (
            []
            if every is None
            else await log.get_event_histogram(
                since=since, until=until, every=timedelta(seconds=every), by="event_type"
            )
        )
        return Summary(
            since=since,
            until=until,
            minutes=minutes,
            total=sum(counts.values()),
            counts=counts,
            every=every,
            buckets=buckets,
        )

    @router.get(
        "/stream",
        response_class=StreamResponse,
        responses={
            200: {
                "description": (
                    "Server-Sent Events: each message's `data` is the event as JSON and "
                    "its `id` the stream's position after it, in commit order (the first "
                    "message, with no data, carries the position the stream starts from); "
                    "comment lines are heartbeats. A message with `event: error` ends "
                    "the stream."
                ),
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **_ERRORS,
        },
        summary="Follow events live (SSE)",
        description=(
            "Matching events as they commit, in commit order, each once. Resumes from "
            "the `Last-Event-ID` header (the browser's EventSource sends it when it "
            "reconnects) or the `cursor` parameter: a position the stream sent as an "
            "`id` (exactly where it was, in commit order), an event id, or a "
            "`next_cursor` of `/events?oldest_first=true` (both after that event in "
            "time order)."
        ),
    )
    async def stream(
        flt: FilterDep,
        cursor: Annotated[
            str | None, Query(description="Replay the stored events after this first.")
        ] = None,
        last_event_id: Annotated[
            str | None, Header(description="The id of the last event received.")
        ] = None,
    ) -> Response:
        try:
            sub = await hub.subscribe(flt, last_event_id or cursor)
        except StreamLimitError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})
        return StreamResponse(hub, sub)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        return await render_page(request, log)

    return router
