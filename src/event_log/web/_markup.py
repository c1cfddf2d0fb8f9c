"""Events as the page's HTML, for the first page the server renders.

``static/page.js`` builds the same markup for the events it adds (live ones,
older pages), so the script can take over a server-rendered list as it is:
it reads the ids from ``data-event-id`` and the times from ``<time datetime>``.
Every text is HTML-escaped here; nothing is styled inline (the page's CSP
refuses ``style`` attributes), the script colours the type badges itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlencode

from event_log import Event

__all__ = ["FAILED_MARK", "event_item", "is_failure", "stamp"]

# The text next to a failure's type: failures must not stand out by colour alone.
FAILED_MARK = "✖ failed"


def is_failure(event_type: str) -> bool:
    """Whether an event reports a failure (``page.js`` has the same rule)."""
    return event_type.endswith(".failed") or event_type == "system.error"


def stamp(moment: datetime) -> str:
    """``2026-12-07 20:53:01 UTC``: date, time and zone, as the page shows UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _wire_time(event: Event) -> str:
    """The timestamp as the JSON API writes it, so the script reads both alike."""
    return str(event.model_dump(mode="json", include={"timestamp"})["timestamp"])


def event_item(event: Event, base: str) -> str:
    """One ``<li>`` of the feed."""
    failed = is_failure(event.event_type)
    iso = _wire_time(event)
    parts = [
        f'<li class="ev{" failed" if failed else ""}" data-event-id="{escape(event.id)}"'
        f' data-type="{escape(event.event_type)}">',
        f'<time datetime="{iso}" title="{iso}">{stamp(event.timestamp)}</time>',
        f'<span class="type">{escape(event.event_type)}</span>',
    ]
    if failed:
        parts.append(f'<span class="fail-mark">{FAILED_MARK}</span>')
    parts.append(f'<span class="src">{escape(event.source)}</span>')
    if event.task_id is not None:
        href = f"{base}/?{urlencode({'task_id': event.task_id})}"
        parts.append(
            f'<a class="chip task" href="{escape(href)}" data-task-id="{escape(event.task_id)}"'
            f' title="Show this task\'s waterfall">{escape(event.task_id)}</a>'
        )
    if event.agent_id is not None:
        parts.append(
            f'<button type="button" class="chip agent" data-agent-id="{escape(event.agent_id)}"'
            f' title="Filter by this agent">{escape(event.agent_id)}</button>'
        )
    if event.data is not None:
        keys = list(event.data)
        shown = ", ".join(keys[:4]) + (", …" if len(keys) > 4 else "")
        text = json.dumps(event.data, indent=2, ensure_ascii=False)
        parts.append(
            f"<details><summary>data: {escape(shown)}</summary><pre>{escape(text)}</pre></details>"
        )
    parts.append("</li>")
    return "".join(parts)
