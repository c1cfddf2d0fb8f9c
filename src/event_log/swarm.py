"""A reference coordinator: a small async swarm that logs its whole lifecycle (ADR 017).

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

This module uses only the public :class:`EventLogger` API and
:mod:`event_log.logging`; it knows nothing of a command line (see
:mod:`event_log.demo`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from . import EventLogger, EventType
from .logging import EventLogHandler

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

_logger = logging.getLogger(f"{LOGGER_NAME}.coordinator")

_NAMES = ("ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo", "kai", "lu")

# Skill -> (task titles, tools an agent uses for it).
_CATALOGUE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "search": (
        ("Find prior art on lightning routing", "Collect sources on fee markets"),
        ("web_search", "fetch_page", "extract_links"),
    ),
    "summarise": (
        ("Summarise the incident report", "Digest this week's research notes"),
        ("read_document", "summarise_text", "fetch_page"),
    ),
    "code": (
        ("Fix the flaky payment test", "Add retries to the invoice client"),
        ("read_file", "run_tests", "apply_patch"),
    ),
    "analyse": (
        ("Chart channel liquidity by hour", "Find outliers in the bid history"),
        ("query_db", "run_python", "plot_chart"),
    ),
    "translate": (
        ("Translate the onboarding guide", "Localise the error messages"),
        ("read_document", "translate_text", "spell_check"),
    ),
}
_SKILLS = tuple(_CATALOGUE)

# Seconds, before time_scale: how long things take in this simulated swarm.
_ARRIVAL_GAP = (0.0, 0.25)
_BID_THINK = (0.01, 0.12)
_TOOL_DURATION = (0.05, 0.4)

# Of the tasks that fail, the share that fail by an agent crash (vs a tool error).
_CRASH_SHARE = 0.4


class ToolError(Exception):
    """A tool failed in a way agents expect (timeout, rate limit): the agent fails the task."""

    def __init__(self, tool: str, reason: str) -> None:
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
        return sum(o.status == "completed" for o in self.outcomes)

    @property
    def failed(self) -> int:
        return sum(o.status == "failed" for o in self.outcomes)


@dataclass(frozen=True, slots=True)
class _Step:
    tool: str
    duration: float
    failure: Literal["error", "crash"] | None


@dataclass(frozen=True, slots=True)
class _Task:
    """A posted task and its fate, drawn up front so a seed fixes the outcome."""

    task_id: str
    title: str
    skill: str
    reward_sats: int
    arrival_gap: float
    plan: tuple[_Step, ...]
    bid_seed: int


@dataclass(slots=True)
class _Ledger:
    completed: int = 0
    failed: int = 0
    earned_sats: int = 0


@dataclass(slots=True)
class _Bid:
    agent_id: str
    bid_sats: int


@dataclass(slots=True)
class _Progress:
    done: int = 0
    outcomes: dict[str, TaskOutcome] = field(default_factory=dict)


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
    coordinator = _Coordinator(
        log,
        random.Random(seed),
        run_id=run_id or uuid.uuid4().hex[:8],
        time_scale=time_scale,
        failure_rate=failure_rate,
        max_concurrent=max_concurrent,
        on_progress=on_progress,
    )
    return await coordinator.run(agents, tasks)


class _AgentWorker:
    """One agent's behaviour: how it bids and how it works a task."""

    def __init__(self, agent: Agent, log: EventLogger, time_scale: float) -> None:
        self.agent = agent
        self.ledger = _Ledger()
        self._log = log
        self._time_scale = time_scale

    async def bid(self, task: _Task, bid_sats: int, think: float) -> _Bid:
        """Think for a moment, then bid: concurrent with the other bidders."""
        await asyncio.sleep(think * self._time_scale)
        await self._log.log_event(
            EventType.BID_SUBMITTED,
            self.agent.agent_id,
            task_id=task.task_id,
            agent_id=self.agent.agent_id,
            data={"bid_sats": bid_sats},
        )
        return _Bid(self.agent.agent_id, bid_sats)

    async def work(self, task: _Task, tools_called: list[str]) -> str | None:
        """Work the task's plan; the error message when a tool failed, else None.

        A :class:`ToolError` is handled here; anything else escapes to the coordinator.
        """
        for call, step in enumerate(task.plan, start=1):
            tools_called.append(step.tool)
            try:
                await self._call_tool(task, step, call)
            except ToolError as exc:
                return str(exc)
        return None

    async def _call_tool(self, task: _Task, step: _Step, call: int) -> None:
        task_id, agent_id = task.task_id, self.agent.agent_id
        # emit(): the agent does not wait for the audit trail between tool calls.
        self._log.emit(
            EventType.TOOL_CALLED,
            agent_id,
            task_id=task_id,
            agent_id=agent_id,
            data={"tool": step.tool, "call": call},
        )
        started = time.perf_counter()
        try:
            await asyncio.sleep(step.duration * self._time_scale)
            output: dict[str, object] = {"status": "timeout" if step.failure == "error" else "ok"}
            if step.failure == "crash":
                output = {"result": None}  # a malformed response the agent does not expect
            _check_output(step.tool, output)
        except BaseException as exc:
            # Also on cancellation: every tool.called gets its tool.completed or tool.failed.
            self._log.emit(
                EventType.TOOL_FAILED,
                agent_id,
                task_id=task_id,
                agent_id=agent_id,
                data={
                    "tool": step.tool,
                    "call": call,
                    "duration_ms": _ms_since(started),
                    "error": str(exc) or type(exc).__name__,
                },
            )
            raise
        self._log.emit(
            EventType.TOOL_COMPLETED,
            agent_id,
            task_id=task_id,
            agent_id=agent_id,
            data={"tool": step.tool, "call": call, "duration_ms": _ms_since(started)},
        )


def _check_output(tool: str, output: dict[str, object]) -> None:
    """What an agent does with a tool's answer: a malformed one is a bug, i.e. a crash."""
    if "status" not in output:
        raise AgentCrash(f"tool {tool!r} returned a response without a status: {output!r}")
    if output["status"] != "ok":
        raise ToolError(tool, str(output["status"]))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


class _Coordinator:
    """Runs one swarm: joins, the auction loop, the workers, shutdown."""

    def __init__(
        self,
        log: EventLogger,
        rng: random.Random,
        *,
        run_id: str,
        time_scale: float,
        failure_rate: float,
        max_concurrent: int,
        on_progress: Callable[[SwarmProgress], None] | None,
    ) -> None:
        self._log = log
        self._rng = rng
        self._run_id = run_id
        self._time_scale = time_scale
        self._failure_rate = failure_rate
        self._on_progress = on_progress
        self._workers: dict[str, _AgentWorker] = {}
        self._idle: set[str] = set()
        self._idle_changed = asyncio.Condition()
        # One auction at a time: an idle agent can win only one of them.
        self._auction_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._progress = _Progress()

    # -- the run ------------------------------------------------------------------------

    async def run(self, n_agents: int, n_tasks: int) -> SwarmReport:
        agents = self._make_agents(n_agents)
        tasks = self._make_tasks(n_tasks)
        handler = EventLogHandler(self._log)
        handler.addFilter(self._of_this_run)
        swarm_logger = logging.getLogger(LOGGER_NAME)
        swarm_logger.addHandler(handler)
        try:
            await self._join(agents)
            try:
                outcomes = await self._run_tasks(tasks)
            finally:
                await self._leave(agents)
                await self._log.flush()
        finally:
            swarm_logger.removeHandler(handler)
        return SwarmReport(
            run_id=self._run_id,
            agent_ids=tuple(a.agent_id for a in agents),
            task_ids=tuple(t.task_id for t in tasks),
            outcomes=outcomes,
            dropped_log_records=handler.dropped,
        )

    def _of_this_run(self, record: logging.LogRecord) -> bool:
        """Keep records of this run (and untagged ones), not those of a concurrent run."""
        return getattr(record, "swarm_run", self._run_id) == self._run_id

    def _extra(self, task: _Task, agent_id: str | None = None) -> dict[str, str | None]:
        return {"swarm_run": self._run_id, "task_id": task.task_id, "agent_id": agent_id}

    # -- drawing the run up front -------------------------------------------------------

    def _make_agents(self, n: int) -> list[Agent]:
        agents = []
        for i in range(n):
            name = _NAMES[i % len(_NAMES)] + (str(i // len(_NAMES) + 1) if i >= len(_NAMES) else "")
            skills = tuple(sorted(self._rng.sample(_SKILLS, self._rng.randint(1, 3))))
            agents.append(Agent(f"agent-{name}-{self._run_id}", name, skills))
        return agents

    def _make_tasks(self, n: int) -> list[_Task]:
        rng = self._rng
        tasks = []
        for i in range(n):
            skill = rng.choice(_SKILLS)
            titles, tools = _CATALOGUE[skill]
            title = rng.choice(titles)
            reward = rng.randrange(200, 2_001, 10)
            gap = rng.uniform(*_ARRIVAL_GAP)
            n_steps = rng.randint(1, 3)
            failing_step: int | None = None
            failure: Literal["error", "crash"] | None = None
            if rng.random() < self._failure_rate:
                failing_step = rng.randrange(n_steps)
                failure = "crash" if rng.random() < _CRASH_SHARE else "error"
            plan = []
            for step in range(n_steps):
                duration = rng.uniform(*_TOOL_DURATION)
                plan.append(
                    _Step(rng.choice(tools), duration, failure if step == failing_step else None)
                )
                if step == failing_step:
                    break
            task_id = f"task-{i + 1:03d}-{self._run_id}"
            tasks.append(
                _Task(task_id, title, skill, reward, gap, tuple(plan), rng.getrandbits(64))
            )
        return tasks

    # -- joining and leaving ------------------------------------------------------------

    async def _join(self, agents: list[Agent]) -> None:
        await self._log.log_events(
            {
                "event_type": EventType.AGENT_JOINED,
                "source": COORDINATOR,
                "agent_id": agent.agent_id,
                "data": {"name": agent.name, "skills": list(agent.skills)},
            }
            for agent in agents
        )
        for agent in agents:
            self._workers[agent.agent_id] = _AgentWorker(agent, self._log, self._time_scale)
        async with self._idle_changed:
            self._idle.update(self._workers)
            self._idle_changed.notify_all()

    async def _leave(self, agents: list[Agent]) -> None:
        await self._log.log_events(
            {
                "event_type": EventType.AGENT_LEFT,
                "source": COORDINATOR,
                "agent_id": agent.agent_id,
                "data": {
                    "reason": "shutdown",
                    "tasks_completed": self._workers[agent.agent_id].ledger.completed,
                    "tasks_failed": self._workers[agent.agent_id].ledger.failed,
                    "earned_sats": self._workers[agent.agent_id].ledger.earned_sats,
                },
            }
            for agent in agents
            if agent.agent_id in self._workers
        )

    # -- tasks --------------------------------------------------------------------------

    async def _run_tasks(self, tasks: list[_Task]) -> tuple[TaskOutcome, ...]:
        try:
            async with asyncio.TaskGroup() as group:
                for task in tasks:
                    await asyncio.sleep(task.arrival_gap * self._time_scale)
                    await self._log.log_event(
                        EventType.TASK_CREATED,
                        COORDINATOR,
                        task_id=task.task_id,
                        data={
                            "title": task.title,
                            "skill": task.skill,
                            "reward_sats": task.reward_sats,
                        },
                    )
                    group.create_task(self._handle(task, len(tasks)), name=task.task_id)
        except ExceptionGroup as group_error:
            # The coordinator's own failure (e.g. a StorageError): raise it as itself.
            if len(group_error.exceptions) == 1:
                raise group_error.exceptions[0] from None
            raise
        return tuple(self._progress.outcomes[t.task_id] for t in tasks)

    async def _handle(self, task: _Task, total: int) -> None:
        async with self._slots:
            winner, bid_sats, bids = await self._auction(task)
            outcome = await self._execute(task, winner, bid_sats, bids)
        progress = self._progress
        progress.outcomes[task.task_id] = outcome
        progress.done += 1
        if self._on_progress is not None:
            self._on_progress(SwarmProgress(outcome, progress.done, total))

    async def _auction(self, task: _Task) -> tuple[_AgentWorker, int, int]:
        async with self._auction_lock:
            async with self._idle_changed:
                await self._idle_changed.wait_for(lambda: bool(self._idle))
                invited = sorted(self._idle)
            await self._log.log_event(
                EventType.TASK_BIDDING,
                COORDINATOR,
                task_id=task.task_id,
                data={"invited": len(invited), "reward_sats": task.reward_sats},
            )
            # The task's own generator: bids do not shift the draws of later tasks.
            rng = random.Random(task.bid_seed)
            offers = []
            for agent_id in invited:
                worker = self._workers[agent_id]
                price = task.reward_sats * rng.uniform(0.55, 1.0)
                if task.skill in worker.agent.skills:
                    price *= 0.8  # a skilled agent expects less work
                offers.append(worker.bid(task, max(1, round(price)), rng.uniform(*_BID_THINK)))
            bids = await asyncio.gather(*offers)
            best = min(bids, key=lambda b: (b.bid_sats, b.agent_id))
            await self._log.log_event(
                EventType.AUCTION_CLOSED,
                COORDINATOR,
                task_id=task.task_id,
                data={
                    "bids": len(bids),
                    "winning_bid_sats": best.bid_sats,
                    "winner": best.agent_id,
                },
            )
            if len(bids) == 1:
                _logger.warning(
                    "auction for %s closed with a single bid: every other agent is busy",
                    task.task_id,
                    extra=self._extra(task),
                )
            # Busy from here on: a later auction will not invite it.
            self._idle.discard(best.agent_id)
            await self._log.log_event(
                EventType.TASK_ASSIGNED,
                COORDINATOR,
                task_id=task.task_id,
                agent_id=best.agent_id,
                data={"bid_sats": best.bid_sats, "bids": len(bids)},
            )
            return self._workers[best.agent_id], best.bid_sats, len(bids)

    async def _execute(
        self, task: _Task, worker: _AgentWorker, bid_sats: int, bids: int
    ) -> TaskOutcome:
        agent_id, task_id = worker.agent.agent_id, task.task_id
        tools: list[str] = []
        error: str | None = None
        crashed = False
        try:
            await self._set_status(worker, "busy", task)
            await self._log.log_event(
                EventType.TASK_STARTED,
                agent_id,
                task_id=task_id,
                agent_id=agent_id,
                data={"bid_sats": bid_sats},
            )
            try:
                error = await worker.work(task, tools)
            except Exception as exc:
                crashed = True
                error = f"{type(exc).__name__}: {exc}"
                _logger.exception(
                    "agent %s crashed while working on %s",
                    agent_id,
                    task.task_id,
                    extra=self._extra(task, agent_id),
                )
            if error is None:
                worker.ledger.completed += 1
                worker.ledger.earned_sats += bid_sats
                await self._log.log_event(
                    EventType.TASK_COMPLETED,
                    agent_id,
                    task_id=task_id,
                    agent_id=agent_id,
                    data={"bid_sats": bid_sats, "tools": len(tools)},
                )
            else:
                worker.ledger.failed += 1
                await self._log.log_event(
                    EventType.TASK_FAILED,
                    COORDINATOR if crashed else agent_id,
                    task_id=task_id,
                    agent_id=agent_id,
                    data={"error": error, "crashed": crashed, "tools": len(tools)},
                )
        finally:
            await self._set_status(worker, "idle", task)
        return TaskOutcome(
            task_id=task.task_id,
            title=task.title,
            status="completed" if error is None else "failed",
            agent_id=agent_id,
            bid_sats=bid_sats,
            bids=bids,
            tools=tuple(tools),
            error=error,
            crashed=crashed,
        )

    async def _set_status(self, worker: _AgentWorker, status: str, task: _Task) -> None:
        # The task goes in data, not the task_id column: the status is the agent's
        # story, and the task's timeline stays its lifecycle.
        await self._log.log_event(
            EventType.AGENT_STATUS_CHANGED,
            COORDINATOR,
            agent_id=worker.agent.agent_id,
            data={"status": status, "task_id": task.task_id},
        )
        if status == "idle":
            async with self._idle_changed:
                self._idle.add(worker.agent.agent_id)
                self._idle_changed.notify_all()
