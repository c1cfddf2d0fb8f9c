"""The live page: one server-rendered HTML document with its CSS and JS inline.

The page is three package files, ``static/page.html``, ``page.css`` and
``page.js``, read once. No build step and nothing loaded from elsewhere: the
CSS and JS go into the HTML's ``{{css}}`` and ``{{js}}`` slots when it is first
read, and each request fills the other slots in one pass, so text in a value is
never read as a slot: ``{{name}}`` slots HTML-escaped, ``{{html_name}}`` slots
with markup this package builds (``_form``, ``_markup``), which escapes every
text it puts in.

The server renders the filter form (from ``EventFilter.model_fields``) and the
first page of matching events, so the page reads without JavaScript; the script
then takes the list over (ids from ``data-event-id``, the cursor of older events
from ``data-next-cursor``, where the stream starts from ``data-anchor``) and
follows the stream. A bad filter in the query string is answered 400 with the
page and its message next to the filters. Event text is untrusted: the script
only ever puts it into the page through ``textContent`` and attribute setters,
never as markup, and a nonce-based Content-Security-Policy refuses any script
or style the page did not ship.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import secrets
from dataclasses import dataclass
from importlib.resources import files

from fastapi import Request
from fastapi.responses import HTMLResponse

from event_log import EventLogger, LoggerClosedError, Page, StorageError

from ._form import FilterForm
from ._markup import event_item

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "render_page"]

_log = logging.getLogger("event_log.web")

_SLOT = re.compile(r"\{\{([a-z_]+)\}\}")
_TEXTS = frozenset({"nonce", "base", "feed_count"})
_MARKUP = frozenset({"html_form", "html_error", "html_feed"})
# Events per page of the feed (the page's own `limit` parameter changes it),
# and the most the API lists at once.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# The feed's size before live events push the oldest out (page.js reads it).
_FEED_CAP = 1000


@dataclass(frozen=True, slots=True)
class _Template:
    """The page split at its slots: ``parts`` alternate literal text and slot names."""

    parts: tuple[str, ...]

    def render(self, values: dict[str, str]) -> str:
        out = list(self.parts)
        for at in range(1, len(out), 2):
            name = out[at]
            out[at] = values[name] if name in _MARKUP else html.escape(values[name], quote=True)
        return "".join(out)


def _inline(name: str, closing: str) -> str:
    text = (files("event_log.web") / "static" / name).read_text(encoding="utf-8")
    if closing in text.lower():
        # The browser would end the element there and read the rest as markup.
        raise ValueError(f"static/{name} must not contain {closing!r}")
    return text


@functools.cache
def _template() -> _Template:
    """The page file with the CSS and JS put in, split at the per-request slots."""
    static = {"css": _inline("page.css", "</style"), "js": _inline("page.js", "</script")}
    pieces = _SLOT.split((files("event_log.web") / "static" / "page.html").read_text("utf-8"))
    parts: list[str] = [pieces[0]]
    for name, text in zip(pieces[1::2], pieces[2::2], strict=True):
        if name in static:
            parts[-1] += static[name] + text
        elif name in _TEXTS or name in _MARKUP:
            parts += [name, text]
        else:
            raise ValueError(f"static/page.html has an unknown slot {{{{{name}}}}}")
    return _Template(tuple(parts))


def _limit(text: str | None) -> int:
    if text is None or not text.strip():
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {text!r}")
    return limit


@dataclass(frozen=True, slots=True)
class _Feed:
    """What the server could list: a page, or why not (``state`` tells the script)."""

    state: str  # "ok", "invalid" (a bad filter or limit), "unavailable" (the store failed)
    limit: int = DEFAULT_LIMIT
    page: Page | None = None
    anchor: str | None = None  # the newest stored event: where the stream starts
    message: str = ""

    def html(self, base: str) -> str:
        events = self.page.events if self.page else []
        cursor = self.page.next_cursor if self.page else None
        attrs = (
            f'data-state="{self.state}" data-limit="{self.limit}" data-cap="{_FEED_CAP}"'
            f' data-next-cursor="{html.escape(cursor or "")}"'
            f' data-anchor="{html.escape(self.anchor or "")}"'
        )
        empty = {
            "ok": "No matching events yet.",
            "invalid": "No events listed: the filter above has an error.",
        }.get(self.state, self.message)
        return "\n".join(
            [
                f'<ol id="events" {attrs}>',
                *(event_item(event, base) for event in events),
                "</ol>",
                f'<p class="empty" id="feed-empty"{" hidden" if events else ""}>'
                f"{html.escape(empty)}</p>",
                '<p class="older"><button type="button" class="plain" id="load-older" hidden>'
                'Load older</button> <span id="older-note" class="src"></span></p>',
            ]
        )


async def _first_page(log: EventLogger, form: FilterForm, limit_text: str | None) -> _Feed:
    try:
        flt = form.filter()
        limit = _limit(limit_text)
        page = await log.list_events(filter=flt, limit=limit)
        # The stream starts after the newest stored event, matching or not, so an
        # event committed after this listing reaches the page, and none twice.
        newest = page if page.events else await log.list_events(limit=1)
    except LoggerClosedError as exc:
        return _Feed("unavailable", message=f"{exc}; try again")
    except StorageError as exc:
        _log.warning("the page's first listing failed: %s", exc)
        return _Feed("unavailable", message="the event store is unavailable; try again")
    except ValueError as exc:
        return _Feed("invalid", message=str(exc))
    anchor = newest.events[0].id if newest.events else None
    return _Feed("ok", limit=limit, page=page, anchor=anchor)


async def render_page(request: Request, log: EventLogger) -> HTMLResponse:
    """The page for ``request``; its API is found relative to the page's own path."""
    path = request.url.path
    base = path[:-1] if path.endswith("/") else path
    form = FilterForm.from_query(request.query_params)
    feed = await _first_page(log, form, request.query_params.get("limit"))
    invalid = form.field_named_in(feed.message) if feed.state == "invalid" else None
    error = feed.message if feed.state == "invalid" else ""
    nonce = secrets.token_urlsafe(16)
    shown = len(feed.page.events) if feed.page else 0
    body = _template().render(
        {
            "nonce": nonce,
            "base": base,
            "feed_count": f"{shown} shown" if shown else "",
            "html_form": form.html(invalid=invalid),
            "html_error": (
                f'<p id="filter-error" class="error" role="alert"{"" if error else " hidden"}>'
                f"{html.escape(error)}</p>"
            ),
            "html_feed": feed.html(base),
        }
    )
    csp = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    status = {"ok": 200, "invalid": 400}.get(feed.state, 503)
    return HTMLResponse(
        body,
        status_code=status,
        headers={
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )
