"""Times and durations as people type them: ISO 8601, or relative like ``15m``, ``2h``, ``7d``.

Every time on the command line is UTC: an ISO time without an offset is taken
as UTC (the log stores UTC and prints UTC), so the same command means the same
thing on every machine.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

__all__ = [
    "DURATION_HELP",
    "Duration",
    "TimeParam",
    "duration_text",
    "format_duration",
    "parse_duration",
    "parse_time",
]

_UNITS = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])")
DURATION_HELP = "a number and a unit: s, m, h, d or w (e.g. 90s, 15m, 2h, 7d)"


def parse_duration(text: str) -> timedelta:
    """``15m`` -> 15 minutes; ``1h30m`` also works. ``ValueError`` for anything else."""
    cleaned = text.strip().lower()
    position, total = 0, timedelta(0)
    for match in _DURATION.finditer(cleaned):
        if match.start() != position:
            break
        total += float(match["amount"]) * _UNITS[match["unit"]]
        position = match.end()
    if not cleaned or position != len(cleaned):
        raise ValueError(f"{text!r} is not a duration: use {DURATION_HELP}")
    return total


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An aware UTC datetime from ISO 8601 (UTC when no offset), ``now``, or a relative
    duration meaning that long ago (``15m``, ``2h``, ``7d``)."""
    now = datetime.now(UTC) if now is None else now
    cleaned = text.strip()
    if cleaned.lower() == "now":
        return now
    try:
        return now - parse_duration(cleaned)
    except ValueError:
        pass
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO time (2026-03-01T12:00:00, UTC unless it has an "
            f"offset) nor a relative one like 15m, 2h, 7d"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_duration(seconds: float) -> str:
    """A short human duration: ``0.042s``, ``12.3s``, ``4m05s``, ``2h03m``, ``3d04h``."""
    if seconds < 10:
        return f"{seconds:.3f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def duration_text(every: timedelta) -> str:
    """A duration as people type it: ``10m``, ``2h``, ``7d``, else seconds (``90s``)."""
    seconds = every.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


if TYPE_CHECKING:  # click >= 8.3 types its parameter types; older ones are not generic
    _TimeType = click.ParamType[datetime]
    _DurationType = click.ParamType[timedelta]
else:
    _TimeType = _DurationType = click.ParamType


class TimeParam(_TimeType):
    """A click parameter for :func:`parse_time`."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_time(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Duration(_DurationType):
    """A click parameter for :func:`parse_duration` (with ``positive``: longer than zero)."""

    name = "DURATION"

    def __init__(self, *, positive: bool = False) -> None:
        self.positive = positive

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            duration = parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        except OverflowError:
            self.fail(f"{value!r} is too long a duration", param, ctx)
        if self.positive and duration <= timedelta(0):
            self.fail(f"{value!r} must be longer than zero", param, ctx)
        return duration
