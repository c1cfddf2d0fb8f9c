"""Schemathesis over the web API's OpenAPI schema: generated requests never get a 500.

The app (``create_app``) runs in uvicorn on a loopback port in a thread of its
own, with its own event loop and logger, over a file SQLite database seeded with
a few events. Schemathesis calls it over HTTP: valid and invalid parameters
for every operation, checking the status codes, content types and bodies
against the schema. ``/stream`` never ends by itself, so it is left out here;
tests/test_web.py covers it. The same app with a token is called with it and
without it: its 401 is part of the schema too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from event_log import EventLogger
from event_log.web import create_app

TOKEN = "schema-test-token"


def _reads_as_a_list_of_texts(case: schemathesis.Case) -> bool:
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


def negative_data_rejection_on_the_wire(ctx: Any, response: Any, case: schemathesis.Case) -> Any:
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
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS, timeout=10)

    check()


def test_the_schema_is_valid_openapi(web_schema: schemathesis.BaseSchema) -> None:
    operations = [
        result.ok() for result in web_schema.get_all_operations() if result.ok() is not None
    ]
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
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers=headers, timeout=10)
        case.validate_response(response, checks=CHECKS[:4])
        if not authorised:
            assert response.status_code == 401, response.text

    check()
