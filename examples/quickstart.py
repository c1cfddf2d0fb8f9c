"""Quickstart: log a small coordinator story, then read it back.

Writes to the default database (``sqlite+aiosqlite:///data/events.db`` under the
working directory, or ``$EVENT_LOG_URL``), then prints one task's timeline and
the last hour's summary. Run it twice and the summary grows: the log persists.
"""

from __future__ import annotations

import asyncio
import uuid

from event_log import EventLogger, EventType


async def coordinator_story(log: EventLogger) -> str:
    """One task's life: posted, auctioned, assigned, worked on, completed."""
    task = f"task-{uuid.uuid4().hex[:8]}"
    agents = {"agent-ada": 420, "agent-bob": 380, "agent-cy": 510}

    # Agents join at once: concurrent awaits share transactions (group commit).
    await asyncio.gather(
        *(
            log.log_event(EventType.AGENT_JOINED, "coordinator", agent_id=agent)
            for agent in agents
        )
    )
    await log.log_event(
        EventType.TASK_CREATED, "coordinator", task_id=task, data={"title": "summarise logs"}
    )
    await log.log_event(EventType.TASK_BIDDING, "coordinator", task_id=task)
    await asyncio.gather(
        *(
            log.log_event(
                EventType.BID_SUBMITTED, agent, task_id=task, agent_id=agent, data={"bid_sats": bid}
            )
            for agent, bid in agents.items()
        )
    )
    winner = min(agents, key=agents.__getitem__)
    await log.log_event(
        EventType.AUCTION_CLOSED, "coordinator", task_id=task, data={"bids": len(agents)}
    )
    await log.log_event(
        EventType.TASK_ASSIGNED,
        "coordinator",
        task_id=task,
        agent_id=winner,
        data={"bid_sats": agents[winner]},
    )
    await log.log_event(EventType.TASK_STARTED, winner, task_id=task, agent_id=winner)
    # Fire-and-forget: emit() validates now and writes in the background.
    log.emit(EventType.TOOL_CALLED, winner, task_id=task, agent_id=winner, data={"tool": "grep"})
    log.emit(
        EventType.TOOL_COMPLETED,
        winner,
        task_id=task,
        agent_id=winner,
        data={"tool": "grep", "duration_ms": 12.5},
    )
    await log.flush()
    await log.log_event(
        EventType.TASK_COMPLETED, winner, task_id=task, agent_id=winner, data={"result": "ok"}
    )
    return task


async def main() -> None:
    async with EventLogger.open() as log:
        task = await coordinator_story(log)

        print(f"Timeline of {task}:")
        for event in await log.get_task_events(task):
            who = event.agent_id or event.source
            print(f"  {event.timestamp:%H:%M:%S.%f}  {event.event_type:<16} {who:<12} {event.data}")

        print("\nLast hour's summary:")
        for event_type, count in (await log.get_event_summary(minutes=60)).items():
            print(f"  {event_type:<16} {count}")


if __name__ == "__main__":
    asyncio.run(main())
