"""One agent's behaviour: how it bids on a task and how it works one, tool call by tool call."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from event_log import EventLogger, EventType

from . import Agent, AgentCrash, ToolError
from ._plan import Step, Task


@dataclass(slots=True)
class Ledger:
    """An agent's tally for the run, reported when it leaves."""

    completed: int = 0
    failed: int = 0
    earned_sats: int = 0


@dataclass(slots=True)
class Bid:
    agent_id: str
    bid_sats: int


class AgentWorker:
    """One agent's behaviour: how it bids and how it works a task."""

    def __init__(self, agent: Agent, log: EventLogger, time_scale: float) -> None:
        self.agent = agent
        self.ledger = Ledger()
        self._log = log
        self._time_scale = time_scale

    async def bid(self, task: Task, bid_sats: int, think: float) -> Bid:
        """Think for a moment, then bid: concurrent with the other bidders."""
        await asyncio.sleep(think * self._time_scale)
        await self._log.log_event(
            EventType.BID_SUBMITTED,
            self.agent.agent_id,
            task_id=task.task_id,
            agent_id=self.agent.agent_id,
            data={"bid_sats": bid_sats},
        )
        return Bid(self.agent.agent_id, bid_sats)

    async def work(self, task: Task, tools_called: list[str]) -> str | None:
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

    async def _call_tool(self, task: Task, step: Step, call: int) -> None:
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
