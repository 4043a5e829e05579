"""The Train tab in a real browser at 1280x900 and on a 390x844 phone: what a visitor sees first, Step's
progress, Ask on a live / paused run and on a recording, the Embeddings map before any run, workshop buttons.

Same set-up as tests/test_browser.py (Debian's chromium, never `playwright install`; one app in this
process). With env CIT_SCREENSHOT=1 it writes docs/train-desktop.png and docs/train-phone.png (README).
"""
from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import app as app_module  # noqa: E402
from serve.registry import RunRegistry  # noqa: E402
from playwright.sync_api import expect  # noqa: E402  (the browser fixture: conftest.py)
from support.paths import ROOT

DOCS = ROOT / "docs"
WAIT_MS = 90_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def app_url():
    registry = RunRegistry(max_runs=6, idle_ttl_s=600)
    demo = app_module.build_app(registry)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, css=app_module.CSS)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()


def open_page(browser, url, width=1280, height=900):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    expect(page.locator("#cit-status")).to_be_visible()
    return context, page


def box(page, selector):
    b = page.locator(selector).first.bounding_box()
    assert b is not None, selector
    return b


def watch_seqft(page):
    page.locator("#cit-recordings").get_by_role("button", name="▶ Watch recording").click()
    expect(page.locator("#cit-status")).to_contain_text("Finished", timeout=WAIT_MS)
    expect(page.locator("#cit-status")).to_contain_text("recorded run seqft")
    time.sleep(1.0)                                   # the last plot finishes drawing
    page.evaluate("window.scrollTo(0, 0)")


def screenshot(page, name):
    if os.environ.get("CIT_SCREENSHOT") == "1":
        DOCS.mkdir(exist_ok=True)
        path = DOCS / name
        page.screenshot(path=str(path))
        assert path.stat().st_size <= 200_000, path.stat().st_size


def test_train_tab_first_screen_recordings_ask_and_step_progress(app_url, browser):
    context, page = open_page(browser, app_url)
    try:
        # the Embeddings map needs only the lesson: drawn before any run
        page.get_by_role("tab", name="Embeddings", exact=True).click()
        panel = page.locator('[role="tabpanel"]:visible')
        expect(panel.get_by_text(re.compile("the default lesson"))).to_be_visible()
        expect(panel.locator(".js-plotly-plot").first).to_be_visible()
        page.get_by_role("tab", name="Train", exact=True).click()

        # desktop, first screen: Play, the recordings menu, and after watching, the matrix and the curves
        expect(page.get_by_text("settings on the left")).to_have_count(0)
        for selector in ("button:has-text('▶ Play')", "#cit-recordings"):
            b = box(page, selector)
            assert b["y"] + b["height"] <= 900, (selector, b)
        page.locator("#cit-recordings input").click()
        options = page.get_by_role("option")
        labels = [options.nth(i).inner_text() for i in range(options.count())]
        assert len(labels) == len(set(labels)) and any("SmolLM2-135M" in s for s in labels), labels
        assert not any("=" in s for s in labels), labels
        page.keyboard.press("Escape")
        watch_seqft(page)
        for selector in ("button:has-text('▶ Play')", "#cit-matrix .js-plotly-plot", "#cit-curves .js-plotly-plot"):
            b = box(page, selector)
            assert b["height"] > 100 or "Play" in selector, (selector, b)
            assert b["y"] + b["height"] <= 900, (selector, b)
        value_head = page.locator(".cit-metrics th", has_text="Value").first
        assert value_head.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"
        screenshot(page, "train-desktop.png")

        # Ask on a recording: it has no weights, and says so
        page.locator("#cit-ask-instruction textarea").fill("the last two letters of")
        page.locator("#cit-ask-input textarea").fill("kemado")
        page.locator("#cit-ask").get_by_role("button", name="Ask", exact=True).click()
        expect(page.locator(".prose.cit-ask-answers")).to_contain_text("A recording has no weights")

        # a live run: Step streams its progress (the status moves before the Step has finished)
        page.locator("button:has-text('↺ Reset')").click()
        expect(page.locator("#cit-status")).to_contain_text("Ready")
        page.locator(".cit-steps input").fill("60")
        page.get_by_role("button", name="Step", exact=True).click()
        expect(page.locator("#cit-status")).to_contain_text(re.compile(r"Step pressed|Stepping"), timeout=5_000)
        expect(page.locator("#cit-status")).to_contain_text(re.compile(r"Stepping.*\d+ of 60 steps", re.S))
        expect(page.locator("#cit-status")).to_contain_text("Paused")
        expect(page.locator("#cit-status")).to_contain_text("step 60 / 225")

        # Ask the paused run: the snapshot after task 1 and the model now, side by side, expected answer known
        page.locator("#cit-ask input").nth(1).click()
        page.get_by_role("option", name="1. last_two").click()
        expect(page.locator("#cit-ask-instruction textarea")).not_to_have_value("the last two letters of")
        page.locator("#cit-ask").get_by_role("button", name="Ask", exact=True).click()
        answers = page.locator(".prose.cit-ask-answers")
        expect(answers).to_contain_text("after task 1 (last_two)")
        expect(answers).to_contain_text("now")
        expect(answers).to_contain_text("expected (from the lesson")
        expect(answers.get_by_role("cell", name=re.compile("^[✓✗]$")).first).to_be_visible()
    finally:
        context.close()


def test_phone_puts_play_and_the_matrix_first(app_url, browser):
    context, page = open_page(browser, app_url, 390, 844)
    try:
        watch_seqft(page)
        play, matrix = box(page, "button:has-text('▶ Play')"), box(page, "#cit-matrix")
        assert play["y"] + play["height"] <= 844, play
        assert matrix["y"] < 844 - 150, matrix                 # the matrix starts on the first screen
        settings = box(page, ".cit-controls")
        assert settings["y"] > matrix["y"], (settings, matrix)  # the settings come after the charts
        assert page.evaluate("document.body.scrollHeight") < 7000    # the metrics table no longer towers
        # the matrix keeps readable cells: its plot is wider than the phone and scrolls sideways
        assert box(page, "#cit-matrix .js-plotly-plot")["width"] >= 470
        screenshot(page, "train-phone.png")
    finally:
        context.close()


def test_workshop_last_step_disables_next_and_hides_the_empty_settings_box(app_url, browser):
    context, page = open_page(browser, f"{app_url}/?workshop=forgetting&step=3")
    try:
        expect(page.locator(".prose.cit-guide")).to_contain_text("Step 3 of 3")
        expect(page.get_by_role("button", name="Next ▶")).to_be_disabled()
        expect(page.get_by_role("button", name="◀ Back")).to_be_enabled()
        expect(page.get_by_text("Training settings", exact=True)).to_be_hidden()
    finally:
        context.close()
