"""Following in tests: waiting for a follower to begin (rather than sleeping and
hoping it has), and taking its next events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from event_log import Event
from event_log._follow import Follower


async def started(follower: AsyncIterator[Event], seconds: float = 10) -> None:
    """Return once the follower's first ``__anext__`` has fixed where it begins.

    ``follow()`` yields what commits after that moment (its documented start),
    and reaching it takes a query, and on PostgreSQL a LISTEN connection too:
    a fixed sleep before the first write was not always enough under load.
    Call it after the first ``__anext__`` was scheduled.
    """
    assert isinstance(follower, Follower)
    for _ in range(int(seconds / 0.001)):
        if follower._started:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"the follower had not begun after {seconds} s")


async def take(follower: AsyncIterator[Event], n: int, seconds: float = 10) -> list[Event]:
    """The next ``n`` events, failing after ``seconds``."""

    async def collect() -> list[Event]:
        got: list[Event] = []
        async for event in follower:
            got.append(event)
            if len(got) == n:
                break
        return got

    return await asyncio.wait_for(collect(), seconds)
