"""MariaDB through asyncmy: UTC sessions, LAST_INSERT_ID sequences, JSON filters built
from JSON_TYPE, JSON_EXTRACT and JSON_TABLE.

MariaDB's JSON is text with functions whose rules are not jsonb's (JSON_CONTAINS
finds 1 in [1] and compares "1" with 1), so the same rules as on SQLite are
built from parts: JSON_TYPE for the type, JSON_EXTRACT for a member, JSON_TABLE
for an array's elements. Keys go into JSON paths quoted (``$."key"``,
backslash and double quote escaped), which MariaDB's path syntax allows for any
text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Delete,
    Dialect,
    Float,
    Numeric,
    Text,
    and_,
    case,
    cast,
    delete,
    event,
    false,
    func,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator, TypeEngine

from .._data_filters import COMPARISONS, Comparison, DataFilter, Scalar
from .._errors import recognise_error_numbers
from .._schema import EVENT_TABLE
from ._backend import Backend, BackendName

if TYPE_CHECKING:
    from .._filters import TypeSpec
    from .._models import Row
    from .._queries import BucketGrid

__all__ = ["BACKEND", "MariaDBBackend"]

# asyncmy's exceptions carry the server's error number first: what _errors reads.
recognise_error_numbers("asyncmy")

_c = EVENT_TABLE.c

# Every session: UTC (DATETIME values are UTC, and functions that read the
# session time zone must agree), and strict mode on every table (a value that
# does not fit is an error, never silently truncated or zeroed).
SESSION_SQL = "SET time_zone = '+00:00', sql_mode = CONCAT_WS(',', @@sql_mode, 'STRICT_ALL_TABLES')"


class NaiveUTCTimestamp(TypeDecorator[datetime]):
    """Aware datetimes as ``DATETIME(6)`` holding UTC (MariaDB has no zone-aware type)."""

    impl = mysql.DATETIME(fsp=6)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_MYSQL_NUMBER_TYPES = ("INTEGER", "DOUBLE")
# Code point order without pad space ("a" < "a "), as SQLite and COLLATE "C" compare.
_MYSQL_CODE_POINT = "utf8mb4_nopad_bin"


def _mysql_member(fragment: ColumnElement[Any], key: str) -> ColumnElement[Any]:
    """The JSON text of ``fragment``'s member ``key``; NULL when there is none."""
    path = '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return func.json_extract(fragment, literal(path, Text))


def _mysql_type(fragment: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.json_type(fragment)


def _mysql_number(fragment: ColumnElement[Any], op: str, value: int | float) -> ColumnElement[bool]:
    """A JSON number compared with ``value``: two integers exactly (as decimals), any
    other pair as doubles (exact for integers up to 2**53)."""
    as_double = COMPARISONS[op](
        fragment.op("+", return_type=Float())(literal_column("0E0")), literal(float(value))
    )
    if isinstance(value, float):
        return and_(_mysql_type(fragment).in_(_MYSQL_NUMBER_TYPES), as_double)
    as_decimal = COMPARISONS[op](cast(fragment, Numeric(65, 0)), literal(value, Numeric(65, 0)))
    return case(
        (_mysql_type(fragment) == "INTEGER", as_decimal),
        (_mysql_type(fragment) == "DOUBLE", as_double),
        else_=false(),
    )


def _mysql_scalar(fragment: ColumnElement[Any], op: str, value: Scalar) -> ColumnElement[bool]:
    """JSON text ``fragment`` compared with a scalar, JSON type respected (NULL: false)."""
    if value is None:
        return _mysql_type(fragment) == "NULL" if op == "=" else false()
    if isinstance(value, bool):
        wanted = value if op == "=" else not value
        return and_(_mysql_type(fragment) == "BOOLEAN", fragment == ("true" if wanted else "false"))
    if isinstance(value, str):
        text = func.json_unquote(fragment).collate(_MYSQL_CODE_POINT)
        return and_(
            _mysql_type(fragment) == "STRING",
            COMPARISONS[op](text, literal(value, Text).collate(_MYSQL_CODE_POINT)),
        )
    return _mysql_number(fragment, op, value)


def _mysql_element(fragment: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    """JSON text ``fragment`` contains ``value`` (jsonb containment)."""
    if isinstance(value, dict):
        members = [_mysql_element(_mysql_member(fragment, k), v) for k, v in value.items()]
        return and_(_mysql_type(fragment) == "OBJECT", *members)
    if isinstance(value, list):
        found = []
        for member in value:
            elements = (
                func.json_table(fragment, literal_column("'$[*]' COLUMNS (v JSON PATH '$')"))
                .table_valued("v")
                .alias()
            )
            found.append(
                select(1).select_from(elements).where(_mysql_element(elements.c.v, member)).exists()
            )
        return case((_mysql_type(fragment) == "ARRAY", and_(true(), *found)), else_=false())
    return _mysql_scalar(fragment, "=", value)


def _mysql_contains(column: ColumnElement[Any], value: dict[str, Any]) -> ColumnElement[bool]:
    """The data column contains ``value`` (NULL data never does)."""
    return _mysql_element(column, value)


def _mysql_compare(column: ColumnElement[Any], comparison: Comparison) -> ColumnElement[bool]:
    return _mysql_scalar(_mysql_member(column, comparison.key), comparison.op, comparison.value)


class MariaDBBackend(Backend):
    """MariaDB (10.6 and later) through asyncmy."""

    name: ClassVar[BackendName] = "mariadb"
    extra = "mariadb"
    drivers: ClassVar[dict[str, str]] = {"asyncmy": "asyncmy"}

    def create_engine(
        self, url: URL, *, read_only: bool = False, **engine_kwargs: Any
    ) -> AsyncEngine:
        """utf8mb4, READ COMMITTED, UTC sessions.

        READ COMMITTED gives every statement a fresh snapshot (as on PostgreSQL),
        so a reader that holds a connection never reads an old one, and InnoDB
        takes no gap locks, so a prune batch never blocks inserts at the end of an
        index.
        """
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        engine_kwargs.setdefault("isolation_level", "READ COMMITTED")
        engine = create_async_engine(url, pool_pre_ping=True, **engine_kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _session(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(SESSION_SQL)
                if read_only:  # the server refuses writes in every later transaction
                    cursor.execute("SET SESSION TRANSACTION READ ONLY")
            finally:
                cursor.close()

        return engine

    def timestamp_type(self) -> TypeEngine[datetime]:
        return NaiveUTCTimestamp()

    def json_type(self) -> TypeEngine[Any]:
        return mysql.JSON()

    def seq_statements(self, count: int) -> tuple[str, ...]:
        # No UPDATE ... RETURNING: LAST_INSERT_ID(expr) keeps the new value for
        # this connection, and the next statement reads it back.
        return (
            "UPDATE event_log_sequence SET last_seq = LAST_INSERT_ID(last_seq + "
            f"{int(count)}) WHERE id = 1",
            "SELECT LAST_INSERT_ID()",
        )

    def bind_rows(self, rows: Sequence[Row], last_seq: int) -> list[tuple[Any, ...]]:
        # DATETIME holds naive UTC; row timestamps are already UTC.
        first = last_seq - len(rows) + 1
        return [
            (r[0], r[1], r[2], r[3], r[4], r[5], r[6].replace(tzinfo=None), seq)
            for seq, r in enumerate(rows, first)
        ]

    def data_clauses(
        self, data: DataFilter, column: ColumnElement[Any]
    ) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if data.contains is not None:
            where.append(_mysql_contains(column, data.contains))
        where.extend(_mysql_compare(column, comparison) for comparison in data.where)
        return where

    def bucket_index(self, grid: BucketGrid) -> ColumnElement[Any]:
        step = grid.every // timedelta(microseconds=1)
        # DATETIME(6) minus DATETIME(6) in microseconds: exact, and independent of the
        # session time zone (UNIX_TIMESTAMP is neither beyond 2038 nor zone-free).
        # DIV is an integer floor here: rows are >= start.
        micros = func.timestampdiff(
            literal_column("MICROSECOND"), literal(grid.start, _c.timestamp.type), _c.timestamp
        )
        return micros.op("DIV")(literal(step, BigInteger))

    def prune_batch_statement(
        self,
        cutoff: datetime,
        batch_size: int,
        *,
        only: TypeSpec | None = None,
        unless: Sequence[TypeSpec] = (),
    ) -> Delete:
        # MariaDB refuses LIMIT in an IN subquery and a subquery on the table being
        # deleted from; a derived table is materialised first, which both allow.
        batch = self._oldest(cutoff, batch_size, only, unless).subquery("oldest")
        return delete(EVENT_TABLE).where(_c.id.in_(select(batch.c.id)))


BACKEND = MariaDBBackend()
