"""A straightforward async SQLAlchemy ORM repository, for ``python -m bench --peers``.

What a team writes first when it needs an audit table: a declarative model of
the original's table (the same seven columns and four secondary indexes, made
by ``metadata.create_all``), an engine with SQLAlchemy's defaults
(``create_async_engine(url)``: aiosqlite or asyncpg, a pool of 5 connections
plus 10 overflow, 30 s to wait for one; no SQLite pragmas, so a new file keeps
the rollback journal at ``synchronous=FULL``) and a repository whose ``add``
opens an ``AsyncSession``, adds one row and commits.

Sequential: one ``await repo.add(...)`` after another. Concurrent: 100 tasks
at once, N events in total. An error a caller of such a repository meets
under load (SQLite's "database is locked", a pool timeout, any other
database error SQLAlchemy raises) is counted and the event dropped: it is a
result of the design, reported in the table, not a crash of the benchmark.
"""

from __future__ import annotations

import asyncio
from array import array
from datetime import datetime
from time import perf_counter
from typing import Any

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ._peers_common import CONCURRENT_TASKS, PeerEvent, Result, Tally, count_rows, peer_event
from .common import summarize_ms

__all__ = ["EventRecord", "EventRepository", "orm_concurrent", "orm_sequential"]


class Base(DeclarativeBase):
    pass


class EventRecord(Base):
    """One row of the original's ``event_log`` table."""

    __tablename__ = "event_log"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100), index=True)
    source: Mapped[str] = mapped_column(String(200))
    task_id: Mapped[str | None] = mapped_column(String(200), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(200), index=True)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class EventRepository:
    """Stores events: a session and a commit per event."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def add(self, event: PeerEvent) -> None:
        event_id, e, when = event
        async with self._sessions() as session:
            session.add(
                EventRecord(
                    id=event_id,
                    event_type=e.event_type,
                    source=e.source,
                    task_id=e.task_id,
                    agent_id=e.agent_id,
                    data=e.data,
                    timestamp=when,
                )
            )
            await session.commit()


async def _run(url: str, n: int, tasks: int) -> Result:
    """N events through the repository from ``tasks`` tasks (event i from task i % tasks)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        repo = EventRepository(engine)
        await repo.add(peer_event(0))  # warm-up: a connection in the pool
        tally = Tally()
        latencies: array[float] = array("d")

        async def worker(k: int) -> None:
            for i in range(k, n, tasks):
                t0 = perf_counter()
                try:
                    await repo.add(peer_event(i))
                except SQLAlchemyError as exc:
                    tally.add(exc)
                latencies.append(perf_counter() - t0)

        start = perf_counter()
        await asyncio.gather(*(worker(k) for k in range(tasks)))
        seconds = perf_counter() - start
    finally:
        await engine.dispose()
    result: Result = {"events": n, "seconds": seconds, **summarize_ms(latencies)}
    result.update(tally.as_result(), tasks=tasks)
    result["rows_in_table"] = await count_rows(url, "event_log")
    result["expected_rows"] = n - tally.count + 1
    return result


async def orm_sequential(url: str, n: int) -> Result:
    """``repo.add`` awaited one after another."""
    return await _run(url, n, 1)


async def orm_concurrent(url: str, n: int) -> Result:
    """``repo.add`` awaited by 100 tasks at once."""
    return await _run(url, n, CONCURRENT_TASKS)
