"""The war-room board: off without WARROOM_BOARD_TOKEN, 401 on a wrong token, its own assets only (CSP),
user text as text, and, in a real headless chromium, live: a new incident shows without a reload."""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from commands.config import Config, parse_config
from db.models import Launch, ProbeResult
from tests.conftest import TEST_CONFIG
from tests.harness import Harness
from tests.standin import SlackStandin

ROOT = Path(__file__).resolve().parent.parent
BOARD_TOKEN = "board-token-7f3a9c2e51"
ARTIFACTS = Path(os.environ.get("WARROOM_TEST_ARTIFACTS") or ROOT / "test-artifacts")
XSS = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\"> & checkout"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_browser = pytest.mark.skipif(
    not (Path(CHROMEDRIVER).exists() and Path(CHROMIUM).exists()) and not os.environ.get("CI"),
    reason="no chromium + chromium-driver (apt-get install chromium chromium-driver; .ci/run does)")


@pytest.fixture
def board_config() -> Config:
    return parse_config({**TEST_CONFIG, "probes": [
        {"name": "app", "url": "http://127.0.0.1:9/app?mock=0", "threshold_ms": 300}]})


@pytest.fixture
def board(standin: SlackStandin, database_url: str, board_config: Config, clock: ManualClock) -> Iterator[Harness]:
    harness = Harness(standin, database_url, board_config, clock, board_token=BOARD_TOKEN)
    yield harness
    harness.close()


def probe_readings(bot: Harness, minutes: int = 60) -> None:
    """What the probe loop stores (ProbeResult rows): one reading a minute before now, one of them failed."""
    with bot.session() as s:
        launch_id = s.exec(select(Launch)).one().id
        for n in range(minutes, 0, -1):
            at = bot.clock.now() - timedelta(minutes=n)
            failed = n == 20
            latency = None if failed else 180 + (n * 37) % 160
            s.add(ProbeResult(launch_id=launch_id, probe="app", checked_at=at, ok=not failed, latency_ms=latency,
                              status_code=None if failed else 200, error="ConnectError" if failed else None))
        s.commit()


def get(bot: Harness, path: str, token: str | None = BOARD_TOKEN) -> Any:
    return bot.http.get(path, params={"token": token} if token is not None else None)


# -- over HTTP ------------------------------------------------------------------------
def test_without_the_token_setting_the_board_is_not_there(bot: Harness) -> None:
    for path in ("/board", "/board.json", "/board/static/board.js"):
        assert get(bot, path, token="anything").status_code == 404


def test_a_missing_or_wrong_token_is_401_and_never_logged(board: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for path in ("/board", "/board.json"):
        assert get(board, path, token=None).status_code == 401
        wrong = get(board, path, token=BOARD_TOKEN[:-1] + "x")
        assert wrong.status_code == 401 and BOARD_TOKEN not in wrong.text
    assert get(board, "/board").status_code == 200
    bots = [r.getMessage() + str(r.__dict__) for r in caplog.records
            if not r.name.startswith(("httpx", "httpcore"))]  # the test's own client logs its URLs
    assert any("board: refused" in line for line in bots)
    assert not [line for line in bots if BOARD_TOKEN[:-1] in line]
    assert board.http.post("/board", params={"token": BOARD_TOKEN}).status_code == 405


def test_the_page_allows_only_its_own_assets(board: Harness) -> None:
    page = get(board, "/board")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts and all(body.strip() == "" and 'src="/board/static/' in attrs for attrs, body in scripts)
    links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert links and all(link.startswith("/board/static/") for link in links)
    for asset in ("uPlot.iife.min.js", "uPlot.min.css", "board.js", "board.css", "uPlot.LICENSE.txt"):
        r = board.http.get(f"/board/static/{asset}")
        assert r.status_code == 200 and r.headers["content-security-policy"] == csp
    assert "MIT License" in board.http.get("/board/static/uPlot.LICENSE.txt").text
    assert board.http.get("/board/static/../board.html.j2").status_code == 404


def test_board_json_is_the_state_with_the_plots(board: Harness) -> None:
    board.slash("/incident", "sev1 checkout 500s")
    board.slash("/incident", "sev3 banner typo")
    board.slash("/incident", "ack INC-1", user="U0ENG")
    board.clock.advance(timedelta(minutes=5))
    board.slash("/incident", "resolve INC-2", user="U0COMMANDER")
    probe_readings(board)
    r = get(board, "/board.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    state = r.json()
    assert state["clock"]["label"] == "T+5m" and state["timezone"] == "America/Los_Angeles"
    [open_one] = state["sections"]["incidents"]["open"]
    assert open_one["number"] == 1 and open_one["acknowledged_by"] == "U0ENG"
    [app] = state["plots"]["metrics"]
    assert app["name"] == "app" and app["threshold"] == 300 and len(app["points"]) == 60
    assert [p[1] for p in app["points"]].count(None) == 1  # the failed reading is a gap, not a zero
    timeline = state["plots"]["incidents"]
    assert [len(timeline[k]) for k in ("declared", "acknowledged", "resolved")] == [2, 1, 1]
    [reading] = state["sections"]["readings"]["latest"]
    assert reading["name"] == "app" and reading["threshold"] == 300


def test_user_text_is_escaped_in_the_page(standin: SlackStandin, database_url: str, clock: ManualClock) -> None:
    config = parse_config({**TEST_CONFIG, "launch": {**TEST_CONFIG["launch"], "name": "<b>Hot</b> & Dash"}})
    bot = Harness(standin, database_url, config, clock, board_token=BOARD_TOKEN)
    try:
        page = get(bot, "/board").text
        assert "&lt;b&gt;Hot&lt;/b&gt; &amp; Dash" in page and "<b>Hot</b>" not in page
    finally:
        bot.close()


# -- in a real browser ----------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1500", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, check: Any, timeout: float = 10.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: check(d))


def rows(driver: Any) -> dict[str, str]:
    # one script reads the whole table, so a poll that redraws it between two reads cannot leave a stale row
    return driver.execute_script(
        "const out = {};"
        "for (const r of document.querySelectorAll('#incident-rows tr[data-incident]'))"
        "  out[r.dataset.incident] = r.innerText;"
        "return out;")


@needs_browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_board_in_chromium_is_live_plotted_and_safe(board: Harness, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    board.slash("/incident", f"sev1 {XSS}")
    probe_readings(board)
    browser.get(f"{board.url}/board?token={BOARD_TOKEN}")
    wait_for(browser, lambda d: "INC-1" in rows(d))
    assert "HotDash Control Center" in browser.find_element(By.ID, "launch-name").text
    assert browser.find_element(By.ID, "tlabel").text == "T0"
    # the summary shows as text: no script ran, no element was made of it
    assert "<script>window.__pwned = 1</script><img src=x" in rows(browser)["INC-1"]
    assert browser.execute_script("return window.__pwned === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "#incident-rows img, #incident-rows script")
    # plots: a canvas per metric (with its threshold in the legend) and the incidents over time
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#metric-charts .uplot canvas"))
    assert "threshold 300 ms" in browser.find_element(By.ID, "metric-charts").text
    assert browser.find_elements(By.CSS_SELECTOR, "#incident-chart .uplot canvas")
    assert "declared" in browser.find_element(By.ID, "incident-chart").text

    browser.execute_script("window.__same_page = true")
    board.clock.advance(timedelta(minutes=3))
    declared = time.monotonic()
    board.slash("/incident", "sev2 search is slow", user="U0CX")
    board.slash("/incident", "ack INC-1", user="U0ENG")
    wait_for(browser, lambda d: "INC-2" in rows(d) and "by U0ENG" in rows(d)["INC-1"], timeout=10)
    assert time.monotonic() - declared < 10
    assert browser.execute_script("return window.__same_page === true")  # no reload
    assert "search is slow" in rows(browser)["INC-2"] and "NOT ACKNOWLEDGED" in rows(browser)["INC-2"]
    assert browser.find_element(By.ID, "tlabel").text == "T+3m"

    # every request went to the bot itself, and the browser saw no CSP violation
    origins = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert origins and set(origins) == {board.url}
    problems = [e["message"] for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "board.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_the_token_comes_from_the_environment_and_logs_redact_it() -> None:
    from bot.config import Env
    from bot.logs import Redactor

    env = Env.from_environ({"WARROOM_BOARD_TOKEN": BOARD_TOKEN})
    assert env.board_token == BOARD_TOKEN and BOARD_TOKEN in env.secrets
    assert BOARD_TOKEN not in Redactor(env.secrets)(f"GET /board?token={BOARD_TOKEN}")
    assert Env.from_environ({}).board_token is None
