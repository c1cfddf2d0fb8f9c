"""bench.follow measures every event even when the follower is slow to start.

The quick benchmark once failed in CI with a bare ``TimeoutError``: the
follower's first ``__anext__`` (which opens the LISTEN connection and reads
the newest ``seq``) had not finished when the writer process logged the first
measured event, so that event counted as "before the follow began" and never
arrived. A slow LISTEN connection provokes the same moment here.
"""

from __future__ import annotations

import asyncio

import pytest
from bench.follow import follow_latency

import event_log
from event_log._follow import FollowerRegistry


async def test_a_follower_slow_to_start_still_sees_every_event(
    postgres_only_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    listen = FollowerRegistry.listen

    async def slow_listen(self: FollowerRegistry) -> None:
        await asyncio.sleep(0.5)  # far beyond the time the writer takes to commit
        await listen(self)

    monkeypatch.setattr(FollowerRegistry, "listen", slow_listen)
    await event_log.upgrade(postgres_only_url)

    result = await follow_latency(postgres_only_url, 3)

    assert result["runs"] == 3
    # The slow start is in the unmeasured round, not in any measured delay.
    assert result["max_ms"] < 500
