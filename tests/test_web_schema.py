"""Schemathesis over the web API's OpenAPI schema: generated requests never get a 500.

The app (``create_app``) runs in uvicorn on a loopback port in a thread of its
own, with its own event loop and logger, over a file SQLite database seeded with
a few events. Schemathesis calls it over HTTP: valid and invalid parameters
for every operation, checking the status codes, content types and bodies
against the schema. The same app with a token is called with it and without
it: its 401 is part of the schema too.

``/stream`` never ends by itself, so its requests go over a raw socket that
reads the status and the first bytes, then closes: the schema's own cases, and
values no schema would generate (any unicode, deeply nested JSON, cursors shaped
like the stream's own), in every query parameter and Last-Event-ID. It answers
200 with its opening message, or an error as JSON, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, assume, example, given, reject, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from event_log import EventLogger
from event_log._commit_order import CURSOR_PREFIX, _checksum
from event_log.web import create_app
from http_wire import dechunk, split_response

TOKEN = "schema-test-token"


def _reads_as_a_list_of_texts(case: schemathesis.Case[Any]) -> bool:
    """Whether a repeatable query parameter got a value that is no list of strings but
    reaches the server as texts all the same, which a filter such as ``exclude_source``
    rightly accepts (it takes any text).

    The HTTP client sends any such value as text: a scalar as one item
    (``exclude_source=false``), a list's items as their text, a mapping's keys one by
    one (that one was found on Python 3.13), and ``None`` not at all. Schemathesis
    allows for wire forms of scalar parameters, not of arrays.
    """
    for name, value in (case.query or {}).items():
        param = case.operation.query.get(name)
        schema = param.definition.get("schema", {}) if param is not None else {}
        if not any(option.get("type") == "array" for option in schema.get("anyOf", [schema])):
            continue
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            continue  # a valid value
        return True
    return False


def negative_data_rejection_on_the_wire(
    ctx: Any, response: Any, case: schemathesis.Case[Any]
) -> Any:
    """``negative_data_rejection``, but not where the request sent is a valid one."""
    if _reads_as_a_list_of_texts(case):
        return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection_on_the_wire,
]


async def _seed(url: str) -> None:
    now = datetime.now(UTC)
    async with EventLogger.open(url) as log:
        for n in range(12):
            await log.log_event(
                ("task.created", "tool.called", "agent.joined")[n % 3],
                "coordinator",
                task_id=f"t-{n % 4}",
                agent_id=f"a-{n % 2}",
                data={"n": n, "nested": {"ok": True}},
                timestamp=now - timedelta(minutes=n),
            )


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = tmp_path_factory.mktemp("web-schema") / "events.db"
    url = f"sqlite+aiosqlite:///{db}"
    # A private loop in a worker thread keeps asyncio.run away from pytest-asyncio's.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _seed(url)).result()
    return url


@pytest.fixture(scope="module")
def web_url(db_url: str) -> Iterator[str]:
    with _served(create_app(db_url)) as base:
        yield base


@pytest.fixture(scope="module")
def token_web_url(db_url: str) -> Iterator[str]:
    with _served(create_app(db_url, token=TOKEN)) as base:
        yield base


@contextmanager
def _served(app: FastAPI) -> Iterator[str]:
    """``app`` in uvicorn on a free loopback port, in a thread of its own."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", ws="none", http="h11"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    for _ in range(1000):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def web_schema(web_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{web_url}/openapi.json")


POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# Negative cases need a constrained parameter to break; a bare string path
# parameter has none (any string is valid), so those operations run positive only.
CASES = [
    ("/events", POSITIVE),
    ("/events", NEGATIVE),
    ("/events/{event_id}", POSITIVE),
    ("/tasks/{task_id}/events", POSITIVE),
    ("/agents/{agent_id}/events", POSITIVE),
    ("/agents/{agent_id}/events", NEGATIVE),
    ("/summary", POSITIVE),
    ("/summary", NEGATIVE),
]


@pytest.mark.parametrize(("path", "mode"), CASES)
def test_the_api_never_answers_500_and_keeps_to_its_schema(
    web_schema: schemathesis.BaseSchema, path: str, mode: GenerationMode
) -> None:
    operation = web_schema[path]["GET"]

    # Schemathesis's own pytest loader (from_fixture) does not run on pytest 9,
    # so the strategy drives a plain hypothesis test.
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(checks=CHECKS, timeout=10)

    check()


def test_the_schema_is_valid_openapi(web_schema: schemathesis.BaseSchema) -> None:
    operations = []
    for result in web_schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert {op.path for op in operations} == {
        "/events",
        "/events/{event_id}",
        "/tasks/{task_id}/events",
        "/agents/{agent_id}/events",
        "/summary",
        "/stream",
    }


def test_only_values_sent_as_texts_skip_the_rejection_check(
    web_schema: schemathesis.BaseSchema,
) -> None:
    operation = web_schema["/events"]["GET"]

    def skips(**query: Any) -> bool:
        return _reads_as_a_list_of_texts(operation.Case(query=query))

    assert skips(exclude_source="false")
    assert skips(exclude_source=31)
    assert skips(exclude_source=[1, "x"])
    assert not skips(exclude_source=["x"])  # valid as generated
    assert skips(exclude_source={"k": "v"})  # sent as its keys
    assert skips(exclude_source=[["x"], "y"])
    assert not skips(source=5)  # a scalar parameter: schemathesis's own check


@pytest.mark.parametrize("path", [path for path, mode in CASES if mode is POSITIVE])
@pytest.mark.parametrize("authorised", [True, False], ids=["token", "no-token"])
def test_with_a_token_the_api_keeps_to_its_schema(
    token_web_url: str, path: str, authorised: bool
) -> None:
    schema = schemathesis.openapi.from_url(f"{token_web_url}/openapi.json")
    operation = schema[path]["GET"]
    headers = {"Authorization": f"Bearer {TOKEN}"} if authorised else {}

    @given(case=operation.as_strategy(generation_mode=POSITIVE))
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: schemathesis.Case[Any]) -> None:
        response = case.call(headers=headers, timeout=10)
        case.validate_response(response, checks=CHECKS[:4])
        if not authorised:
            assert response.status_code == 401, response.text

    check()


# -- /stream: a stream never ends, so each request reads its status and first bytes --------

OPENING = b": connected\n\n"
DEEP_OBJECT = '{"a":' * 1700 + "1" + "}" * 1700
# Deeper than Python's recursion limit even while hypothesis runs a test (it raises the
# limit by 2,000 then, for the server's thread too), and short enough for a request.
DEEP_ARRAY = "[" * 5000 + "]" * 5000
# What h11 (the server's parser, and a client's) takes as a header value.
_FIELD_VALUE = re.compile(rb"([^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
# Printable ASCII a query value may carry as it is: all but what splits or escapes it.
_AS_IS = "!\"$'()*,-./:;<>?@[\\]^_`{|}~"
# The server's parser takes request heads up to 16 KiB (bigger ones get its own plain
# 400 before the app sees them); generated requests stay below.
_MAX_HEAD = 15_000


def _follow_cursor(body: str) -> str:
    """``body`` as a follow cursor with the right checksum (the codec's own), so that the
    server parses it as JSON, whatever it holds."""
    raw = body.encode("utf-8", "surrogatepass")
    text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return f"{CURSOR_PREFIX}{text}.{_checksum(raw)}"


def _encoded(text: str) -> str:
    """Any text in a query string: UTF-8 (lone surrogates too), percent-encoded."""
    return quote(text.encode("utf-8", "surrogatepass"), safe=_AS_IS)


def _stream_answer(port: int, target: str, headers: dict[str, bytes]) -> tuple[int, bytes]:
    """``GET target`` with ``headers``: the status, and the opening message of a stream
    or the whole body of anything else. The connection is closed after them."""
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1"]
    head = "\r\n".join(lines).encode() + b"\r\n"
    head += b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" not in data:
                continue
            status, fields, body = split_response(data)
            if status == 200 and fields.get("transfer-encoding") == "chunked":
                if OPENING in dechunk(body)[0]:
                    break
            elif len(body) >= int(fields.get("content-length", "-1")) >= 0:
                break
    status, fields, body = split_response(data)
    assert status != 500, (target[:300], headers, body[:300])
    if status == 200:
        assert fields["content-type"].startswith("text/event-stream"), fields
        payload = dechunk(body)[0]
        assert payload.startswith(b"retry: "), payload[:200]
        assert OPENING in payload, payload[:200]
    else:
        assert status in (400, 422, 503), (status, body[:300])
        assert fields["content-type"] == "application/json", fields
        assert json.loads(body)["detail"], body[:300]
    return status, body


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


@pytest.mark.parametrize("mode", [POSITIVE, NEGATIVE], ids=["positive", "negative"])
def test_the_stream_never_answers_500(
    web_url: str, web_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    """The schema's own cases for /stream, sent as schemathesis sends them."""
    operation = web_schema["/stream"]["GET"]
    port = _port(web_url)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: schemathesis.Case[Any]) -> None:
        sent = case.as_transport_kwargs(base_url=web_url)
        prepared = requests.Request(
            method="GET", url=sent["url"], params=sent["params"], cookies=sent["cookies"]
        ).prepare()
        headers = {}
        for name, value in sent["headers"].items():
            if name.lower() in ("host", "connection", "content-length"):
                continue
            try:
                raw = value.encode("latin-1")
            except UnicodeEncodeError:
                reject()  # no client sends it
            if not _FIELD_VALUE.fullmatch(raw):
                reject()
            headers[name] = raw
        assume(len(prepared.path_url) + sum(len(v) for v in headers.values()) < _MAX_HEAD)
        _stream_answer(port, prepared.path_url, headers)

    check()


_TEXTS = st.text(st.characters(exclude_categories=()), max_size=24)  # NUL, lone surrogates
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
).map(json.dumps)
_NASTY = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\ud800",
        "task.*",
        "*",
        "a>=1",
        "a=" + DEEP_ARRAY,
        '{"a": NaN}',
        "9" * 5000,
        DEEP_OBJECT,
        DEEP_ARRAY,
        "f.xxx.yyy",
        "f..",
        "f.a.b.c",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-14:00",
        "2026-01-01T00:00:00",
    ]
)
_CURSORS = st.one_of(
    st.builds(lambda a, b: f"f.{a}.{b}", _TEXTS, _TEXTS),
    st.one_of(_JSON, _TEXTS, st.sampled_from([DEEP_OBJECT, f'["s",{DEEP_ARRAY}]'])).map(
        _follow_cursor
    ),
    st.builds(lambda n: _follow_cursor(f'["s",{n}]'), st.integers()),
    st.builds(
        lambda when, event_id: _follow_cursor(json.dumps(["s+", [when, event_id, 0]])),
        st.integers(),
        _TEXTS,
    ),
)
_VALUES = st.one_of(_TEXTS, _JSON, _NASTY, _CURSORS)


@st.composite
def _stream_requests(
    draw: st.DrawFn, params: list[tuple[str, bool]]
) -> tuple[list[tuple[str, str]], str | None]:
    """Up to three of ``params`` (name, repeatable) with values of any kind, and a
    Last-Event-ID header or none."""
    pairs = []
    for name, repeatable in draw(st.lists(st.sampled_from(params), max_size=3, unique=True)):
        for value in draw(st.lists(_VALUES, min_size=1, max_size=3 if repeatable else 1)):
            pairs.append((name, value))
    return pairs, draw(st.none() | _VALUES)


def _header_value(text: str) -> bytes:
    """``text`` as a header value can carry it: UTF-8 bytes, bar what no parser lets by."""
    raw = bytes(b for b in text.encode("utf-8", "surrogatepass") if b not in b"\x00\r\n\x0b\x0c")
    return raw.strip(b" \t")


def test_the_stream_never_answers_500_whatever_it_is_sent(
    web_url: str, web_schema: schemathesis.BaseSchema
) -> None:
    """Every query parameter of /stream and Last-Event-ID, with values no schema would
    generate: any unicode, JSON-ish and deeply nested text, cursors shaped like the
    stream's own (a checksum the server accepts, then any JSON inside)."""
    operation = web_schema["/stream"]["GET"]
    params = [
        (p.name, "array" in json.dumps(p.definition.get("schema", {}))) for p in operation.query
    ]
    assert {name for name, _ in params} >= {"cursor", "event_type", "data_contains", "since"}
    port = _port(web_url)

    @given(request=_stream_requests(params))
    @example(request=([("cursor", _follow_cursor(DEEP_OBJECT))], None))
    @example(request=([], _follow_cursor(f'["s",{DEEP_ARRAY}]')))
    @example(request=([("data_contains", DEEP_OBJECT)], None))
    @example(request=([("data_where", "a=" + DEEP_ARRAY)], None))
    @example(request=([("cursor", "f.xxx.yyy")], "f.xxx.yyy"))
    @example(request=([("source", "\x00"), ("task_id", "\ud800")], "\ud800"))
    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(request: tuple[list[tuple[str, str]], str | None]) -> None:
        pairs, last_event_id = request
        target = "/stream"
        if pairs:
            target += "?" + "&".join(f"{name}={_encoded(value)}" for name, value in pairs)
        headers = {} if last_event_id is None else {"Last-Event-ID": _header_value(last_event_id)}
        assume(len(target) + sum(len(v) for v in headers.values()) < _MAX_HEAD)
        _stream_answer(port, target, headers)

    check()
