"""The web router on every backend: each route, its filters, paging, errors and SSE.

JSON routes go through httpx's ASGITransport. It buffers a whole response, so
the SSE tests run the router in a real uvicorn server on a loopback socket, in
the test's own event loop (so in-memory SQLite works too), and read the stream
with short timeouts.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from event_log import (
    EventFilter,
    EventLogger,
    InvalidCursorError,
    InvalidEventError,
    LoggerClosedError,
    StorageError,
)
from event_log.web import _page as web_page
from event_log.web import create_router
from web_helpers import app_client, make_app

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def client(log: EventLogger) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(log) as c:
        yield c


async def seed(log: EventLogger) -> list[Any]:
    """Nine events over nine minutes: three tasks, two agents, four types."""
    rows = [
        ("task.created", "coordinator", "t-1", None),
        ("task.assigned", "coordinator", "t-1", "a-1"),
        ("tool.called", "a-1", "t-1", "a-1"),
        ("task.created", "coordinator", "t-2", None),
        ("tool.called", "a-2", "t-2", "a-2"),
        ("task.completed", "a-1", "t-1", "a-1"),
        ("task.created", "coordinator", "t/3", None),
        ("system.info", "monitor", None, None),
        ("task.failed", "a-2", "t-2", "a-2"),
    ]
    return [
        await log.log_event(
            kind,
            source,
            task_id=task,
            agent_id=agent,
            data={"n": n},
            timestamp=T0 + timedelta(minutes=n),
        )
        for n, (kind, source, task, agent) in enumerate(rows)
    ]


def ids(payload: dict[str, Any] | list[dict[str, Any]]) -> list[str]:
    events = payload["events"] if isinstance(payload, dict) else payload
    return [e["id"] for e in events]


# -- /events ------------------------------------------------------------------------------


async def test_list_events_newest_first_with_every_filter(log, client):
    events = await seed(log)
    newest_first = [e.id for e in reversed(events)]

    body = (await client.get("/events")).json()
    assert ids(body) == newest_first
    assert body["next_cursor"] is None
    assert body["events"][0] == events[-1].model_dump(mode="json") | {
        "timestamp": body["events"][0]["timestamp"]
    }
    assert datetime.fromisoformat(body["events"][0]["timestamp"]) == events[-1].timestamp

    async def q(**params: Any) -> list[str]:
        response = await client.get("/events", params=params)
        assert response.status_code == 200, response.text
        return ids(response.json())

    def pick(pred: Any) -> list[str]:
        return [e.id for e in reversed(events) if pred(e)]

    assert await q(type="tool.called") == pick(lambda e: e.event_type == "tool.called")
    assert await q(type=["task.created", "system.info"]) == pick(
        lambda e: e.event_type in ("task.created", "system.info")
    )
    assert await q(type="task.*") == pick(lambda e: e.event_type.startswith("task."))
    assert await q(type=["task.*", "tool.*"]) == pick(lambda e: e.event_type != "system.info")
    assert await q(source="coordinator") == pick(lambda e: e.source == "coordinator")
    assert await q(task_id="t-2") == pick(lambda e: e.task_id == "t-2")
    assert await q(agent_id="a-1") == pick(lambda e: e.agent_id == "a-1")
    since, until = T0 + timedelta(minutes=2), T0 + timedelta(minutes=5)
    assert await q(since=since.isoformat(), until=until.isoformat()) == pick(
        lambda e: since <= e.timestamp < until
    )
    # An offset other than UTC means the same instant.
    local = since.astimezone(timezone_plus_two()).isoformat()
    assert await q(since=local) == pick(lambda e: e.timestamp >= since)
    assert await q(type="task.*", agent_id="a-2") == pick(
        lambda e: e.event_type.startswith("task.") and e.agent_id == "a-2"
    )
    assert await q(oldest_first="true") == [e.id for e in events]
    assert await q(limit=2) == newest_first[:2]
    assert await q(source="nobody") == []
    assert await q(data_contains='{"n": 4}') == pick(lambda e: e.data == {"n": 4})
    assert await q(data_contains="{}", type="task.*") == pick(
        lambda e: e.event_type.startswith("task.")
    )


# Each filter field by its own name (event_type alongside its older name, type),
# with what it must keep of the seeded events.
NARROWING: list[Any] = [
    pytest.param(
        {"event_type": "tool.called"}, lambda e: e.event_type == "tool.called", id="event_type"
    ),
    pytest.param(
        {"event_type": "task.failed", "type": "system.info"},
        lambda e: e.event_type in ("task.failed", "system.info"),
        id="event_type-and-type",
    ),
    pytest.param(
        {"type": "task.created,system.info"},
        lambda e: e.event_type in ("task.created", "system.info"),
        id="type-comma-separated",
    ),
    pytest.param(
        {"exclude_event_type": "task.*"},
        lambda e: not e.event_type.startswith("task."),
        id="exclude_event_type",
    ),
    pytest.param(
        {"exclude_event_type": ["task.*", "tool.called"]},
        lambda e: e.event_type == "system.info",
        id="exclude_event_type-repeated",
    ),
    pytest.param(
        {"exclude_source": "coordinator"}, lambda e: e.source != "coordinator", id="exclude_source"
    ),
    pytest.param(
        {"exclude_source": ["coordinator", "a-2"]},
        lambda e: e.source in ("a-1", "monitor"),
        id="exclude_source-repeated",
    ),
    pytest.param({"data_where": "n>=6"}, lambda e: e.data["n"] >= 6, id="data_where"),
    pytest.param(
        {"data_where": ["n>2", "n!=4"]},
        lambda e: e.data["n"] > 2 and e.data["n"] != 4,
        id="data_where-repeated",
    ),
    pytest.param({"data_contains": '{"n": 4}'}, lambda e: e.data == {"n": 4}, id="data_contains"),
    pytest.param(
        {
            "type": "task.*",
            "exclude_event_type": "task.created",
            "exclude_source": "a-2",
            "data_where": "n<9",
        },
        lambda e: e.event_type in ("task.assigned", "task.completed"),
        id="together",
    ),
]


@pytest.mark.parametrize(("params", "keep"), NARROWING)
async def test_each_filter_field_narrows_events(log, client, params, keep):
    events = await seed(log)
    response = await client.get("/events", params=params)
    assert response.status_code == 200, response.text
    wanted = [e.id for e in reversed(events) if keep(e)]
    assert 0 < len(wanted) < len(events)  # the case does narrow the seeded events
    assert ids(response.json()) == wanted


def timezone_plus_two() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=2))


@pytest.mark.parametrize("oldest_first", [False, True])
async def test_paging_through_cursors_never_skips_or_repeats(log, client, oldest_first):
    events = await seed(log)
    expected = [e.id for e in (events if oldest_first else reversed(events))]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 4, "oldest_first": str(oldest_first).lower()}
    pages = 0
    while True:
        body = (await client.get("/events", params=params)).json()
        seen += ids(body)
        pages += 1
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert seen == expected
    assert pages == 3

    # A cursor belongs to its direction: the other one refuses it.
    first = (await client.get("/events", params={"limit": 4})).json()
    wrong = await client.get(
        "/events", params={"limit": 4, "cursor": first["next_cursor"], "oldest_first": "true"}
    )
    assert wrong.status_code == 400
    assert "cursor" in wrong.json()["detail"]


# -- one event, tasks, agents ------------------------------------------------------------


async def test_get_event_and_404(log, client):
    events = await seed(log)
    response = await client.get(f"/events/{events[3].id}")
    assert response.status_code == 200
    assert response.json()["id"] == events[3].id
    assert response.json()["data"] == {"n": 3}

    for missing in ("01900000-0000-7000-8000-000000000000", "not-an-id", "x" * 100):
        response = await client.get(f"/events/{missing}")
        assert response.status_code == 404
        assert response.json() == {"detail": f"no event has the id {missing!r}"}


async def test_task_timeline_is_oldest_first_and_complete(log, client):
    events = await seed(log)
    body = (await client.get("/tasks/t-1/events")).json()
    assert ids(body) == [e.id for e in events if e.task_id == "t-1"]
    # A task id with a slash, sent encoded as the page does.
    body = (await client.get("/tasks/t%2F3/events")).json()
    assert ids(body) == [e.id for e in events if e.task_id == "t/3"]
    assert (await client.get("/tasks/unknown/events")).json() == []


async def test_agent_events_newest_first_with_limit(log, client):
    events = await seed(log)
    mine = [e.id for e in reversed(events) if e.agent_id == "a-1"]
    assert ids((await client.get("/agents/a-1/events")).json()) == mine
    assert ids((await client.get("/agents/a-1/events", params={"limit": 2})).json()) == mine[:2]
    assert (await client.get("/agents/nobody/events")).json() == []
    assert (await client.get("/agents/a-1/events", params={"limit": 0})).status_code == 422


# -- /summary ------------------------------------------------------------------------------


async def test_summary_counts_and_buckets(log, client):
    now = datetime.now(UTC)
    for minutes_ago, kind in [(1, "task.created"), (2, "task.created"), (3, "tool.called")]:
        await log.log_event(kind, "s", timestamp=now - timedelta(minutes=minutes_ago))
    await log.log_event("task.created", "s", timestamp=now - timedelta(hours=3))  # outside

    body = (await client.get("/summary")).json()
    assert body["counts"] == {"task.created": 2, "tool.called": 1}
    assert list(body["counts"]) == ["task.created", "tool.called"]  # largest first
    assert body["total"] == 3
    assert body["minutes"] == 60
    assert body["buckets"] == []
    assert body["every"] is None

    body = (await client.get("/summary", params={"minutes": 10, "every": 60})).json()
    assert body["every"] == 60
    buckets = body["buckets"]
    assert 10 <= len(buckets) <= 11
    assert sum(b["total"] for b in buckets) == 3
    merged: dict[str, int] = {}
    for bucket in buckets:
        assert sum(bucket["counts"].values()) == bucket["total"]
        for kind, n in bucket["counts"].items():
            merged[kind] = merged.get(kind, 0) + n
        start, end = (datetime.fromisoformat(bucket[k]) for k in ("start", "end"))
        assert end - start == timedelta(minutes=1)
    assert merged == {"task.created": 2, "tool.called": 1}

    wide = (await client.get("/summary", params={"minutes": 240})).json()
    assert wide["counts"] == {"task.created": 3, "tool.called": 1}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"minutes": 0}, 422),
        ({"minutes": -1}, 422),
        ({"minutes": "nan"}, 422),
        ({"minutes": "lots"}, 422),
        ({"every": 0}, 422),
        ({"every": "inf"}, 422),
        ({"minutes": 600, "every": 1}, 400),  # 36,000 buckets: more than 1,000
        ({"every": 1e-9}, 400),  # below a microsecond
    ],
)
async def test_summary_rejects_bad_windows(client, params, status):
    response = await client.get("/summary", params=params)
    assert response.status_code == status, response.text
    if status == 400:
        assert isinstance(response.json()["detail"], str)


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/events", {"cursor": "not-a-cursor"}, 400),
        ("/events", {"cursor": ""}, 400),
        ("/events", {"type": "Not A Type"}, 400),
        ("/events", {"type": "task.*.*"}, 400),
        ("/events", {"source": "a\x00b"}, 400),
        ("/events", {"limit": 0}, 422),
        ("/events", {"limit": 1001}, 422),
        ("/events", {"limit": "ten"}, 422),
        ("/events", {"since": "2026-03-01T12:00:00"}, 400),  # naive: no offset
        ("/events", {"until": "yesterday"}, 400),
        ("/events", {"until": "0"}, 400),  # not read as Unix time: ISO 8601 only
        ("/events", {"since": "1.5e9"}, 400),
        ("/events", {"oldest_first": "maybe"}, 422),
        ("/events", {"since": "0001-01-01T00:00:00+05:00"}, 400),  # before year 1 in UTC
        ("/events", {"data_contains": "{nope"}, 400),
        ("/events", {"data_contains": "[1]"}, 400),
        ("/events", {"data_contains": '{"x": NaN}'}, 400),
        ("/events", {"data_contains": '{"x": 1e999}'}, 400),
        ("/events", {"event_type": "Not A Type"}, 400),
        ("/events", {"type": "task.*", "event_type": "Bad"}, 400),
        ("/events", {"exclude_event_type": "Not A Type"}, 400),
        ("/events", {"exclude_event_type": ""}, 400),
        ("/events", {"exclude_source": "a\x00b"}, 400),
        ("/events", {"data_where": "no operator"}, 400),
        ("/events", {"data_where": ">=1"}, 400),  # no key
        ("/events", {"data_where": ["n>1", "x"]}, 400),  # every condition is checked
        ("/stream", {"data_contains": "1"}, 400),
        # Nested past what the JSON parser can take (it raised RecursionError: a 500).
        ("/events", {"data_contains": '{"a":' + "[" * 5000 + "]" * 5000 + "}"}, 400),
        ("/stream", {"data_contains": '{"a":' * 1700 + "1" + "}" * 1700}, 400),
        ("/events", {"data_where": "a=" + "[" * 5000 + "]" * 5000}, 400),
        ("/stream", {"type": "Bad"}, 400),
        ("/stream", {"exclude_event_type": "Bad"}, 400),
        ("/stream", {"data_where": "nothing"}, 400),
        ("/stream", {"cursor": "forged"}, 400),
        ("/stream", {"since": "2026-03-01"}, 400),
    ],
)
async def test_error_mapping(client, path, params, status):
    response = await client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str if status != 422 else list)
    if status == 400:
        assert detail
        assert "\n" not in detail, detail


# -- a strict query string --------------------------------------------------------------

ROUTES = [
    "/events",
    "/stream",
    "/summary",
    "/events/{id}",
    "/tasks/t-1/events",
    "/agents/a-1/events",
]


@pytest.mark.parametrize("path", ROUTES)
async def test_an_unknown_query_parameter_is_a_400_naming_it(log, client, path):
    events = await seed(log)
    url = path.format(id=events[0].id)
    response = await client.get(url, params={**_valid(path), "bogus": "1"})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert detail.startswith("unknown query parameter 'bogus' ("), detail
    assert "\n" not in detail
    if path != "/stream":  # (a stream answered 200 never ends over ASGITransport)
        assert (await client.get(url, params=_valid(path))).status_code == 200


def _valid(path: str) -> dict[str, str]:
    """Parameters the route does take (none for a timeline or one event)."""
    if path in ("/events", "/agents/a-1/events"):
        return {"limit": "5"}
    if path == "/summary":
        return {"minutes": "5"}
    return {}


async def test_the_known_parameters_are_the_routes_own(log, client):
    events = await seed(log)
    summary = (await client.get("/summary", params={"minute": "5"})).json()["detail"]
    assert summary == "unknown query parameter 'minute' (known: every, minutes)"
    one = (await client.get(f"/events/{events[0].id}", params={"x": "1"})).json()["detail"]
    assert one == "unknown query parameter 'x' (this route takes none)"
    listed = (await client.get("/events", params={"event_typ": "bid.submitted"})).json()
    known = listed["detail"].partition("(known: ")[2].rstrip(")").split(", ")
    assert set(known) == {*EventFilter.model_fields, "type", "limit", "cursor", "oldest_first"}
    two = (await client.get("/summary?a=1&b=2&a=3")).json()["detail"]
    assert two.startswith("unknown query parameters 'a', 'b' (")
    long_name = (await client.get("/summary", params={"n" * 500: "1"})).json()["detail"]
    assert len(long_name) < 150


async def test_the_page_keeps_its_own_query_string(log, client):
    await seed(log)
    page = await client.get("/", params={"utm_source": "mail"})
    assert page.headers["content-type"].startswith("text/html"), page.text


async def test_exclude_event_type_leaves_out_bids(log, client):
    for kind in ("bid.submitted", "task.created", "bid.submitted", "auction.closed"):
        await log.log_event(kind, "market", data={"bid_sats": 150})
    response = await client.get("/events", params={"exclude_event_type": "bid.submitted"})
    assert response.status_code == 200, response.text
    assert sorted(e["event_type"] for e in response.json()["events"]) == [
        "auction.closed",
        "task.created",
    ]
    prefix = await client.get("/events", params={"exclude_event_type": "bid.*"})
    assert "bid.submitted" not in {e["event_type"] for e in prefix.json()["events"]}


@pytest.mark.parametrize("path", ["/events", "/stream"])
@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z"),  # equal: an empty window
        ("2026-03-01T13:00:00Z", "2026-03-01T12:00:00Z"),
        ("2026-03-01T14:00:00+02:00", "2026-03-01T12:00:00Z"),  # the same instant
    ],
)
async def test_since_at_or_after_until_is_a_400(client, path, since, until):
    response = await client.get(path, params={"since": since, "until": until})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "since" in detail
    assert "until" in detail


@pytest.mark.parametrize("path", ["/events", "/stream"])
@pytest.mark.parametrize("where", ["bid_sats>>100", "bid_sats=>100", "bid_sats==100"])
async def test_an_unknown_data_where_operator_is_a_400(client, path, where):
    response = await client.get(path, params={"data_where": where})
    assert response.status_code == 400, response.text
    assert where[8:10] in response.json()["detail"]


async def test_a_quoted_text_value_may_start_with_an_operator(log, client):
    await log.log_event("bid.submitted", "market", data={"note": ">100"})
    response = await client.get("/events", params={"data_where": 'note=">100"'})
    assert response.status_code == 200, response.text
    assert [e["data"]["note"] for e in response.json()["events"]] == [">100"]


async def test_stream_refuses_an_unknown_last_event_id(log, client):
    await seed(log)
    response = await client.get(
        "/stream", headers={"Last-Event-ID": "01900000-0000-7000-8000-000000000000"}
    )
    assert response.status_code == 400
    assert "cursor" in response.json()["detail"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidCursorError("bad cursor"), 400),
        (InvalidEventError("bad event"), 400),
        (ValueError("bad value"), 400),
        (StorageError("disk on fire"), 503),
        (LoggerClosedError("the logger is closed"), 503),
    ],
)
async def test_library_errors_map_to_statuses(log, client, monkeypatch, error, status):
    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(log, "get_event_summary", fail)
    response = await client.get("/summary")
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"detail"}
    if isinstance(error, StorageError):
        # The driver's message stays in the server's log, not in the answer.
        assert "disk" not in body["detail"]
        assert response.headers["retry-after"] == "1"
    else:
        assert body["detail"] == str(error)


async def test_closed_logger_is_503_everywhere(log, client):
    events = await seed(log)
    await log.close()
    for path in (
        "/events",
        f"/events/{events[0].id}",
        "/tasks/t-1/events",
        "/agents/a-1/events",
        "/summary",
        "/stream",
    ):
        response = await client.get(path)
        assert response.status_code == 503, path
        assert response.json() == {"detail": "the logger is closed"}


# -- OpenAPI and the page ----------------------------------------------------------------


async def test_openapi_schema_describes_every_route(client):
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    assert set(paths) == {
        "/events",
        "/events/{event_id}",
        "/tasks/{task_id}/events",
        "/agents/{agent_id}/events",
        "/summary",
        "/stream",
    }
    for path, item in paths.items():
        responses = item["get"]["responses"]
        assert {"200", "400", "422", "503"} <= set(responses), path
        assert responses["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
    assert "404" in paths["/events/{event_id}"]["get"]["responses"]
    assert list(paths["/stream"]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]
    params = {p["name"]: p for p in paths["/events"]["get"]["parameters"]}
    assert set(params) == {*EventFilter.model_fields, "type", "limit", "cursor", "oldest_first"}
    assert params["type"]["schema"]["anyOf"][0]["type"] == "array"
    stream_params = {p["name"] for p in paths["/stream"]["get"]["parameters"]}
    assert {*EventFilter.model_fields, "type", "cursor", "last-event-id"} == stream_params
    page = schema["components"]["schemas"]["Page"]
    assert set(page["properties"]) == {"events", "next_cursor"}


@pytest.mark.parametrize("path", ["/events", "/stream"])
async def test_openapi_offers_every_filter_field(client, path):
    """Each EventFilter field is a query parameter with the field's own description."""
    schema = (await client.get("/openapi.json")).json()
    params = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
    for name, field in EventFilter.model_fields.items():
        param = params[name]
        assert param["in"] == "query"
        assert not param["required"]
        assert field.description
        assert param["description"].startswith(field.description), name
        kinds = [k.get("type") for k in param["schema"]["anyOf"]]
        repeatable = name in ("event_type", "exclude_event_type", "exclude_source", "data_where")
        assert kinds == ["array" if repeatable else "string", "null"], name
    assert params["type"]["description"].startswith("Same as `event_type`.")
    assert params["since"]["schema"]["anyOf"][0] == {"type": "string", "format": "date-time"}


async def test_page_is_self_contained_and_escapes_filters(client):
    response = await client.get("/", params={"source": '"><script>alert(1)</script>'})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = response.text
    assert "<script>alert(1)</script>" not in text
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in text
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    # Nothing is fetched from elsewhere: no CDN, no external script or style.
    assert "https://" not in text
    assert 'src="' not in text
    assert 'rel="stylesheet"' not in text
    assert 'data-base=""' in text


async def test_page_inlines_its_package_files_and_fills_each_slot_once(client):
    static = resources.files("event_log.web") / "static"
    css, js = ((static / name).read_text("utf-8") for name in ("page.css", "page.js"))
    params = {
        "type": "task.*",
        "event_type": "tool.called",
        "task_id": "{{nonce}}",
        "agent_id": "$x",
    }
    response = await client.get("/", params=params)
    text = response.text
    nonce = response.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'<style nonce="{nonce}">\n{css}</style>' in text
    assert f'<script nonce="{nonce}">\n{js}</script>' in text
    # No slot is left unfilled: the only braces are those of the task_id value.
    assert text.replace(css, "").replace(js, "").count("{{") == 1
    assert 'name="type" value="task.*, tool.called"' in text  # both names of the field
    assert 'name="task_id" value="{{nonce}}"' in text  # a value is never read as a slot
    assert 'name="agent_id" value="$x"' in text
    assert "$$" not in js  # plain JavaScript, no template escaping


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("page.html", "<p>{{nope}}</p>", "unknown slot {{nope}}"),
        ("page.js", "let s = '</SCRIPT>';", "page.js must not contain '</script'"),
        ("page.css", "a::after { content: '</style>'; }", "page.css must not contain '</style'"),
    ],
)
def test_page_files_that_would_break_the_page_are_refused(
    tmp_path, monkeypatch, name, text, message
):
    static = tmp_path / "static"
    static.mkdir()
    for stock in ("page.html", "page.css", "page.js"):
        source = resources.files("event_log.web") / "static" / stock
        (static / stock).write_text(source.read_text("utf-8"), "utf-8")
    (static / name).write_text(text, "utf-8")
    monkeypatch.setattr(web_page, "files", lambda package: tmp_path)
    web_page._template.cache_clear()
    try:
        with pytest.raises(ValueError, match=re.escape(message)):
            web_page._template()
    finally:
        web_page._template.cache_clear()


async def test_router_mounts_under_a_prefix(log):
    await seed(log)
    app = FastAPI()
    app.include_router(create_router(log, prefix="/swarm/log"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        page = await c.get("/swarm/log/")
        assert page.status_code == 200
        assert 'data-base="/swarm/log"' in page.text
        assert len((await c.get("/swarm/log/events")).json()["events"]) == 9
        assert (await c.get("/events")).status_code == 404


def test_create_router_refuses_a_bad_heartbeat():
    with pytest.raises(ValueError, match="heartbeat"):
        create_router(object(), heartbeat=0)  # type: ignore[arg-type]


# -- SSE over a real server --------------------------------------------------------------


@pytest.fixture
async def server(log: EventLogger) -> AsyncIterator[str]:
    """The router served by uvicorn on a free loopback port, in this event loop.

    One event is stored first: a stream anchors at the newest stored event, which
    makes "connected" mean "live" (on an empty log that is only best effort).
    """
    await log.log_event("system.info", "test-setup")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        make_app(log), lifespan="off", log_level="warning", ws="none", http="h11"
    )
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    for _ in range(1000):  # uvicorn offers a flag, not an event, for "started"
        if srv.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # No graceful-shutdown timeout is set: this only returns promptly if every
        # stream stopped when its client went away.
        srv.should_exit = True
        async with asyncio.timeout(10):
            await task
        sock.close()


class Sse:
    """A tiny SSE reader: messages (dicts of fields) and comments, one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, within: float = 5) -> dict[str, str]:
        fields: dict[str, str] = {}
        async with asyncio.timeout(within):
            async for line in self._lines:
                if line == "":
                    if fields:
                        return fields
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    fields.setdefault("comment", value)
                else:
                    fields[name] = fields[name] + "\n" + value if name in fields else value
        raise AssertionError("the stream ended")

    async def rest(self) -> list[str]:
        """The remaining lines, until the server ends the response."""
        async with asyncio.timeout(5):
            return [line async for line in self._lines]

    async def event(self, within: float = 5) -> dict[str, str]:
        """The next message with data (heartbeats and bare positions are skipped), with
        ``event_id`` added: the id of the event in its data."""
        async with asyncio.timeout(within):
            while True:
                fields = await self.next(within)
                if "data" in fields:
                    if "event" not in fields:
                        fields["event_id"] = json.loads(fields["data"])["id"]
                    return fields


async def open_stream(
    http: httpx.AsyncClient, url: str, **kwargs: Any
) -> tuple[httpx.Response, Sse]:
    request = http.build_request("GET", url, **kwargs)
    response = await http.send(request, stream=True)
    assert response.status_code == 200, (await response.aread()).decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    sse = Sse(response)
    hello = await sse.next()
    # The position the stream starts from comes first, before any event.
    assert hello == {"retry": "2000", "id": hello.get("id"), "comment": "connected"}
    assert hello["id"].startswith("f.")
    return response, sse


async def test_stream_sends_events_as_they_commit(log, server):
    before = await log.log_event("system.info", "test")  # stored before: not sent
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        response, sse = await open_stream(http, "/stream")
        logged = [
            await log.log_event("task.created", "coordinator", task_id=f"t-{i}", data={"i": i})
            for i in range(3)
        ]
        got = [await sse.event() for _ in logged]
        await response.aclose()
    assert [m["event_id"] for m in got] == [e.id for e in logged]
    assert before.id not in {m["event_id"] for m in got}
    for message, event in zip(got, logged, strict=True):
        assert "event" not in message  # plain "message" events for EventSource.onmessage
        assert json.loads(message["data"]) == event.model_dump(mode="json") | {
            "timestamp": json.loads(message["data"])["timestamp"]
        }


async def test_stream_filters_and_heartbeats(log, server):
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        response, sse = await open_stream(
            http,
            "/stream",
            params={
                "type": ["tool.*", "task.failed"],
                "agent_id": "a-1",
                "data_contains": '{"ok": true}',
            },
        )
        await log.log_event("task.created", "c", agent_id="a-1", data={"ok": True})
        wanted = await log.log_event("tool.called", "a-1", agent_id="a-1", data={"ok": True})
        await log.log_event("tool.called", "a-1", agent_id="a-1", data={"ok": 1})
        await log.log_event("tool.called", "a-2", agent_id="a-2", data={"ok": True})
        failed = await log.log_event("task.failed", "a-1", agent_id="a-1", data={"ok": True})
        assert (await sse.event())["event_id"] == wanted.id
        assert (await sse.event())["event_id"] == failed.id
        # Idle now: the heartbeat (0.2 s here) keeps the connection warm.
        assert await sse.next(within=2) == {"comment": "keep-alive"}
        await response.aclose()


async def test_stream_takes_every_filter_field(log, server):
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        response, sse = await open_stream(
            http,
            "/stream",
            params={
                "event_type": "tool.*",
                "exclude_event_type": "tool.failed",
                "exclude_source": ["noisy", "loud"],
                "data_where": ["bid>=100", "model=gpt-4"],
            },
        )
        skipped = [
            ("task.created", "a-1", {"bid": 100, "model": "gpt-4"}),  # not tool.*
            ("tool.failed", "a-1", {"bid": 100, "model": "gpt-4"}),  # excluded type
            ("tool.called", "noisy", {"bid": 100, "model": "gpt-4"}),  # excluded source
            ("tool.called", "loud", {"bid": 100, "model": "gpt-4"}),
            ("tool.called", "a-1", {"bid": 99, "model": "gpt-4"}),  # bid too low
            ("tool.called", "a-1", {"bid": 100, "model": "gpt-5"}),  # another model
        ]
        for kind, source, data in skipped:
            await log.log_event(kind, source, data=data)
        wanted = await log.log_event("tool.called", "a-1", data={"bid": 250, "model": "gpt-4"})
        message = await sse.event()
        assert message["event_id"] == wanted.id
        await response.aclose()


async def test_stream_resumes_after_last_event_id(log, server):
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        response, sse = await open_stream(http, "/stream")
        first = await log.log_event("task.created", "c", task_id="t-1")
        assert (await sse.event())["event_id"] == first.id
        await response.aclose()

        # Written while no one listened.
        missed = [await log.log_event("task.started", "c", task_id="t-1") for _ in range(2)]

        response, sse = await open_stream(http, "/stream", headers={"Last-Event-ID": first.id})
        assert [(await sse.event())["event_id"] for _ in missed] == [e.id for e in missed]
        live = await log.log_event("task.completed", "c", task_id="t-1")
        assert (await sse.event())["event_id"] == live.id
        await response.aclose()

        # The cursor parameter does the same (the page uses it), also with a
        # next_cursor of /events?oldest_first=true.
        response, sse = await open_stream(http, "/stream", params={"cursor": missed[0].id})
        assert [(await sse.event())["event_id"] for _ in range(2)] == [missed[1].id, live.id]
        await response.aclose()
        # Oldest first: the setup event, first, missed[0]; the cursor points after those.
        page = (await http.get("/events", params={"oldest_first": "true", "limit": 3})).json()
        response, sse = await open_stream(http, "/stream", params={"cursor": page["next_cursor"]})
        assert [(await sse.event())["event_id"] for _ in range(2)] == [missed[1].id, live.id]
        await response.aclose()


async def test_stream_resumes_in_commit_order_from_the_position_it_sent(log, server):
    from datetime import timedelta

    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        response, sse = await open_stream(http, "/stream")
        first = await log.log_event("task.created", "c")
        message = await sse.event()
        assert message["event_id"] == first.id
        after_first = message["id"]  # the stream's position after `first`
        # Committed after `first`, but with an earlier timestamp.
        backdated = await log.log_event(
            "task.started", "c", timestamp=first.timestamp - timedelta(minutes=5)
        )
        third = await log.log_event("task.completed", "c")
        assert [(await sse.event())["event_id"] for _ in range(2)] == [backdated.id, third.id]
        await response.aclose()

        # Resuming from the position after `first` misses nothing (by time, it
        # would skip the backdated event for good); with the header and the parameter.
        for how in (
            {"headers": {"Last-Event-ID": after_first}},
            {"params": {"cursor": after_first}},
        ):
            response, sse = await open_stream(http, "/stream", **how)
            got = [(await sse.event())["event_id"] for _ in range(2)]
            assert got == [backdated.id, third.id]
            await response.aclose()


async def test_a_client_that_drops_before_its_first_event_resumes_from_the_opening(log, server):
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        request = http.build_request("GET", "/stream")
        response = await http.send(request, stream=True)
        opening = await Sse(response).next()
        await response.aclose()  # gone before any event
        missed = [await log.log_event("task.created", "c", data={"i": i}) for i in range(3)]
        response, sse = await open_stream(http, "/stream", headers={"Last-Event-ID": opening["id"]})
        assert [(await sse.event())["event_id"] for _ in missed] == [e.id for e in missed]
        await response.aclose()


async def test_stream_refuses_a_position_of_another_kind_of_database(log, server):
    from event_log._commit_order import SeqPosition, SequenceOrder, encode_cursor
    from event_log.backends.postgresql import _snapshots as pg

    if log._db.backend.commit_order.kind == pg.SnapshotOrder.kind:
        other = encode_cursor(SequenceOrder(), SeqPosition(3))
    else:
        other = encode_cursor(pg.SnapshotOrder(), pg.SnapshotPosition(pg.Snapshot(5, 9, ())))
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        refused = await http.get("/stream", params={"cursor": other})
    assert refused.status_code == 400
    assert "another kind of database" in refused.json()["detail"]


async def test_stream_ends_when_the_logger_closes(log, server):
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        response, sse = await open_stream(http, "/stream")
        last = await log.log_event("agent.left", "a-1", agent_id="a-1")
        await log.close()
        assert (await sse.event())["event_id"] == last.id
        rest = await sse.rest()
        assert all(line == "" or line.startswith(":") for line in rest)
        await response.aclose()


async def test_abandoned_streams_stop(log, server):
    """Clients that hang up stop their streams: the server fixture's shutdown proves it."""
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        for _ in range(3):
            response, sse = await open_stream(http, "/stream")
            await log.log_event("tool.called", "a-1")
            await sse.event()
            await response.aclose()
    # Logging still works and nothing is left reading in the background.
    await log.log_event("tool.completed", "a-1")
