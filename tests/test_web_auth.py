"""Who may read the web API: ``create_app(token=...)``, and a host's own check.

``create_app`` runs in-process through httpx's ASGITransport, its lifespan
entered by hand, over a file SQLite database. The stream's 200 is not checked
here (ASGITransport buffers a response that never ends); the real-socket test
in tests/test_cli_serve.py reads it. Auth has nothing to do with the backend,
so SQLite is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException

from event_log import EventLogger
from event_log.web import check_token, create_app, create_router, is_loopback, serve

pytestmark = pytest.mark.sqlite

TOKEN = "s3cret-Token_42"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SESSION = hmac.new(TOKEN.encode(), b"event-log session", hashlib.sha256).hexdigest()
API = ["/events", "/stream", "/summary", "/events/{id}", "/tasks/t-1/events", "/agents/a-1/events"]


@pytest.fixture
async def db_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    async with EventLogger.open(url) as log:
        await log.log_event("task.created", "coordinator", task_id="t-1")
        await log.log_event("bid.submitted", "a-1", task_id="t-1", agent_id="a-1")
    return url


async def _first_id(client: httpx.AsyncClient) -> str:
    return str((await client.get("/events", headers=BEARER)).json()["events"][0]["id"])


@asynccontextmanager
async def serving(
    app: FastAPI, base_url: str = "http://test", root_path: str = ""
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app``, with the app's lifespan (which opens its logger) entered."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as c:
            yield c


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(db_url, token=TOKEN)) as c:
        yield c


# -- the API and the stream: a bearer token ------------------------------------------------


@pytest.mark.parametrize("path", API)
async def test_without_a_token_the_api_is_a_401(client, path):
    url = path.format(id=await _first_id(client))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = await client.get(url, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["content-type"] == "application/json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        detail = response.json()["detail"]
        assert "Bearer" in detail
        assert TOKEN not in detail


@pytest.mark.parametrize("path", [p for p in API if p != "/stream"])
async def test_with_the_token_the_api_answers(client, path):
    url = path.format(id=await _first_id(client))
    response = await client.get(url, headers=BEARER)
    assert response.status_code == 200, response.text


async def test_the_token_is_no_query_parameter(client):
    unauthenticated = await client.get("/events", params={"token": TOKEN})
    assert unauthenticated.status_code == 401
    assert TOKEN not in unauthenticated.text
    refused = await client.get("/events", params={"token": TOKEN}, headers=BEARER)
    assert refused.status_code == 400
    assert TOKEN not in refused.text  # the parameter is named, its value is not


async def test_the_checks_run_before_the_route_says_anything(client):
    # Without a credential nothing about the request is judged: not the query string,
    # not the event id.
    assert (await client.get("/events?bogus=1")).status_code == 401
    assert (await client.get("/events/no-such-id")).status_code == 401
    assert (await client.get("/events/no-such-id", headers=BEARER)).status_code == 404


# -- the page: a login form and a session cookie ------------------------------------------


def _assert_login_form(response: httpx.Response, action: str) -> None:
    assert response.headers["content-type"].startswith("text/html")
    assert re.search(rf'<form method="post" action="{re.escape(action)}">', response.text)
    assert 'name="token" type="password"' in response.text
    assert "<script" not in response.text
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # falls back to default-src: no script at all
    assert "unsafe-inline" not in csp
    assert "form-action 'self'" in csp
    assert response.headers["cache-control"] == "no-store"


async def test_the_page_without_a_session_is_a_401_with_the_login_form(client):
    response = await client.get("/")
    assert response.status_code == 401
    _assert_login_form(response, "/login")
    assert TOKEN not in response.text
    assert (await client.get("/login")).status_code == 200
    _assert_login_form(await client.get("/login"), "/login")


async def test_logging_in_sets_a_session_cookie_that_is_not_the_token(client):
    wrong = await client.post("/login", data={"token": "guess"})
    assert wrong.status_code == 401
    assert "not right" in wrong.text
    assert "set-cookie" not in wrong.headers
    assert not client.cookies

    response = await client.post("/login", data={"token": TOKEN})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    parts = [part.strip().lower() for part in cookie.split(";")]
    assert parts[0] == f"event_log_session={SESSION}"
    assert TOKEN.lower() not in cookie.lower()
    assert {"httponly", "path=/", "samesite=strict"} <= set(parts)
    assert "secure" not in parts  # plain http

    # The cookie is a credential for the page and for the calls its script makes.
    page = await client.get("/")
    assert page.status_code == 200
    assert "filter-form" in page.text
    for path in ("/events", "/summary", "/tasks/t-1/events"):
        assert (await client.get(path)).status_code == 200, path


async def test_only_the_derived_session_value_is_a_session(client):
    for forged in (TOKEN, SESSION.upper(), SESSION[:-1], "", "x" * 64):
        client.cookies.set("event_log_session", forged)
        assert (await client.get("/events")).status_code == 401, forged
        assert (await client.get("/")).status_code == 401, forged
    client.cookies.set("event_log_session", SESSION)
    assert (await client.get("/events")).status_code == 200


async def test_logout_clears_the_cookie(client):
    await client.post("/login", data={"token": TOKEN})
    assert (await client.get("/events")).status_code == 200
    response = await client.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    cleared = response.headers["set-cookie"].lower()
    assert cleared.startswith('event_log_session="";') or "max-age=0" in cleared
    assert "path=/" in cleared
    assert (await client.get("/events")).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"token=",
        b"other=1",
        b"token=" + b"x" * 5000,
        b"&".join(b"f%d=1" % n for n in range(50)),
    ],
)
async def test_a_login_without_the_token_shows_the_form_again(client, body):
    response = await client.post(
        "/login", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 401
    _assert_login_form(response, "/login")
    assert "set-cookie" not in response.headers


async def test_on_https_the_cookie_is_secure(db_url):
    async with serving(create_app(db_url, token=TOKEN), "https://test") as c:
        response = await c.post("/login", data={"token": TOKEN})
        parts = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
        assert "secure" in parts


async def test_under_a_base_path_the_form_cookie_and_redirect_follow_it(db_url):
    async with serving(create_app(db_url, token=TOKEN), root_path="/audit") as c:
        refused = await c.get("/audit/")
        assert refused.status_code == 401
        _assert_login_form(refused, "/audit/login")
        response = await c.post("/audit/login", data={"token": TOKEN})
        assert response.headers["location"] == "/audit/"
        assert "path=/audit" in response.headers["set-cookie"].lower().replace(" ", "")
        assert (await c.get("/audit/events")).status_code == 200


# -- the OpenAPI document -----------------------------------------------------------------


async def test_the_openapi_document_describes_the_schemes_not_the_token(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert TOKEN not in response.text
    schema = response.json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["token"] == schemes["token"] | {"type": "http", "scheme": "bearer"}
    assert schemes["session"] | {"in": "cookie", "name": "event_log_session"} == schemes["session"]
    for path, operations in schema["paths"].items():
        operation = operations["get"]
        assert {"token": []} in operation["security"], path
        assert "401" in operation["responses"], path
        names = {p["name"] for p in operation.get("parameters", [])}
        assert "token" not in names
    assert "/login" not in schema["paths"]


async def test_without_a_token_the_app_is_open_and_has_no_login(db_url):
    async with serving(create_app(db_url)) as c:
        assert (await c.get("/events")).status_code == 200
        assert (await c.get("/")).status_code == 200
        assert (await c.get("/login")).status_code == 404
        assert "securitySchemes" not in (await c.get("/openapi.json")).json().get("components", {})


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "empty"),
        ("two words", "visible ASCII"),
        ("tab\there", "visible ASCII"),
        ("ünï", "ASCII"),
    ],
)
def test_a_token_a_client_cannot_send_back_is_refused(token, message):
    with pytest.raises(ValueError, match=message):
        check_token(token)
    with pytest.raises(ValueError, match=message):
        create_app("sqlite+aiosqlite://", token=token)


# -- serve() and loopback -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("0:0:0:0:0:0:0:1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LocalHost.", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.5", False),
        ("10.0.0.1", False),
        ("example.org", False),
        ("localhost.example.org", False),
        ("128.0.0.1", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_serve_refuses_a_public_interface_without_a_token(monkeypatch):
    started: list[Any] = []
    monkeypatch.setattr(
        "event_log.web._app.run_server", lambda *args, **kwargs: started.append(kwargs)
    )
    with pytest.raises(ValueError, match="needs a token"):
        serve("sqlite+aiosqlite://", host="0.0.0.0")
    with pytest.raises(ValueError, match="empty"):
        serve("sqlite+aiosqlite://", host="0.0.0.0", token="")
    assert not started
    serve("sqlite+aiosqlite://", host="0.0.0.0", token=TOKEN)
    serve("sqlite+aiosqlite://", host="0.0.0.0", insecure_no_auth=True)
    serve("sqlite+aiosqlite://", host="127.0.0.1")
    assert [kwargs["host"] for kwargs in started] == ["0.0.0.0", "0.0.0.0", "127.0.0.1"]


# -- a host app's own check, through include_router(dependencies=...) ----------------------


async def _check(authorization: Annotated[str | None, Header()] = None) -> None:
    if authorization is None:
        raise HTTPException(401, "sign in first", {"WWW-Authenticate": "Bearer"})
    if authorization != "Bearer host-key":
        raise HTTPException(403, "not for you")


async def test_a_host_app_mounts_the_router_behind_its_own_check(tmp_path):
    async with EventLogger.open(f"sqlite+aiosqlite:///{tmp_path / 'host.db'}") as log:
        event = await log.log_event("task.created", "coordinator", task_id="t-1")
        app = FastAPI()
        app.include_router(create_router(log, prefix="/audit"), dependencies=[Depends(_check)])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://host") as c:
            paths = [
                "/audit/events",
                f"/audit/events/{event.id}",
                "/audit/summary",
                "/audit/tasks/t-1/events",
                "/audit/agents/a-1/events",
                "/audit/",
            ]
            for path in [*paths, "/audit/stream"]:
                assert (await c.get(path)).status_code == 401, path
                denied = await c.get(path, headers={"Authorization": "Bearer other"})
                assert denied.status_code == 403, path
                assert denied.json() == {"detail": "not for you"}
            for path in paths:
                allowed = await c.get(path, headers={"Authorization": "Bearer host-key"})
                assert allowed.status_code == 200, path
            listed = await c.get("/audit/events", headers={"Authorization": "Bearer host-key"})
            assert [e["id"] for e in listed.json()["events"]] == [event.id]
