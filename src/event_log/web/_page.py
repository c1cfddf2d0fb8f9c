"""The live page: one server-rendered HTML document with its CSS and JS inline.

The page is three package files, ``static/page.html``, ``page.css`` and
``page.js``, read once. No build step and nothing loaded from elsewhere: the
CSS and JS go into the HTML's ``{{css}}`` and ``{{js}}`` slots when it is first
read, and each request fills the other ``{{name}}`` slots (the nonce, the base
path, the filters of the query string), HTML-escaped, in one pass, so text in
a value is never read as a slot. The script reads the JSON API. Event text is
untrusted: the script only ever puts it into the page through ``textContent``
and attribute setters, never as markup, and a nonce-based
Content-Security-Policy refuses any script the page did not ship.
"""

from __future__ import annotations

import functools
import html
import re
import secrets
from dataclasses import dataclass
from importlib.resources import files

from fastapi import Request
from fastapi.responses import HTMLResponse

__all__ = ["render_page"]

_SLOT = re.compile(r"\{\{([a-z_]+)\}\}")
# The query parameters the page's form shows; "type" also takes event_type's values.
_FORM = ("type", "source", "task_id", "agent_id")
_VALUES = frozenset({"nonce", "base", *(f"value_{name}" for name in _FORM)})


@dataclass(frozen=True, slots=True)
class _Template:
    """The page split at its slots: ``parts`` alternate literal text and slot names."""

    parts: tuple[str, ...]

    def render(self, values: dict[str, str]) -> str:
        out = list(self.parts)
        for at in range(1, len(out), 2):
            out[at] = html.escape(values[out[at]], quote=True)
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
        elif name in _VALUES:
            parts += [name, text]
        else:
            raise ValueError(f"static/page.html has an unknown slot {{{{{name}}}}}")
    return _Template(tuple(parts))


def render_page(request: Request) -> HTMLResponse:
    """The page for ``request``; its API is found relative to the page's own path."""
    path = request.url.path
    base = path[:-1] if path.endswith("/") else path
    params = request.query_params
    types = [*params.getlist("type"), *params.getlist("event_type")]
    nonce = secrets.token_urlsafe(16)
    body = _template().render(
        {
            "nonce": nonce,
            "base": base,
            "value_type": ", ".join(v for v in types if v),
            "value_source": params.get("source", ""),
            "value_task_id": params.get("task_id", ""),
            "value_agent_id": params.get("agent_id", ""),
        }
    )
    csp = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return HTMLResponse(
        body,
        headers={
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )
