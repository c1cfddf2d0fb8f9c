"""``EventLogger.import_events``: events written as they were, with their own ids and times.

Logging makes a new id and stamps the time; importing (an export read back, a
database of the original system) must keep both, so that importing into an
empty database reproduces the source exactly. Each event is validated as
``log_event`` validates one (the logger's size limit and secret masking
included), its id and timestamp checked too, and an id that is already
stored, or repeated in the same call, is skipped: importing the same events
twice adds nothing.

The write is a job in the logger's writer queue, so it is ordered with the
logger's own writes, and it is one transaction: it first takes the
backend's write turn (SQLite and MariaDB: it reserves sequence numbers from
``event_log_sequence``, whose row lock numbers rows in commit order and keeps
every other writer out until the commit; PostgreSQL: a lock only imports
take), then reads which ids are already stored, then inserts the rest.
Reading the stored ids in that turn is what makes the skip safe against a
concurrent import of the same ids, on every backend, without any dialect's
``ON CONFLICT``. Skipped rows leave gaps in the sequence: followers only need
the order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ._errors import InvalidEventError, translate_storage_errors
from ._models import Event, Row, check_text, prepare_event
from ._schema import EVENT_TABLE
from .backends._sink import Sink, reserve_seq

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from ._database import Database
    from ._redact import Redactor
    from ._writer import Writer

__all__ = ["ID_MAX_LENGTH", "IMPORT_FIELDS", "ImportResult", "import_events", "import_row"]

# Ids are stored in a 36-character column (a UUID's canonical form).
ID_MAX_LENGTH = 36
# What an imported event may carry: an Event's fields, as an export writes them.
IMPORT_FIELDS = ("id", "event_type", "source", "task_id", "agent_id", "data", "timestamp")
_FIELDS = frozenset(IMPORT_FIELDS)
_REQUIRED = ("id", "event_type", "source", "timestamp")
_c = EVENT_TABLE.c


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What one ``import_events`` call did.

    ``imported``: events stored now. ``already_present``: events skipped because
    their id was already stored (or came earlier in the same call).
    ``invalid``: with ``skip_invalid=True``, the events left out as
    ``(position in the input, reason)`` pairs, in input order.
    """

    imported: int
    already_present: int
    invalid: tuple[tuple[int, str], ...] = ()


def _timestamp(value: object) -> object:
    """An ISO 8601 text (as exports write it) as a datetime; other values are left to
    the event's own check (which wants an aware datetime)."""
    if not isinstance(value, str):
        return value
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEventError(f"timestamp {value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise InvalidEventError(f"timestamp {value!r} has no UTC offset")
    return when


def import_row(
    item: Event | Mapping[str, Any], *, max_data_bytes: int, redactor: Redactor | None
) -> Row:
    """The stored row of one imported event; :class:`InvalidEventError` when it is not valid.

    ``item`` is an :class:`Event` or a mapping of its fields: ``id``,
    ``event_type``, ``source`` and ``timestamp`` (an aware datetime, or ISO 8601
    text with an offset) are required, ``task_id``, ``agent_id`` and ``data``
    optional, and no other key is allowed.
    """
    if isinstance(item, Event):
        fields: Mapping[str, Any] = item.__dict__
    elif isinstance(item, Mapping):
        fields = item
    else:
        raise InvalidEventError(f"expected an Event or a mapping, not {type(item).__name__}")
    unknown = sorted(str(name) for name in fields if name not in _FIELDS)
    if unknown:
        raise InvalidEventError(f"unknown field(s): {', '.join(unknown)}")
    missing = [name for name in _REQUIRED if fields.get(name) is None]
    if missing:
        raise InvalidEventError(f"missing field(s): {', '.join(missing)}")
    event_id = check_text("id", fields["id"], required=True)
    assert event_id is not None
    if len(event_id) > ID_MAX_LENGTH:
        raise InvalidEventError(f"id is {len(event_id)} characters; at most {ID_MAX_LENGTH}")
    prepared = prepare_event(
        fields["event_type"],
        fields["source"],
        fields.get("task_id"),
        fields.get("agent_id"),
        fields.get("data"),
        _timestamp(fields["timestamp"]),
        max_data_bytes=max_data_bytes,
        redactor=redactor,
    )
    return (event_id, *prepared.row[1:])


async def _new_rows(conn: AsyncConnection, rows: Sequence[Row]) -> list[Row]:
    """``rows`` without ids already stored or repeated in ``rows`` (the first one is kept)."""
    ids = list({row[0] for row in rows})
    stored = set((await conn.execute(select(_c.id).where(_c.id.in_(ids)))).scalars())
    fresh: list[Row] = []
    for row in rows:
        if row[0] not in stored:
            stored.add(row[0])
            fresh.append(row)
    return fresh


async def _insert_new(db: Database, sink: Sink, rows: Sequence[Row]) -> int:
    """Insert the rows whose ids are not stored yet, in one transaction; return how many."""
    with translate_storage_errors(f"importing {len(rows)} event(s)"):
        async with db.begin() as conn:
            # First: from here to the commit no other import can store an id.
            last_seq = await reserve_seq(db, conn, len(rows))
            fresh = await _new_rows(conn, rows)
            if fresh:
                sql = db.backend.insert_sql(conn.dialect)
                await conn.exec_driver_sql(sql, db.backend.bind_rows(fresh, last_seq))
    if fresh:
        sink.committed()
    return len(fresh)


async def import_events(
    db: Database,
    writer: Writer,
    events: Iterable[Event | Mapping[str, Any]],
    *,
    max_data_bytes: int,
    redactor: Redactor | None,
    skip_invalid: bool,
) -> ImportResult:
    """Validate ``events``, then write the new ones in one transaction through ``writer``
    (see :meth:`EventLogger.import_events`)."""
    if isinstance(events, str | bytes | Mapping) or not isinstance(events, Iterable):
        raise InvalidEventError(
            f"events must be an iterable of Event or mappings, not {type(events).__name__}"
        )
    rows: list[Row] = []
    invalid: list[tuple[int, str]] = []
    for index, item in enumerate(events):
        try:
            rows.append(import_row(item, max_data_bytes=max_data_bytes, redactor=redactor))
        except InvalidEventError as exc:
            if not skip_invalid:
                raise InvalidEventError(f"event #{index}: {exc}") from exc
            invalid.append((index, str(exc)))
    imported = await writer.run(lambda sink: _insert_new(db, sink, rows)) if rows else 0
    return ImportResult(imported, len(rows) - imported, tuple(invalid))
