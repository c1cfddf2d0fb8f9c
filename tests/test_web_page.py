"""The page as the server renders it: the filter form, the first page, errors.

No browser: the HTML is read with the standard library's parser (the browser
tests in test_web_e2e.py drive the script). One in-memory SQLite logger: the
page reads through the public ``EventLogger`` API only, which the contract
suite runs on every backend.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from pydantic import Field
from starlette.datastructures import QueryParams

from event_log import EventFilter, EventLogger, StorageError
from event_log.web import _form as web_form
from web_helpers import app_client

pytestmark = pytest.mark.sqlite

T0 = datetime(2026, 12, 7, 20, 53, 1, 250_000, tzinfo=UTC)


class Element:
    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.text = ""
        self.children: list[Element] = []

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        found = []
        for child in self.children:
            if (tag is None or child.tag == tag) and all(
                child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()
            ):
                found.append(child)
            found += child.find_all(tag, **attrs)
        return found

    def find(self, tag: str | None = None, **attrs: str) -> Element:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag}> with {attrs}"
        return found[0]

    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()


class Document(HTMLParser):
    """A tree of the page's elements, each with its text (its children's included)."""

    VOID = frozenset({"input", "meta", "link", "br", "img", "hr"})

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.stack[-1].children.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        while len(self.stack) > 1:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.text += data


def parse(response: httpx.Response) -> Element:
    return Document(response.text).root


@pytest.fixture
async def log() -> AsyncIterator[EventLogger]:
    async with EventLogger.open("sqlite+aiosqlite://") as logger:
        yield logger


@pytest.fixture
async def client(log: EventLogger) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(log) as c:
        yield c


async def seed(log: EventLogger) -> list[Any]:
    rows = [
        ("task.created", "coordinator", "t 1", None, None),
        ("task.assigned", "coordinator", "t 1", "a-1", {"bid_sats": 150}),
        ("tool.failed", "a-1", "t 1", "a-1", {"error": "timeout"}),
        ("system.error", "monitor", None, None, None),
        ("task.completed", "a-1", "t 1", "a-1", None),
    ]
    return [
        await log.log_event(
            kind,
            source,
            task_id=task,
            agent_id=agent,
            data=data,
            timestamp=T0 + timedelta(minutes=n),
        )
        for n, (kind, source, task, agent, data) in enumerate(rows)
    ]


def _repeatable(name: str) -> bool:
    annotation = str(EventFilter.model_fields[name].annotation)
    return "tuple" in annotation


# -- the form ----------------------------------------------------------------------------


async def test_the_form_has_every_field_of_event_filter(client):
    doc = parse(await client.get("/"))
    form = doc.find("form", id="filter-form")
    named = [box for box in form.find_all() if "data-field" in box.attrs]
    boxes = {box.attrs["data-field"]: box for box in named}
    assert len(named) == len(boxes), "each field once"
    assert set(boxes) == set(EventFilter.model_fields), "every field"
    for name, field in EventFilter.model_fields.items():
        box = boxes[name]
        inputs = box.find_all("input")
        assert inputs, name
        param = "type" if name == "event_type" else name  # the API's alias of event_type
        assert {i.attrs["name"] for i in inputs} == {param}
        assert field.description
        assert all(i.attrs["title"] == field.description for i in inputs), name
        kind = box.attrs["data-kind"]
        assert (kind in ("names", "items")) == _repeatable(name), name
    assert boxes["since"].attrs["data-kind"] == boxes["until"].attrs["data-kind"] == "time"
    assert boxes["data_where"].attrs["data-kind"] == "items"  # one input per condition
    assert boxes["exclude_source"].attrs["data-kind"] == "names"  # comma-separated
    # The examples come from the descriptions.
    assert boxes["data_where"].find("input").attrs["placeholder"] == "bid_sats>=100"
    assert boxes["event_type"].find("input").attrs["placeholder"] == "task.*"
    groups = [fs.attrs["data-group"] for fs in form.find_all("fieldset")]
    assert groups == ["Time range", "Data", "Exclude"]
    assert "open" not in form.find("details", id="more-filters").attrs  # nothing set there


def test_a_field_added_to_event_filter_shows_up_in_the_form(monkeypatch):
    class Wider(EventFilter):
        priority: str | None = Field(None, description="Exact priority, e.g. `high`.")
        exclude_agent: str | tuple[str, ...] | None = Field(
            None, description="Leave out these agents."
        )
        deadline_after: datetime | None = Field(None, description="Deadline after this.")

    monkeypatch.setattr(web_form, "EventFilter", Wider)
    query = QueryParams([("priority", "high"), ("exclude_agent", "a"), ("exclude_agent", "b")])
    doc = Document(web_form.FilterForm.from_query(query).html()).root
    priority = doc.find(data_field="priority")
    assert priority.attrs["data-kind"] == "text"
    assert priority.find("input").attrs["value"] == "high"
    assert priority.find("input").attrs["placeholder"] == "high"
    excluded = doc.find(data_field="exclude_agent")
    assert excluded.attrs["data-kind"] == "names"
    assert excluded.find("input").attrs["value"] == "a, b"
    assert "Leave out these agents." in excluded.text
    assert doc.find(data_field="deadline_after").attrs["data-kind"] == "time"
    groups = {
        fs.attrs["data-group"]: [
            box.attrs["data-field"] for box in fs.find_all() if "data-field" in box.attrs
        ]
        for fs in doc.find_all("fieldset")
    }
    assert groups["Exclude"][-1] == "exclude_agent"
    assert groups["Time range"][-1] == "deadline_after"
    assert len(doc.find_all(data_field="priority")) == 1


async def test_query_values_are_filled_in(client):
    params: list[tuple[str, str]] = [
        ("type", "task.*"),
        ("event_type", "tool.called"),
        ("source", "coordinator"),
        ("since", "2026-03-01T12:00:00Z"),
        ("data_where", "bid_sats>=100"),
        ("data_where", "model=gpt-4"),
        ("data_contains", '{"model": "gpt-4"}'),
        ("exclude_source", "x,y"),
        ("exclude_source", "z"),
    ]
    response = await client.get("/", params=params)
    assert response.status_code == 200, response.text
    doc = parse(response)

    def values(name: str) -> list[str | None]:
        return [i.attrs["value"] for i in doc.find(data_field=name).find_all("input")]

    assert values("event_type") == ["task.*, tool.called"]
    assert values("source") == ["coordinator"]
    assert values("since") == ["2026-03-01T12:00:00Z"]
    assert values("until") == [""]
    assert values("data_where") == ["bid_sats>=100", "model=gpt-4", ""]  # and one to add
    assert values("data_contains") == ['{"model": "gpt-4"}']
    assert values("exclude_source") == ["x, y, z"]
    more = doc.find("details", id="more-filters")
    assert "open" in more.attrs
    assert "(4 set)" in more.find("summary").text


# -- the first page ----------------------------------------------------------------------


async def test_the_first_page_is_rendered_newest_first_with_utc_times(log, client):
    events = await seed(log)
    response = await client.get("/")
    assert response.status_code == 200
    doc = parse(response)
    feed = doc.find("ol", id="events")
    items = feed.find_all("li")
    assert [li.attrs["data-event-id"] for li in items] == [e.id for e in reversed(events)]
    assert doc.find(id="feed-count").text == "5 shown"
    assert "hidden" in doc.find(id="feed-empty").attrs
    api = (await client.get("/events")).json()
    assert feed.attrs["data-state"] == "ok"
    assert feed.attrs["data-next-cursor"] == ""  # one page holds them all
    assert feed.attrs["data-anchor"] == events[-1].id
    for li, wire in zip(items, api["events"], strict=True):
        time = li.find("time")
        assert time.attrs["datetime"] == wire["timestamp"]  # the API's own text
        assert li.find("span", **{"class": "type"}).text == wire["event_type"]
    first = items[-1].find("time")
    assert first.text == "2026-12-07 20:53:01 UTC"
    assert first.attrs["datetime"] == "2026-12-07T20:53:01.250000Z"
    assert items[0].find("time").text == "2026-12-07 20:57:01 UTC"


async def test_failures_are_marked_by_class_and_text(log, client):
    events = await seed(log)
    doc = parse(await client.get("/"))
    by_id = {li.attrs["data-event-id"]: li for li in doc.find_all("li")}
    for event in events:
        li = by_id[event.id]
        failed = event.event_type in ("tool.failed", "system.error")
        assert ("failed" in li.classes()) == failed, event.event_type
        marks = li.find_all("span", **{"class": "fail-mark"})
        assert [m.text for m in marks] == (["✖ failed"] if failed else [])


async def test_task_links_agent_buttons_and_data(log, client):
    events = await seed(log)
    doc = parse(await client.get("/"))
    li = doc.find("li", data_event_id=events[1].id)
    link = li.find("a")
    assert link.attrs["href"] == "/?task_id=t+1"
    assert link.attrs["data-task-id"] == "t 1"
    assert li.find("button").attrs["data-agent-id"] == "a-1"
    assert li.find("summary").text == "data: bid_sats"
    assert li.find("pre").text == '{\n  "bid_sats": 150\n}'


async def test_limit_pages_the_feed_like_the_api(log, client):
    events = await seed(log)
    doc = parse(await client.get("/", params={"limit": "2", "source": "coordinator"}))
    feed = doc.find("ol", id="events")
    assert [li.attrs["data-event-id"] for li in feed.find_all("li")] == [
        events[1].id,
        events[0].id,
    ]
    assert feed.attrs["data-limit"] == "2"
    api = (await client.get("/events", params={"limit": 2, "source": "coordinator"})).json()
    assert feed.attrs["data-next-cursor"] == (api["next_cursor"] or "")
    # The stream starts after the newest event stored, matching the filter or not.
    assert feed.attrs["data-anchor"] == events[1].id
    empty = parse(await client.get("/", params={"source": "nobody"})).find("ol", id="events")
    assert empty.find_all("li") == []
    assert empty.attrs["data-anchor"] == events[-1].id


async def test_event_text_is_escaped(log, client):
    hostile = '<img src=x onerror="alert(1)"></script><script>alert(2)</script>'
    event = await log.log_event(
        "system.warning", hostile, task_id=hostile, agent_id=hostile, data={hostile: hostile}
    )
    response = await client.get("/")
    text = response.text
    assert "<img" not in text
    assert "<script>alert" not in text
    assert 'style="' not in text  # the CSP refuses style attributes: none is rendered
    li = parse(response).find("li", data_event_id=event.id)
    assert li.find("span", **{"class": "src"}).text == hostile
    assert li.find("a").attrs["data-task-id"] == hostile
    assert li.find("button").attrs["data-agent-id"] == hostile


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "Bad Type"}, "event_type"),
        ({"since": "yesterday"}, "since"),
        ({"data_where": "no operator"}, "data_where"),
        ({"data_contains": "[1]"}, "data_contains"),
    ],
)
async def test_a_bad_filter_is_a_400_page_with_the_apis_message(log, client, params, field):
    await seed(log)
    response = await client.get("/", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    doc = parse(response)
    api = await client.get("/events", params=params)
    assert api.status_code == 400
    error = doc.find("p", id="filter-error")
    assert "hidden" not in error.attrs
    assert error.text == api.json()["detail"]
    box = doc.find(data_field=field)
    assert box.find("input").attrs["aria-invalid"] == "true"
    more = doc.find("details", id="more-filters")
    if more.find_all(data_field=field):  # under "More filters": open, so the mark shows
        assert "open" in more.attrs
    feed = doc.find("ol", id="events")
    assert feed.attrs["data-state"] == "invalid"
    assert feed.find_all("li") == []
    assert doc.find(id="feed-empty").text == "No events listed: the filter above has an error."


@pytest.mark.parametrize("limit", ["0", "1001", "ten"])
async def test_a_bad_limit_is_a_400_page(client, limit):
    response = await client.get("/", params={"limit": limit})
    assert response.status_code == 400
    message = parse(response).find("p", id="filter-error").text
    assert message == f"limit must be a whole number from 1 to 1000, not {limit!r}"


async def test_a_valid_page_has_its_error_line_hidden(client):
    error = parse(await client.get("/")).find("p", id="filter-error")
    assert "hidden" in error.attrs
    assert error.text == ""


async def test_a_failing_store_is_a_503_page_saying_so(log, client, monkeypatch):
    async def broken(**_: Any) -> Any:
        raise StorageError("disk on fire")

    monkeypatch.setattr(log, "list_events", broken)
    response = await client.get("/")
    assert response.status_code == 503
    doc = parse(response)
    assert doc.find("ol", id="events").attrs["data-state"] == "unavailable"
    assert doc.find(id="feed-empty").text == "the event store is unavailable; try again"
    assert "disk on fire" not in response.text


async def test_a_closed_logger_is_a_503_page(log, client):
    await log.close()
    response = await client.get("/")
    assert response.status_code == 503
    assert parse(response).find(id="feed-empty").text == "the logger is closed; try again"


async def test_the_page_is_strict_about_what_it_loads(client):
    response = await client.get("/")
    csp = response.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    doc = parse(response)
    assert [s.attrs["nonce"] for s in doc.find_all("script")] == [nonce.group(1)]
    assert [s.attrs["nonce"] for s in doc.find_all("style")] == [nonce.group(1)]
    assert not re.search(r"\son[a-z]+=", response.text.split("<script")[0])  # no handlers
