import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# app runs are saved to the run store: tests write theirs into a throwaway folder, never ~/.cache
os.environ["CIT_RUNS_DIR"] = tempfile.mkdtemp(prefix="cit-test-runs-")
atexit.register(shutil.rmtree, os.environ["CIT_RUNS_DIR"], True)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests draw the same examples on every run and machine (CI must not fail at random); found
# failures are kept as explicit @example cases. HYPOTHESIS_PROFILE=explore draws fresh random examples.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from support.lessons import small_lesson  # noqa: E402


@pytest.fixture
def lesson2():
    return small_lesson()


CHROMIUM = "/usr/bin/chromium"      # Debian's chromium; the browser tests never download a browser


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium through Playwright (pip playwright, never `playwright install`)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
                    "the browser tests never download a browser")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        # --no-sandbox: CI containers run as root, where chromium's sandbox refuses to start
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


# -- markers by layout: tests/e2e is slow; a test that uses the browser fixture is a browser test ------
SLOW_MODULES = {"test_load", "test_kill", "test_distributed", "test_smollm2", "test_chunks", "test_pretrain"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = item.path
        if path.parent.name == "e2e" or path.stem in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
