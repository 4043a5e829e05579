"""The documented Python API end to end through gradio_client: view_api() lists only /run, /status, /result,
/watch (and the Train tab's advanced endpoints), each with named parameters and defaults; a run started with
named parameters only (no `files`) gives the same numbers as the command line's run of the same config; the
README's script runs as printed.

The app runs in this process on a free port of 127.0.0.1; one Client is one session.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio_client  # noqa: E402

from app import ADVANCED_ENDPOINTS  # noqa: E402
from support.load import running_app  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED = ("/run", "/status", "/result", "/watch")
# the Train tab's endpoints kept for scripts that drive the page itself (app.ADVANCED_ENDPOINTS); the
# existing live-app tests (tests/e2e/test_app.py, tests/support/load.py) call them; /heartbeat lets a script
# count as an open page (serve/registry.py, "Sharing a room")
ADVANCED = ("/play", "/step", "/pause", "/reset", "/session_status", "/heartbeat")
SMALL = dict(method="seqft", lesson="default", model="tiny", seed=0, steps_per_task=10, lr=2e-3, batch_size=16,
             eval_every=5)


@pytest.fixture(scope="module")
def server():
    with running_app(4) as (url, registry):
        yield url


def new_client(url):
    return gradio_client.Client(url, verbose=False, httpx_kwargs={"timeout": 600})


def test_view_api_lists_only_the_documented_endpoints(server):
    assert tuple(f"/{name}" for name in ADVANCED_ENDPOINTS) == ADVANCED
    info = new_client(server).view_api(return_format="dict", print_info=False)
    assert set(info["named_endpoints"]) == {*DOCUMENTED, *ADVANCED}
    assert info["unnamed_endpoints"] == {}
    for name in DOCUMENTED:
        params = info["named_endpoints"][name]["parameters"]
        assert params and all(p["parameter_name"] for p in params), name
        assert [p["parameter_name"] for p in params if not p["parameter_has_default"]] == \
            ([] if name == "/run" else ["run_id"]), name
    run = {p["parameter_name"]: p["parameter_default"] for p in info["named_endpoints"]["/run"]["parameters"]}
    assert {"method", "lesson", "model", "seed", "steps_per_task", "lr", "batch_size", "eval_every", "options",
            "allow_download", "wait"} == set(run)
    assert (run["method"], run["lesson"], run["model"], run["allow_download"], run["wait"]) == \
        ("seqft", "default", "tiny", False, False)


def cli_summary(out: Path, threads: int) -> dict:
    args = ["--lesson", SMALL["lesson"], "--method", SMALL["method"], "--model", SMALL["model"],
            "--seed", str(SMALL["seed"]), "--steps-per-task", str(SMALL["steps_per_task"]), "--lr", str(SMALL["lr"]),
            "--batch-size", str(SMALL["batch_size"]), "--eval-every", str(SMALL["eval_every"]),
            "--threads", str(threads), "--out", str(out)]
    done = subprocess.run([sys.executable, "-m", "cit_core", "run", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "summary.json").read_text())


def assert_close(a, b, tol=1e-9):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_close(a[key], b[key], tol)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_close(x, y, tol)
    elif isinstance(a, float) or isinstance(b, float):
        assert abs(a - b) <= tol, (a, b)
    else:
        assert a == b


def test_a_run_from_named_parameters_equals_the_command_line(server, tmp_path):
    client = new_client(server)
    started = client.predict(**SMALL, api_name="/run")          # returns at once: the run trains on
    assert started["state"] in ("training", "finished") and started["total_steps"] == 5 * SMALL["steps_per_task"]
    streamed = list(client.submit(run_id=started["run_id"], api_name="/watch"))
    assert streamed and streamed[-1]["state"] == "finished" and streamed[-1]["step"] == 50
    steps = [s["step"] for s in streamed]
    assert steps == sorted(steps)
    status = client.predict(run_id=started["run_id"], api_name="/status")
    assert (status["state"], status["step"], status["total_steps"]) == ("finished", 50, 50)
    result = client.predict(run_id=started["run_id"], api_name="/result")
    assert result["run_id"] == started["run_id"] and result["tasks"] and result["curves"]["steps"]
    cli = cli_summary(tmp_path / "cli", result["config"]["train"]["threads"])
    assert result["tasks"] == cli["tasks"]
    assert_close(result["acc_matrix"], cli["acc_matrix"])
    assert_close(result["metrics"], cli["metrics"])
    assert_close(result["curves"], cli["curves"])


def test_errors_are_readable(server):
    client = new_client(server)
    with pytest.raises(Exception, match="Unknown method 'nope'"):
        client.predict(method="nope", api_name="/run")
    with pytest.raises(Exception, match="No run with id"):
        client.predict(run_id="no-such-run", api_name="/status")
    with pytest.raises(Exception, match="not complete|neither a local folder|does not download|downloading is off"):
        client.predict(model="no-such-org/no-such-model", api_name="/run")


def readme_script() -> str:
    """The README's API example: the python block under its '## Python API' heading."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_script_runs_as_printed(server):
    script = ROOT / "docs" / "api_example.py"
    assert readme_script() == script.read_text(encoding="utf-8")       # README shows the file the test runs
    done = subprocess.run([sys.executable, str(script), server, "3"], capture_output=True, text=True, cwd=ROOT,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["seqft", "replay"]
    assert all(re.search(r"AP \d\.\d{3} \(run \S+\)", line) for line in lines), lines
