"""A logger's background upkeep: partitions kept ahead, and prunes on a schedule.

Both run as tasks of the loop the logger was made in, repeat until the logger
closes, and survive their own failures: each failure is logged on the
``event_log`` logger as one line (ERROR; the traceback only at DEBUG) and
tried again next time, never raised into the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ._errors import LoggerClosedError
from ._retention import RetentionPolicy

__all__ = ["Upkeep"]

_log = logging.getLogger("event_log")


class Upkeep:
    """The background tasks of one logger; :meth:`stop` cancels them."""

    def __init__(self) -> None:
        self.retention_failures = 0  # scheduled prunes that failed (each also logged)
        self.partitions_checked = asyncio.Event()  # the first check is done (or failed)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    @property
    def keeps_partitions(self) -> bool:
        return any(task.get_name() == "event_log partitions" for task in self._tasks)

    def keep_partitions(
        self, ensure: Callable[[], Awaitable[list[str]]], every_minutes: float
    ) -> None:
        """Run ``ensure`` now and every ``every_minutes``; outside a running loop, never."""
        with contextlib.suppress(RuntimeError):  # made outside a loop: no background task
            loop = asyncio.get_running_loop()
            self._tasks.append(
                loop.create_task(
                    self._partitions(ensure, every_minutes), name="event_log partitions"
                )
            )

    def prune_on_schedule(
        self, apply: Callable[[RetentionPolicy], Awaitable[int]], policy: RetentionPolicy
    ) -> None:
        """Prune by ``policy`` now and every ``policy.every_minutes``."""
        assert policy.every_minutes is not None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ValueError(
                "a scheduled retention policy needs a logger made inside a running loop"
            ) from None
        self._tasks.append(
            loop.create_task(
                self._retention(apply, policy, policy.every_minutes), name="event_log retention"
            )
        )

    async def stop(self) -> None:
        self._stopped = True
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _partitions(
        self, ensure: Callable[[], Awaitable[list[str]]], every_minutes: float
    ) -> None:
        while not self._stopped:
            try:
                created = await ensure()
            except LoggerClosedError:
                return
            except Exception as exc:
                _failed("creating partitions", exc, every_minutes)
            else:
                if created:
                    _log.info("event_log: created partitions %s", ", ".join(created))
            self.partitions_checked.set()
            await asyncio.sleep(every_minutes * 60)

    async def _retention(
        self,
        apply: Callable[[RetentionPolicy], Awaitable[int]],
        policy: RetentionPolicy,
        every_minutes: float,
    ) -> None:
        while not self._stopped:
            try:
                deleted = await apply(policy)
            except LoggerClosedError:
                return
            except Exception as exc:
                self.retention_failures += 1
                _failed("scheduled prune", exc, every_minutes)
            else:
                _log.info("event_log: scheduled prune deleted %d events", deleted)
            await asyncio.sleep(every_minutes * 60)


def _failed(action: str, exc: Exception, every_minutes: float) -> None:
    """One line for an operator; the traceback for whoever turns DEBUG on."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    _log.error(
        "event_log: %s failed (%s); trying again in %s minutes", action, reason, every_minutes
    )
    _log.debug("event_log: %s failed", action, exc_info=exc)
