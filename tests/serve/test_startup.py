"""Before it serves, the app imports every library a run needs (serve/startup.py), and binds where a
Hugging Face Space tells it to (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)."""
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from support.app import free_port
from support.paths import ROOT

LAZY = ("transformers.models.llama.modeling_llama", "peft", "accelerate", "ot", "sklearn.cluster")


def test_building_the_app_imports_every_library_a_run_needs():
    """Two sessions' first runs raced inside transformers' lazy imports on a cold start; after build_app()
    there is nothing left to import lazily."""
    code = ("import sys, app; before = [m for m in %r if m in sys.modules]; app.build_app(); "
            "after = [m for m in %r if m in sys.modules]; print(before, after)" % (LAZY, LAZY))
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = done.stdout.strip().splitlines()[-1].split("] [")
    assert "modeling_llama" not in before                 # importing app alone does not (so the test can fail)
    assert all(m in after for m in LAZY), after


@pytest.mark.slow
def test_app_py_binds_the_address_a_space_advertises(tmp_path):
    """Spaces set GRADIO_SERVER_NAME=0.0.0.0 and GRADIO_SERVER_PORT; app.py used to pass 127.0.0.1:7860
    explicitly, so a Space never bound. Started the way a Space starts it, the app answers on that port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("CIT_HOST", "CIT_PORT")}
    env.update(GRADIO_SERVER_NAME="0.0.0.0", GRADIO_SERVER_PORT=str(port), SPACE_ID="someone/cit-explorer",
               HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", CIT_RUNS_DIR=str(tmp_path / "runs"))
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline, answer = time.monotonic() + 240, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
                    answer = response.status
                    break
            except OSError:
                time.sleep(1)
        assert answer == 200, f"no answer on port {port}; app output:\n{proc.stdout.read() if proc.poll() is not None else ''}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
