"""The original system's own tests of its event log, as they were written: plain
functions, module-level calls, one shared default database, one import line (the
original's ``from swarm.event_log import (...)``)."""

from event_log.sync import (
    EventType,
    get_agent_events,
    get_event,
    get_event_summary,
    get_recent_events,
    get_task_events,
    list_events,
    log_event,
    prune_events,
)


def test_log_event():
    event = log_event(
        event_type=EventType.TASK_CREATED,
        source="coordinator",
        task_id="task-log-1",
        data={"title": "Write the tests"},
    )
    assert event.id
    assert event.event_type == EventType.TASK_CREATED
    assert event.source == "coordinator"
    assert event.task_id == "task-log-1"
    assert event.data == {"title": "Write the tests"}


def test_get_event():
    event = log_event(EventType.AGENT_JOINED, "registry", agent_id="agent-get-1")
    fetched = get_event(event.id)
    assert fetched is not None
    assert fetched.id == event.id
    assert fetched.agent_id == "agent-get-1"
    assert get_event("no-such-event") is None


def test_list_events_by_type():
    log_event(EventType.BID_SUBMITTED, "agent-list-1", task_id="task-list-1")
    log_event(EventType.BID_SUBMITTED, "agent-list-2", task_id="task-list-1")
    events = list_events(event_type=EventType.BID_SUBMITTED)
    assert len(events) >= 2
    assert all(e.event_type == EventType.BID_SUBMITTED for e in events)


def test_list_events_by_source():
    log_event(EventType.SYSTEM_WARNING, "source-list-only", data={"disk": "85%"})
    events = list_events(source="source-list-only")
    assert len(events) == 1
    assert events[0].source == "source-list-only"
    assert events[0].data == {"disk": "85%"}


def test_list_events_limit_and_offset():
    for i in range(5):
        log_event(EventType.TOOL_CALLED, "agent-page", task_id="task-page", data={"i": i})
    newest = list_events(task_id="task-page", limit=2)
    assert [e.data["i"] for e in newest] == [4, 3]
    older = list_events(task_id="task-page", limit=2, offset=2)
    assert [e.data["i"] for e in older] == [2, 1]


def test_get_task_events():
    log_event(EventType.TASK_CREATED, "coordinator", task_id="task-timeline")
    log_event(EventType.TASK_ASSIGNED, "coordinator", task_id="task-timeline", agent_id="a-7")
    log_event(EventType.TASK_COMPLETED, "a-7", task_id="task-timeline", agent_id="a-7")
    events = get_task_events("task-timeline")
    assert [e.event_type for e in events] == [
        EventType.TASK_CREATED,
        EventType.TASK_ASSIGNED,
        EventType.TASK_COMPLETED,
    ]


def test_get_agent_events():
    log_event(EventType.AGENT_JOINED, "registry", agent_id="agent-history")
    log_event(
        EventType.AGENT_STATUS_CHANGED,
        "registry",
        agent_id="agent-history",
        data={"status": "busy"},
    )
    events = get_agent_events("agent-history")
    assert len(events) == 2
    assert events[0].event_type == EventType.AGENT_STATUS_CHANGED
    assert all(e.agent_id == "agent-history" for e in events)


def test_get_recent_events():
    event = log_event(EventType.SYSTEM_INFO, "monitor", data={"note": "recent"})
    recent = get_recent_events(minutes=1)
    assert event.id in [e.id for e in recent]


def test_get_event_summary():
    log_event(EventType.TOOL_FAILED, "agent-summary")
    log_event(EventType.TOOL_FAILED, "agent-summary")
    summary = get_event_summary(minutes=1)
    assert summary[EventType.TOOL_FAILED] >= 2
    assert all(isinstance(count, int) for count in summary.values())


def test_prune_events():
    log_event(EventType.SYSTEM_INFO, "pruner")
    deleted = prune_events(older_than_days=365)
    assert deleted == 0
    assert list_events(source="pruner")


def test_all_event_types():
    assert len(EventType) == 17
    for event_type in EventType:
        event = log_event(event_type, "all-types", task_id="task-all-types")
        assert event.event_type == event_type
    logged = {e.event_type for e in get_task_events("task-all-types")}
    assert logged == set(EventType)
