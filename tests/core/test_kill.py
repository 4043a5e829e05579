"""A CLI run killed with SIGKILL mid-task leaves a run directory that reopens cleanly.

events.jsonl is appended and flushed per event, summary.json is written atomically at the end, so after
a kill: every complete line parses, every step up to the last logged one is there in order, summary.json
is absent (the run never ended) and read_run folds a consistent, viewable RunLog.
There is no in-place resume of a killed run (no optimizer/model state is saved per step); a killed run
can be viewed, and rerun from its config.json with the same seed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cit_core.runs import read_run
from support.paths import ROOT

STEPS_PER_TASK = 400           # far more than the test waits for: the kill always lands mid-task
WANT_STEPS = 12


def step_lines(path: Path) -> int:
    if not path.exists():
        return 0
    return sum('"StepLogged"' in line for line in path.read_text(encoding="utf-8").splitlines())


def test_sigkill_mid_task_leaves_a_readable_run(tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cit_core", "run", "--lesson", "default", "--method", "seqft", "--seed", "3",
         "--steps-per-task", str(STEPS_PER_TASK), "--batch-size", "8", "--eval-every", "5", "--threads", "1",
         "--out", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    events = out / "events.jsonl"
    try:
        deadline = time.monotonic() + 90
        while step_lines(events) < WANT_STEPS and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        assert step_lines(events) >= WANT_STEPS, "the run logged too few steps in time"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    raw = events.read_bytes()
    lines = raw.split(b"\n")
    complete, tail = lines[:-1], lines[-1]       # the part after the last newline may be torn
    parsed = [json.loads(line) for line in complete]          # every complete line is valid JSON
    assert parsed[0]["type"] == "RunStarted" and all("type" in p for p in parsed)
    steps = [p["step"] for p in parsed if p["type"] == "StepLogged"]
    assert steps == list(range(1, len(steps) + 1)), steps      # no step missing or repeated
    assert len(steps) >= WANT_STEPS and steps[-1] < STEPS_PER_TASK
    assert not (out / "summary.json").exists()                 # the run never ended: no torn summary
    assert not [p for p in parsed if p["type"] in ("RunEnded", "RunFailed")]
    assert json.loads((out / "config.json").read_text())["train"]["steps_per_task"] == STEPS_PER_TASK

    log = read_run(out)                                        # what the views open
    assert log.step == steps[-1] and [s for s, _ in log.losses] == steps
    assert log.tasks[0] == "last_two" and len(log.tasks) == 5 and log.total_steps == 5 * STEPS_PER_TASK
    assert log.task == 0 and log.boundaries == [0] and log.acc_matrix == []
    assert len(log.base_scores) == 5 and log.summary is None and not log.finished
    evaluated = [p for p in parsed if p["type"] == "Evaluated"]           # base scores at step 0 first
    assert log.curve_steps == [p["step"] for p in evaluated] and log.curve_steps[0] == 0
    assert log.curve_scores[-1] == evaluated[-1]["scores"] and len(evaluated) >= 3
    assert log.version == len(parsed) + (1 if tail and _parses(tail) else 0)


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def test_a_torn_last_line_is_ignored(tmp_path):
    """What a kill in the middle of a write leaves: the complete events fold, the torn tail is dropped."""
    from cit_core.events import RunStarted, StepLogged
    from cit_core.runs import RunWriter
    with RunWriter(tmp_path, {"method": "seqft"}) as writer:
        writer.write(RunStarted(tasks=["a", "b"], method="seqft", config={}, steps_per_task=3, total_steps=6))
        for step in (1, 2):
            writer.write(StepLogged(task=0, step=step, loss=1.0 / step, tokens=10, seconds=0.1, scalars={}))
    full = (tmp_path / "events.jsonl").read_text()
    (tmp_path / "events.jsonl").write_text(full + '{"type": "StepLogged", "task": 0, "st')
    log = read_run(tmp_path)
    assert log.step == 2 and log.losses == [(1, 1.0), (2, 0.5)] and log.tasks == ["a", "b"]
