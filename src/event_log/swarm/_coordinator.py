"""The coordinator of one run: joins, the auction loop, the workers, shutdown.

It logs every step of the lifecycle the package docstring describes, and for the
run installs an :class:`~event_log.logging.EventLogHandler` on the ``swarm``
logger so its own warnings and crash reports become events too.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from event_log import EventLogger, EventType
from event_log.logging import EventLogHandler

from . import COORDINATOR, LOGGER_NAME, Agent, SwarmProgress, SwarmReport, TaskOutcome
from ._agent import AgentWorker
from ._plan import BID_THINK, Task, draw_agents, draw_tasks

_logger = logging.getLogger(f"{LOGGER_NAME}.coordinator")


@dataclass(slots=True)
class _Progress:
    done: int = 0
    outcomes: dict[str, TaskOutcome] = field(default_factory=dict)


class Coordinator:
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
        self._workers: dict[str, AgentWorker] = {}
        self._idle: set[str] = set()
        self._idle_changed = asyncio.Condition()
        # One auction at a time: an idle agent can win only one of them.
        self._auction_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._progress = _Progress()

    # -- the run ------------------------------------------------------------------------

    async def run(self, n_agents: int, n_tasks: int) -> SwarmReport:
        # Agents first, then tasks: the order of the draws is what a seed fixes.
        agents = draw_agents(self._rng, n_agents, self._run_id)
        tasks = draw_tasks(self._rng, n_tasks, self._run_id, self._failure_rate)
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

    def _extra(self, task: Task, agent_id: str | None = None) -> dict[str, str | None]:
        return {"swarm_run": self._run_id, "task_id": task.task_id, "agent_id": agent_id}

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
            self._workers[agent.agent_id] = AgentWorker(agent, self._log, self._time_scale)
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

    async def _run_tasks(self, tasks: list[Task]) -> tuple[TaskOutcome, ...]:
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

    async def _handle(self, task: Task, total: int) -> None:
        async with self._slots:
            winner, bid_sats, bids = await self._auction(task)
            outcome = await self._execute(task, winner, bid_sats, bids)
        progress = self._progress
        progress.outcomes[task.task_id] = outcome
        progress.done += 1
        if self._on_progress is not None:
            self._on_progress(SwarmProgress(outcome, progress.done, total))

    async def _auction(self, task: Task) -> tuple[AgentWorker, int, int]:
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
                offers.append(worker.bid(task, max(1, round(price)), rng.uniform(*BID_THINK)))
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
        self, task: Task, worker: AgentWorker, bid_sats: int, bids: int
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

    async def _set_status(self, worker: AgentWorker, status: str, task: Task) -> None:
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
