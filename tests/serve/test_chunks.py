"""Training in chunks whose state crosses a process boundary (the ZeroGPU path, serve/chunks.py).

The reference is always the same run trained in one piece: a chunked run must give the same events,
to the last loss digit, for every method."""
import json
import pickle
import sys
from pathlib import Path

import pytest
import torch

from serve import chunks, spaces_gpu
from cit_core.config import RunConfig, TrainConfig
from cit_core.events import event_to_dict
from cit_core.runs import read_run
from cit_core.trainer import Trainer

from support.lessons import small_config, small_lesson
from support.contract import CONTRACT
from support.paths import TESTS

STUB = TESTS / "zerogpu_stub"


def _untimed(value):
    """An event or summary without its wall-clock fields (the only thing allowed to differ)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items()
                if not (k.endswith("_s") or k in ("seconds", "tokens_per_s"))}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _events(events):
    return [_untimed(event_to_dict(e)) for e in events]


def _folded(log) -> dict:
    """What a RunLog folded, without the timing it keeps (compared after a JSON round trip: lists)."""
    timing = {"train_seconds", "eval_seconds", "recent_tokens_per_s", "version"}
    return json.loads(json.dumps(_untimed({k: v for k, v in vars(log).items() if k not in timing})))


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_chunked_run_equals_the_whole_run(name):
    cfg = small_config(name, steps=4, **CONTRACT[name])
    alone = Trainer(cfg, lesson=small_lesson())
    whole = _events(alone.events())
    trainer, got = Trainer(cfg, lesson=small_lesson()), []
    while not trainer.finished:
        got += _events(trainer.advance(3))   # 3 does not divide 4: states are taken mid-task and at ends
        trainer = chunks.unpack(chunks.pack(trainer))
    assert got == whole
    assert _folded(trainer.log) == _folded(alone.log)     # the restored log holds the whole run too


def test_frozen_pretrained_weights_do_not_travel():
    trainer = Trainer(small_config("seqft_lora", steps=2), lesson=small_lesson())
    base_bytes = sum(p.numel() * p.element_size() for p in trainer.frozen_base.values())
    lora = chunks.pack(trainer)
    full = chunks.pack(Trainer(small_config("seqft", steps=2), lesson=small_lesson()))
    assert trainer.frozen_base and len(lora) < base_bytes / 4 < len(full)
    restored = chunks.unpack(lora)
    names = dict(restored.model.named_parameters())
    # the restored model's frozen weights are this process's base copy, equal to the original ones
    for name, p in trainer.model.named_parameters():
        if not p.requires_grad and ".lora_" not in name:
            assert torch.equal(names[name], p)


def test_a_base_weight_unfrozen_after_setup_is_refused():
    trainer = Trainer(small_config("seqft_lora", steps=2), lesson=small_lesson())
    next(iter(trainer.frozen_base.values())).requires_grad_(True)
    with pytest.raises(RuntimeError, match="frozen when the method set up"):
        chunks.pack(trainer)


def test_unpacking_never_calls_torch_load(monkeypatch):
    trainer = Trainer(small_config("ilora", steps=2, buffer_size=16), lesson=small_lesson())
    trainer.advance(3)
    data = chunks.pack(trainer)

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called while unpacking a training state")
    monkeypatch.setattr(torch, "load", refuse)
    assert chunks.unpack(data).steps_done == 3


def test_a_cpu_state_stays_on_the_cpu():
    data = chunks.pack(Trainer(small_config("seqft_lora", steps=2), lesson=small_lesson()))
    with pytest.raises(ValueError, match="continues on the CPU"):
        chunks.unpack(data, "cuda")


def test_bfloat16_tensors_and_dtypes_travel_exactly():
    tensor = torch.randn(5, 3).to(torch.bfloat16)
    param = torch.nn.Parameter(torch.randn(4), requires_grad=True)
    import io
    buffer = io.BytesIO()
    chunks._Pickler(buffer, {}, torch.device("cpu")).dump({"t": tensor, "p": param, "same": param,
                                                          "dtype": torch.bfloat16})
    back = chunks._Unpickler(io.BytesIO(buffer.getvalue()), {}).load()
    assert back["t"].dtype == torch.bfloat16 and torch.equal(back["t"], tensor)
    assert isinstance(back["p"], torch.nn.Parameter) and back["p"].requires_grad
    assert back["same"] is back["p"]                       # one object stays one object
    assert back["dtype"] is torch.bfloat16                 # a model config's dtype


def test_zero_gpu_runs_train_in_separate_processes(monkeypatch, tmp_path):
    """With a `spaces` stand-in whose GPU() runs each call in a fresh spawned process, the app's run
    factory trains through ChunkedTrainer; the run equals a single-process run and its directory holds
    every event once."""
    monkeypatch.syspath_prepend(str(STUB))
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    monkeypatch.setenv("CIT_RUNS_DIR", str(tmp_path))
    monkeypatch.setattr(spaces_gpu, "_zero_gpu_chunk", None)
    sys.modules.pop("spaces", None)
    import spaces
    from serve.registry import _default_factory

    cfg = RunConfig(method="seqft_lora", train=TrainConfig(steps_per_task=2, batch_size=8, eval_every=0))
    trainer = _default_factory(cfg)
    assert isinstance(trainer, chunks.ChunkedTrainer) and spaces.calls == ["train_chunk"]
    assert trainer.steps_done == 0 and trainer.log.base_scores      # built and evaluated on the GPU side
    advances = 0
    while not trainer.finished:
        trainer.advance(4)
        advances += 1
    assert spaces.calls == ["train_chunk"] * (advances + 1) and advances == 3   # 10 steps, 4 per call

    alone = Trainer(cfg).run_to_end()
    assert _untimed(trainer.log.summary) == _untimed(alone)
    assert _folded(read_run(trainer.run_dir)) == _folded(trainer.log)   # every event on disk, once
    sys.modules.pop("spaces", None)


def test_state_pickles_only_through_the_chunk_pickler():
    # a plain pickle of a Trainer fails loudly (its generator), so no code path ships one by accident
    trainer = Trainer(small_config("seqft_lora", steps=2), lesson=small_lesson())
    with pytest.raises(TypeError):
        pickle.dumps(trainer)


def _signed(payload: bytes) -> bytes:
    return chunks.MAGIC + chunks._signature(payload) + payload


def test_states_not_made_by_this_server_are_refused_before_unpickling():
    data = chunks.pack(Trainer(small_config("seqft_lora", steps=2), lesson=small_lesson()))
    flipped = bytearray(data)
    flipped[-10] ^= 1
    for bad, message in ((bytes(flipped), "not signed by this server"),
                         (pickle.dumps({"cfg": None}), "not a CIT Explorer training state"),
                         (chunks.MAGIC + b"\0" * 32 + data[41:], "not signed by this server")):
        with pytest.raises(ValueError, match=message):
            chunks.unpack(bad)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("payload, refused", [
    (pickle.dumps(_Evil()), "posix.system"),
    (pickle.dumps(getattr), None),                                        # alone it is harmless...
    (b"\x80\x05cbuiltins\ngetattr\nccit_core.config\nRunConfig\n\x8c\x08__init__\x86R.",
     "refusing getattr"),                                                 # ...a walk from a class is not
    (pickle.dumps(eval), "builtins.eval"),
    (pickle.dumps(torch.load), "torch.serialization.load"),               # functions of allowed packages
    (b"\x80\x05cnumpy\nmemmap\n.", "numpy.memmap"),                      # classes outside the list
    (b"\x80\x05ctorch.nn\nfunctional\n.", "torch.nn.functional"),          # modules
    (pickle.dumps(Path("/tmp/cit-never-written").write_text), "refusing getattr"),   # a method of an
    (pickle.dumps(Path("/tmp/cit-never-written").unlink), "refusing getattr"),       # allowed class
])
def test_the_unpickler_resolves_only_the_engines_classes(payload, refused):
    """Defence in depth behind the signature: even a signed payload can only name allowed classes."""
    import io
    if refused is None:
        assert chunks._Unpickler(io.BytesIO(payload), {}).load() is chunks._restricted_getattr
        return
    with pytest.raises(pickle.UnpicklingError, match=refused):
        chunks._Unpickler(io.BytesIO(payload), {}).load()
    with pytest.raises((pickle.UnpicklingError, ValueError)):
        chunks.unpack(_signed(payload))


def test_the_app_plays_a_zero_gpu_run_to_the_end(monkeypatch, tmp_path):
    """A visitor's Play on a ZeroGPU Space: the run is built and trained in GPU calls (here: a fresh
    spawned process each), the page shows its status and final AP, equal to a single-process run."""
    import gradio_client

    from app import build_app
    from serve.registry import RunRegistry
    from support.app import SHORT, STATUS, fold, free_port

    monkeypatch.syspath_prepend(str(STUB))
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    monkeypatch.setattr(spaces_gpu, "_zero_gpu_chunk", None)
    sys.modules.pop("spaces", None)
    import spaces
    registry = RunRegistry(max_runs=2, idle_ttl_s=600)
    demo = build_app(registry)
    assert spaces.durations == [60]                  # decorated once, at start-up, with the default duration
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        client = gradio_client.Client(f"http://127.0.0.1:{port}", verbose=False, httpx_kwargs={"timeout": 120})
        config = {**SHORT, "steps_per_task": 4, "eval_every": 0}
        job = client.submit(**config, api_name="/play")
        job.result()
        final = fold(job.outputs())
        run = next(iter(registry._runs.values()))
        assert isinstance(run.trainer, chunks.ChunkedTrainer) and run.trainer.finished
        # 20 steps: one build call, then one call per 20-step Play chunk
        assert spaces.calls == ["train_chunk", "train_chunk"]
        cfg = RunConfig(method="seqft", train=TrainConfig(steps_per_task=4, batch_size=16, eval_every=0, lr=1e-3))
        ap = Trainer(cfg).run_to_end()["metrics"]["AP"]
        assert f"final average score (AP) {ap:.2f}" in final[STATUS]
    finally:
        demo.close()
        sys.modules.pop("spaces", None)
