"""``event-log db ...``: schema migrations, partitions and the data index, through
:mod:`event_log.admin`."""

from __future__ import annotations

import click
from sqlalchemy.engine import URL

from event_log import admin, create_data_index

from ._runtime import (
    CliError,
    Settings,
    display_url,
    pass_settings,
    require_file,
    require_schema,
    run,
)

__all__ = ["db"]


@click.group()
def db() -> None:
    """Schema migrations (Alembic, packaged with event-log)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_settings
def db_upgrade(settings: Settings, revision: str) -> None:
    """Upgrade the schema to REVISION (default: head); creates it in an empty database."""
    url = settings.url
    try:
        change = run(admin.upgrade(url, revision), url=url)
    except admin.RevisionError as exc:
        raise click.UsageError(str(exc)) from None
    if change.before == change.after:
        click.echo(f"{display_url(url)} is already at revision {change.after}.")
    else:
        click.echo(
            f"Upgraded {display_url(url)} from {change.before or 'an empty schema'} "
            f"to {change.after}."
        )


@db.command("downgrade")
@click.argument("revision", default="-1")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def db_downgrade(settings: Settings, revision: str, yes: bool) -> None:
    """Downgrade the schema to REVISION (default: -1, one step; 'base' drops everything)."""
    url = settings.url
    require_file(url)
    if not yes:
        drops = " and DELETES EVERY EVENT" if revision == "base" else ""
        click.confirm(f"Downgrade {display_url(url)} to {revision}{drops}?", abort=True, err=True)
    try:
        change = run(admin.downgrade(url, revision), url=url)
    except admin.RevisionError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(
        f"Downgraded {display_url(url)} from {change.before} to {change.after or 'base (empty)'}."
    )


@db.command("partition")
@click.option(
    "--by",
    type=click.Choice(["day", "month", "none"]),
    required=True,
    help="One partition per UTC day or month; 'none' makes event_log a plain table again.",
)
@click.option(
    "--ahead",
    type=click.IntRange(0, 10_000),
    help="Periods to create ahead of the current one (default: 7 days, 2 months).",
)
@pass_settings
def db_partition(settings: Settings, by: str, ahead: int | None) -> None:
    """Partition event_log by time on PostgreSQL, keeping every row (upgrades first).

    Expired partitions are then dropped whole by prune. Run it again to create
    partitions ahead (loggers also do that by themselves).
    """
    url = settings.url
    if not admin.features(url).partitions:
        if by == "none":
            click.echo(f"{display_url(url)} has no time partitions: event_log is a plain table.")
            return
        raise click.UsageError(
            f"time partitioning needs PostgreSQL; {display_url(url)} has no time partitions "
            "(prune deletes in batches there)"
        )
    try:
        report = run(admin.partition(url, by, ahead=ahead), url=url)
    except ValueError as exc:  # admin.RevisionError too
        raise CliError(f"{display_url(url)}: {exc}") from None
    if report.before != report.after:
        click.echo(
            f"Upgraded {display_url(url)} from {report.before or 'an empty schema'} "
            f"to {report.after}."
        )
    if report.now is None:
        done = "is now" if report.was is not None else "is already"
        click.echo(f"event_log {done} a plain table.")
        return
    done = "is now" if report.was != report.now else "is already"
    parts = report.partitions
    span = f": {len(parts)} partitions" if parts else ": no range partitions"
    if parts:
        span += f", {parts[0].name} to {parts[-1].name}"
    click.echo(f"event_log {done} partitioned by {report.now}{span}, and event_log_default.")


def _current_revision(url: URL) -> str | None:
    """The database's revision; None also for an SQLite file that does not exist (which
    is left uncreated)."""
    path = admin.database_file(url)
    if path is not None and not path.is_file():
        return None
    return run(admin.current_revision(url), url=url)


@db.command("current")
@pass_settings
def db_current(settings: Settings) -> None:
    """Show the database's schema revision."""
    current = _current_revision(settings.url)
    head = admin.head_revision()
    if current is None:
        click.echo(f"none (no event-log schema; 'event-log db upgrade' creates it, head is {head})")
    elif current == head:
        click.echo(f"{current} (head)")
    else:
        click.echo(f"{current} (head is {head}: run 'event-log db upgrade')")


@db.command("history")
@pass_settings
def db_history(settings: Settings) -> None:
    """List the schema revisions, newest first, marking the database's own."""
    current = _current_revision(settings.url)
    for rev in admin.revisions():
        marks = [m for m, on in (("head", rev.is_head), ("current", rev.revision == current)) if on]
        suffix = f" ({', '.join(marks)})" if marks else ""
        click.echo(f"{rev.down_revision or '<base>'} -> {rev.revision}{suffix}: {rev.message}")


@db.command("check")
@pass_settings
def db_check(settings: Settings) -> None:
    """Check that the database's schema matches event-log's model (no drift)."""
    url = settings.url
    require_file(url)
    try:
        run(admin.check(url), url=url)
    except admin.RevisionError as exc:
        raise CliError(f"{display_url(url)}: {exc} (run 'event-log db upgrade')") from None
    except admin.SchemaDriftError as exc:
        raise CliError(f"{display_url(url)} differs from event-log's model: {exc}") from None
    click.echo(f"{display_url(url)} matches event-log's model (revision {admin.head_revision()}).")


@db.command("index-data")
@pass_settings
def db_index_data(settings: Settings) -> None:
    """Build the optional GIN index that serves --data-contains on PostgreSQL.

    Built with CREATE INDEX CONCURRENTLY (writers go on meanwhile); a no-op when
    it exists. SQLite and MariaDB have no such index: nothing is built there.
    """
    url = settings.url
    if not admin.features(url).data_index:
        click.echo(
            f"Nothing to build: {display_url(url)} has no index for JSON containment "
            "(data filters read each row's data)."
        )
        return

    async def go() -> str:
        await require_schema(url, url)
        return await create_data_index(url)

    outcome = run(go(), url=url)
    if outcome == "exists":
        click.echo(f"{admin.DATA_INDEX_NAME} already exists on {display_url(url)}.")
    else:
        click.echo(f"Built {admin.DATA_INDEX_NAME} on {display_url(url)}.")
