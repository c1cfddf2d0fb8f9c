"""End to end: the real server in its own process, the page in headless Chromium.

``serve()`` (what ``event-log serve`` runs) is started once for the module in a
subprocess on a free loopback port over a file SQLite database, and one
Chromium is shared by the tests (each opens its own browser context). This
process writes to the same file through the library, as a coordinator would,
and Playwright drives Debian's ``/usr/bin/chromium`` (no browser download).
The page's Content-Security-Policy stays on, so a blocked script or style is a
console error and fails the test. Screenshots go to ``$EVENT_LOG_TEST_ARTIFACTS``
when set, else to a temporary directory; the path is printed. One more server,
over a database a seeded swarm run filled, is photographed for the documentation
(``docs/images/live-page.png``, rewritten by every run).

Tests write events that later tests also see, so each one looks at its own
slice of the log (a source, a task) or counts what it added itself.

Without Chromium the tests skip, saying how to install it; under ``CI=true``
they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from event_log import Event, EventLogger
from event_log.swarm import run_swarm

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = os.environ.get("EVENT_LOG_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# The colour of failures (--bad in page.css) as computed styles give it.
RED = "rgb(220, 38, 38)"
# Chromium's console line for an HTTP error answer: expected for a refused filter.
_REFUSED = re.compile(r"status of 400 \(Bad Request\)")
# The documentation's picture of the live page (docs/web.md shows it).
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "live-page.png"


def _need_browser() -> Any:
    """Playwright's async API, or a skip (a failure under CI) saying what is missing."""
    problems = []
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        problems.append(
            f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium, "
            "or set EVENT_LOG_TEST_CHROMIUM)"
        )
    try:
        from playwright import async_api
    except ImportError:
        problems.append("Playwright is not installed (pip install -e '.[test]')")
        async_api = None
    if problems:
        message = "; ".join(problems)
        if IN_CI:
            pytest.fail(f"the browser test must run under CI: {message}")
        pytest.skip(message)
    return async_api


@dataclass
class Seeded:
    """The events the server starts with, by the slice each test looks at."""

    all: list[Event] = field(default_factory=list)
    task: list[Event] = field(default_factory=list)  # t-9: a task with failed steps
    bulk: list[Event] = field(default_factory=list)  # source "bulk": pages of five

    def newest_first(self, events: list[Event] | None = None) -> list[str]:
        chosen = self.all if events is None else events
        return [e.id for e in sorted(chosen, key=lambda e: (e.timestamp, e.id), reverse=True)]


@dataclass(frozen=True)
class Served:
    base: str
    db_url: str
    seeded: Seeded
    artifacts: Path


# Seconds after t-9's first event that each of its steps happened.
TASK_STEPS = [
    ("task.created", "coordinator", 0.0),
    ("task.assigned", "coordinator", 0.8),
    ("task.started", "a-2", 4.5),
    ("tool.called", "a-2", 5.0),
    ("tool.failed", "a-2", 7.2),
    ("task.failed", "a-2", 7.5),
]


async def _seed(url: str) -> Seeded:
    now = datetime.now(UTC).replace(microsecond=0)
    seeded = Seeded()
    rows = [
        ("agent.joined", "coordinator", None, "a-1"),
        ("task.created", "coordinator", "t-1", None),
        ("bid.submitted", "a-1", "t-1", "a-1"),
        ("task.assigned", "coordinator", "t-1", "a-1"),
        ("tool.called", "a-1", "t-1", "a-1"),
        ("task.created", "coordinator", "t-2", None),
        ("task.completed", "a-1", "t-1", "a-1"),
    ]
    async with EventLogger.open(url) as log:
        for n, (kind, source, task, agent) in enumerate(rows):
            seeded.all.append(
                await log.log_event(
                    kind,
                    source,
                    task_id=task,
                    agent_id=agent,
                    data={"step": n},
                    timestamp=now - timedelta(minutes=30 - 4 * n),
                )
            )
        start = now - timedelta(minutes=20)
        for kind, source, after in TASK_STEPS:
            event = await log.log_event(
                kind,
                source,
                task_id="t-9",
                agent_id="a-2" if source == "a-2" else None,
                timestamp=start + timedelta(seconds=after),
            )
            seeded.task.append(event)
        for n in range(12):
            # Two share a timestamp: paging must neither skip nor repeat either.
            moment = now - timedelta(minutes=45 - min(n, 10))
            seeded.bulk.append(await log.log_event("bulk.tick", "bulk", timestamp=moment))
    seeded.all += seeded.task + seeded.bulk
    return seeded


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _serving(db_url: str, log_path: Path) -> Iterator[str]:
    """``serve()`` over ``db_url`` in a subprocess on a free loopback port: its base URL.

    The server's output goes to ``log_path``; a traceback there fails the test.
    """
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    code = f"from event_log.web import serve; serve({db_url!r}, host='127.0.0.1', port={port})"
    with log_path.open("wb") as server_log:
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=server_log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                with urllib.request.urlopen(f"{base}/events?limit=1", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not start:\n" + log_path.read_text()
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    text = log_path.read_text()
    assert "Traceback" not in text, text


def _artifacts(tmp_path: Path) -> Path:
    artifacts = Path(os.environ.get("EVENT_LOG_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    return artifacts


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``serve()`` in a subprocess over a seeded file database, for the whole module."""
    _need_browser()  # a machine without a browser skips before the server starts
    tmp_path = tmp_path_factory.mktemp("web-e2e")
    artifacts = _artifacts(tmp_path)
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    # A private loop in a worker thread keeps asyncio.run away from pytest-asyncio's.
    with ThreadPoolExecutor(max_workers=1) as pool:
        seeded = pool.submit(asyncio.run, _seed(db_url)).result()
    with _serving(db_url, artifacts / "server.log") as base:
        yield Served(base, db_url, seeded, artifacts)
    print("screenshots in", artifacts)


@dataclass(frozen=True)
class SwarmServed:
    base: str
    events: int
    failed_task: str


async def _swarm(url: str) -> tuple[int, str]:
    """A swarm run of five agents and ten tasks logged to ``url``: its event count and a
    failed task's id (the seed and one task at a time make the same run every time)."""
    async with EventLogger.open(url) as log:
        report = await run_swarm(
            log,
            agents=5,
            tasks=10,
            seed=7,
            time_scale=0.05,
            failure_rate=0.3,
            max_concurrent=1,
            run_id="docs",
        )
        events = await log.count_events()
    failed = [o.task_id for o in report.outcomes if o.status == "failed"]
    assert failed, "the seeded run has no failed task to show"
    return events, failed[0]


@pytest.fixture(scope="module")
def swarm_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmServed]:
    """A second server, over the log of a seeded swarm run, for the documentation."""
    _need_browser()
    tmp_path = tmp_path_factory.mktemp("web-e2e-swarm")
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'swarm.db'}"
    with ThreadPoolExecutor(max_workers=1) as pool:
        events, failed_task = pool.submit(asyncio.run, _swarm(db_url)).result()
    with _serving(db_url, _artifacts(tmp_path) / "swarm-server.log") as base:
        yield SwarmServed(base, events, failed_task)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(served: Served) -> AsyncIterator[Any]:
    async_api = _need_browser()
    async with async_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


class Pages:
    """Browser contexts for one test; their console errors fail it at the end."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.contexts: list[Any] = []
        self.problems: list[str] = []

    async def open(self, **options: Any) -> Any:
        options.setdefault("viewport", LAPTOP)
        context = await self.browser.new_context(**options)
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("console", self._console)
        return page

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning") and not _REFUSED.search(message.text):
            self.problems.append(f"console {message.type}: {message.text}")


@pytest_asyncio.fixture(loop_scope="module")
async def pages(browser: Any) -> AsyncIterator[Pages]:
    opened = Pages(browser)
    try:
        yield opened
    finally:
        for context in opened.contexts:
            await context.close()
    assert opened.problems == []


async def _until(page: Any, expression: str, wait_ms: float = 10_000) -> None:
    """Waits for ``expression`` to hold in the page.

    Given as a function, not a bare expression: Playwright evaluates a bare one
    with eval(), which the page's CSP (rightly) refuses.
    """
    await page.wait_for_function(f"() => ({expression})", timeout=wait_ms)


async def _live(page: Any) -> None:
    await page.wait_for_selector('#status[data-state="live"]', timeout=10_000)


async def _shown(page: Any) -> list[str]:
    ids: list[str] = await page.locator("#events > li").evaluate_all(
        "items => items.map(li => li.dataset.eventId)"
    )
    return ids


async def test_live_page_in_chromium(served: Served, pages: Pages) -> None:
    page = await pages.open()
    await page.goto(served.base + "/")
    await _live(page)

    # The stored events, newest first, as the server rendered them.
    assert await _shown(page) == served.seeded.newest_first()
    total = len(served.seeded.all)

    # The summary chart: stacked bars over time, and the counts by type.
    await page.wait_for_selector("#timechart rect.bar")
    assert await page.locator("#timechart rect.bar").count() >= 7
    counts = page.locator('#typecounts li[data-type="task.created"] .n')
    assert await counts.text_content() == "3"
    assert await page.locator("#summary-total").text_content() == f"{total} events"

    # A mark on this page's window: gone if the page reloads.
    await page.evaluate("window.__sameDocument = true")
    async with EventLogger.open(served.db_url) as log:
        # A new event, written by another process, pushed to the open page by the
        # stream: marked fresh (a listing's items are not), on top, no reload.
        event = await log.log_event(
            "tool.completed", "a-1", task_id="t-1", agent_id="a-1", data={"ok": True}
        )
        await page.wait_for_selector(f'#events > li[data-event-id="{event.id}"]', timeout=10_000)
        feed = page.locator("#events > li")
        first = feed.first
        assert await first.get_attribute("data-event-id") == event.id, "prepended"
        assert "fresh" in ((await first.get_attribute("class")) or "").split()
        assert await page.evaluate("window.__sameDocument") is True
        assert await page.locator("#events > li.fresh").count() == 1

        # Untrusted text stays text.
        hostile = '<img src=x onerror="window.__xss=1">'
        evil = await log.log_event(
            "system.warning", hostile, task_id=hostile, data={hostile: hostile}
        )
        item = page.locator(f'#events > li[data-event-id="{evil.id}"]')
        await item.wait_for(timeout=10_000)
        assert await item.locator("img").count() == 0
        assert await item.locator(".src").text_content() == hostile
        assert await page.evaluate("window.__xss") is None

        # The task's waterfall and steps, reached by clicking a task id.
        await page.locator(f'#events > li[data-event-id="{event.id}"] a.task').click()
        await page.wait_for_selector("#timeline:not([hidden])")
        task_events = [e for e in served.seeded.all if e.task_id == "t-1"] + [event]
        await _until(
            page, f"document.querySelectorAll('#waterfall g.step').length === {len(task_events)}"
        )
        steps = page.locator("#timeline-list li.step")
        order = await steps.evaluate_all("items => items.map(li => li.dataset.eventId)")
        assert order == [e.id for e in task_events], "oldest first"
        assert await page.locator("#timeline-task").text_content() == "t-1"
        assert await steps.first.locator(".offset").text_content() == "+0.000s"

        # The summary catches up with the new events.
        await _until(
            page,
            f"document.querySelector('#summary-total').textContent === '{total + 2} events'",
        )

        # Filters: only tool events now, old and new.
        await page.fill('input[name="type"]', "tool.*")
        await page.click('#filter-form button[type="submit"]')
        await _until(
            page,
            "[...document.querySelectorAll('#events > li')].every("
            "li => li.querySelector('.type').textContent.startsWith('tool.'))"
            " && document.querySelectorAll('#events > li').length === 4",
        )
        assert "type=tool.*" in page.url.replace("%2A", "*")
        await _live(page)
        await log.log_event("task.failed", "a-1", task_id="t-2")
        tool = await log.log_event("tool.failed", "a-1", task_id="t-2")
        await page.wait_for_selector(f'#events > li[data-event-id="{tool.id}"]', timeout=10_000)
        assert await feed.count() == 5


async def test_a_refused_filter_is_shown_and_the_connection_stays_live(
    served: Served, pages: Pages
) -> None:
    page = await pages.open()
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/stream?" in r.url else None)
    await page.goto(served.base + "/?task_id=t-9")
    await _live(page)
    before = await _shown(page)
    url = page.url
    await page.fill('input[name="type"]', "Bad Type")
    await page.click('#filter-form button[type="submit"]')
    error = page.locator("#filter-error")
    await error.wait_for(state="visible")
    assert "'Bad Type' is neither an event type nor a prefix pattern" in (
        await error.text_content() or ""
    )
    assert await page.get_attribute('input[name="type"]', "aria-invalid") == "true"
    # The connection is not the filter's business: still live, the feed as it was.
    assert await page.locator("#status").get_attribute("data-state") == "live"
    assert await page.locator("#status").text_content() == "live"
    assert await _shown(page) == before
    assert page.url == url

    # Fixed, the filter applies and the message goes.
    await page.fill('input[name="type"]', "tool.*")
    await page.click('#filter-form button[type="submit"]')
    await error.wait_for(state="hidden")
    tools = [e for e in served.seeded.task if e.event_type.startswith("tool.")]
    await _until(page, f"document.querySelectorAll('#events > li').length === {len(tools)}")
    assert await page.get_attribute('input[name="type"]', "aria-invalid") is None

    # The same filter in the address: the server renders the message (a 400), no
    # stream is opened for it, and the connection still reads live.
    response = await page.goto(served.base + "/?type=Bad+Type")
    assert response.status == 400
    assert "'Bad Type' is neither" in (await error.text_content() or "")
    await _live(page)
    assert await page.locator("#events > li").count() == 0
    assert await page.locator("#feed-empty").text_content() == (
        "No events listed: the filter above has an error."
    )
    # A stream was opened for each valid filter, never for the refused one.
    assert len(streams) >= 2
    assert not [url for url in streams if "Bad" in url]


def _utc(event: Event) -> str:
    return event.timestamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def test_times_show_date_and_zone_utc_or_local(served: Served, pages: Pages) -> None:
    page = await pages.open(timezone_id="Asia/Tokyo")
    await page.goto(served.base + "/?task_id=t-9")
    await _live(page)
    newest = served.seeded.task[-1]
    time_ = page.locator(f'#events > li[data-event-id="{newest.id}"] time')
    assert await time_.text_content() == _utc(newest)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", _utc(newest))

    # The local zone, named in the switch and on each time; remembered on reload.
    zone = page.locator("#tz")
    assert "Asia/Tokyo" in (await zone.locator('option[value="local"]').text_content() or "")
    await zone.select_option("local")
    local = newest.timestamp.astimezone(UTC) + timedelta(hours=9)
    expected = local.strftime("%Y-%m-%d %H:%M:%S") + " UTC+09:00"
    assert await time_.text_content() == expected
    await page.reload()
    await _live(page)
    assert await zone.input_value() == "local"
    assert await time_.text_content() == expected

    # A time typed without a zone is read in the zone shown, and says so once applied.
    started = served.seeded.task[2]
    typed = (started.timestamp.astimezone(UTC) + timedelta(hours=9)).strftime("%Y-%m-%d %H:%M:%S")
    await page.click("#more-filters > summary")
    await page.fill('input[name="since"]', typed)
    await page.click('#filter-form button[type="submit"]')
    since = served.seeded.task[2:]  # typed is task.started's second, after task.assigned
    await _until(page, f"document.querySelectorAll('#events > li').length === {len(since)}")
    assert await _shown(page) == served.seeded.newest_first(since)
    assert await page.input_value('input[name="since"]') == typed.replace(" ", "T") + "+09:00"
    assert "since=" in page.url

    await zone.select_option("utc")
    assert await time_.text_content() == _utc(newest)


async def test_failures_stand_out_and_the_waterfall_shows_each_step(
    served: Served, pages: Pages
) -> None:
    page = await pages.open()
    await page.goto(served.base + "/?task_id=t-9")
    await _live(page)
    by_type = {e.event_type: e for e in served.seeded.task}

    def item(kind: str) -> Any:
        return page.locator(f'#events > li[data-event-id="{by_type[kind].id}"]')

    style = "el => [getComputedStyle(el).backgroundColor, getComputedStyle(el).boxShadow]"
    for kind in ("tool.failed", "task.failed"):
        assert "failed" in ((await item(kind).get_attribute("class")) or "").split()
        assert await item(kind).locator(".fail-mark").text_content() == "✖ failed"
        assert RED in " ".join(await item(kind).evaluate(style))
    for kind in ("task.started", "tool.called"):
        assert "failed" not in ((await item(kind).get_attribute("class")) or "").split()
        assert await item(kind).locator(".fail-mark").count() == 0
        assert RED not in " ".join(await item(kind).evaluate(style))

    # The task filter opens its waterfall: a bar per step, from it to the next step.
    await _until(
        page, f"document.querySelectorAll('#waterfall rect.bar').length === {len(TASK_STEPS)}"
    )
    steps = page.locator("#waterfall g.step")
    assert await steps.evaluate_all("gs => gs.map(g => g.dataset.eventId)") == [
        e.id for e in served.seeded.task
    ]
    labels = [
        " ".join(text.split())
        for text in await steps.locator("text.label").evaluate_all(
            "ts => ts.map(t => t.textContent)"
        )
    ]
    assert labels[1] == "task.assigned → task.started 3.7 s"
    assert labels[2] == "task.started → tool.called 500 ms"
    assert labels[4] == "✖ tool.failed → task.failed 300 ms"
    assert labels[5] == "✖ task.failed end, 7.5 s in all"
    fills = await steps.locator("rect.bar").evaluate_all(
        "rs => rs.map(r => getComputedStyle(r).fill)"
    )
    failed = [kind.endswith(".failed") for kind, _, _ in TASK_STEPS]
    assert [fill == RED for fill in fills] == failed
    classes = await steps.evaluate_all("gs => gs.map(g => g.classList.contains('failed'))")
    assert classes == failed
    # Bar widths follow the time between steps: the longest wait is the widest.
    widths = await steps.locator("rect.bar").evaluate_all("rs => rs.map(r => r.getBBox().width)")
    assert max(range(5), key=lambda i: widths[i]) == 1  # assigned, waiting 3.7 s to start
    await page.screenshot(path=served.artifacts / "web-laptop.png", full_page=True)


async def test_load_older_pages_through_the_cursor_without_duplicates(
    served: Served, pages: Pages
) -> None:
    page = await pages.open()

    async def small_cap(route: Any) -> None:
        # A feed of six before live events push the oldest out, to see that too.
        answer = await route.fetch()
        body = (await answer.text()).replace('data-cap="1000"', 'data-cap="6"', 1)
        await route.fulfill(response=answer, body=body)

    await page.route(lambda url: urlsplit(url).path == "/", small_cap)
    await page.goto(served.base + "/?source=bulk&limit=5")
    await _live(page)
    bulk = list(served.seeded.bulk)
    assert await _shown(page) == served.seeded.newest_first(bulk)[:5]
    older = page.locator("#load-older")
    assert await older.is_visible()

    async def load_older() -> None:
        async with page.expect_response(lambda r: "/events?" in r.url):
            await older.click()
        await _until(page, "!document.getElementById('load-older').disabled")

    async with EventLogger.open(served.db_url) as log:

        async def live_event() -> None:
            event = await log.log_event("bulk.tick", "bulk")
            bulk.append(event)
            await page.wait_for_selector(f'#events > li[data-event-id="{event.id}"]')
            assert (await _shown(page))[0] == event.id

        await live_event()  # six shown: at the cap
        await load_older()
        assert await _shown(page) == served.seeded.newest_first(bulk)[:11]
        assert "limit=5" in page.url
        assert "cursor=" not in page.url
        await live_event()  # past the cap: the oldest shown is pushed out
        assert len(await _shown(page)) == 11
        for _ in range(5):
            if not await older.is_visible():
                break
            await load_older()
    shown = await _shown(page)
    assert len(shown) == len(set(shown)), "no duplicates"
    assert shown == served.seeded.newest_first(bulk)
    assert await older.is_hidden()


async def test_the_first_page_reads_without_javascript(served: Served, pages: Pages) -> None:
    page = await pages.open(java_script_enabled=False)
    response = await page.goto(served.base + "/?task_id=t-9")
    assert response.status == 200
    items = page.locator("#events > li")
    assert await _shown(page) == served.seeded.newest_first(served.seeded.task)
    first = served.seeded.task[-1]
    assert await items.first.locator("time").text_content() == _utc(first)
    assert await items.first.locator(".type").text_content() == "task.failed"
    assert await items.first.locator(".fail-mark").text_content() == "✖ failed"
    assert await page.locator('input[name="task_id"]').input_value() == "t-9"
    assert await page.locator(".snapshot").is_visible()  # says it does not follow
    await page.screenshot(path=served.artifacts / "web-no-script.png", full_page=True)

    # The form submits as a plain GET; a bad filter comes back with its message.
    await page.fill('input[name="type"]', "Bad Type")
    async with page.expect_navigation():
        await page.click('#filter-form button[type="submit"]')
    assert "'Bad Type' is neither" in (await page.locator("#filter-error").text_content() or "")
    assert await page.locator("#filter-error").is_visible()


async def test_phone_layout(served: Served, pages: Pages) -> None:
    phone = await pages.open(viewport=PHONE, is_mobile=True, has_touch=True)
    await phone.goto(served.base + "/#task=t-9")
    await _live(phone)
    await phone.wait_for_selector("#waterfall rect.bar")
    await phone.wait_for_selector("#timechart rect.bar")
    overflow = await phone.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than a phone"
    columns = await phone.evaluate(
        "getComputedStyle(document.querySelector('main')).gridTemplateColumns.split(' ').length"
    )
    assert columns == 1
    # Every waterfall label fits the drawing.
    outside = await phone.locator("#waterfall text.label").evaluate_all(
        "ts => ts.filter(t => { const b = t.getBBox(); const w = t.ownerSVGElement"
        ".viewBox.baseVal.width; return b.x < 0 || b.x + b.width > w; }).length"
    )
    assert outside == 0
    await phone.evaluate("window.scrollTo(0, 0)")  # the sticky header on top
    await phone.screenshot(path=served.artifacts / "web-phone.png", full_page=True)


def _png_size(path: Path) -> tuple[int, int]:
    """A PNG file's width and height, read from its header (IHDR)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert head[12:16] == b"IHDR", f"{path} has no IHDR chunk first"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


async def test_the_documentation_screenshot_of_the_live_page(
    swarm_served: SwarmServed, pages: Pages
) -> None:
    """docs/images/live-page.png: a swarm run's newest events, live, beside the summary
    and the waterfall of a task that failed."""
    page = await pages.open()
    task = swarm_served.failed_task
    await page.goto(f"{swarm_served.base}/?limit=20#task={task}")
    await _live(page)
    assert await page.locator("#events > li").count() == 20
    await page.wait_for_selector("#timechart rect.bar")
    await _until(
        page,
        f"document.querySelector('#summary-total').textContent === '{swarm_served.events} events'",
    )
    await page.wait_for_selector("#timeline:not([hidden])")
    assert await page.locator("#timeline-task").text_content() == task
    await _until(page, "document.querySelectorAll('#waterfall g.step.failed').length > 0")

    DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    DOCS_SCREENSHOT.unlink(missing_ok=True)
    await page.screenshot(path=DOCS_SCREENSHOT, full_page=True)
    width, height = _png_size(DOCS_SCREENSHOT)
    assert width == LAPTOP["width"]
    assert height >= LAPTOP["height"]
