"""Training in chunks whose state crosses a process boundary: what a ZeroGPU Space needs.

ZeroGPU runs a `@spaces.GPU` function in a forked worker that holds the GPU only for that call; the
arguments and the return value travel by pickle and nothing the worker changes survives it. So a Play
chunk there is `train_chunk(state, steps) -> (state, events)`: the worker rebuilds the Trainer from the
state, trains `steps` optimizer steps and hands the state back (spaces_gpu.gpu_chunk wraps it).

The state is one pickle of Trainer.export_state(): model (with every adapter), method (buffers,
importance, shadows, router), optimizer, sampler and RNG states, the cursor, the log. Pickling the
whole object graph at once keeps every reference intact (LCIA's DEMA and I-LoRA's pairs point at the
model's own Parameters, the optimizer state is keyed by them) without any per-method code. Two rules
keep it small and safe:
- the frozen pretrained weights never travel: each is a persistent id (its parameter name) that the
  other side resolves to its own copy of the base named by the state's config (`_BASES`: a copy the
  process already holds or inherited by the fork, else one built from the config, which is
  deterministic). Only weights that were frozen when the method set up qualify; one a
  method unfreezes later would travel like any other tensor.
- tensors travel as numpy arrays and are rebuilt by `_rebuild_tensor`, so unpacking never calls
  torch.load. Tensors on the trainer's accelerator come back on the unpacking side's device; CPU copies
  (snapshots) stay on the CPU.
A state is the app's own: it never comes from a user or a file. To keep it so, every state carries an
HMAC-SHA256 under a per-server secret (env CIT_CHUNK_KEY, made at first import and inherited by the
GPU worker processes), and unpack refuses anything unsigned or altered before unpickling a byte; the
unpickler then resolves only the classes of this engine and its libraries (`_ALLOWED`), as defence in
depth (README, "Limits and safety").
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import io
import json
import os
import pickle
import secrets
import threading

import numpy as np
import torch

MAGIC = b"CITSTATE1"
KEY_ENV = "CIT_CHUNK_KEY"
MIN_KEY_CHARS = 32


class ChunkKeyError(RuntimeError):
    """CIT_CHUNK_KEY is set but too short to sign training states with."""


def ensure_key() -> str:
    """The server's HMAC key: CIT_CHUNK_KEY, made (and put in the environment) on first use so that every
    process this server starts afterwards (the ZeroGPU workers, forked or spawned) inherits it and can
    read the others' states. app.py calls it at start-up, before any worker exists. A key that is set
    but shorter than MIN_KEY_CHARS (an empty one included) is refused rather than used."""
    key = os.environ.get(KEY_ENV)
    if key is None:
        key = os.environ[KEY_ENV] = secrets.token_hex(32)
    if len(key.strip()) < MIN_KEY_CHARS:
        raise ChunkKeyError(f"{KEY_ENV} must be at least {MIN_KEY_CHARS} characters (it signs training "
                            "states); unset it to have one made at start-up")
    return key

_local = threading.local()          # the unpacking side's device, during one unpack
_bases_lock = threading.Lock()
# (base key, device) -> {parameter name: frozen pretrained tensor}: one pristine base per model config
# (and seed, for the tiny model) and device, built on the first unpack that needs it and shared, read
# only, by every trainer unpacked in this process (the main process's CPU copies of ZeroGPU runs)
_BASES: dict[tuple[str, str], dict[str, torch.Tensor]] = {}


def base_key(cfg) -> str:
    """The frozen base depends on the model config, and for the randomly initialised tiny model on the
    seed too."""
    key = dict(vars(cfg.model))
    if cfg.model.name == "tiny-scratch":
        key["seed"] = cfg.train.seed
    return json.dumps(key, sort_keys=True, default=str)


def _base_tensors(cfg, device: torch.device) -> dict[str, torch.Tensor]:
    key = base_key(cfg)
    with _bases_lock:            # held while building: two unpacks never build the same base twice
        found = _BASES.get((key, str(device)))
        if found is None:
            other = next((v for (k, _), v in _BASES.items() if k == key), None)
            if other is not None:       # the same weights on another device (a fork of a CPU process)
                found = {n: torch.nn.Parameter(t.detach().to(device), requires_grad=False)
                         for n, t in other.items()}
            else:
                from cit_core.model import build_model
                bundle = build_model(cfg.model, seed=cfg.train.seed, device=device)
                found = {n: p.requires_grad_(False) for n, p in bundle.model.named_parameters()}
            _BASES[(key, str(device))] = found
        return found


# -- tensors as numpy -----------------------------------------------------------------------------
def _rebuild_tensor(array: np.ndarray, dtype: str, on_compute: bool, requires_grad: bool, param: bool):
    tensor = torch.from_numpy(array)
    if dtype == "bfloat16":                      # numpy has no bfloat16: it travelled as its int16 bits
        tensor = tensor.view(torch.bfloat16)
    device = getattr(_local, "device", None) if on_compute else None
    if device is not None and device.type != "cpu":
        tensor = tensor.to(device)
    if param:
        return torch.nn.Parameter(tensor, requires_grad=requires_grad)
    return tensor.requires_grad_(requires_grad) if requires_grad else tensor


class _Pickler(pickle.Pickler):
    def __init__(self, file, frozen: dict[int, str], compute: torch.device):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._frozen, self._compute = frozen, compute

    def persistent_id(self, obj):
        if isinstance(obj, torch.Tensor) and id(obj) in self._frozen:
            return ("base", self._frozen[id(obj)])
        return None

    def reducer_override(self, obj):
        if type(obj) not in (torch.Tensor, torch.nn.Parameter):
            return NotImplemented
        data = obj.detach().contiguous()
        if data.device.type != "cpu" or data.dtype == torch.bfloat16:
            data = data.cpu()
        dtype = str(data.dtype).removeprefix("torch.")
        array = data.view(torch.int16).numpy() if dtype == "bfloat16" else data.numpy()
        on_compute = self._compute.type != "cpu" and obj.device.type == self._compute.type
        # the array may share the tensor's memory: the pickler writes its bytes before dump() returns
        return _rebuild_tensor, (array, dtype, on_compute, obj.requires_grad,
                                 isinstance(obj, torch.nn.Parameter))


# what unpickling a training state may resolve: classes defined in these packages, the few functions
# that rebuild tensors and arrays, and plain builtin containers; never a module or any other function
_ALLOWED = ("cit_core.", "torch.", "transformers.", "peft.", "tokenizers", "collections", "random",
            "pathlib", "enum")
_FUNCTIONS = {("serve.chunks", "_rebuild_tensor"), ("numpy._core.numeric", "_frombuffer"),
              ("numpy.core.numeric", "_frombuffer"), ("numpy._core.multiarray", "_reconstruct"),
              ("numpy.core.multiarray", "_reconstruct"), ("numpy", "dtype"), ("numpy", "ndarray"),
              ("torch", "device"), ("torch", "Size")}
_SAFE_BUILTINS = {"dict", "list", "set", "frozenset", "tuple", "slice", "complex", "bytearray", "range"}
# the only bound methods a state holds: peft keeps the base model's prepare_inputs_for_generation. Any
# other name (pathlib.Path.write_text, unlink, ...) would let a state act when it is unpickled.
_BOUND_METHODS = {"prepare_inputs_for_generation"}
_MODEL_PACKAGES = ("transformers.", "peft.")


def _restricted_getattr(obj, name: str):
    """Stands in for builtins.getattr, which pickle uses for enum members (peft's PeftType) and bound
    methods (peft keeps the base model's prepare_inputs_for_generation): those and nothing else, so no
    attribute walk can reach beyond the allowed classes."""
    if isinstance(obj, type) and issubclass(obj, enum.Enum) and name in obj.__members__:
        return obj.__members__[name]
    if name in _BOUND_METHODS and not isinstance(obj, type):
        found = getattr(obj, name, None)
        function = getattr(found, "__func__", None)
        if getattr(found, "__self__", None) is obj and getattr(function, "__module__", "").startswith(_MODEL_PACKAGES):
            return found
    raise pickle.UnpicklingError(f"refusing getattr(<{type(obj).__name__}>, {name!r}) in a training state")


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, base: dict[str, torch.Tensor]):
        super().__init__(file)
        self._base = base

    def find_class(self, module, name):
        if module == "builtins":
            if name == "getattr":
                return _restricted_getattr
            if name in _SAFE_BUILTINS:
                return super().find_class(module, name)
        elif (module, name) in _FUNCTIONS:
            return super().find_class(module, name)
        elif module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)            # dtypes pickle by name (a model config's dtype)
        elif module.startswith(_ALLOWED) and not name.startswith("__"):
            found = super().find_class(module, name)
            # a class, and defined where it was asked for under an allowed package (not re-exported)
            if isinstance(found, type) and getattr(found, "__module__", "").startswith(_ALLOWED):
                return found
        raise pickle.UnpicklingError(f"a training state may not contain {module}.{name}")

    def persistent_load(self, pid):
        kind, name = pid
        if kind != "base" or name not in self._base:
            raise pickle.UnpicklingError(f"this process has no frozen base weight {name!r}")
        return self._base[name]


# -- the state ------------------------------------------------------------------------------------
def pack(trainer) -> bytes:
    """The trainer's whole state as bytes (at a step boundary: after advance() returned)."""
    frozen = {}
    for name, tensor in trainer.frozen_base.items():
        if tensor.requires_grad:
            raise RuntimeError(f"{name} was frozen when the method set up and trains now: "
                               "chunked training assumes the pretrained weights stay as they were")
        frozen[id(tensor)] = name
    buffer = io.BytesIO()
    device = trainer.bundle.device
    # a small header first (read before the tensors, which need the base to resolve), then the state
    pickle.dump({"cfg": trainer.cfg, "device": str(device)}, buffer, protocol=pickle.HIGHEST_PROTOCOL)
    _Pickler(buffer, frozen, device).dump(trainer.export_state())
    payload = buffer.getvalue()
    return MAGIC + _signature(payload) + payload


def _signature(payload: bytes) -> bytes:
    return hmac.new(ensure_key().encode(), payload, hashlib.sha256).digest()


def _verified(data: bytes) -> bytes:
    """The payload of a state this server made; anything else is refused before it is unpickled."""
    head, sig_end = len(MAGIC), len(MAGIC) + hashlib.sha256().digest_size
    if not isinstance(data, bytes) or data[:head] != MAGIC or len(data) <= sig_end:
        raise ValueError("not a CIT Explorer training state")
    payload = data[sig_end:]
    if not hmac.compare_digest(data[head:sig_end], _signature(payload)):
        raise ValueError("training state refused: not signed by this server (or altered)")
    return payload


def unpack(data: bytes, device: torch.device | str | None = None):
    """The Trainer of `pack`, on `device` (default: where it was packed). A state packed on the CPU
    continues on the CPU: the packing side's accelerator is how tensors are told from CPU copies."""
    from cit_core.trainer import Trainer
    stream = io.BytesIO(_verified(data))
    header = _Unpickler(stream, {}).load()
    device = torch.device(device) if device is not None else torch.device(header["device"])
    if torch.device(header["device"]).type == "cpu" and device.type != "cpu":
        raise ValueError("a training state taken on the CPU continues on the CPU")
    base = _base_tensors(header["cfg"], device)
    _local.device = device
    try:
        state = _Unpickler(stream, base).load()
    finally:
        _local.device = None
    state["bundle"].device = device
    return Trainer.from_state(state)


# -- one chunk, as ZeroGPU calls it -------------------------------------------------------------
def train_chunk(state: bytes | None, steps: int, cfg=None, run_dir=None):
    """Continue the run of `state` (or start the run of `cfg` when state is None) for `steps` optimizer
    steps; returns (new state, the events of this chunk). Runs wherever it is called: in the ZeroGPU
    worker when wrapped by spaces_gpu.gpu_chunk."""
    from cit_core.trainer import Trainer
    if state is None:
        trainer = Trainer(cfg, run_dir=run_dir)
    else:
        trainer = unpack(state, _compute_device())
    events = trainer.advance(steps)
    trainer.close()                      # the events are on disk; this process may end with the call
    return pack(trainer), events


class ChunkedTrainer:
    """The app's trainer on a ZeroGPU Space: every advance() is one GPU call of train_chunk.

    Between calls the state stays here as bytes, and a CPU copy of the trainer unpacked from it answers
    everything else the app asks (log, lesson, snapshots, model for the Connectivity and Embeddings
    views, evaluate/generate). That copy never trains: the next chunk continues from the bytes the GPU
    side returned, so the run is exactly the run a single process would have trained.
    chunk: the callable that runs train_chunk (spaces_gpu.gpu_chunk(train_chunk) on a Space).
    """

    has_weights = True       # serve.handles.RunHandle: the CPU view copy has the model

    def __init__(self, cfg, run_dir=None, chunk=None, steps_per_call: int = 20):
        self._chunk = chunk or train_chunk
        self.steps_per_call = steps_per_call
        # the first call builds the model on the GPU side and stops before the first step
        self._state, _ = self._chunk(None, 0, cfg, run_dir)
        self._view = unpack(self._state, "cpu")

    def advance(self, steps: int) -> list:
        """`steps` optimizer steps in one GPU call (Play asks for steps_per_call: each call has a fixed
        cost on ZeroGPU; Step asks for one)."""
        self._state, events = self._chunk(self._state, steps)
        self._view = unpack(self._state, "cpu")
        return events

    def run_to_end(self) -> dict:
        while not self._view.finished:
            self.advance(self.steps_per_call)
        return self._view.log.summary or {}

    def events(self):
        raise NotImplementedError("a chunked run is driven by advance(); its events are in .log")

    def __getattr__(self, name):         # log, cfg, lesson, snapshots, model, finished, evaluate, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._view, name)


def _compute_device() -> torch.device:
    from cit_core.model import pick_device
    return pick_device()


__all__ = ["ensure_key", "ChunkKeyError", "base_key", "pack", "unpack", "train_chunk", "ChunkedTrainer"]
