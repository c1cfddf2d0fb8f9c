"""follow() on a PostgreSQL server that refuses LISTEN, as a read replica does.

A hot standby answers LISTEN with SQLSTATE 25006 ("cannot execute LISTEN during
recovery") and is never notified: followers poll it instead. Any other refusal
from the driver is a StorageError in one line. The refusal is made here by the
listener's own step that sends LISTEN, on the real server.
"""

from __future__ import annotations

import asyncio

import pytest

from event_log import EventLogger, StorageError
from event_log.backends.postgresql import _listen, _psycopg

pytestmark = pytest.mark.postgres


class DriverRefusal(Exception):
    """What a driver raises for a statement the server refused (it carries the SQLSTATE)."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _refuse_listen(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    async def refuse(self: object, conn: object) -> None:
        raise error

    monkeypatch.setattr(_listen.NotifyListener, "_listen", refuse)
    monkeypatch.setattr(_psycopg.PsycopgListener, "_listen", refuse)


async def test_a_standby_that_refuses_listen_is_polled(
    postgres_driver_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_listen(
        monkeypatch, DriverRefusal("cannot execute LISTEN during recovery", sqlstate="25006")
    )
    async with EventLogger.open(postgres_driver_url, poll_interval=0.05) as log:
        follower = log.follow()
        pending = asyncio.ensure_future(anext(follower))
        await follower.began.wait()
        async with EventLogger.open(postgres_driver_url) as writer:  # another process, say
            logged = await writer.log_event("task.created", "primary")
        async with asyncio.timeout(10):
            assert (await pending).id == logged.id
        await follower.aclose()


async def test_another_refusal_of_listen_is_one_storage_error(
    postgres_driver_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_listen(monkeypatch, DriverRefusal("permission denied for LISTEN", sqlstate="42501"))
    async with EventLogger.open(postgres_driver_url) as log:
        with pytest.raises(StorageError, match="listening for commits failed: ") as raised:
            await anext(log.follow())
        assert "\n" not in str(raised.value)
