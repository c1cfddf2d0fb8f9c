"""Response models of the web API that the library does not already have."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from event_log import HistogramBucket

__all__ = ["ErrorBody", "Summary"]


class ErrorBody(BaseModel):
    """The body of every 400, 404 and 503 answer."""

    detail: str = Field(description="What went wrong, for a person to read.")


class Summary(BaseModel):
    """Counts of the last ``minutes`` minutes: by type, and per time bucket when asked."""

    model_config = ConfigDict(frozen=True)

    since: datetime = Field(description="Start of the window (inclusive), UTC.")
    until: datetime = Field(description="End of the window (the time of the request), UTC.")
    minutes: float
    total: int = Field(description="Events in the window.")
    counts: dict[str, int] = Field(
        description="Event type to count, largest count first (JSON keeps the order)."
    )
    every: float | None = Field(
        default=None, description="Bucket width in seconds (the `every` parameter), if given."
    )
    buckets: list[HistogramBucket] = Field(
        default_factory=list,
        description=(
            "With `every`: the window cut into epoch-aligned buckets of `every` seconds, "
            "oldest first, each with its counts by event type; empty without `every`."
        ),
    )
