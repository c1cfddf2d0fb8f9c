"""Overviews: ``summary`` (counts over a window, or a histogram) and ``stats``."""

from __future__ import annotations

import typing
from datetime import UTC, datetime, timedelta

import click

from event_log import MAX_BUCKETS, HistogramBucket, HistogramGroup, admin

from . import _output
from ._runtime import Settings, display_url, open_log, pass_settings, require_file, require_schema
from ._runtime import run as run_command
from ._times import DURATION_HELP, Duration, duration_text

__all__ = ["stats", "summary"]

_BY: dict[str, HistogramGroup] = {"type": "event_type", "source": "source", "agent": "agent_id"}
assert set(_BY.values()) <= set(typing.get_args(HistogramGroup))


@click.command()
@click.option(
    "--since",
    "window",
    type=Duration(positive=True),
    help=f"The window, ending now: {DURATION_HELP} (default: 1h).",
)
@click.option(
    "--minutes",
    "-m",
    type=click.FloatRange(min=0, min_open=True),
    hidden=True,  # the older spelling of the window, kept for scripts
)
@click.option("--by", type=click.Choice(list(_BY)), help="Count by (default: type).")
@click.option(
    "--every", type=Duration(positive=True), help=f"Draw a time histogram; {DURATION_HELP}."
)
@_output.format_option("table", "json")
@pass_settings
def summary(
    settings: Settings,
    window: timedelta | None,
    minutes: float | None,
    by: str | None,
    every: timedelta | None,
    fmt: str | None,
) -> None:
    """Event counts over the last hour (or --since), with bars; --every draws them over time."""
    url = settings.url
    fmt = _output.pick_format(fmt)
    if window is not None and minutes is not None:
        raise click.UsageError("use either --since or --minutes")
    until = datetime.now(UTC)
    try:
        if minutes is not None:
            window = timedelta(minutes=minutes)
        window = window or timedelta(hours=1)
        since = until - window
    except OverflowError:
        raise click.BadParameter("too large", param_hint="'--since'") from None
    minutes = window / timedelta(minutes=1)
    # The buckets are aligned to the epoch, so the window can straddle one more.
    if every is not None and (until - since) / every > MAX_BUCKETS - 1:
        raise click.BadParameter(
            f"{duration_text(window)} in buckets of {duration_text(every)} would be more than "
            f"{MAX_BUCKETS} buckets: choose a longer --every",
            param_hint="'--every'",
        )
    group = _BY[by] if by is not None else None
    title = f"Last {duration_text(window)}"

    if every is None:

        async def counts() -> dict[str, int]:
            async with open_log(url) as log:
                if group is None or group == "event_type":
                    return await log.get_event_summary(minutes)
                # One bucket as long as the window (two when it straddles an epoch-
                # aligned boundary); the window's since/until bound what is counted.
                found: dict[str, int] = {}
                buckets = await log.get_event_histogram(
                    since=since,
                    until=until,
                    every=max(until - since, timedelta(seconds=1)),
                    by=group,
                )
                for bucket in buckets:
                    for key, count in bucket.counts.items():
                        found[key] = found.get(key, 0) + count
                return found

        result = run_command(counts(), url=url)
        if fmt == "json":
            _output.echo_json(
                {
                    "since": _output.json_time(since),
                    "until": _output.json_time(until),
                    "by": by or "type",
                    "counts": dict(sorted(result.items(), key=lambda kv: (-kv[1], kv[0]))),
                }
            )
        else:
            _output.print_counts(title, by or "type", result)
        return

    async def histogram() -> list[HistogramBucket]:
        async with open_log(url) as log:
            return await log.get_event_histogram(since=since, until=until, every=every, by=group)

    buckets = run_command(histogram(), url=url)
    if fmt == "json":
        for bucket in buckets:
            _output.echo_json(bucket.model_dump(mode="json"))
    else:
        _output.print_histogram(f"{title}, every {duration_text(every)}", buckets, by)


@click.command()
@_output.format_option("table", "json")
@pass_settings
def stats(settings: Settings, fmt: str | None) -> None:
    """Rows, time range, size on disk, counts by type and schema revision."""
    url = settings.url

    async def go() -> tuple[admin.TableStats, str | None]:
        require_file(url)
        await require_schema(url, url)
        return await admin.table_stats(url), await admin.current_revision(url)

    table, revision = run_command(go(), url=url)
    if _output.pick_format(fmt) == "json":
        _output.echo_json(
            {
                "url": display_url(url),
                "rows": table.rows,
                "oldest": _output.json_time(table.oldest),
                "newest": _output.json_time(table.newest),
                "size_bytes": table.size_bytes,
                "revision": revision,
                "reclaimable_bytes": table.reclaimable_bytes,
                "auto_vacuum": table.auto_vacuum,
                "dead_rows": table.dead_rows,
                "by_type": table.by_type,
            }
        )
        return
    console = _output.stdout_console()
    rows = [
        ("database", display_url(url)),
        ("revision", f"{revision} (head)"),
        ("events", f"{table.rows:,}"),
        ("oldest", "-" if table.oldest is None else _output.time_text(table.oldest) + " UTC"),
        ("newest", "-" if table.newest is None else _output.time_text(table.newest) + " UTC"),
        ("size", _size_text(table.size_bytes, table.size_of)),
    ]
    if table.reclaimable_bytes is not None:
        rows.append(("free", _reclaimable_text(table.reclaimable_bytes, table.auto_vacuum)))
    if table.dead_rows is not None:
        dead = f"{table.dead_rows:,} rows (new rows reuse their space; VACUUM (FULL) returns it)"
        rows.append(("dead", dead))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        console.print(f"{key:<{width}}  {value}", soft_wrap=True)
    if table.by_type:
        console.print()
        _output.print_counts("By type", "type", table.by_type)


def _reclaimable_text(size: int, auto_vacuum: str | None) -> str:
    text = _size_text(size, "free pages") + " reclaimable"
    if auto_vacuum == "incremental":
        return f"{text}; incremental auto-vacuum: prune hands them back"
    if auto_vacuum == "full":
        return f"{text}; full auto-vacuum"
    return (
        f"{text}; auto-vacuum is off: run 'PRAGMA auto_vacuum = INCREMENTAL; VACUUM' once "
        "(sqlite3 FILE, nothing else writing) so that prune can shrink the file"
    )


def _size_text(size: int | None, of: str) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            text = f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            return f"{text} ({of})"
        value /= 1024
    raise AssertionError("unreachable")
