"""event_log.admin: revisions, drift checks, partitions, sizes, on every migratable backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from event_log import DEFAULT_URL, MAX_BUCKETS, MAX_PAGE_SIZE, EventLogger, admin
from event_log._queries import MAX_BUCKETS as PRIVATE_MAX_BUCKETS
from event_log._queries import MAX_PAGE_SIZE as PRIVATE_MAX_PAGE_SIZE


def test_revisions_newest_first() -> None:
    revisions = admin.revisions()
    assert revisions[0].revision == admin.head_revision()
    assert revisions[0].is_head
    assert revisions[-1].down_revision is None
    assert all(r.message for r in revisions)
    assert [r.down_revision for r in revisions[:-1]] == [r.revision for r in revisions[1:]]


def test_public_limits() -> None:
    assert (MAX_BUCKETS, MAX_PAGE_SIZE) == (PRIVATE_MAX_BUCKETS, PRIVATE_MAX_PAGE_SIZE)


def test_database_file(tmp_path: Path) -> None:
    assert admin.database_file(f"sqlite+aiosqlite:///{tmp_path}/x.db") == tmp_path / "x.db"
    assert admin.database_file("sqlite+aiosqlite://") is None
    assert admin.database_file("postgresql+asyncpg://u@h/db") is None
    assert admin.database_file("nope://x") is None


async def test_upgrade_downgrade_check(migratable_url: str) -> None:
    url = migratable_url
    head = admin.head_revision()
    assert await admin.current_revision(url) is None
    change = await admin.upgrade(url)
    assert (change.before, change.after) == (None, head)
    assert await admin.upgrade(url) == admin.RevisionChange(head, head)
    await admin.check(url)
    with pytest.raises(admin.RevisionError, match="nope"):
        await admin.upgrade(url, "nope")
    down = await admin.downgrade(url, "-1")
    assert down.before == head
    assert down.after == admin.revisions()[1].revision
    with pytest.raises(admin.RevisionError, match="not up to date"):
        await admin.check(url)
    await admin.upgrade(url)

    async with EventLogger.open(url) as log:
        await log.log_event("task.created", "c")
        async with log.engine.begin() as conn:
            await conn.execute(text("CREATE INDEX ix_extra ON event_log (source)"))
        with pytest.raises(admin.SchemaDriftError, match="ix_extra"):
            await admin.check(log.engine)  # a caller's engine is used and left open
        stats = await admin.table_stats(log.engine)
        assert await admin.current_revision(log.engine) == head
    assert stats.rows == 1
    assert stats.by_type == {"task.created": 1}
    assert stats.size_bytes is None or stats.size_bytes > 0
    assert await admin.partitions(url) == []


async def test_partition_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    with pytest.raises(ValueError, match="by must be"):
        await admin.partition(url, "week")
    with pytest.raises(ValueError, match="ahead"):
        await admin.partition(url, "day", ahead=-1)
    with pytest.raises(ValueError, match="PostgreSQL"):
        await admin.partition(url, "day")


@pytest.mark.postgres
async def test_partition_on_postgres(postgres_only_url: str) -> None:
    report = await admin.partition(postgres_only_url, "day", ahead=2)
    assert (report.before, report.after) == (None, admin.head_revision())
    assert (report.was, report.now) == (None, "day")
    assert len(report.partitions) == 3
    assert await admin.partitions(postgres_only_url) == report.partitions
    plain = await admin.partition(postgres_only_url, "none")
    assert (plain.was, plain.now, plain.partitions) == ("day", None, [])


def test_database_url() -> None:
    assert str(admin.database_url("sqlite:///x.db")) == "sqlite+aiosqlite:///x.db"
    assert str(admin.database_url("postgresql://u@h/db")) == "postgresql+asyncpg://u@h/db"
    assert str(admin.database_url("postgresql+psycopg://u@h/db")) == "postgresql+psycopg://u@h/db"
    assert str(admin.database_url("mysql://u@h/db")) == "mysql+asyncmy://u@h/db"
    with pytest.raises(ValueError, match="unsupported database 'nope'"):
        admin.database_url("nope://")
    with pytest.raises(ValueError, match="not a database URL"):
        admin.database_url("::not a url::")
    with pytest.raises(ValueError, match=r"'pymysql'.*mysql\+asyncmy") as caught:
        admin.database_url("mysql+pymysql://u:secret@h/db")
    assert "secret" not in str(caught.value)


def test_database_url_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_LOG_URL", "sqlite:///from-env.db")
    assert str(admin.database_url()) == "sqlite+aiosqlite:///from-env.db"
    monkeypatch.delenv("EVENT_LOG_URL")
    assert str(admin.database_url()) == DEFAULT_URL


def test_features() -> None:
    assert admin.features("sqlite+aiosqlite://") == admin.Features(False, False)
    assert admin.features("mysql+asyncmy://u@h/db") == admin.Features(False, False)
    assert admin.features("postgresql+asyncpg://u@h/db") == admin.Features(True, True)
    with pytest.raises(ValueError, match="unsupported database"):
        admin.features("nope://")
