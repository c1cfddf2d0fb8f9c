"""Writing and moving events: ``log``, ``export`` and ``import`` (JSON lines, or a
database of the original system with ``--from-sqlite``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from sqlalchemy.engine import URL

from event_log import Event, LegacyDatabase, LegacyImport

from . import _io, _output
from ._filter_options import filter_from_options, filter_options
from ._runtime import Settings, open_log, pass_settings, progress_bar, run
from ._times import TimeParam

__all__ = ["export", "import_command", "log_command"]


def _json_object(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object, like '{\"bid_sats\": 420}'")
    return data


@click.command("log")
@click.argument("event_type", metavar="TYPE")
@click.option("--source", "-s", required=True, help="Who logs it (an agent, 'coordinator').")
@click.option("--task-id", help="The task it belongs to.")
@click.option("--agent-id", help="The agent it concerns.")
@click.option("--data", callback=_json_object, metavar="JSON", help="A JSON object.")
@click.option("--timestamp", type=TimeParam(), help="When it happened (default: now).")
@_output.format_option("table", "json")
@pass_settings
def log_command(
    settings: Settings,
    event_type: str,
    source: str,
    task_id: str | None,
    agent_id: str | None,
    data: dict[str, Any] | None,
    timestamp: datetime | None,
    fmt: str | None,
) -> None:
    """Log one event of type TYPE and print it as stored."""
    url = settings.url

    async def go() -> Event:
        async with open_log(url, mode="create") as log:
            return await log.log_event(
                event_type,
                source,
                task_id=task_id,
                agent_id=agent_id,
                data=data,
                timestamp=timestamp,
            )

    _output.print_event(run(go(), url=url), _output.pick_format(fmt))


@click.command()
@filter_options
@click.option(
    "--output",
    "-o",
    required=True,
    metavar="FILE",
    help="Where to write: *.jsonl, *.jsonl.gz or *.csv ('-': JSON lines on stdout).",
)
@pass_settings
def export(settings: Settings, /, output: str, **filter_args: Any) -> None:
    """Write matching events, oldest first, to a JSON lines (optionally gzipped) or CSV file."""
    flt = filter_from_options(filter_args)
    try:
        _io.export_kind(output)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--output'") from None
    url = settings.url

    async def go() -> int:
        async with open_log(url) as log:
            total = await log.count_events(filter=flt)
            with progress_bar("Exporting") as progress, _io.ExportFile(output) as out:
                bar = progress.add_task("export", total=total)
                return await _io.export_events(
                    log, flt, out, lambda n: progress.update(bar, completed=n)
                )

    count = run(go(), url=url)
    where = "stdout" if output == "-" else output
    click.echo(f"Exported {count} event{'s' if count != 1 else ''} to {where}.", err=output == "-")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


@click.command("import")
@click.argument("file", metavar="FILE", required=False)
@click.option(
    "--from-sqlite",
    "legacy",
    metavar="PATH",
    help="Read a database of the original system instead (its table event_log or events).",
)
@pass_settings
def import_command(settings: Settings, file: str | None, legacy: str | None) -> None:
    """Import events from a JSON lines file (.jsonl, .jsonl.gz; '-': stdin), or with
    --from-sqlite PATH from a database the original system wrote.

    Events keep their ids and timestamps; ids already stored are skipped, so
    importing twice adds nothing. Bad lines or rows are reported and skipped (exit 1).
    """
    if (file is None) == (legacy is None):
        raise click.UsageError("give either FILE or --from-sqlite PATH")
    if legacy is not None:
        _import_legacy(settings.url, legacy)
        return
    assert file is not None
    url = settings.url
    shown_bad = 20
    errors = _output.stderr_console()

    def bad_line(number: int, message: str) -> None:
        nonlocal shown_bad
        if shown_bad > 0:
            errors.print(f"{file}:{number}: {message}", style="red", soft_wrap=True)
        shown_bad -= 1

    async def go() -> _io.ImportReport:
        with _io.LineSource(file) as source:
            async with open_log(url, mode="create") as log:
                with progress_bar("Importing") as progress:
                    bar = progress.add_task("import", total=source.size)

                    def advance(report: _io.ImportReport) -> None:
                        progress.update(bar, completed=source.position)

                    return await _io.import_lines(
                        log, source, on_bad_line=bad_line, on_progress=advance
                    )

    report = run(go(), url=url)
    if shown_bad < 0:
        errors.print(f"... and {-shown_bad} more bad line(s)", style="red")
    parts = [f"{report.already_present} already present"]
    if report.bad:
        parts.append(f"{_plural(len(report.bad), 'bad line')} skipped")
    click.echo(
        f"Imported {report.imported} new event{'s' if report.imported != 1 else ''} "
        f"from {file} ({', '.join(parts)})."
    )
    if report.bad:
        raise click.exceptions.Exit(1)


def _import_legacy(url: URL, path: str) -> None:
    """``import --from-sqlite PATH``: every row of the original system's table(s)."""
    shown_bad = 100
    errors = _output.stderr_console()

    def bad_row(table: str, row_id: str | None, message: str) -> None:
        nonlocal shown_bad
        if shown_bad > 0:
            where = f"id={row_id!r}" if row_id is not None else "a row without id"
            errors.print(f"{path}: {table} {where}: {message}", style="red", soft_wrap=True)
        shown_bad -= 1

    async def go() -> tuple[LegacyImport, list[str]]:
        with LegacyDatabase(path) as source:
            async with open_log(url, mode="create") as log:
                with progress_bar("Importing") as progress:
                    bar = progress.add_task("import", total=source.total)
                    report = await source.import_into(
                        log,
                        on_invalid=bad_row,
                        on_progress=lambda read: progress.update(bar, completed=read),
                    )
                    return report, source.tables

    report, tables = run(go(), url=url)
    if shown_bad < 0:
        errors.print(f"... and {-shown_bad} more bad row(s)", style="red")
    parts = [f"{report.already_present} already present"]
    if report.invalid:
        parts.append(f"{_plural(len(report.invalid), 'bad row')} skipped")
    click.echo(
        f"Read {_plural(report.read, 'row')} from {path} "
        f"(table {' and '.join(tables)}): imported {report.imported} new "
        f"event{'s' if report.imported != 1 else ''} ({', '.join(parts)})."
    )
    if report.invalid:
        raise click.exceptions.Exit(1)
