"""Rendering: rich tables and lines for people, JSON lines and CSV for programs.

A command given no ``--format`` prints a table when stdout is a terminal and
JSON lines when it is not (a pipe, a file), like ``gh`` and ``kubectl``. The
JSON form of an event is ``Event.model_dump(mode="json")``, one per line. All
times are UTC.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import click
from rich.console import Console
from rich.text import Text

from event_log import Event, HistogramBucket

from ._times import format_duration

__all__ = [
    "CSV_FIELDS",
    "EVENT_FORMATS",
    "EventStream",
    "Grid",
    "bar",
    "csv_row",
    "data_text",
    "echo_json",
    "event_json",
    "format_option",
    "json_time",
    "pick_format",
    "print_counts",
    "print_event",
    "print_histogram",
    "print_line",
    "print_timeline",
    "stderr_console",
    "stdout_console",
    "time_text",
    "type_style",
]

F = TypeVar("F", bound=Callable[..., Any])
Format = Literal["table", "json", "csv"]
EVENT_FORMATS: tuple[Format, ...] = ("table", "json", "csv")
CSV_FIELDS = ("id", "timestamp", "event_type", "source", "task_id", "agent_id", "data")


def format_option(*choices: str) -> Callable[[F], F]:
    """``--format``/``-F``: one of ``choices``; default: a table on a terminal, else JSON."""
    return click.option(
        "--format",
        "-F",
        "fmt",
        type=click.Choice(choices or EVENT_FORMATS),
        default=None,
        help="Output format (default: table on a terminal, JSON lines when piped).",
    )


def pick_format(requested: str | None) -> str:
    if requested is not None:
        return requested
    return "table" if sys.stdout.isatty() else "json"


def stdout_console() -> Console:
    # Made per command, never at import: sys.stdout may be swapped (tests, pipes).
    return Console(highlight=False, markup=False, emoji=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, markup=False, emoji=False)


# -- plain forms --------------------------------------------------------------------------


def event_json(event: Event) -> str:
    return json.dumps(event.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def json_time(moment: datetime | None) -> str | None:
    """A time as every JSON output of the command line writes it: UTC, ``Z``, the way an
    event's own ``timestamp`` is written (pydantic's JSON mode)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def csv_row(event: Event) -> list[str]:
    dumped = event.model_dump(mode="json")
    data = dumped["data"]
    return [
        dumped["id"],
        dumped["timestamp"],
        dumped["event_type"],
        dumped["source"],
        dumped["task_id"] or "",
        dumped["agent_id"] or "",
        "" if data is None else json.dumps(data, ensure_ascii=False, separators=(",", ":")),
    ]


def time_text(when: datetime, *, date: bool = True) -> str:
    """``2026-03-01 12:00:00.123`` (UTC, milliseconds); without the date when ``date`` is
    false."""
    text = when.strftime("%Y-%m-%d %H:%M:%S.%f" if date else "%H:%M:%S.%f")
    return text[:-3]


def data_text(data: Mapping[str, Any] | None) -> str:
    """``data`` as compact JSON; a traceback is left to the timeline and shown as ``…``."""
    if not data:
        return ""
    shown = {k: ("…" if k == "traceback" else v) for k, v in data.items()}
    return json.dumps(shown, ensure_ascii=False, separators=(", ", ": "))


def type_style(event_type: str) -> str:
    if event_type == "system.error" or event_type.endswith(".failed"):
        return "bold red"
    if event_type == "system.warning":
        return "yellow"
    if event_type.endswith(".completed"):
        return "green"
    family = event_type.split(".", 1)[0]
    return {
        "task": "cyan",
        "agent": "blue",
        "bid": "magenta",
        "auction": "magenta",
        "tool": "bright_black",
    }.get(family, "default")


def print_line(console: Console, line: Text) -> None:
    """One line, cut to the terminal's width; a table sent to a file keeps whole lines."""
    if console.is_terminal or "COLUMNS" in os.environ:
        console.print(line, no_wrap=True, overflow="ellipsis", crop=True)
    else:
        console.print(line, soft_wrap=True)


# -- grids -------------------------------------------------------------------------------


class Grid:
    """Rows of aligned columns, one line per row; the last column takes what is left
    of the terminal's width (cut with an ellipsis) and is never padded.

    (rich's Table shrinks every column in proportion when a line is too long,
    which cuts the time and the type too; here only the last column gives way.)
    """

    def __init__(
        self,
        *headers: str,
        caps: Sequence[int | None] = (),
        right: Sequence[int] = (),
        below_at: int | None = None,
    ) -> None:
        self.headers = headers
        self.below_at = len(headers) - 1 if below_at is None else below_at
        self.caps = list(caps) + [None] * (len(headers) - len(caps))
        self.right = set(right)
        self.rows: list[tuple[list[Text], list[Text]]] = []

    def add_row(self, *cells: Text | str, below: Sequence[Text] = ()) -> None:
        """A row; ``below`` are extra lines shown under its last column (a traceback)."""
        self.rows.append(([c if isinstance(c, Text) else Text(c) for c in cells], list(below)))

    def print(self, console: Console) -> None:
        count = len(self.headers)
        widths = [len(h) for h in self.headers]
        for cells, _ in self.rows:
            for i, cell in enumerate(cells[: count - 1]):
                widths[i] = max(widths[i], cell.cell_len)
        widths = [
            w if cap is None else min(w, cap) for w, cap in zip(widths, self.caps, strict=True)
        ]
        indent = sum(widths[: self.below_at]) + 2 * self.below_at

        def emit(line: Text) -> None:
            print_line(console, line)

        header = Text(style="bold")
        for i, name in enumerate(self.headers):
            header.append(name if i == count - 1 else self._fit(Text(name), widths[i], i))
            if i < count - 1:
                header.append("  ")
        emit(header)
        for cells, below in self.rows:
            line = Text()
            for i, cell in enumerate(cells):
                line.append_text(cell if i == count - 1 else self._fit(cell, widths[i], i))
                if i < count - 1:
                    line.append("  ")
            emit(line)
            for extra in below:
                emit(Text(" " * indent) + extra)

    def _fit(self, cell: Text, width: int, index: int) -> Text:
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis")
        padding = " " * (width - cell.cell_len)
        return Text(padding) + cell if index in self.right else cell + Text(padding)


# -- events -------------------------------------------------------------------------------


def _event_grid(events: Sequence[Event]) -> Grid:
    grid = Grid(
        "TIME (UTC)", "TYPE", "SOURCE", "TASK", "AGENT", "DATA", caps=(None, 32, 24, 24, 24)
    )
    for e in events:
        grid.add_row(
            Text(time_text(e.timestamp), style="dim"),
            Text(e.event_type, style=type_style(e.event_type)),
            e.source,
            e.task_id or "",
            e.agent_id or "",
            data_text(e.data),
        )
    return grid


def _event_line(event: Event) -> Text:
    line = Text()
    line.append(time_text(event.timestamp), style="dim")
    line.append("  ")
    line.append(f"{event.event_type:<20}", style=type_style(event.event_type))
    line.append(f" {event.source:<16}")
    if event.task_id:
        line.append(f"  task={event.task_id}", style="cyan")
    if event.agent_id and event.agent_id != event.source:
        line.append(f"  agent={event.agent_id}", style="blue")
    data = data_text(event.data)
    if data:
        line.append(f"  {data}")
    return line


class EventStream:
    """Writes events in one format as they arrive.

    ``table`` gathers them and prints one table at the end (``lines=True``: one
    line per event at once, for ``tail -f``); ``json`` and ``csv`` stream.
    """

    def __init__(self, fmt: str, *, lines: bool = False) -> None:
        self.fmt = fmt
        self.count = 0
        self._lines = lines
        self._buffer: list[Event] = []
        self._console = stdout_console() if fmt == "table" else None
        self._csv: Any = None  # a csv writer, made on the first row

    def write(self, event: Event) -> None:
        self.count += 1
        if self.fmt == "json":
            click.echo(event_json(event))
        elif self.fmt == "csv":
            out = sys.stdout
            if self._csv is None:
                self._csv = csv.writer(out, lineterminator="\n")
                self._csv.writerow(CSV_FIELDS)
            self._csv.writerow(csv_row(event))
            out.flush()
        elif self._lines:
            assert self._console is not None
            print_line(self._console, _event_line(event))
        else:
            self._buffer.append(event)

    def write_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.write(event)

    def close(self, *, empty_message: str = "No matching events.") -> None:
        if self._buffer:
            assert self._console is not None
            _event_grid(self._buffer).print(self._console)
        if self.fmt == "table" and self.count == 0:
            stderr_console().print(empty_message)


def print_event(event: Event, fmt: str) -> None:
    """One event: JSON, a CSV row with its header, or its fields one per line."""
    if fmt == "json":
        click.echo(event_json(event))
        return
    if fmt == "csv":
        EventStream("csv").write(event)
        return
    console = stdout_console()
    for name, value in (
        ("id", event.id),
        ("time", f"{event.timestamp.isoformat(timespec='microseconds')}"),
        ("type", event.event_type),
        ("source", event.source),
        ("task", event.task_id or ""),
        ("agent", event.agent_id or ""),
        ("data", "" if event.data is None else json.dumps(event.data, ensure_ascii=False)),
    ):
        console.print(Text(f"{name:<7}", style="bold") + Text(value), soft_wrap=True)


def print_timeline(title: str, events: Sequence[Event]) -> None:
    """A task's events oldest first, each with the time since the step before it, and
    tracebacks of errors shown below their event."""
    console = stdout_console()
    first, last = events[0].timestamp, events[-1].timestamp
    header = Text(title, style="bold")
    header.append(
        f"  {len(events)} events over {format_duration((last - first).total_seconds())}, "
        f"{time_text(first)} to {time_text(last, date=False)} UTC",
        style="dim",
    )
    console.print(header, soft_wrap=True)
    grid = Grid(
        "TIME", "STEP", "TYPE", "WHO", "DATA", caps=(None, None, 32, 30), right=(1,), below_at=2
    )
    previous: datetime | None = None
    for event in events:
        step = ""
        if previous is not None:
            step = "+" + format_duration((event.timestamp - previous).total_seconds())
        previous = event.timestamp
        who = event.agent_id or event.source
        if event.agent_id and event.source != event.agent_id:
            who = f"{event.source} → {event.agent_id}"
        traceback = (event.data or {}).get("traceback")
        below = []
        if isinstance(traceback, str):
            below = [Text(f"| {line}", style="red") for line in traceback.rstrip().splitlines()]
        grid.add_row(
            Text(time_text(event.timestamp, date=False), style="dim"),
            step,
            Text(event.event_type, style=type_style(event.event_type)),
            who,
            data_text(event.data),
            below=below,
        )
    grid.print(console)


# -- counts -------------------------------------------------------------------------------

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(value: int, maximum: int, width: int = 32) -> str:
    """A horizontal bar of ``value`` out of ``maximum`` in ``width`` cells (eighths)."""
    if value <= 0 or maximum <= 0:
        return ""
    eighths = max(1, round(value / maximum * width * 8))
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")


def print_counts(title: str, label: str, counts: Mapping[str, int]) -> None:
    """Counts largest first, each with a bar."""
    console = stdout_console()
    total = sum(counts.values())
    console.print(Text(f"{title}: {total} event{'s' if total != 1 else ''}", style="bold"))
    if not counts:
        return
    top = max(counts.values())
    grid = Grid(label.upper(), "COUNT", "", right=(1,))
    for key, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        style = type_style(key) if label == "type" else ""
        grid.add_row(
            Text(key or "(none)", style=style), str(count), Text(bar(count, top), style="cyan")
        )
    grid.print(console)


def print_histogram(title: str, buckets: Sequence[HistogramBucket], by: str | None) -> None:
    """One row per time bucket: its count, a bar, and (with ``by``) its largest groups."""
    console = stdout_console()
    total = sum(b.total for b in buckets)
    console.print(Text(f"{title}: {total} event{'s' if total != 1 else ''}", style="bold"))
    top = max((b.total for b in buckets), default=0)
    same_day = len({b.start.date() for b in buckets}) <= 1
    headers = ["FROM (UTC)", "COUNT", ""] + ([f"TOP {by.upper()}"] if by is not None else [])
    grid = Grid(*headers, right=(1,))
    for bucket in buckets:
        start = bucket.start.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")
        cells: list[Text | str] = [
            Text(start, style="dim"),
            str(bucket.total),
            Text(bar(bucket.total, top).ljust(32), style="cyan"),
        ]
        if by is not None:
            groups = sorted(bucket.counts.items(), key=lambda kv: (-kv[1], kv[0]))
            cells.append("  ".join(f"{k or '(none)'} {v}" for k, v in groups[:4]))
        grid.add_row(*cells)
    grid.print(console)
