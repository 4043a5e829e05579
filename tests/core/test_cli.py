"""The CLI contract other tools rely on: files, keys, shapes, exit codes, determinism."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import ROOT

SUPERNI = ROOT / "tests" / "data" / "superni"      # real SuperNI subsets shipped with the tests


def cli(*args, check=True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "cit_core", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def run_small(out: Path, method="seqft", seed=0):
    cli("run", "--lesson", "default", "--method", method, "--seed", str(seed), "--out", str(out),
        "--steps-per-task", "3", "--eval-every", "2", "--batch-size", "8")
    return json.loads((out / "summary.json").read_text())


def test_run_writes_the_contract(tmp_path):
    summary = run_small(tmp_path / "run")
    T = len(summary["tasks"])
    assert T >= 5
    assert len(summary["acc_matrix"]) == T and all(len(row) == T for row in summary["acc_matrix"])
    assert len(summary["base_scores"]) == T
    assert set(summary["metrics"]) == {"AP", "BWT", "FWT", "forgetting", "MAA", "RG"}
    assert summary["curves"]["steps"][0] == 0 and len(summary["curves"]["scores"][0]) == T
    assert (summary["method"], summary["seed"], summary["steps"]) == ("seqft", 0, 3 * T)
    assert summary["wall_s"] > 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["method"] == "seqft" and config["train"]["steps_per_task"] == 3
    lines = (tmp_path / "run" / "events.jsonl").read_text().splitlines()
    types = [json.loads(line)["type"] for line in lines]
    assert types[0] == "RunStarted" and types[-1] == "RunEnded"
    assert types.count("StepLogged") == 3 * T and types.count("TaskEnded") == T


def test_same_seed_same_numbers(tmp_path):
    a = run_small(tmp_path / "a", method="replay")
    b = run_small(tmp_path / "b", method="replay")
    timing = {"wall_s", "train_s", "eval_s", "setup_s"}
    assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    events_a = [json.loads(x) for x in (tmp_path / "a" / "events.jsonl").read_text().splitlines()]
    losses_a = [e["loss"] for e in events_a if e["type"] == "StepLogged"]
    events_b = [json.loads(x) for x in (tmp_path / "b" / "events.jsonl").read_text().splitlines()]
    assert losses_a == [e["loss"] for e in events_b if e["type"] == "StepLogged"]


def test_methods_lists_the_registry():
    names = [line.split("\t")[0] for line in cli("methods").stdout.splitlines()]
    assert {"seqft", "seqft_lora", "multitask", "replay"} <= set(names)


def test_bad_values_exit_2_with_one_line(tmp_path):
    done = cli("run", "--method", "seqft", "--steps-per-task", "-1", "--out", str(tmp_path / "x"), check=False)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and "steps_per_task" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = cli("run", "--method", "nope", "--out", str(tmp_path / "y"), check=False)
    assert done.returncode == 2 and "unknown method" in done.stderr


def test_validate(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task": "a", "instruction": "x", "input": "1", "output": "2"}\n{oops\n')
    done = cli("validate", str(bad), check=False)
    assert done.returncode == 2 and "bad.jsonl:2" in done.stderr


def test_run_on_superni_files(tmp_path):
    files = [str(SUPERNI / f) for f in ("task092_check_prime_classification.json",
                                          "task1189_check_char_in_string.json")]
    cli("validate", *files)
    cli("run", "--tasks", *files, "--method", "seqft", "--out", str(tmp_path / "s"),
        "--steps-per-task", "2", "--eval-every", "0", "--batch-size", "4")
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["tasks"] == ["task092_check_prime_classification", "task1189_check_char_in_string"]


def _subparsers(p):
    import argparse
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_every_flag_of_every_command_has_help():
    """`run --help` and the other commands explain every flag (issue 18: most had no help text)."""
    from cit_core.cli import parser
    seen = 0
    for name, sub in _subparsers(parser()):
        for action in sub._actions:
            if action.dest == "help" or action.help == "==SUPPRESS==" or action.nargs == 0 and not action.option_strings:
                continue
            if action.__class__.__name__ == "_SubParsersAction":
                continue
            assert action.help and action.help.strip(), f"{name} {'/'.join(action.option_strings) or action.dest}"
            seen += 1
    assert seen >= 30
    text = parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "optimizer steps on each task" in text and "CIT_TORCH_THREADS" in text


def _validate_bounded(*files, timeout=60):
    """`validate` in a child under a 2 GiB address-space limit and a timeout: should the loader ever read
    /dev/zero without end again, or block on a FIFO, this fails instead of taking the machine down."""
    import resource

    def limit():
        try:
            resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        except (ValueError, OSError):       # not every system lets a process cap it; the timeout still holds
            pass

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    try:
        return subprocess.run([sys.executable, "-m", "cit_core", "validate", *map(str, files)], capture_output=True,
                              text=True, env=env, cwd=ROOT, timeout=timeout, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"validate did not finish in {timeout} s")


@pytest.mark.skipif(not (hasattr(os, "mkfifo") and Path("/dev/zero").exists()), reason="needs a POSIX system")
def test_validate_refuses_devices_and_fifos_at_once(tmp_path):
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    for path, kind in [(zero, "a device"), (fifo, "a pipe (FIFO)")]:
        done = _validate_bounded(path)
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stderr == f"error: {path.name}: cannot read file: it is {kind}, not a regular file\n"


def test_validate_prints_one_line_per_task_whatever_the_names(tmp_path, monkeypatch, capsys):
    """The loader refuses tabs and newlines in task names; should one get through, validate still
    prints one line of four tab-separated fields per task."""
    from cit_core import cli as cli_module
    from cit_core.lessons import files
    monkeypatch.setattr(files, "_name_problem", lambda name: None, raising=False)   # no name rule
    names = ["two\nlines", "a\ttab", "plain name"]
    rows = [{"task": n, "instruction": "Say it.", "input": f"x{i}", "output": "y"} for n in names for i in range(4)]
    path = tmp_path / "names.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli_module.main(["validate", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(len(line.split("\t")) == 4 for line in lines), lines
    assert lines[0].startswith("'two\\nlines'\t") and lines[2].startswith("plain name\t")
