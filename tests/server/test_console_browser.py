"""The console in Debian's headless Chromium (driven by Playwright, pointed at the system
browser): it lists chats, shows new turns live, and sends a human's answer to the chat.

Under CI=true a missing Chromium or Playwright is a failure, never a skip. Screenshots are kept
in the test's tmp dir.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

import pytest
from serve_helpers import ADMIN, SLOW, admin_client, read_events, running_server

from moot.journal import InMemoryChatStore

if TYPE_CHECKING:
    from pathlib import Path

    from moot.server import Teams
    from moot.testing import ScriptedModelServer


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


@pytest.fixture
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        _missing("Chromium is not installed: sudo apt-get install -y chromium")
    assert found is not None
    return found


async def test_console_lists_chats_streams_turns_and_answers_input(
    teams: Teams, model: ScriptedModelServer, chromium: str, tmp_path: Path
) -> None:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("playwright is not installed (it is in the dev extra)")
    model.push("hello from the pair TERMINATE", "first answer", "second answer TERMINATE")
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            pair = (await client.post("/chats", json={"team": "pair", "message": "hi"})).json()
            await read_events(client, pair["chat_id"])
            ask = (await client.post("/chats", json={"team": "ask", "message": "hello"})).json()
            await read_events(client, ask["chat_id"], until="input.asked")

            errors: list[str] = []
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=chromium, headless=True)
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on(
                    "console",
                    lambda msg: errors.append(msg.text) if msg.type == "error" else None,
                )
                await page.goto(f"{base}/#token={ADMIN}")
                for chat in (pair, ask):
                    await page.wait_for_selector(f'#chats tr[data-chat="{chat["chat_id"]}"]')
                assert "waiting" in await page.inner_text(f'tr[data-chat="{ask["chat_id"]}"]')

                await page.click(f'#chats tr[data-chat="{ask["chat_id"]}"]')
                await page.wait_for_selector('#turns li[data-turn="2"]')
                await page.wait_for_selector(".ask textarea")
                await page.screenshot(path=str(tmp_path / "console-waiting.png"))
                await page.fill(".ask textarea", "tell me more")
                await page.click(".ask button")
                # The answer and the model's reply arrive as new turns, with no reload.
                await page.wait_for_selector('#turns li[data-turn="4"]')
                assert "second answer" in await page.inner_text('#turns li[data-turn="4"]')
                await page.wait_for_selector(".ask textarea")  # the human is asked again
                await page.wait_for_function(
                    "document.getElementById('m-rate').textContent !== '–'"
                )
                await page.screenshot(path=str(tmp_path / "console-1280.png"))
                await page.set_viewport_size({"width": 390, "height": 844})
                await page.screenshot(path=str(tmp_path / "console-phone.png"), full_page=True)
                await browser.close()

            chat = (await client.get(f"/chats/{ask['chat_id']}")).json()
            texts = [t["message"]["content"] for t in chat["transcript"]]
            assert texts[2] == "tell me more"  # the answer typed in the page reached the chat
            assert errors == []
    assert (tmp_path / "console-1280.png").stat().st_size > 10_000


async def test_console_approves_a_pending_code_run(
    teams: Teams, model: ScriptedModelServer, chromium: str, tmp_path: Path, work_dir: Path
) -> None:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("playwright is not installed (it is in the dev extra)")
    model.push("```python\nopen('ran.txt', 'w').write('x')\nprint(6 * 7)\n```", "done TERMINATE")
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat = (await client.post("/chats", json={"team": "code", "message": "go"})).json()
            await read_events(client, chat["chat_id"], until="approval.asked")
            errors: list[str] = []
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=chromium, headless=True)
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on(
                    "console",
                    lambda msg: errors.append(msg.text) if msg.type == "error" else None,
                )
                await page.goto(f"{base}/#token={ADMIN}")
                await page.click(f'#chats tr[data-chat="{chat["chat_id"]}"]')
                await page.wait_for_selector(".ask .approve")
                assert not list(work_dir.rglob("ran.txt"))
                await page.click(".ask .approve")
                await page.wait_for_selector("#turns .exit.ok")
                assert "42" in await page.inner_text("#turns")
                await page.screenshot(path=str(tmp_path / "console-approved.png"))
                await browser.close()
            assert errors == []
    assert list(work_dir.rglob("ran.txt"))


async def test_console_shows_tokens_before_the_turn_ends(
    teams: Teams, model: ScriptedModelServer, chromium: str, tmp_path: Path
) -> None:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("playwright is not installed (it is in the dev extra)")
    model.push(SLOW)  # streams on for minutes: the turn does not end while we look
    async with InMemoryChatStore() as store, running_server(store, teams) as (_, base):
        async with admin_client(base) as client:
            chat = (await client.post("/chats", json={"team": "stream", "message": "go"})).json()
            await read_events(client, chat["chat_id"], until="token")
            errors: list[str] = []
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=chromium, headless=True)
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on(
                    "console",
                    lambda msg: errors.append(msg.text) if msg.type == "error" else None,
                )
                await page.goto(f"{base}/#token={ADMIN}")
                await page.click(f'#chats tr[data-chat="{chat["chat_id"]}"]')
                await page.wait_for_selector('#turns li[data-turn="0"], #turns li[data-turn="1"]')
                await page.wait_for_function(
                    "(document.querySelector('#streaming .text') || {}).textContent?.length > 20"
                )
                assert await page.query_selector('#turns li[data-turn="2"]') is None
                assert "assistant" in await page.inner_text("#streaming .who")
                await page.screenshot(path=str(tmp_path / "console-streaming.png"))
                await page.click("#stop")
                await page.wait_for_selector("#view-status .finished")
                await browser.close()
            assert errors == []
