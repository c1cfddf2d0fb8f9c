"""bench.follow measures every event even when the follower is slow to start.

The quick benchmark once failed in CI with a bare ``TimeoutError``: the
follower's first ``__anext__`` (which opens the LISTEN connection and reads
the newest ``seq``) had not finished when the writer process logged the first
measured event, so that event counted as "before the follow began" and never
arrived. Here the LISTEN connection opens only once the writer has committed
its first event, which provokes that moment every time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bench import follow
from bench.follow import follow_latency

import event_log
from event_log import EventLogger
from event_log._follow import FollowerRegistry


async def test_a_follower_slow_to_start_still_sees_every_event(
    postgres_only_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await event_log.upgrade(postgres_only_url)
    listen = FollowerRegistry.listen
    committed_while_starting: list[int] = []

    async def slow_listen(self: FollowerRegistry) -> None:
        # Wait (a bounded wait, not a measurement) for the writer's first event.
        async with EventLogger.open(postgres_only_url, migrate=False) as probe:
            for _ in range(1000):
                if n := await probe.count_events(event_type="tool.called"):
                    committed_while_starting.append(n)
                    break
                await asyncio.sleep(0.01)
        await listen(self)

    measured: list[list[float]] = []
    summarize_ms = follow.summarize_ms

    def spy(seconds: Any) -> dict[str, float]:
        measured.append(list(seconds))
        return summarize_ms(measured[-1])

    monkeypatch.setattr(FollowerRegistry, "listen", slow_listen)
    monkeypatch.setattr(follow, "summarize_ms", spy)

    result = await follow_latency(postgres_only_url, 3)

    # The race happened: round 0's event was committed before the follower listened...
    assert committed_while_starting == [1]
    # ...it still arrived (no error), and only rounds 1-3 were measured, not round 0.
    assert result["runs"] == 3
    assert [len(delays) for delays in measured] == [3]
