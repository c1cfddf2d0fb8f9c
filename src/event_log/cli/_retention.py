"""``prune``: delete old events, per type with overrides, after showing what goes.

The counting and the deleting are the library's (``EventLogger.preview_prune``
and ``prune_as_previewed``); this module parses the options, asks, and shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import click

from event_log import EventFilter, PrunePreview

from . import _output
from ._runtime import Settings, open_log, pass_settings, progress_bar, run
from ._times import DURATION_HELP, Duration, duration_text, parse_duration

__all__ = ["prune"]


def _parse_overrides(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> dict[str, timedelta]:
    """Repeated ``--override TYPE_OR_PATTERN=DURATION`` as {pattern: duration}."""
    found: dict[str, timedelta] = {}
    for value in values:
        pattern, sep, duration_text_ = value.partition("=")
        pattern = pattern.strip()
        if not sep or not pattern or not duration_text_.strip():
            raise click.BadParameter(
                f"{value!r} is not TYPE=DURATION (e.g. 'tool.*=7d' or 'system.error=90d')"
            )
        try:
            EventFilter(event_type=pattern)
        except ValueError:
            raise click.BadParameter(
                f"{pattern!r} is neither an event type (system.error) nor a prefix pattern (tool.*)"
            ) from None
        try:
            duration = parse_duration(duration_text_)
        except (ValueError, OverflowError):
            raise click.BadParameter(
                f"{duration_text_.strip()!r} in {value!r} is not a duration: use {DURATION_HELP}"
            ) from None
        if pattern in found and found[pattern] != duration:
            raise click.BadParameter(f"{pattern!r} is given twice, with different durations")
        found[pattern] = duration
    return found


def _days(duration: timedelta) -> float:
    return duration / timedelta(days=1)


@click.command()
@click.option(
    "--older-than",
    type=Duration(),
    required=True,
    help=f"Delete events older than this; {DURATION_HELP}.",
)
@click.option(
    "--override",
    "overrides",
    multiple=True,
    callback=_parse_overrides,
    metavar="TYPE=DURATION",
    help="Keep this event type or prefix pattern for another time, e.g. 'tool.*=7d' or "
    "'system.error=90d'; repeatable, the longest match wins.",
)
@click.option("--dry-run", is_flag=True, help="Only say how many would be deleted.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def prune(
    settings: Settings,
    older_than: timedelta,
    overrides: dict[str, timedelta],
    dry_run: bool,
    yes: bool,
) -> None:
    """Delete events older than --older-than (per type with --override), in short batches."""
    url = settings.url

    async def count() -> list[PrunePreview]:
        async with open_log(url) as log:
            return await log.preview_prune(
                _days(older_than), overrides={p: _days(d) for p, d in overrides.items()}
            )

    try:
        rules = run(count(), url=url)
    except (ValueError, OverflowError) as exc:
        raise click.UsageError(str(exc)) from None
    default = rules[-1]

    def keep(rule: PrunePreview) -> str:
        return duration_text(older_than if rule.event_type is None else overrides[rule.label])

    before = (
        f"older than {duration_text(older_than)} (before {_output.time_text(default.cutoff)} UTC)"
    )
    if overrides:
        before += "; " + ", ".join(f"{rule.label} older than {keep(rule)}" for rule in rules[:-1])
    pending = sum(rule.count for rule in rules)
    if pending == 0:
        click.echo(f"No events {before}.")
        return
    if dry_run:
        click.echo(f"Would delete {pending} event{'s' if pending != 1 else ''} {before}.")
        if overrides:
            width = max(len(rule.label) for rule in rules)
            for rule in rules:
                click.echo(
                    f"  {rule.label:<{width}}  {rule.count:>8}  older than {keep(rule)} "
                    f"(before {_output.time_text(rule.cutoff)} UTC)"
                )
        return
    if not yes:
        click.confirm(f"Delete {pending} event{'s' if pending != 1 else ''} {before}?", abort=True)

    async def delete() -> int:
        async with open_log(url, mode="write") as log:
            with progress_bar("Pruning") as progress:
                bar = progress.add_task("prune", total=pending)
                # The cutoffs stay the ones announced, however long the confirmation took.
                return await log.prune_as_previewed(
                    rules, on_progress=lambda done: progress.update(bar, completed=done)
                )

    deleted = run(delete(), url=url)
    click.echo(f"Deleted {deleted} event{'s' if deleted != 1 else ''} {before}.")
