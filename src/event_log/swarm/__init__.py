"""A reference coordinator: a small async swarm that logs its whole lifecycle.

It shows what "the coordinator automatically logs" means with this library:

1. Agents (each with a name and skills) join: ``agent.joined``.
2. Tasks arrive one after another: ``task.created`` (title, skill, reward).
3. When a slot is free and an agent is idle, the task opens for bidding
   (``task.bidding``); every idle agent thinks for a random moment and bids in
   sats (``bid.submitted``), concurrently; the auction closes
   (``auction.closed``: bid count, winning bid) and the lowest bid wins
   (``task.assigned``).
4. The winner starts (``task.started``, ``agent.status_changed`` busy), calls one
   to three tools (``tool.called`` then ``tool.completed`` with its duration, or
   ``tool.failed``) and completes (``task.completed``) or fails (``task.failed``
   with the error). It goes back to idle and can win the next auction.
5. At shutdown every agent leaves (``agent.left``), also after an error.

Tasks run concurrently up to ``max_concurrent``; an agent busy on a task does not
bid on others. Auctions are held one at a time, so an agent never wins two.

Failures come in two kinds. A tool that fails in an expected way (a timeout, a
rate limit) raises :class:`ToolError`, which the agent handles by failing the
task. Anything else raised inside an agent (:class:`AgentCrash` here, a bug in
real life) escapes to the coordinator, which fails the task and reports the
exception with ``logger.exception(...)`` on the standard ``swarm.coordinator``
logger. For the run, the coordinator installs an
:class:`~event_log.logging.EventLogHandler` on the ``swarm`` logger, so those
reports (and its warnings) become ``system.error`` / ``system.warning`` events
with the traceback, in the task's timeline. The loggers are deliberately not
under ``event_log``: the handler ignores that hierarchy, where the library
reports its own write failures (see :mod:`event_log.logging`).

Randomness comes from one ``random.Random(seed)``. Everything that decides an
outcome (tasks, rewards, tool plans, which step fails and how) is drawn from it
up front, in order, so the same seed gives the same outcomes. Which agent wins
depends on which agents are idle when an auction opens, i.e. on timing, as in a
real swarm; with ``max_concurrent=1`` the winners and bids are reproducible too.
``time_scale`` multiplies every delay (0.01 makes a run take milliseconds).

This package uses only the public :class:`EventLogger` API and
:mod:`event_log.logging`; it knows nothing of a command line (see
:mod:`event_log.demo`). Its public names are defined here; the machinery is in
``_plan`` (the run drawn up front from the seed), ``_agent`` (how an agent bids
and works a task) and ``_coordinator`` (joins, auctions, execution, shutdown).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from event_log import EventLogger

__all__ = [
    "COORDINATOR",
    "LOGGER_NAME",
    "Agent",
    "AgentCrash",
    "SwarmProgress",
    "SwarmReport",
    "TaskOutcome",
    "ToolError",
    "run_swarm",
]

# The logger the coordinator installs its EventLogHandler on, for the run.
LOGGER_NAME = "swarm"
# The source of the coordinator's own events.
COORDINATOR = "coordinator"


class ToolError(Exception):
    """A tool failed in a way agents expect (timeout, rate limit): the agent fails the task."""

    def __init__(self, tool: str, reason: str) -> None:
        """A failure of ``tool`` for ``reason`` (in the message, and kept as attributes)."""
        super().__init__(f"tool {tool!r} failed: {reason}")
        self.tool = tool
        self.reason = reason


class AgentCrash(RuntimeError):
    """An unexpected failure inside an agent: it escapes to the coordinator."""


@dataclass(frozen=True, slots=True)
class Agent:
    """A swarm member: its id (also the source of its events), name and skills."""

    agent_id: str
    name: str
    skills: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """How one task ended."""

    task_id: str
    title: str
    status: Literal["completed", "failed"]
    agent_id: str
    bid_sats: int
    bids: int
    tools: tuple[str, ...]
    """The tools called, in order (the last one failed when the task failed)."""
    error: str | None = None
    crashed: bool = False
    """True when an exception escaped the agent (it is logged as ``system.error``)."""


@dataclass(frozen=True, slots=True)
class SwarmProgress:
    """Passed to ``on_progress`` each time a task ends."""

    outcome: TaskOutcome
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class SwarmReport:
    """What a run did: its agents, its tasks (in posting order) and their outcomes."""

    run_id: str
    agent_ids: tuple[str, ...]
    task_ids: tuple[str, ...]
    outcomes: tuple[TaskOutcome, ...]
    dropped_log_records: int = 0
    """Log records the run's EventLogHandler could not queue (each went to handleError)."""

    @property
    def completed(self) -> int:
        """Tasks that completed."""
        return sum(o.status == "completed" for o in self.outcomes)

    @property
    def failed(self) -> int:
        """Tasks that failed."""
        return sum(o.status == "failed" for o in self.outcomes)


def _validate(
    agents: int, tasks: int, time_scale: float, failure_rate: float, max_concurrent: int
) -> None:
    if agents < 1:
        raise ValueError("agents must be >= 1")
    if tasks < 0:
        raise ValueError("tasks must be >= 0")
    if not time_scale >= 0:
        raise ValueError("time_scale must be >= 0")
    if not 0 <= failure_rate <= 1:
        raise ValueError("failure_rate must be between 0 and 1")
    if max_concurrent < 1:
        raise ValueError("max_concurrent must be >= 1")


async def run_swarm(
    log: EventLogger,
    *,
    agents: int = 5,
    tasks: int = 8,
    seed: int | None = None,
    time_scale: float = 1.0,
    failure_rate: float = 0.2,
    max_concurrent: int = 3,
    on_progress: Callable[[SwarmProgress], None] | None = None,
    run_id: str | None = None,
) -> SwarmReport:
    """Run a swarm of ``agents`` agents through ``tasks`` tasks, logging every step to ``log``.

    ``failure_rate`` is the chance that a task fails (by a tool error or an
    agent crash). ``run_id`` (default: random) goes into every task and agent
    id, so runs sharing a database never mix their timelines, even with the
    same seed. Returns once every agent has left and every event is committed.
    """
    _validate(agents, tasks, time_scale, failure_rate, max_concurrent)
    coordinator = Coordinator(
        log,
        random.Random(seed),
        run_id=run_id or uuid.uuid4().hex[:8],
        time_scale=time_scale,
        failure_rate=failure_rate,
        max_concurrent=max_concurrent,
        on_progress=on_progress,
    )
    return await coordinator.run(agents, tasks)


# Imported last, because the submodules import the names above. Those are defined
# here rather than in a submodule so they read as event_log.swarm.* (the exc_type
# of a logged AgentCrash, say).
from ._coordinator import Coordinator  # noqa: E402
