"""Prune previews: what ``prune_events`` would delete, rule by rule, before it does.

:func:`preview_prune` counts, for each retention rule (see ``_retention``;
most specific first, the default last), the events it would delete now.
:func:`prune_as_previewed` then deletes with exactly the cutoffs that were
counted and shown, however long a person took to confirm, and reports how
far it has got while the batches run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ._retention import retention_rules

if TYPE_CHECKING:
    from ._logger import EventLogger

__all__ = ["PROGRESS_POLL_SECONDS", "PrunePreview", "preview_prune", "prune_as_previewed"]

# How often prune_as_previewed recounts what is left to report progress.
PROGRESS_POLL_SECONDS = 0.2
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PrunePreview:
    """One retention rule and the events it would delete now.

    ``label``: the override's type or pattern, or ``"default"`` for the rule
    that governs every other type. ``older_than_days``: how long the rule
    keeps events; ``cutoff``: the time before which it deletes them (UTC);
    ``count``: how many it would delete. ``event_type`` and
    ``exclude_event_type`` are the ``count_events`` filters that select them
    (the default rule excludes every override; an override excludes the more
    specific ones).
    """

    label: str
    older_than_days: float
    cutoff: datetime
    count: int
    event_type: str | None
    exclude_event_type: tuple[str, ...]


async def _count(log: EventLogger, preview: PrunePreview) -> int:
    return await log.count_events(
        event_type=preview.event_type,
        exclude_event_type=preview.exclude_event_type or None,
        until=preview.cutoff,
    )


async def preview_prune(
    log: EventLogger, older_than_days: float, overrides: Mapping[str, float] | None = None
) -> list[PrunePreview]:
    """The rules ``prune_events(older_than_days, overrides=...)`` would apply now, most
    specific first, each with how many events it would delete. ``ValueError`` on bad
    days or patterns, as ``prune_events``."""
    rules = retention_rules(older_than_days, overrides)
    days = dict(overrides or {})
    previews: list[PrunePreview] = []
    labels: list[str] = []
    for rule in rules:
        if rule.spec is None:  # the default: everything no override governs
            preview = PrunePreview(
                "default", float(older_than_days), rule.cutoff, 0, None, tuple(labels)
            )
        else:
            preview = PrunePreview(
                rule.label, float(days[rule.label]), rule.cutoff, 0, rule.label, tuple(labels)
            )
            labels.append(rule.label)
        previews.append(preview)
    counts = [await _count(log, preview) for preview in previews]
    return [
        PrunePreview(p.label, p.older_than_days, p.cutoff, n, p.event_type, p.exclude_event_type)
        for p, n in zip(previews, counts, strict=True)
    ]


async def prune_as_previewed(
    log: EventLogger,
    preview: Sequence[PrunePreview],
    *,
    on_progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> int:
    """Delete what ``preview`` counted, with its cutoffs; return how many were deleted.

    Every rule's days are lengthened by the time since the preview was made,
    so each cutoff stays the one shown. ``on_progress(deleted so far)`` is
    called every ``PROGRESS_POLL_SECONDS`` while the batches run (the events
    the preview counted that are gone by then). ``now`` is the clock (for tests).
    """
    default = next((p for p in preview if p.label == "default"), None)
    if default is None:
        raise ValueError("a prune preview has a 'default' rule: make it with preview_prune")
    moment = datetime.now(UTC) if now is None else now
    late = max(0.0, (moment - default.cutoff) / _DAY - default.older_than_days)
    pruning = asyncio.ensure_future(
        log.prune_events(
            default.older_than_days + late,
            overrides={p.label: p.older_than_days + late for p in preview if p is not default},
        )
    )
    try:
        total = sum(p.count for p in preview)
        while on_progress is not None and not pruning.done():
            await asyncio.wait({pruning}, timeout=PROGRESS_POLL_SECONDS)
            if not pruning.done():
                left = sum([await _count(log, p) for p in preview])
                on_progress(max(0, total - left))
    except BaseException:
        # Stopped (or a count failed) while the batches run: stop them after the current one.
        pruning.cancel()
        await asyncio.wait({pruning})
        if not pruning.cancelled():
            pruning.exception()  # retrieved: the first failure is the one raised
        raise
    return await pruning
