"""The Gradio app end to end through gradio_client: Play streams, Pause/cancel stop, Step is exact.

The app runs in this process on a free port of 127.0.0.1; one Client is one browser session.
Outputs as the client sees them (the gr.State run id is not part of the API):
status, matrix plot, matrix table, curves plot, loss plot, metrics table, lesson.
"""
from __future__ import annotations

import os
import re
import socket
import time

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_HEARTBEAT_INTERVAL", "1")   # a closed session is noticed (unload) within ~1 s

import gradio_client  # noqa: E402

from cit_core.metrics import FORMULAS  # noqa: E402
from support.load import running_app  # noqa: E402
from support.app import CURVES, LESSON, LOSS, MATRIX, MATRIX_MD, METRICS, SHORT, STATUS, fold, is_skip  # noqa: E402,F401

STEP_RE = re.compile(r"step (\d+) / (\d+)")




@pytest.fixture(scope="module")
def server():
    with running_app(4) as (url, registry):
        yield url, registry


def new_client(url):
    # generous HTTP timeout: on a loaded 2-core machine the server may answer a cancel or a poll slowly
    return gradio_client.Client(url, verbose=False, httpx_kwargs={"timeout": 120})


def step_of(status: str) -> int:
    match = STEP_RE.search(status)
    assert match, f"no 'step s / S' in status: {status!r}"
    return int(match.group(1))


def filled_after_rows(table: str) -> int:
    """Rows 'after task i' of the markdown matrix that hold numbers (not '·')."""
    rows = [line for line in table.splitlines() if line.startswith("| after")]
    return sum(1 for row in rows if re.search(r"\d\.\d\d", row.split("|", 2)[2]))






def current(client) -> tuple:
    return client.predict(api_name="/session_status")


def test_play_streams_then_pause_and_cancel_stop_and_step_is_exact(server):
    url, registry = server
    client = new_client(url)
    started = time.monotonic()

    # Play: a new run from the short config; stream until two rows of the matrix are filled
    job = client.submit(**SHORT, api_name="/play")
    outputs, got = None, []
    while time.monotonic() - started < 45:
        got = job.outputs()
        if got:
            outputs = fold(got)
            if filled_after_rows(outputs[MATRIX_MD]) >= 2:
                break
        assert not job.done() or job.outputs(), "play ended without output"
        time.sleep(0.1)
    assert outputs is not None and filled_after_rows(outputs[MATRIX_MD]) >= 2, outputs and outputs[MATRIX_MD]
    seen_steps = [step_of(o[STATUS]) for o in got if STEP_RE.search(o[STATUS])]
    assert seen_steps == sorted(seen_steps) and seen_steps[-1] >= 40, seen_steps
    # unchanged plots are skipped: the matrix is resent only when a row (or the current task) changed
    assert any(is_skip(o[MATRIX]) for o in got) and sum(not is_skip(o[MATRIX]) for o in got) < len(got)
    assert "/ 100" in outputs[STATUS] and "task" in outputs[STATUS]        # 5 tasks x 20 steps
    assert "tokens/s" in outputs[STATUS]
    for name in FORMULAS:                                                   # every metric, with its formula
        assert f"**{name}**" in outputs[METRICS] and FORMULAS[name] in outputs[METRICS]
    assert outputs[MATRIX]["type"] == "plotly" and '"heatmap"' in outputs[MATRIX]["plot"]
    assert "last_two" in outputs[LESSON]

    # Pause (server side: works even though this client does not cancel the Play event itself)
    paused = client.predict(api_name="/pause")
    assert "Paused" in paused[STATUS]
    deadline = time.monotonic() + 10
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.done(), "Play kept running after Pause"
    s1 = step_of(current(client)[STATUS])
    time.sleep(1.5)
    s2 = step_of(current(client)[STATUS])
    assert s1 == s2 == step_of(paused[STATUS]), (s1, s2, paused[STATUS])
    assert s1 < 100, "the run must not have finished for this test to mean anything"

    # Play again continues the same run; cancelling the event (what the browser's Pause does) stops it
    job = client.submit(**SHORT, api_name="/play")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = job.outputs()
        if got and STEP_RE.search(got[-1][STATUS]) and step_of(got[-1][STATUS]) > s2:
            break
        time.sleep(0.05)
    assert step_of(current(client)[STATUS]) > s2, "Play did not continue the paused run"
    job.cancel()
    # a chunk in flight may finish (slowly on a loaded machine); after that nothing moves
    s3, s4, deadline = -1, step_of(current(client)[STATUS]), time.monotonic() + 30
    while s3 != s4 and time.monotonic() < deadline:
        time.sleep(1.5)
        s3, s4 = s4, step_of(current(client)[STATUS])
    assert s3 == s4 < 100, f"steps advanced after cancel: {s3} -> {s4}"

    # Step advances exactly the requested number of steps (here across a task boundary when possible)
    n = 3
    stepped = client.predict(steps=n, **SHORT, api_name="/step")
    assert step_of(stepped[STATUS]) == s4 + n, (s4, stepped[STATUS])
    assert step_of(current(client)[STATUS]) == s4 + n
    stepped = client.predict(steps=1, **SHORT, api_name="/step")
    assert step_of(stepped[STATUS]) == s4 + n + 1

    # a bad Step count is a message, not a step
    bad = client.predict(steps=0, **SHORT, api_name="/step")
    assert "between 1 and" in bad[STATUS] and step_of(current(client)[STATUS]) == s4 + n + 1

    assert len(registry) == 1
    assert time.monotonic() - started < 60


def test_reset_errors_are_messages_and_keep_the_run(server):
    url, registry = server
    client = new_client(url)
    first = client.predict(**SHORT, api_name="/reset")
    assert "Ready" in first[STATUS] and step_of(first[STATUS]) == 0
    client.predict(steps=2, **SHORT, api_name="/step")

    bad_lr = client.predict(**{**SHORT, "lr": 5.0}, api_name="/reset")
    assert "Learning rate must be in" in bad_lr[STATUS] and "kept" in bad_lr[STATUS], bad_lr[STATUS]
    assert "Traceback" not in bad_lr[STATUS]
    assert step_of(current(client)[STATUS]) == 2

    bad_model = client.predict(**{**SHORT, "model": "no-such-org/no-such-model"}, api_name="/reset")
    assert "Model unavailable" in bad_model[STATUS] and step_of(current(client)[STATUS]) == 2

    no_files = client.predict(**{**SHORT, "lesson": "uploaded files"}, api_name="/reset")
    assert "no file is uploaded" in no_files[STATUS] and step_of(current(client)[STATUS]) == 2

    bad_option = client.predict(**{**SHORT, "method": "ewc", "method_options": "lam=-1"}, api_name="/reset")
    assert "lam" in bad_option[STATUS] and "kept" in bad_option[STATUS] and step_of(current(client)[STATUS]) == 2
    unknown = client.predict(**{**SHORT, "method": "ewc", "method_options": "lambda=3"}, api_name="/reset")
    assert "no options ['lambda']" in unknown[STATUS], unknown[STATUS]
    garbled = client.predict(**{**SHORT, "method": "ewc", "method_options": "lam"}, api_name="/reset")
    assert "key=value" in garbled[STATUS]
    ewc = client.predict(**{**SHORT, "method": "ewc", "method_options": "lam=500, batches=2"}, api_name="/reset")
    assert "Ready" in ewc[STATUS] and step_of(ewc[STATUS]) == 0, ewc[STATUS]

    # a good Reset replaces the run (the old one is freed) and starts at step 0
    before = len(registry)
    fresh = client.predict(**{**SHORT, "method": "replay"}, api_name="/reset")
    assert step_of(fresh[STATUS]) == 0 and "Experience replay" in fresh[LESSON]
    assert len(registry) == before


def test_uploaded_lesson_files_and_a_bad_file(server, tmp_path):
    import json

    url, _ = server
    client = new_client(url)
    rows = [{"task": task, "instruction": f"Answer for {task}.", "input": str(i), "output": "yes" if i % 2 else "no"}
            for task in ("alpha", "beta") for i in range(40)]
    good = tmp_path / "two_tasks.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"task": "x", "instruction": "i", "input": "", "output": "o"}\n{not json\n', encoding="utf-8")

    files = [gradio_client.handle_file(str(good))]
    ready = client.predict(**{**SHORT, "lesson": "uploaded files", "files": files}, api_name="/reset")
    assert "Ready" in ready[STATUS] and "/ 40" in ready[STATUS], ready[STATUS]      # 2 tasks x 20 steps
    assert "alpha" in ready[LESSON] and "beta" in ready[LESSON]
    stepped = client.predict(steps=2, **{**SHORT, "lesson": "uploaded files", "files": files}, api_name="/step")
    assert step_of(stepped[STATUS]) == 2

    broken = client.predict(**{**SHORT, "lesson": "uploaded files", "files": [gradio_client.handle_file(str(bad))]},
                            api_name="/reset")
    assert "Lesson file problem" in broken[STATUS] and "broken.jsonl:2" in broken[STATUS], broken[STATUS]
    assert "Traceback" not in broken[STATUS]
    assert step_of(current(client)[STATUS]) == 2               # the uploaded-lesson run is kept


def test_closing_the_session_frees_its_run(server):
    url, registry = server
    client = new_client(url)
    client.predict(**SHORT, api_name="/reset")
    mine = [rid for rid in registry.ids() if registry.get(rid).owner == client.session_hash]
    assert len(mine) == 1
    client.close()                      # ends the heartbeat: Gradio runs demo.unload for this session
    deadline = time.monotonic() + 20
    while mine[0] in registry and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mine[0] not in registry, "demo.unload did not free the closed session's run"


def test_play_after_a_finished_run_with_a_new_method_starts_a_new_run(server):
    url, registry = server
    client = new_client(url)
    tiny = {**SHORT, "steps_per_task": 3, "eval_every": 0, "batch_size": 8}
    existing = set(registry.ids())
    client.submit(**tiny, api_name="/play").result()
    assert "15 / 15" in client.predict(api_name="/session_status")[STATUS]
    (first_id,) = set(registry.ids()) - existing          # this session's finished seqft run

    job = client.submit(**{**tiny, "method": "replay"}, api_name="/play")
    job.result()
    latest = fold(job.outputs())
    assert "new run with the changed settings" in latest[STATUS], latest[STATUS]
    assert "15 / 15" in client.predict(api_name="/session_status")[STATUS]
    (second_id,) = set(registry.ids()) - existing
    assert second_id != first_id and first_id not in registry, "the finished run was not replaced"
    assert registry.get(second_id).cfg.method == "replay"
