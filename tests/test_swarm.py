"""The reference coordinator: valid lifecycles, joins and leaves, crashes, seeds, the demo."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from event_log import Event, EventLogger
from event_log.logging import EventLogHandler
from event_log.swarm import LOGGER_NAME, SwarmProgress, SwarmReport, run_swarm

FAST = {"time_scale": 0.01}
# With this seed and rate, the run has completed tasks, tool errors and agent crashes.
SEED, FAILURE_RATE = 11, 0.6


def assert_lifecycle(timeline: list[Event]) -> None:
    """created, bidding, bids, auction.closed, assigned, started, tool calls, an end."""
    steps = [e for e in timeline if not e.event_type.startswith("system.")]
    types = [e.event_type for e in steps]
    assert types[:2] == ["task.created", "task.bidding"], types
    i = 2
    bids = []
    while types[i] == "bid.submitted":
        bids.append(steps[i])
        i += 1
    closed, assigned, started = steps[i : i + 3]
    assert [closed.event_type, assigned.event_type, started.event_type] == [
        "auction.closed",
        "task.assigned",
        "task.started",
    ], types
    assert closed.data["bids"] == len(bids)
    lowest = min(bids, key=lambda b: (b.data["bid_sats"], b.agent_id))
    assert closed.data["winning_bid_sats"] == lowest.data["bid_sats"]
    assert assigned.agent_id == lowest.agent_id == closed.data["winner"]
    assert assigned.data["bid_sats"] == lowest.data["bid_sats"]
    assert started.agent_id == assigned.agent_id
    i += 3
    open_call = None
    while types[i].startswith("tool."):
        event = steps[i]
        assert event.agent_id == assigned.agent_id
        if event.event_type == "tool.called":
            assert open_call is None, "a tool was called before the last one ended"
            open_call = event
        else:
            assert event.event_type in ("tool.completed", "tool.failed")
            assert open_call is not None, f"{event.event_type} with no tool.called"
            assert event.data["tool"] == open_call.data["tool"]
            assert event.data["call"] == open_call.data["call"]
            assert event.data["duration_ms"] >= 0
            open_call = None
        i += 1
    assert open_call is None, "a tool.called has no tool.completed or tool.failed"
    assert types[i:] in (["task.completed"], ["task.failed"]), types
    if types[i] == "task.failed":
        assert steps[i].data["error"]


async def run(log: EventLogger, **overrides) -> SwarmReport:
    options = {"agents": 4, "tasks": 8, "seed": SEED, "failure_rate": FAILURE_RATE, **FAST}
    return await run_swarm(log, **{**options, **overrides})


async def test_every_task_has_a_valid_lifecycle(log: EventLogger) -> None:
    seen: list[SwarmProgress] = []
    report = await run(log, on_progress=seen.append)

    assert len(report.task_ids) == len(report.outcomes) == 8
    assert [p.done for p in seen] == list(range(1, 9))
    assert {p.outcome.task_id for p in seen} == set(report.task_ids)
    assert report.dropped_log_records == 0
    assert log.stats.failed == 0
    # The seed gives every kind of ending (see SEED).
    assert {(o.status, o.crashed) for o in report.outcomes} == {
        ("completed", False),
        ("failed", False),
        ("failed", True),
    }
    for outcome in report.outcomes:
        timeline = await log.get_task_events(outcome.task_id)
        assert_lifecycle(timeline)
        assert timeline[-1].event_type == f"task.{outcome.status}"
        assert outcome.agent_id == next(
            e.agent_id for e in timeline if e.event_type == "task.assigned"
        )
        called = [e.data["tool"] for e in timeline if e.event_type == "tool.called"]
        assert tuple(called) == outcome.tools
        assert 1 <= len(called) <= 3
        if outcome.status == "failed" and not outcome.crashed:
            assert timeline[-2].event_type == "tool.failed"


async def test_every_join_has_a_leave_at_shutdown(log: EventLogger) -> None:
    report = await run(log)
    assert len(report.agent_ids) == 4
    assert await log.count_events(event_type="agent.joined") == 4
    assert await log.count_events(event_type="agent.left") == 4
    for agent_id in report.agent_ids:
        events = await log.get_agent_events(agent_id, limit=1000)  # newest first
        assert events[-1].event_type == "agent.joined"
        assert events[0].event_type == "agent.left"
        assert [e.event_type for e in events].count("agent.joined") == 1
        assert [e.event_type for e in events].count("agent.left") == 1
        assert events[0].data["reason"] == "shutdown"
        won = [o for o in report.outcomes if o.agent_id == agent_id]
        assert events[0].data["tasks_completed"] == sum(o.status == "completed" for o in won)
        assert events[0].data["tasks_failed"] == sum(o.status == "failed" for o in won)
        # Busy and idle alternate, starting busy and ending idle.
        statuses = [
            e.data["status"] for e in reversed(events) if e.event_type.endswith("status_changed")
        ]
        assert statuses == ["busy", "idle"] * len(won)


async def test_an_agent_crash_is_a_system_error_with_its_traceback(log: EventLogger) -> None:
    report = await run(log)
    crashed = [o for o in report.outcomes if o.crashed]
    assert crashed
    errors = (await log.list_events(event_type="system.error", newest_first=False)).events
    assert sorted(e.task_id for e in errors) == sorted(o.task_id for o in crashed)
    for outcome in crashed:
        timeline = await log.get_task_events(outcome.task_id)
        types = [e.event_type for e in timeline]
        (error,) = [e for e in timeline if e.event_type == "system.error"]
        # Reported by the coordinator, between the failing tool and the task's end.
        assert types.index("tool.failed") < types.index("system.error") < types.index("task.failed")
        assert error.source == "swarm.coordinator"
        assert error.agent_id == outcome.agent_id
        assert error.data["level"] == "ERROR"
        assert error.data["exc_type"] == "event_log.swarm.AgentCrash"
        assert error.data["traceback"].startswith("Traceback (most recent call last):")
        assert "in _check_output" in error.data["traceback"]
        assert "AgentCrash: tool" in error.data["traceback"]
        assert timeline[-1].data["crashed"] is True
        assert outcome.error == f"AgentCrash: {error.data['exc_message']}"
    # The handler is only installed for the run.
    assert not [
        h for h in logging.getLogger(LOGGER_NAME).handlers if isinstance(h, EventLogHandler)
    ]


def comparable(report: SwarmReport, *, winners: bool = False) -> list[tuple]:
    return [
        (o.title, o.status, o.tools, o.error, o.crashed)
        + ((o.agent_id.rsplit("-", 1)[0], o.bid_sats, o.bids) if winners else ())
        for o in report.outcomes
    ]


async def test_the_same_seed_gives_the_same_outcomes(log: EventLogger) -> None:
    first = await run(log)
    second = await run(log)
    assert first.run_id != second.run_id
    assert not set(first.task_ids) & set(second.task_ids)
    assert comparable(first) == comparable(second)
    other = await run(log, seed=SEED + 1)
    assert comparable(other) != comparable(first)


async def test_one_task_at_a_time_reproduces_winners_and_bids(log: EventLogger) -> None:
    first = await run(log, max_concurrent=1, tasks=5)
    second = await run(log, max_concurrent=1, tasks=5)
    assert comparable(first, winners=True) == comparable(second, winners=True)


async def test_busy_agents_do_not_bid(log: EventLogger) -> None:
    report = await run(log, agents=3, tasks=10, max_concurrent=3, failure_rate=0.0)
    busy_since: dict[str, tuple] = {}
    for outcome in report.outcomes:
        timeline = await log.get_task_events(outcome.task_id)
        assigned = next(e for e in timeline if e.event_type == "task.assigned")
        end = timeline[-1]
        busy_since[outcome.task_id] = (assigned.agent_id, assigned.timestamp, end.timestamp)
    # A bid is never placed by an agent between its own assignment and that task's end.
    bids = (await log.list_events(event_type="bid.submitted", limit=1000)).events
    for bid in bids:
        for task_id, (agent_id, start, end) in busy_since.items():
            if task_id != bid.task_id and agent_id == bid.agent_id:
                assert not start < bid.timestamp < end


async def test_arguments_are_checked(log: EventLogger) -> None:
    for name, bad in [("agents", 0), ("tasks", -1), ("time_scale", -1), ("failure_rate", 1.5)]:
        with pytest.raises(ValueError, match=name):
            await run(log, **{name: bad})
    assert await log.count_events() == 0


def test_demo_runs_and_prints_a_summary_and_a_timeline(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    command = [sys.executable, "-m", "event_log.demo", "--agents", "3", "--tasks", "4"]
    command += ["--time-scale", "0.01", "--seed", "5", "--url", url]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr
    assert "[4/4]" in done.stderr
    assert "Last hour's summary:" in done.stdout
    assert "task.created" in done.stdout
    timeline = done.stdout.split("Timeline of ", 1)[1]
    for event_type in ("task.created", "task.bidding", "auction.closed", "task.started"):
        assert event_type in timeline
    assert (tmp_path / "demo.db").exists()
    assert not (tmp_path / "data").exists()  # --url was used, not the default file
