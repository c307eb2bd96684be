"""The tutorials' pages in headless Chromium: the chat page on two processes
sharing a redis-server (a line typed in one page appears in the other), and
the feed page across cut streams (the list has every event once, in order).

Playwright's async API runs only on asyncio (see tests/test_browser.py), so
the test's backend is pinned to asyncio; the programs' own backends are
covered by tests/test_docs.py.
"""

from __future__ import annotations

import shutil

import anyio
import pytest
from playwright.async_api import Page, expect

from .helpers import running, stop_process
from .hub_helpers import redis_server
from .test_browser import CHROMIUM, WAIT_MS, chromium
from .test_docs import load_example, start_program

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _need_chromium() -> None:
    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH (chromium or chromium-browser); "
                    ".ci/run installs Debian's chromium package")


async def _open_chat(page: Page, port: int) -> None:
    await page.goto(f"http://127.0.0.1:{port}/", timeout=WAIT_MS)
    await expect(page.locator("#state")).to_have_text("open", timeout=WAIT_MS)


async def _say(page: Page, text: str) -> None:
    await page.locator("#text").fill(text)
    await page.locator("#text").press("Enter")


async def test_tutorial_chat_pages_across_two_processes() -> None:
    _need_chromium()
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH; .ci/run installs Debian's redis-server")
    with redis_server() as redis, anyio.fail_after(60):
        process_a, port_a = await start_program("chat", "0", redis.url)
        try:
            process_b, port_b = await start_program("chat", "0", redis.url)
            try:
                async with chromium() as browser:
                    page_a, page_b = await browser.new_page(), await browser.new_page()
                    await _open_chat(page_a, port_a)
                    await _open_chat(page_b, port_b)
                    # A page's WebSocket is subscribed once its own line comes back.
                    await _say(page_b, "B is here")
                    await expect(page_b.locator("#log li")).to_have_text(
                        ["B is here"], timeout=WAIT_MS)
                    await _say(page_a, "hello from A, ünïcode ✓")
                    await expect(page_b.locator("#log li")).to_have_text(
                        ["B is here", "hello from A, ünïcode ✓"], timeout=WAIT_MS)
                    await expect(page_a.locator("#log li").last).to_have_text(
                        "hello from A, ünïcode ✓", timeout=WAIT_MS)
            finally:
                await stop_process(process_b)
        finally:
            await stop_process(process_a)


async def test_tutorial_feed_page_resumes(capsys: pytest.CaptureFixture[str]) -> None:
    """Events every 0.1 s, streams cut every 0.7 s: the browser's EventSource
    reconnects (retry: 1 s) with Last-Event-ID, and the list goes on from
    where it was, with no gap and nothing twice."""
    _need_chromium()
    example = load_example("feed_server")
    feed = example.Feed()
    opened: list[str] = []
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(example.produce, feed, 0.1)
            async with running(example.feed_server(feed, 0.7)) as port, \
                    chromium() as browser:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{port}/", timeout=WAIT_MS)
                # Past two cuts (0.7 s of stream, 1 s of retry, and again),
                # however long the browser took to start: then the page must
                # show every event produced by then.
                while len(opened) < 3:
                    opened += [line for line in capsys.readouterr().out.splitlines()
                               if line.startswith("stream opened after event ")]
                    await anyio.sleep(0.1)
                produced = len(feed.events)
                await expect(page.locator("#log li").nth(produced - 1)).to_be_attached(
                    timeout=WAIT_MS)
                shown = await page.locator("#log li").all_text_contents()
            tg.cancel_scope.cancel()
    assert shown == [f"{n}: tick {n}" for n in range(1, len(shown) + 1)]
    assert opened[0] == "stream opened after event 0"
    assert "stream opened after event 0" not in opened[1:]
