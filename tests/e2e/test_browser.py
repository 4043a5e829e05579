"""The app in a real browser: Playwright (pip) driving Debian's chromium, headless, no display needed.

`.ci/run` installs chromium with apt; `playwright install` is never used (it downloads, and cannot here).
The app runs in this process on a free port of 127.0.0.1; each browser context is one session. Tests wait
on elements, never on network idle (Gradio keeps a stream open). With env CIT_SCREENSHOT=1 the run also
writes README's screenshot to assets/screenshot.png (1200 x 800: the SeqFT recording played back) and
docs/connectivity-recording.png (the Connectivity view of that recording).
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

import gradio as gr  # noqa: E402

import app as app_module  # noqa: E402
from cit_core.config import TrainConfig  # noqa: E402
from serve.registry import RunRegistry  # noqa: E402
from playwright.sync_api import expect  # noqa: E402  (pip playwright, never `playwright install`; the browser fixture: conftest.py)
from pages.workshop import WORKSHOPS  # noqa: E402
from support.paths import ROOT

SCREENSHOT = ROOT / "assets" / "screenshot.png"
STEP_RE = re.compile(r"step (\d+) / (\d+)")
WAIT_MS = 60_000
expect.set_options(timeout=WAIT_MS)      # a loaded 2-core CI machine can be slow to start a run



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    registry = RunRegistry(max_runs=6, idle_ttl_s=600)
    demo = app_module.build_app(registry)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, css=app_module.CSS)
    try:
        yield f"http://127.0.0.1:{port}", registry, demo
    finally:
        demo.close()


def open_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    expect(page.get_by_text("What you are looking at")).to_be_visible()
    return context, page


def status(page):
    return page.locator(".prose.cit-status")


def step_of(page) -> tuple[int, int]:
    match = STEP_RE.search(status(page).inner_text())
    assert match, status(page).inner_text()
    return int(match.group(1)), int(match.group(2))


def wait_for_step(page, at_least: int, timeout_s: float = 120) -> int:
    """Poll the status element until it shows step >= at_least."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = STEP_RE.search(status(page).inner_text())
        if match and int(match.group(1)) >= at_least:
            return int(match.group(1))
        time.sleep(0.1)
    raise AssertionError(f"status never reached step {at_least}: {status(page).inner_text()!r}")


def numeric_cells(page) -> int:
    return page.get_by_role("cell").filter(has_text=re.compile(r"^\s*\d\.\d\d\s*$")).count()


def test_page_loads_with_the_default_lesson(server, browser):
    url, _, _ = server
    context, page = open_page(browser, url)
    try:
        expect(page.get_by_label("Lesson", exact=True)).to_have_value("default")
        expect(page.get_by_label("Method", exact=True)).to_have_value(re.compile("^Sequential fine-tuning|^SeqFT"))
        for task in ("last_two", "has_seven", "first_two", "last_digit", "vowel_end"):
            expect(page.get_by_text(task, exact=True).first).to_be_visible()
        expect(status(page)).to_contain_text("No run yet")
        share = page.locator("#cit-share-link textarea")
        expect(share).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+/\?method=seqft&.*steps=45"))
        expect(page.locator(".prose.cit-guide")).to_be_hidden()
    finally:
        context.close()


def test_play_fills_the_matrix_pause_freezes_it_and_every_tab_renders(server, browser):
    url, registry, demo = server
    # 5 tasks x 30 steps, evaluation only at task ends: the first row fills within seconds
    context, page = open_page(browser, f"{url}/?steps=30&eval=0&batch=8")
    try:
        expect(page.get_by_label("Steps per task")).to_have_value("30")
        page.get_by_role("button", name="Accordion: Accuracy matrix as a table").or_(
            page.get_by_text("Accuracy matrix as a table")).first.click()
        page.get_by_role("button", name="▶ Play").click()
        wait_for_step(page, 30)                                    # task 1 is done: row 'after 1.' filled
        expect(page.get_by_role("cell", name=re.compile(r"after 1\."))).to_be_visible()
        deadline = time.monotonic() + 20
        while numeric_cells(page) < 10 and time.monotonic() < deadline:     # 'before' row + 'after 1.' row
            time.sleep(0.1)
        assert numeric_cells(page) >= 10
        expect(page.locator(".js-plotly-plot").first).to_be_visible()

        page.get_by_role("button", name="Pause").click()
        expect(status(page)).to_contain_text("Paused")
        frozen = step_of(page)
        time.sleep(2.0)
        assert step_of(page) == frozen and frozen[0] < frozen[1], (frozen, status(page).inner_text())

        check_every_tab(page, demo)
    finally:
        context.close()


def plots_in(block) -> int:
    """gr.Plot components inside a layout block (what the tab is expected to draw)."""
    count = 0
    for child in getattr(block, "children", []) or []:
        count += isinstance(child, gr.Plot) + plots_in(child)
    return count


def check_every_tab(page, demo):
    """Each analysis tab of app.VIEWS (new tabs included) shows its content for this session's run: where the
    tab has plots, a drawn plot, or text saying how to read it / what to pick first; otherwise visible text."""
    tabs = {b.id: b for b in demo.blocks.values() if isinstance(b, gr.Tab)}
    for tab_id, (title, _) in app_module.VIEWS.items():
        page.get_by_role("tab", name=title, exact=True).click()
        panel = page.locator('[role="tabpanel"]:visible')
        if plots_in(tabs[tab_id]):        # drawn at once, or explained until the user picks what to draw
            drawn_or_explained = panel.locator(".js-plotly-plot").or_(
                panel.get_by_text(re.compile(r"how to read|\bpick\b|\bchoose\b", re.I)))
            expect(drawn_or_explained.first, f"tab {title}").to_be_visible(timeout=45_000)
        else:
            expect(panel, f"tab {title}").to_contain_text(re.compile(r"\w{3,}"))
    page.get_by_role("tab", name="Train", exact=True).click()
    expect(status(page)).to_be_visible()


def test_two_browser_contexts_train_independently(server, browser):
    url, registry, _ = server
    before = set(registry.ids())
    first, page_a = open_page(browser, f"{url}/?steps=4&eval=0&batch=8")
    second, page_b = open_page(browser, f"{url}/?steps=6&eval=0&batch=8&seed=1&method=replay")
    try:
        expect(page_b.get_by_label("Steps per task")).to_have_value("6")
        page_a.get_by_role("button", name="▶ Play").click()
        page_b.get_by_role("button", name="▶ Play").click()
        expect(status(page_a)).to_contain_text("Finished", timeout=120_000)
        expect(status(page_b)).to_contain_text("Finished", timeout=120_000)
        assert step_of(page_a) == (20, 20) and step_of(page_b) == (30, 30)
        runs = [registry.get(rid) for rid in set(registry.ids()) - before]
        assert sorted((r.cfg.train.steps_per_task, r.cfg.method, r.cfg.train.seed) for r in runs) == \
            [(4, "seqft", 0), (6, "replay", 1)]
        assert len({r.owner for r in runs}) == 2                   # one run per session
    finally:
        first.close()
        second.close()


def test_a_workshop_link_opens_its_view(server, browser):
    url, _, _ = server
    key = "replay_vs_inscl"
    context, page = open_page(browser, f"{url}/?workshop={key}")
    try:
        guide = page.locator(".prose.cit-guide")
        expect(guide).to_contain_text(f"Step 1 of {len(WORKSHOPS[key].steps)}")
        expect(guide).to_contain_text("Predict")
        expect(page.get_by_label("Method", exact=True)).to_have_value(re.compile("replay", re.I))
        for hidden in ("Learning rate", "Batch size", "Seed", "Steps per task"):
            expect(page.get_by_label(hidden, exact=True)).to_be_hidden()
        expect(page.get_by_label("Replay: examples kept per task")).to_be_visible()
        share = page.locator("#cit-share-link textarea")
        expect(share).to_have_value(re.compile(rf"workshop={key}&step=1&method=replay"))

        page.get_by_role("button", name="Next ▶").click()
        expect(guide).to_contain_text("Step 2 of")
        expect(page.get_by_label("Method", exact=True)).to_have_value(re.compile("InsCL"))
        expect(share).to_have_value(re.compile(rf"workshop={key}&step=2&method=inscl"))
        expect(page).to_have_url(re.compile(r"step=2"))           # the address bar follows the settings
    finally:
        context.close()


def test_a_bad_link_says_so_and_keeps_the_defaults(server, browser):
    url, _, _ = server
    context, page = open_page(browser, f"{url}/?lr=banana&method=nope")
    try:
        expect(status(page)).to_contain_text("lr must be a number, got 'banana'")
        expect(status(page)).to_contain_text("no method named 'nope'")
        expect(page.get_by_label("Learning rate", exact=True)).to_have_value(str(TrainConfig().lr))
    finally:
        context.close()


def test_watching_a_recorded_run_fills_the_matrix_and_the_views_follow(server, browser):
    url, registry, _ = server
    context, page = open_page(browser, url)
    try:
        picker = page.get_by_label("Recorded runs", exact=False)
        picker.click()
        page.get_by_role("option", name=re.compile(r"^Experience replay")).click()
        page.get_by_role("button", name="▶ Watch recording").click()
        expect(status(page)).to_contain_text("Finished", timeout=60_000)
        expect(status(page)).to_contain_text("recorded run replay")
        total = 5 * TrainConfig().steps_per_task          # the recording ran the default schedule
        assert step_of(page) == (total, total)
        expect(page.get_by_label("Method", exact=True)).to_have_value(re.compile("^Experience replay"))
        page.get_by_role("tab", name="Forgetting", exact=True).click()
        panel = page.locator('[role="tabpanel"]:visible')
        expect(panel.get_by_text("recorded run replay (gallery playback)")).to_be_visible(timeout=30_000)
        expect(panel.get_by_text("5 of 5 tasks done")).to_be_visible()
        assert any(r.recorded for r in (registry.get(i) for i in registry.ids()) if r is not None)
        if os.environ.get("CIT_SCREENSHOT") == "1":
            take_screenshot(page)
    finally:
        context.close()


def take_screenshot(page):
    """README's picture: the SeqFT recording played to its end, status, buttons and the full matrix."""
    page.get_by_role("tab", name="Train", exact=True).click()
    page.get_by_label("Recorded runs", exact=False).click()
    page.get_by_role("option", name=re.compile(r"^Sequential fine-tuning ·")).click()
    page.get_by_role("button", name="▶ Watch recording").click()
    expect(status(page)).to_contain_text("recorded run seqft")
    expect(status(page)).to_contain_text("Finished", timeout=60_000)
    page.evaluate("el => window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - 12)",
                  status(page).element_handle())
    time.sleep(1.0)                                   # let the last plot finish drawing
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size <= 200_000, SCREENSHOT.stat().st_size    # README stays light


# README's Connectivity picture: the SeqFT recording's line 1 -> 2 with the recorded answers at a = 0.7
CONNECTIVITY_SCREENSHOT = SCREENSHOT.parents[1] / "docs" / "connectivity-recording.png"


def test_a_watched_recording_shows_its_recorded_connectivity_and_answers(server, browser, monkeypatch):
    """Watch a recording, open Connectivity, pick a pair: both plots have curves; move the slider: the
    recorded answers appear. No training and no weights: the page's model paths are made to fail."""
    from cit_core import connectivity as conn
    from pages import connectivity as conn_page

    def refuse(*_a, **_k):
        raise AssertionError("a recording must not touch weights")
    for target, name in ((conn_page, "_saved_run"), (conn_page, "_model_parts"), (conn, "read_checkpoint")):
        monkeypatch.setattr(target, name, refuse)
    url, registry, _ = server
    context, page = open_page(browser, url)
    try:
        before = set(registry.ids())
        page.get_by_label("Recorded runs", exact=False).click()
        page.get_by_role("option", name=re.compile(r"^Sequential fine-tuning ·")).click()
        page.get_by_role("button", name="▶ Watch recording").click()
        expect(status(page)).to_contain_text("Finished", timeout=60_000)
        page.get_by_role("tab", name="Connectivity", exact=True).click()
        panel = page.locator('[role="tabpanel"]:visible')
        # the tab's first refresh offers the recorded lines' tasks and picks the last pair; then pick 1 -> 2
        expect(panel.get_by_label("to task (a = 1)", exact=True)).to_have_value("5. vowel_end", timeout=30_000)
        for label, option in (("from task (a = 0)", "1. last_two"), ("to task (a = 1)", "2. has_seven")):
            panel.get_by_label(label, exact=True).click()
            page.get_by_role("option", name=option, exact=True).click()
            # the menu's list must be gone before the next menu opens (both offer "2. has_seven")
            expect(panel.get_by_label(label, exact=True)).to_have_value(option)
            expect(page.get_by_role("option")).to_have_count(0)
        expect(panel.get_by_label("from task (a = 0)", exact=True)).to_have_value("1. last_two")
        expect(panel.get_by_label("to task (a = 1)", exact=True)).to_have_value("2. has_seven")
        expect(panel.get_by_text(re.compile(r"loss \(mean token CE\): task 1 \(last_two\) → task 2"))).to_be_visible()
        expect(panel.get_by_text(re.compile(r"when the gallery was built: 11 points × 2 tasks"))).to_be_visible()
        plots = panel.locator(".js-plotly-plot")
        expect(plots).to_have_count(2)
        for i in range(2):                               # one curve per seen task in each plot
            expect(plots.nth(i).locator(".scatterlayer .trace")).to_have_count(2)
        slider = panel.locator('input[type="range"]')
        slider.scroll_into_view_if_needed()
        box = slider.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.72, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
        expect(panel.get_by_text("Recorded when the gallery was built (seqft)")).to_be_visible()
        answers = panel.get_by_text(re.compile(r"Recorded answers at a = 0\.(6|7|8)0"))
        expect(answers).to_be_visible()
        expect(panel.get_by_role("columnheader", name="recorded answer")).to_be_visible()
        expect(panel.locator("table").first.locator("tbody tr")).to_have_count(6)    # 3 prompts x 2 tasks
        new = [registry.get(i) for i in set(registry.ids()) - before]
        assert new and all(getattr(r, "recorded", False) for r in new if r is not None)   # nothing trained
        if os.environ.get("CIT_SCREENSHOT") == "1":
            # the pair's note, both plots with the slider's marker, the slider and the first recorded answers
            page.evaluate("el => window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - 70)",
                          panel.locator(".js-plotly-plot").first.element_handle())
            time.sleep(1.0)
            page.screenshot(path=str(CONNECTIVITY_SCREENSHOT))
            assert CONNECTIVITY_SCREENSHOT.stat().st_size <= 200_000
    finally:
        context.close()
