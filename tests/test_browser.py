"""The demo page in a real browser: ``python -m faye_websocket demo`` (on each
``--backend``) loaded in headless Chromium, driven by Playwright; and the
chat page of ``chat --redis`` on two processes (asyncio and trio) sharing a
redis-server of the test's own.

The browser is the system's Chromium (Debian's ``chromium`` package, which
``.ci/run`` installs when it is missing), never one downloaded by
``playwright install``. Without a Chromium binary the test is skipped, visibly.

Playwright's async API runs only on asyncio, so this module pins the test's own
anyio backend to asyncio; both backends of the server are covered through the
command's ``--backend``, which is what the test is about. (The sync API in a
worker thread would also run under trio, but would only repeat the same
browser session with a thread and a second event loop in the way.)
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from .hub_helpers import free_port, redis_server
from .test_asgi import AsgiServer
from .test_cli import TIMEOUT, run_cli

pytestmark = pytest.mark.anyio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Headless, offline, no sandbox (CI runs as root, in containers).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
#: Bound on every Playwright wait, launch included (milliseconds).
WAIT_MS = 10_000
#: Bound on closing the browser and stopping Playwright's driver (seconds).
CLOSE_TIMEOUT = 5
#: The demo's EventSource period: ``Time: 1`` after 0.5 s, ``update #1`` 0.25 s later.
INTERVAL = "0.5"
MESSAGE = "hello from Chromium, ünïcode ✓"


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """The system's Chromium, headless, closed (with Playwright's driver)
    within CLOSE_TIMEOUT whatever happens in the block."""
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=WAIT_MS)
        try:
            yield browser
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
                await browser.close()
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
            await playwright.stop()


@pytest.fixture
def anyio_backend() -> str:
    """Playwright's async API needs asyncio (see the module docstring)."""
    return "asyncio"


@pytest.fixture(params=["asyncio", "trio"])
def cli_backend(request: pytest.FixtureRequest) -> str:
    """The ``--backend`` the demo runs on."""
    return str(request.param)


async def test_demo_page_in_chromium(cli_backend: str, free_tcp_port: int) -> None:
    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH (chromium or chromium-browser); "
                    ".ci/run installs Debian's chromium package")
    port = free_tcp_port
    with anyio.fail_after(TIMEOUT):
        async with run_cli("demo", cli_backend, port, "--interval", INTERVAL) as cli:
            async with chromium() as browser:
                await _check_demo_page(browser, port)
            # The server saw the browser's WebSocket, with the first subprotocol.
            assert await cli.expect_line("open ws://") == \
                f"open ws://127.0.0.1:{port}/ hybi-13 irc"


async def _check_demo_page(browser: Browser, port: int) -> None:
    page: Page = await browser.new_page()
    page.set_default_timeout(WAIT_MS)
    page.set_default_navigation_timeout(WAIT_MS)
    errors: list[Exception] = []
    # A lambda, not errors.append: Playwright sets an attribute on each handler.
    page.on("pageerror", lambda error: errors.append(error))
    await page.goto(f"http://127.0.0.1:{port}/")

    # WebSocket: open with the "irc" subprotocol, then a message and its echo.
    await expect(page.locator("#ws-state")).to_have_text("open (irc)", timeout=WAIT_MS)
    await page.locator("#ws-input").fill(MESSAGE)
    await page.locator("#ws-form button").click()
    ws_log = page.locator("#ws-log li")
    await expect(ws_log.get_by_text(f"< {MESSAGE}", exact=True)).to_have_count(1,
                                                                             timeout=WAIT_MS)
    await expect(ws_log).to_have_text([f"< {MESSAGE}", f"> {MESSAGE}"], timeout=WAIT_MS)
    await expect(page.locator("#ws-input")).to_have_value("", timeout=WAIT_MS)

    # EventSource: the welcome, "Time: 1", then the "update" event with id 1.
    await expect(page.locator("#es-state")).to_have_text("open", timeout=WAIT_MS)
    es_log = page.locator("#es-log li")
    await expect(es_log.get_by_text("Welcome!", exact=False)).to_have_count(1, timeout=WAIT_MS)
    await expect(es_log.get_by_text("Time: 1", exact=True)).to_have_count(1, timeout=WAIT_MS)
    await expect(es_log.get_by_text("update #1: Update!!", exact=True)).to_have_count(
        1, timeout=WAIT_MS)
    await expect(page.locator("#es-state")).to_have_text("open", timeout=WAIT_MS)

    assert errors == []


@pytest.mark.parametrize("asgi_server_name", ["uvicorn", "hypercorn-trio"])
async def test_demo_page_through_the_asgi_adapters_in_chromium(
        asgi_server_name: str, tmp_path: Path) -> None:
    """The same page, served by a Starlette app (tests/asgi/apps.py) whose
    WebSocket and event stream are ours, through WebSocket.from_asgi and
    EventSource.from_asgi, under uvicorn and under hypercorn's trio worker."""
    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH (chromium or chromium-browser); "
                    ".ci/run installs Debian's chromium package")
    server = AsgiServer(asgi_server_name, tmp_path)
    try:
        server.wait_ready()
        with anyio.fail_after(TIMEOUT):
            async with chromium() as browser:
                await _check_demo_page(browser, server.port)
    finally:
        server.stop()
    assert "Traceback" not in server.output(), server.output()


async def test_chat_page_in_chromium_across_two_processes_sharing_redis() -> None:
    """``chat --redis`` on two ports (asyncio and trio): a message typed in
    the page of one appears in the page of the other; the other process is
    restarted, its page's EventSource reconnects (with its Last-Event-ID)
    and shows what was typed meanwhile, in order, with no gap (no ``lost``
    line) and nothing twice."""
    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH (chromium or chromium-browser); "
                    ".ci/run installs Debian's chromium package")
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH; .ci/run installs Debian's redis-server")
    port_a, port_b = free_port(), free_port()
    with redis_server() as redis, anyio.fail_after(4 * TIMEOUT):
        async with run_cli("chat", "asyncio", port_a, "--redis", redis.url):
            async with chromium() as browser:
                page_a, page_b = await browser.new_page(), await browser.new_page()
                async with run_cli("chat", "trio", port_b, "--redis", redis.url):
                    await _open_chat(page_a, port_a)
                    await _open_chat(page_b, port_b)
                    await _say(page_a, "from A, ünïcode ✓")
                    await expect(page_b.locator("#log li").first).to_have_text(
                        "from A, ünïcode ✓", timeout=WAIT_MS)
                # B is gone: its page's EventSource is reconnecting.
                await expect(page_b.locator("#state")).to_have_text(
                    "reconnecting", timeout=WAIT_MS)
                for i in range(3):
                    await _say(page_a, f"while B was away {i}")
                async with run_cli("chat", "trio", port_b, "--redis", redis.url):
                    await expect(page_b.locator("#log li")).to_have_text(
                        ["while B was away 2", "while B was away 1", "while B was away 0",
                         "from A, ünïcode ✓"], timeout=3 * WAIT_MS)
                    await expect(page_b.locator("#state")).to_have_text(
                        "online", timeout=WAIT_MS)


async def _open_chat(page: Page, port: int) -> None:
    await page.goto(f"http://127.0.0.1:{port}/", timeout=WAIT_MS)
    await expect(page.locator("#state")).to_have_text("online", timeout=WAIT_MS)
    # The page's WebSocket (a global of its script) is open.
    await page.wait_for_function("() => ws.readyState === WebSocket.OPEN", timeout=WAIT_MS)


async def _say(page: Page, text: str) -> None:
    await page.locator("#text").fill(text)
    await page.locator("#text").press("Enter")
    await expect(page.locator("#log li").first).to_have_text(text, timeout=WAIT_MS)
