"""EventLogger.preview_prune and prune_as_previewed: counts per rule, then those cutoffs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from event_log import EventLogger, PrunePreview, _pruning
from event_log._pruning import prune_as_previewed


def aged(event_type: str, days: float) -> dict[str, object]:
    return {
        "event_type": event_type,
        "source": "c",
        "timestamp": datetime.now(UTC) - timedelta(days=days),
    }


async def test_preview_counts_what_each_rule_would_delete(log: EventLogger) -> None:
    await log.log_events(
        [
            *(aged("tool.called", 10), aged("tool.called", 3), aged("tool.failed", 10)),
            *(aged("task.created", 40), aged("task.created", 10), aged("system.error", 100)),
        ]
    )
    preview = await log.preview_prune(30, overrides={"tool.*": 7, "tool.failed": 60})
    assert [(p.label, p.older_than_days, p.count) for p in preview] == [
        ("tool.failed", 60.0, 0),
        ("tool.*", 7.0, 1),
        ("default", 30.0, 2),
    ]
    assert preview[-1].exclude_event_type == ("tool.failed", "tool.*")
    assert preview[1].event_type == "tool.*"
    assert preview[1].exclude_event_type == ("tool.failed",)
    now = datetime.now(UTC)
    assert now - timedelta(days=7, minutes=1) < preview[1].cutoff < now - timedelta(days=7)
    assert len((await log.list_events()).events) == 6  # nothing deleted

    assert await log.prune_as_previewed(preview) == 3
    remaining = sorted(e.event_type for e in (await log.list_events()).events)
    assert remaining == ["task.created", "tool.called", "tool.failed"]

    with pytest.raises(ValueError, match="overrides key"):
        await log.preview_prune(30, overrides={"Nope": 7})
    with pytest.raises(ValueError, match="older_than_days"):
        await log.preview_prune(-1)


async def test_pruning_as_previewed_keeps_the_cutoffs_shown(log: EventLogger) -> None:
    # An event 29.5 days old: not due when the preview is made. Pruned "a day later"
    # (an injected clock), the shown cutoff still keeps it.
    await log.log_events([aged("task.created", 29.5), aged("task.created", 31)])
    preview = await log.preview_prune(30)
    assert preview[-1].count == 1
    later = datetime.now(UTC) + timedelta(days=1)
    assert await prune_as_previewed(log, preview, now=later) == 1
    assert len((await log.list_events()).events) == 1

    with pytest.raises(ValueError, match="default"):
        await log.prune_as_previewed(preview[:-1])
    assert isinstance(preview[0], PrunePreview)


class SlowLog:
    """A logger whose prune runs until its remaining count has been read three times:
    progress is reported while it runs, without timing anything."""

    def __init__(self) -> None:
        self.left = [5, 2, 0]
        self.counted = asyncio.Event()
        self.started = asyncio.Event()
        self.calls: list[tuple[float, dict[str, float]]] = []

    async def count_events(self, **filters: Any) -> int:
        left = self.left.pop(0)
        if not self.left:
            self.counted.set()
        return left

    async def prune_events(self, days: float, *, overrides: dict[str, float]) -> int:
        self.calls.append((days, overrides))
        self.started.set()
        await self.counted.wait()
        return 9


async def test_progress_is_reported_while_the_prune_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pruning, "PROGRESS_POLL_SECONDS", 0.001)
    now = datetime.now(UTC)
    preview = [PrunePreview("default", 30.0, now - timedelta(days=30), 9, None, ())]
    log: Any = SlowLog()
    progress: list[int] = []
    assert await prune_as_previewed(log, preview, on_progress=progress.append, now=now) == 9
    assert progress == [4, 7, 9]
    assert log.calls == [(30.0, {})]


async def test_a_cancelled_prune_stops_its_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pruning, "PROGRESS_POLL_SECONDS", 0.001)
    now = datetime.now(UTC)
    preview = [PrunePreview("default", 30.0, now - timedelta(days=30), 9, None, ())]
    log: Any = SlowLog()
    log.left = [5] * 1000  # never done by itself
    progress: list[int] = []
    task = asyncio.ensure_future(
        prune_as_previewed(log, preview, on_progress=progress.append, now=now)
    )
    await log.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(asyncio.all_tasks()) == 1  # the prune's own task was stopped too
