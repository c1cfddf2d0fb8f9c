"""Event types: the swarm's well-known names plus the rule any custom type must follow."""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = [
    "EVENT_TYPE_MAX_LENGTH",
    "EVENT_TYPE_PATTERN",
    "KNOWN_EVENT_TYPES",
    "EventType",
    "is_valid_event_type",
]

EVENT_TYPE_MAX_LENGTH = 64
# Dotted lowercase, at least two segments: "task.created", "payment.settled".
EVENT_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")


class EventType(StrEnum):
    """The event types the swarm itself emits: the original design's names, and more."""

    TASK_CREATED = "task.created"
    TASK_BIDDING = "task.bidding"
    TASK_ASSIGNED = "task.assigned"
    TASK_STARTED = "task.started"
    TASK_COMPLETED = "task.completed"
    TASK_FAILED = "task.failed"
    AGENT_JOINED = "agent.joined"
    AGENT_LEFT = "agent.left"
    AGENT_STATUS_CHANGED = "agent.status_changed"
    BID_SUBMITTED = "bid.submitted"
    AUCTION_CLOSED = "auction.closed"
    TOOL_CALLED = "tool.called"
    TOOL_COMPLETED = "tool.completed"
    TOOL_FAILED = "tool.failed"
    SYSTEM_ERROR = "system.error"
    SYSTEM_WARNING = "system.warning"
    SYSTEM_INFO = "system.info"


KNOWN_EVENT_TYPES = frozenset(member.value for member in EventType)


def is_valid_event_type(value: object) -> bool:
    """True for a known type or any dotted lowercase name of 64 characters at most."""
    if not isinstance(value, str):
        return False
    if value in KNOWN_EVENT_TYPES:
        return True
    return len(value) <= EVENT_TYPE_MAX_LENGTH and EVENT_TYPE_PATTERN.fullmatch(value) is not None
