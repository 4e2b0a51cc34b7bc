"""The FastAPI chat page in a real headless Chromium: streamed text, then a closed tab.

"The browser goes away, LM Studio stops" is tested where it happens: in a browser. Selenium
drives Debian's Chromium through its ChromeDriver (nothing is downloaded); the page's
EventSource talks to the example app under uvicorn, which talks to a simulator in this process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from example_helpers import start_app

from lmstudio_async.testing import ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

CHROMIUM = (
    os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")

if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "needs Chromium and its ChromeDriver, which are not installed: on Debian/Ubuntu run "
        "`apt-get install chromium chromium-driver` (CI's .ci/run does), or point CHROMIUM and "
        "CHROMEDRIVER at other binaries",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402  (only importable once the skip above passed)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

STORY = " ".join(f"word{n}" for n in range(1000))


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium with the flags this closed, root-run machine needs."""
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not go looking online
    with tempfile.TemporaryDirectory() as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=900,600",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def ask(driver: webdriver.Chrome, prompt: str) -> None:
    field = driver.find_element(By.ID, "prompt")
    field.clear()
    field.send_keys(prompt)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def text_of(driver: webdriver.Chrome, element_id: str) -> str:
    text: str = driver.find_element(By.ID, element_id).text
    return text


def chat_then_close_the_tab(driver: webdriver.Chrome, url: str, screenshot: Path) -> list[str]:
    """Runs in a worker thread (Selenium blocks); returns what the page showed."""
    wait = WebDriverWait(driver, 30)
    driver.get(url)
    ask(driver, "Hello there")
    wait.until(lambda d: text_of(d, "stats") != "")
    first = [text_of(driver, "reasoning"), text_of(driver, "reply"), text_of(driver, "stats")]
    dimmed = driver.find_element(By.ID, "reasoning").value_of_css_property("color")
    ask(driver, "Tell me a long story")
    wait.until(lambda d: "word5 " in text_of(d, "reply"))
    partial = text_of(driver, "reply")
    driver.save_screenshot(str(screenshot))
    chat_tab = driver.current_window_handle
    driver.switch_to.new_window("tab")  # the browser stays open...
    driver.switch_to.window(chat_tab)
    driver.close()  # ...while the tab goes away mid-reply
    return [*first, dimmed, partial]


async def test_the_chat_page_streams_and_a_closed_tab_cancels_the_prediction(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    async with Simulator() as sim:
        sim.script(
            "qwen2.5-7b-instruct",
            # A thinking model: its reasoning must show, not a blank page until the answer.
            ScriptedReply(reasoning="The user greets me.", content="You said: Hello there"),
            ScriptedReply(content=STORY, tokens_per_second=50),
        )
        process, url = await start_app(sim)
        async with process:
            try:
                screenshot = tmp_path / "chat.png"
                thinking, reply, stats, dimmed, partial = await anyio.to_thread.run_sync(
                    chat_then_close_the_tab, browser, url + "/", screenshot
                )
                await sim.wait_for(lambda: sim.predictions[-1].cancel_received, timeout=15)
            finally:
                process.terminate()
        first, second = sim.predictions
    assert thinking == "The user greets me."
    assert dimmed == "rgba(136, 136, 136, 1)"  # #888, apart from the answer's black
    assert reply == "You said: Hello there"
    assert stats.endswith(" tokens, stop reason: eosFound")
    assert first.status == "finished"
    assert partial.startswith("word0 word1 word2 word3 word4 word5")
    assert second.status == "cancelled"
    assert second.fragments_sent < 1000
    assert screenshot.read_bytes().startswith(b"\x89PNG")
