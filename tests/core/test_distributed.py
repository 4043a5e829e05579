"""Data parallel under torchrun (gloo on CPU) equals one process; the ZeroGPU wrapper; Spaces sizing."""
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cit_core import distributed
from cit_core.settings import settings
from serve import spaces_gpu
from cit_core.config import RunConfig, TrainConfig
from cit_core.distributed import Dist
from support.lessons import small_lesson
from support.paths import ROOT

RUN = ["run", "--method", "seqft", "--steps-per-task", "4", "--eval-every", "2", "--batch-size", "8"]


def _env():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _lesson_file(path: Path) -> Path:
    """Two small tasks of the default lesson as a lesson file (the loader holds out 20% for evaluation)."""
    lines = [json.dumps({"task": t.name, "instruction": ex.instruction, "input": ex.input, "output": ex.output})
             for t in small_lesson(n_tasks=2, n_train=40).tasks for ex in t.train]
    path.write_text("\n".join(lines) + "\n")
    return path


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def test_two_processes_train_like_one_on_the_same_global_batches(tmp_path):
    lesson = _lesson_file(tmp_path / "lesson.jsonl")
    args = [*RUN, "--tasks", str(lesson)]
    one = subprocess.run([sys.executable, "-m", "cit_core", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "cit_core", *args, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    # one run directory, written once: rank 1 appending too would double every event line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lesson.jsonl", "one", "two"]
    a, b = _events(tmp_path / "one"), _events(tmp_path / "two")
    assert [e["type"] for e in a] == [e["type"] for e in b]
    steps_a = [e for e in a if e["type"] == "StepLogged"]
    steps_b = [e for e in b if e["type"] == "StepLogged"]
    assert len(steps_b) == 8
    # the logged loss is the global one (all answer tokens), the token count the global batch's
    assert [e["tokens"] for e in steps_a] == [e["tokens"] for e in steps_b]
    for x, y in zip(steps_a, steps_b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5)
        assert y["scalars"]["ce"] == pytest.approx(x["scalars"]["ce"], rel=1e-5)
    # the weights: averaging unweighted half-batch means instead moves them by ~5e-3 here
    for task in (0, 1):
        wa = load_file(tmp_path / "one" / "checkpoints" / f"task{task}.safetensors")
        wb = load_file(tmp_path / "two" / "checkpoints" / f"task{task}.safetensors")
        assert wa.keys() == wb.keys()
        worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
        assert worst < 2e-4, f"task {task}: weights differ by {worst}"
    sa = json.loads((tmp_path / "one" / "summary.json").read_text())
    sb = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert sa["acc_matrix"] == sb["acc_matrix"] and sa["steps"] == sb["steps"]


def _collectives(rank: int, rendezvous: str, results) -> None:
    """Runs in two spawned processes: average_gradients and combine_step on a real gloo group."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        dist = Dist(rank, 2, torch.device("cpu"))
        both, only0, neither = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
        both.grad = torch.full((3,), float(rank + 1))          # 1 and 2 -> 1.5
        if rank == 0:
            only0.grad = torch.full((3,), 2.0)                 # 2 and nothing -> 1.0 on both ranks
        distributed.average_gradients([both, only0, neither], dist)
        # rank 0: CE 2.0 over 10 answer tokens, no extra term; rank 1: CE 4.0 over 30 tokens, extra 1.0
        step = distributed.combine_step(dist, 2.0 if rank == 0 else 4.0, 10 if rank == 0 else 30,
                                        100 + rank, None if rank == 0 else 1.0,
                                        {"a": 1.0} if rank == 0 else {"a": 3.0, "b": 5.0})
        results.put((rank, both.grad.tolist(), only0.grad.tolist(), neither.grad, step))
    finally:
        torch.distributed.destroy_process_group()


def test_collectives_average_and_weight_exactly(tmp_path):
    ctx = torch.multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_collectives, args=(r, str(tmp_path / "rdzv"), results)) for r in (0, 1)]
    for p in procs:
        p.start()
    got = dict((r[0], r[1:]) for r in (results.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for rank in (0, 1):
        both, only0, neither, step = got[rank]
        assert both == [1.5] * 3 and only0 == [1.0] * 3 and neither is None
        assert step.ce == pytest.approx((2.0 * 10 + 4.0 * 30) / 40)
        assert step.value == pytest.approx(3.5 + (0.0 + 1.0) / 2)
        assert step.n_tokens == 201
        assert step.scalars == {"a": 2.0, "b": 5.0}
        # world * local tokens / global tokens: the weighted CE grads average to the full-batch gradient
        assert step.ce_weight == pytest.approx(2 * (10 if rank == 0 else 30) / 40)


def test_shards_keep_the_global_order():
    rows = list(range(10))
    shards = [Dist(r, 3).shard(rows) for r in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(sum(shards, [])) == rows
    assert Dist().shard(rows) is rows


def test_one_process_needs_no_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup() == distributed.SINGLE and not distributed.SINGLE.active
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.setup() == distributed.SINGLE


def test_batch_smaller_than_the_world_is_refused(monkeypatch):
    from cit_core.trainer import Trainer
    monkeypatch.setattr(distributed, "setup", lambda: Dist(0, 4))
    cfg = RunConfig(method="seqft", train=TrainConfig(steps_per_task=1, batch_size=2))
    with pytest.raises(ValueError, match="at least the number of processes"):
        Trainer(cfg, lesson=small_lesson())


# -- ZeroGPU ------------------------------------------------------------------------------------
def _fn(x):
    return x + 1


def _fake_spaces(calls):
    module = types.ModuleType("spaces")

    def gpu(duration=60):
        def wrap(fn):
            calls.append((fn, duration))
            return lambda *a, **k: ("on gpu", fn(*a, **k))
        return wrap
    module.GPU = gpu
    return module


def test_gpu_chunk_is_the_identity_off_spaces(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "spaces", _fake_spaces(calls))
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert spaces_gpu.gpu_chunk(_fn) is _fn                  # a `spaces` package alone is not ZeroGPU
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setitem(sys.modules, "spaces", None)         # the env without the package: import fails
    assert spaces_gpu.gpu_chunk(_fn) is _fn and not spaces_gpu.on_zero_gpu()
    assert calls == []


def test_gpu_chunk_wraps_on_zero_gpu(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "spaces", _fake_spaces(calls))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    wrapped = spaces_gpu.gpu_chunk(_fn, duration=45)
    assert wrapped is not _fn and calls == [(_fn, 45)]
    assert wrapped(1) == ("on gpu", 2)


# -- Spaces sizing ------------------------------------------------------------------------------
def test_sizing_from_the_hardware(monkeypatch):
    assert spaces_gpu.train_concurrency_for(2, False) == 1      # CPU basic: one training run at a time
    assert spaces_gpu.train_concurrency_for(None, False) == 1
    assert spaces_gpu.train_concurrency_for(16, False) == 8
    assert spaces_gpu.train_concurrency_for(16, True) == 4
    assert spaces_gpu.train_concurrency_for(1, True) == 1
    assert spaces_gpu.queue_size_for(1) == 64 and spaces_gpu.queue_size_for(4) == 160
    monkeypatch.setenv("CIT_QUEUE_MAX", "12")
    assert settings().queue_max == 12
    for bad in ("0", "-3", "many", ""):
        monkeypatch.setenv("CIT_QUEUE_MAX", bad)
        assert settings().queue_max is None          # a bad value never stops the app: the default applies
        assert bool(settings().problems) == (bad != "")
