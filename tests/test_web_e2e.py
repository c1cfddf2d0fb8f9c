"""End to end: the real server in its own process, the page in headless Chromium.

``serve()`` (what ``event-log serve`` runs) is started in a subprocess on a
free loopback port over a file SQLite database. This process writes to the same
file through the library, as a coordinator would, and Playwright drives Debian's
``/usr/bin/chromium`` (no browser download). Screenshots go to
``$EVENT_LOG_TEST_ARTIFACTS`` when set, else to the test's ``tmp_path``.

Without Chromium the test skips, saying how to install it; under ``CI=true`` it
fails instead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from event_log import Event, EventLogger

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


@pytest.fixture
def async_api() -> Any:
    """Checked before the server starts, so a machine without a browser skips at once."""
    return _need_browser()


@dataclass(frozen=True)
class Served:
    base: str
    db_url: str
    seeded: list[Event]
    artifacts: Path


async def _seed(url: str) -> list[Event]:
    now = datetime.now(UTC)
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
        return [
            await log.log_event(
                kind,
                source,
                task_id=task,
                agent_id=agent,
                data={"step": n},
                timestamp=now - timedelta(minutes=30 - 4 * n),
            )
            for n, (kind, source, task, agent) in enumerate(rows)
        ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``serve()`` in a subprocess over a seeded file database."""
    artifacts = Path(os.environ.get("EVENT_LOG_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    # A private loop in a worker thread keeps asyncio.run away from pytest-asyncio's.
    with ThreadPoolExecutor(max_workers=1) as pool:
        seeded = pool.submit(asyncio.run, _seed(db_url)).result()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    code = f"from event_log.web import serve; serve({db_url!r}, host='127.0.0.1', port={port})"
    log_path = artifacts / "server.log"
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
        yield Served(base, db_url, seeded, artifacts)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    text = log_path.read_text()
    assert "Traceback" not in text, text


async def test_live_page_in_chromium(async_api: Any, served: Served) -> None:
    problems: list[str] = []
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # bypass_csp lets Playwright evaluate its checks in the page; it also
            # means the XSS check below tests the escaping, not the CSP behind it.
            page = await browser.new_page(viewport=LAPTOP, bypass_csp=True)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on(
                "console",
                lambda msg: problems.append(f"console {msg.type}: {msg.text}")
                if msg.type in ("error", "warning")
                else None,
            )
            await page.goto(served.base + "/")
            await page.wait_for_selector('#status[data-state="live"]', timeout=10_000)

            # The stored events, newest first.
            feed = page.locator("#events > li")
            await page.wait_for_function(
                f"document.querySelectorAll('#events > li').length === {len(served.seeded)}"
            )
            shown = await feed.evaluate_all("items => items.map(li => li.dataset.eventId)")
            assert shown == [e.id for e in reversed(served.seeded)]

            # The summary chart: stacked bars over time, and the counts by type.
            assert await page.locator("#timechart rect.bar").count() >= len(served.seeded) - 1
            counts = page.locator('#typecounts li[data-type="task.created"] .n')
            assert await counts.text_content() == "2"
            assert await page.locator("#summary-total").text_content() == "7 events"

            # A mark on this page's window: gone if the page reloads.
            await page.evaluate("window.__sameDocument = true")
            async with EventLogger.open(served.db_url) as log:
                # A new event, written by another process, pushed to the open page by the
                # stream: marked fresh (a listing's items are not), on top, no reload.
                event = await log.log_event(
                    "tool.completed", "a-1", task_id="t-1", agent_id="a-1", data={"ok": True}
                )
                await page.wait_for_selector(
                    f'#events > li[data-event-id="{event.id}"]', timeout=10_000
                )
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

                # The task timeline, reached by clicking a task id.
                await page.locator(
                    f'#events > li[data-event-id="{event.id}"] a.task'
                ).click()
                await page.wait_for_selector("#timeline:not([hidden])")
                task_events = [e for e in served.seeded if e.task_id == "t-1"] + [event]
                steps = page.locator("#timeline-list li.step")
                await page.wait_for_function(
                    "document.querySelectorAll('#timeline-list li.step').length === "
                    f"{len(task_events)}"
                )
                order = await steps.evaluate_all("items => items.map(li => li.dataset.eventId)")
                assert order == [e.id for e in task_events], "oldest first"
                assert await page.locator("#timeline-task").text_content() == "t-1"
                assert (await steps.first.locator(".offset").text_content()) == "+0.000s"

                # The summary catches up with the new events.
                await page.wait_for_function(
                    "document.querySelector('#summary-total').textContent === '9 events'",
                    timeout=10_000,
                )
                await page.screenshot(path=served.artifacts / "web-laptop.png", full_page=True)

                # Filters: only tool events now, old and new.
                await page.fill('input[name="type"]', "tool.*")
                await page.click('#filter-form button[type="submit"]')
                await page.wait_for_function(
                    "[...document.querySelectorAll('#events > li')].every("
                    "li => li.querySelector('.type').textContent.startsWith('tool.'))"
                    " && document.querySelectorAll('#events > li').length === 2"
                )
                assert "type=tool.*" in page.url.replace("%2A", "*")
                await page.wait_for_selector('#status[data-state="live"]')
                await log.log_event("task.failed", "a-1", task_id="t-2")
                tool = await log.log_event("tool.failed", "a-1", task_id="t-2")
                await page.wait_for_selector(
                    f'#events > li[data-event-id="{tool.id}"]', timeout=10_000
                )
                assert await feed.count() == 3

            # A phone: one column, nothing wider than the screen.
            phone = await browser.new_page(
                viewport=PHONE, is_mobile=True, has_touch=True, bypass_csp=True
            )
            await phone.goto(served.base + "/#task=t-1")
            await phone.wait_for_selector('#status[data-state="live"]', timeout=10_000)
            await phone.wait_for_selector("#timeline-list li.step")
            await phone.wait_for_selector("#timechart rect.bar")
            overflow = await phone.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"the page is {overflow}px wider than a phone"
            columns = await phone.evaluate(
                "getComputedStyle(document.querySelector('main'))"
                ".gridTemplateColumns.split(' ').length"
            )
            assert columns == 1
            await phone.evaluate("window.scrollTo(0, 0)")  # the sticky header on top
            await phone.screenshot(path=served.artifacts / "web-phone.png", full_page=True)
        finally:
            await browser.close()
    assert problems == []
    print("screenshots:", served.artifacts / "web-laptop.png", served.artifacts / "web-phone.png")

