"""First minute: how long after pressing Play does the first chart appear, on a warm app? (issue 7: ≤ 5 s)

A real browser (Playwright driving Debian's chromium, headless) opens the app with the default settings
and presses Play; we time, from the click:
- `matrix`: the accuracy-matrix plot is on screen (the "before" row, from the base evaluation);
- `curve`: the status shows step 25, the first periodic evaluation (its curve points are drawn in the same
  update);
- `row`: the first row "after task 1" of the matrix table is filled (task 1's 150 steps trained).
The first repeat warms the app (model code, plotly in the page); every repeat opens a new page (a new
session), so each times a fresh run from its first step.

    python bench/first_chart.py --repeats 3
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from playwright.sync_api import expect, sync_playwright  # noqa: E402

import app as app_module  # noqa: E402
from serve.registry import RunRegistry  # noqa: E402

STEP_RE = re.compile(r"step (\d+) / (\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout_s: float = 120.0, every_s: float = 0.02) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if check():
            return time.perf_counter()
        time.sleep(every_s)
    raise TimeoutError("the page never showed it")


def step_shown(status) -> int:
    match = STEP_RE.search(status.inner_text())
    return int(match.group(1)) if match else -1


def one_run(browser, url: str) -> dict:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    try:
        page.goto(url)
        expect(page.get_by_text("What you are looking at")).to_be_visible(timeout=60_000)
        page.get_by_text("Accuracy matrix as a table").first.click()
        status = page.locator(".prose.cit-status")
        plots = page.locator(".js-plotly-plot")
        clicked = time.perf_counter()
        page.get_by_role("button", name="▶ Play").click()
        matrix = wait_until(lambda: plots.count() >= 1 and plots.first.is_visible())
        curve = wait_until(lambda: step_shown(status) >= 25)
        row = wait_until(lambda: step_shown(status) >= 150
                         and page.get_by_role("cell", name=re.compile(r"after 1\.")).count() >= 1)
        page.get_by_role("button", name="Pause").click()
        return {"matrix": matrix - clicked, "curve": curve - clicked, "row": row - clicked}
    finally:
        context.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up run")
    args = ap.parse_args()
    demo = app_module.build_app(RunRegistry(max_runs=args.repeats + 2, idle_ttl_s=600))
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                css=app_module.CSS)
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox"])
            warm = one_run(browser, url)
            runs = [one_run(browser, url) for _ in range(args.repeats)]
            browser.close()
    finally:
        demo.close()
    print(f"warm-up run (cold app): matrix {warm['matrix']:.2f} s, first curve point {warm['curve']:.2f} s, "
          f"task 1 row {warm['row']:.2f} s")
    print(f"\nwarm app, {args.repeats} runs (median, min-max):\n")
    print("| after Play | median s | range s |")
    print("|---|---|---|")
    for key, label in (("matrix", "accuracy matrix on screen"), ("curve", "first periodic evaluation (step 25)"),
                       ("row", "task 1's row filled (step 150)")):
        values = [r[key] for r in runs]
        print(f"| {label} | {statistics.median(values):.2f} | {min(values):.2f}–{max(values):.2f} |")


if __name__ == "__main__":
    main()
