"""Retention rules: how long each kind of event is kept, and the policy a logger runs.

``prune_events(older_than_days, overrides={"tool.*": 7, "system.error": 90})``
keeps every event ``older_than_days`` days unless an override names its type.
When several overrides match, the longest match wins: an exact type beats a
pattern of the same length, and ``tool.failed`` beats ``tool.*``. Each rule
deletes only the events it governs (matching it and no more specific rule),
so an override may be shorter or longer than the default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ._errors import translate_storage_errors
from ._filters import TypeSpec
from ._queries import check_minutes, minutes_ago

if TYPE_CHECKING:
    from ._database import Database
    from ._writer import Writer

__all__ = [
    "PARTITION_LOCK_TIMEOUT_MS",
    "RECLAIM_PAGES_PER_STEP",
    "RetentionPolicy",
    "RetentionRule",
    "delete_expired",
    "reclaim_freed_pages",
    "retention_rules",
]

# How long partition maintenance and prune's DETACH wait for a table lock
# before giving up for this time (a long read holding event_log would
# otherwise queue every writer behind the waiting DDL).
PARTITION_LOCK_TIMEOUT_MS = 2_000
# Free pages returned to the file system per step (4 MB of 4 kB pages), a
# transaction short enough not to stall writers.
RECLAIM_PAGES_PER_STEP = 1_000


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Delete events matching ``spec`` (all when None), none of ``unless``, before ``cutoff``."""

    spec: TypeSpec | None
    unless: tuple[TypeSpec, ...]
    cutoff: datetime
    label: str


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What ``prune_events`` keeps, and how often a logger applies it by itself.

    ``every_minutes``: given to ``EventLogger(..., retention=policy)`` (or
    ``open()``), the logger prunes by this policy that often in the background;
    a failed run is reported on the ``event_log`` logger and retried next time.
    """

    older_than_days: float = 30
    overrides: Mapping[str, float] = field(default_factory=dict)
    every_minutes: float | None = None

    def __post_init__(self) -> None:
        retention_rules(self.older_than_days, self.overrides)  # validate now
        every = self.every_minutes
        if every is not None and not check_minutes("every_minutes", every):
            raise ValueError("every_minutes must be > 0")


def _specificity(pattern: str) -> tuple[int, bool]:
    # The literal part's length; on a tie an exact type beats a pattern.
    return (len(pattern) - 1, False) if pattern.endswith("*") else (len(pattern), True)


def retention_rules(
    older_than_days: float, overrides: Mapping[str, float] | None = None
) -> list[RetentionRule]:
    """The rules, most specific first, each with its cutoff; ``ValueError`` on bad input."""
    default_days = check_minutes("older_than_days", older_than_days)
    patterns = dict(overrides or {})
    for pattern, days in patterns.items():
        TypeSpec.parse("overrides key", pattern)
        check_minutes(f"overrides[{pattern!r}]", days)
    ordered = sorted(patterns, key=_specificity, reverse=True)
    specs = {pattern: TypeSpec.parse("overrides key", pattern) for pattern in ordered}
    rules: list[RetentionRule] = []
    for index, pattern in enumerate(ordered):
        more_specific = tuple(specs[p] for p in ordered[:index])
        rules.append(
            RetentionRule(
                specs[pattern],
                more_specific,
                minutes_ago(float(patterns[pattern]) * 24 * 60),
                pattern,
            )
        )
    rules.append(
        RetentionRule(None, tuple(specs.values()), minutes_ago(default_days * 24 * 60), "default")
    )
    return rules


async def delete_expired(
    db: Database,
    writer: Writer,
    rules: Sequence[RetentionRule],
    *,
    batch_size: int,
) -> int:
    """Delete what ``rules`` expire; return how many events were deleted.

    Where the backend has partitions, every partition whose whole time range
    is older than the earliest cutoff of all the rules is first dropped whole
    (its rows counted exactly beforehand). Batches of ``batch_size`` then
    delete the rest, each its own transaction queued in ``writer`` behind
    pending writes, so concurrent ``log_event`` callers wait at most one batch.
    """
    deleted = 0
    partitions = db.backend.partitions
    if partitions is not None:
        # A partition is dropped whole only if every rule deletes all of its rows.
        with translate_storage_errors("dropping expired partitions"):
            deleted += await partitions.drop_expired(
                db,
                min(rule.cutoff for rule in rules),
                lock_timeout_ms=PARTITION_LOCK_TIMEOUT_MS,
            )
    for rule in rules:
        stmt = db.backend.prune_batch_statement(
            rule.cutoff, batch_size, only=rule.spec, unless=rule.unless
        )
        while True:
            batch = await writer.execute(stmt)
            deleted += batch
            if batch < batch_size:
                break
    return deleted


async def reclaim_freed_pages(writer: Writer) -> int:
    """Hand freed pages back to the file system in steps of ``RECLAIM_PAGES_PER_STEP``,
    each its own transaction in ``writer``'s queue; return how many."""
    reclaimed = 0
    while True:
        step = await writer.run(lambda sink: sink.reclaim(RECLAIM_PAGES_PER_STEP))
        reclaimed += step
        if step == 0:
            return reclaimed
