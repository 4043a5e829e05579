"""The torch thread policy (issue 18): a run never takes every core of a small machine by default, because
2 threads beside any other CPU load on 2 cores made a run 5-10x slower (bench/thread_policy.py)."""
from __future__ import annotations

import pytest

from serve import compute
from cit_core.threads import default_threads
from cit_core.cli import build_config, parser


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.delenv("CIT_TORCH_THREADS", raising=False)
    monkeypatch.delenv("CIT_TRAIN_CONCURRENCY", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)


@pytest.mark.parametrize("cores, concurrency, threads", [
    (1, 1, 1), (2, 1, 1), (4, 1, 3), (4, 2, 2), (8, 4, 2), (16, 8, 2), (16, 1, 15), (2, 4, 1)])
def test_default_threads_leaves_a_core_free(monkeypatch, cores, concurrency, threads):
    monkeypatch.delenv("CIT_TORCH_THREADS", raising=False)
    assert default_threads(concurrency, cores=cores) == threads


def test_app_run_on_a_two_core_machine_takes_one_thread(two_cores):
    from serve.controls import torch_threads, train_concurrency
    assert train_concurrency() == 1
    assert torch_threads() == 1          # was cores // concurrency = 2: 10x slower beside another run


def test_cli_run_without_threads_takes_the_safe_default(two_cores):
    args = parser().parse_args(["run", "--out", "x"])
    assert build_config(args).train.threads == 1      # was 0: torch's default, every core
    args = parser().parse_args(["run", "--out", "x", "--threads", "2"])
    assert build_config(args).train.threads == 2      # an explicit choice is kept


def test_env_overrides_the_policy(two_cores, monkeypatch):
    monkeypatch.setenv("CIT_TORCH_THREADS", "2")
    from serve.controls import torch_threads
    assert default_threads() == 2 and torch_threads() == 2
    assert build_config(parser().parse_args(["run", "--out", "x"])).train.threads == 2
    monkeypatch.setenv("CIT_TORCH_THREADS", "zero")           # not a positive integer: the policy
    assert default_threads() == 1
