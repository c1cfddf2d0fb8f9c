"""``export`` and ``import``: events to and from JSON lines (optionally gzipped) and CSV.

A JSON line is ``Event.model_dump(mode="json")``: the event's id, type, source,
task and agent ids, data and its UTC timestamp to the microsecond. Importing
hands every line's object to ``EventLogger.import_events``, which validates it
as the logger validates a new event, keeps the event's own id and timestamp,
and skips ids already stored, so an export imported into an empty database
reproduces it exactly, and importing the same file twice adds nothing. A bad
line is reported with its number and skipped; the good ones are kept.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from event_log import Event, EventFilter, EventLogger

from ._output import CSV_FIELDS, csv_row, event_json
from ._runtime import CliError, Listing

__all__ = [
    "EXPORT_KINDS",
    "IMPORT_BATCH_ROWS",
    "BadFile",
    "BadLine",
    "ExportFile",
    "ImportReport",
    "LineSource",
    "export_events",
    "export_kind",
    "import_lines",
    "parse_line",
]

ExportKind = Literal["jsonl", "jsonl.gz", "csv"]
EXPORT_KINDS = (".jsonl", ".jsonl.gz", ".csv")
IMPORT_BATCH_ROWS = 500


def export_kind(path: str) -> ExportKind:
    """The file format from the name: ``.jsonl``, ``.jsonl.gz``, ``.csv`` (``-``: JSON lines
    on stdout). ``ValueError`` for anything else."""
    lower = path.lower()
    if path == "-" or lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lower.endswith((".jsonl.gz", ".ndjson.gz")):
        return "jsonl.gz"
    if lower.endswith(".csv"):
        return "csv"
    raise ValueError(f"cannot tell the format of {path!r}: name it *.jsonl, *.jsonl.gz or *.csv")


class ExportFile:
    """Events written to ``path`` through a temporary file renamed into place on success,
    so a failed export never leaves a half-written file under the real name."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.kind = export_kind(path)
        self._tmp: Path | None = None
        self._out: IO[str] | None = None
        self._csv: Any = None

    def __enter__(self) -> ExportFile:
        if self.path == "-":
            self._out = sys.stdout
            return self
        target = Path(self.path)
        self._tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            if self.kind == "jsonl.gz":
                self._out = gzip.open(self._tmp, "wt", encoding="utf-8", newline="\n")
            else:
                self._out = self._tmp.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise CliError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        if self.kind == "csv":
            self._csv = csv.writer(self._out, lineterminator="\n")
            self._csv.writerow(CSV_FIELDS)
        return self

    def write(self, event: Event) -> None:
        assert self._out is not None
        if self._csv is not None:
            self._csv.writerow(csv_row(event))
        else:
            self._out.write(event_json(event) + "\n")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._out is None or self._tmp is None:
            if self._out is not None:
                self._out.flush()
            return
        self._out.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


async def export_events(
    log: EventLogger, flt: EventFilter, out: ExportFile, progress: Callable[[int], None]
) -> int:
    """Write every matching event, oldest first; return how many."""
    count = 0
    async for event in Listing(log, flt, newest_first=False, limit=None):
        out.write(event)
        count += 1
        if count % 500 == 0:
            progress(count)
    progress(count)
    return count


# -- import -------------------------------------------------------------------------------


class BadLine(ValueError):
    """A line that is not a JSON object."""


class BadFile(ValueError):
    """The file cannot be read on (a truncated or corrupt gzip stream)."""


def parse_line(raw: bytes) -> dict[str, Any]:
    """The JSON object of one line; ``BadLine`` if it is not one. Whether it is a valid
    event is ``import_events``' business."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadLine("not valid UTF-8") from None
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadLine(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except ValueError as exc:  # a number too long to convert
        raise BadLine(f"not valid JSON ({exc})") from None
    if not isinstance(item, dict):
        raise BadLine(f"expected a JSON object, got {type(item).__name__}")
    return item


class LineSource:
    """Numbered lines of a JSON lines file (gzipped or not; ``-`` is stdin), and how far
    through the file reading is, for a progress bar."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stack = contextlib.ExitStack()
        self._raw: IO[bytes] | None = None
        self.size: int | None = None

    def __enter__(self) -> LineSource:
        if self.path.lower().endswith(".csv"):
            raise CliError(
                f"{self.path}: import reads JSON lines (.jsonl, .jsonl.gz); CSV is for export"
            )
        try:
            if self.path == "-":
                self._raw = sys.stdin.buffer
            else:
                self._raw = self._stack.enter_context(open(self.path, "rb"))
                self.size = os.fstat(self._raw.fileno()).st_size
        except OSError as exc:
            raise CliError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    @property
    def position(self) -> int:
        assert self._raw is not None
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number from 1, line) for each non-blank line."""
        assert self._raw is not None
        stream: IO[bytes] | gzip.GzipFile = self._raw
        if self._peek(2) == b"\x1f\x8b":
            stream = gzip.GzipFile(fileobj=self._raw, mode="rb")
        number = 0
        try:
            for number, line in enumerate(stream, 1):
                if line.strip():
                    yield number, line
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise BadFile(f"not a valid gzip file after line {number} ({exc})") from None

    def _peek(self, size: int) -> bytes:
        assert self._raw is not None
        if isinstance(self._raw, io.BufferedReader):
            return self._raw.peek(size)[:size]
        return b""


@dataclass(slots=True)
class ImportReport:
    lines: int = 0
    imported: int = 0
    already_present: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


async def import_lines(
    log: EventLogger,
    source: LineSource,
    *,
    on_bad_line: Callable[[int, str], None],
    on_progress: Callable[[ImportReport], None],
    batch_rows: int = IMPORT_BATCH_ROWS,
) -> ImportReport:
    """Import every line of ``source``, a batch per transaction; bad lines are reported
    (in line order, a batch at a time) and skipped."""
    report = ImportReport()
    # (line number, the line's object, or why it is no object), a batch at a time.
    batch: list[tuple[int, dict[str, Any] | str]] = []

    async def flush() -> None:
        good = [(number, item) for number, item in batch if isinstance(item, dict)]
        result = await log.import_events([item for _, item in good], skip_invalid=True)
        bad = {number: item for number, item in batch if isinstance(item, str)}
        bad.update((good[index][0], reason) for index, reason in result.invalid)
        for number in sorted(bad):
            report.bad.append((number, bad[number]))
            on_bad_line(number, bad[number])
        report.imported += result.imported
        report.already_present += result.already_present
        batch.clear()
        on_progress(report)

    try:
        for number, line in source.lines():
            report.lines += 1
            try:
                batch.append((number, parse_line(line)))
            except BadLine as exc:
                batch.append((number, str(exc)))
            if len(batch) >= batch_rows:
                await flush()
    except BadFile as exc:
        await flush()  # the good lines before the damage are kept
        raise CliError(
            f"{source.path}: {exc}; {report.imported} new event(s) before it were imported"
        ) from None
    await flush()
    return report
