"""Mode connectivity: loss and accuracy of every seen task along θ(a) = (1−a)·θ_s + a·θ_e.

θ_s, θ_e are two task-end snapshots (by default consecutive: task t−1 and task t). What θ is:
- full fine-tuning ("full"): the tensors trainable at the later task end;
- LoRA: the adapter trained during that task (for per-task-adapter methods, expansion, oracle_lora,
  switchcit and LCIA's groups, that is adapter t), written into one adapter slot and applied to every
  prompt: the line connects the weights, not the router. So for routed methods, and for I-LoRA (which
  answers with its slow learner), the ends of the line differ from the accuracy matrix; for the other
  methods a = 1 reproduces it. Two LoRA variants: "factors" interpolates A and B; "delta" interpolates
  ΔW = s·B·A and applies the blend as a delta on the frozen base weight (adapters off).
Marks: the method's extra states at the later task end (I-LoRA "slow"; LCIA "ema" — equal to θ_e, since
the EMA replaces the live weights — and "raw", the optimizer's weights before that) with their loss,
accuracy and projection a* = <θ_x − θ_s, θ_e − θ_s> / ‖θ_e − θ_s‖² (in the variant's space).
Loss: mean next-token cross-entropy over the answer tokens of the task's held-out examples. Accuracy: the
engine's greedy decoding and the task's scorer, on the first `max_eval` held-out examples (32 by
default). At a = 0 and 1 the "factors"/"full" variants load exactly the snapshot tensors; "delta" is
equal up to float rounding (W + ΔW is summed before the matmul instead of after).
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .evaluate import SCORE_FUNCTIONS, generate_answers
from .methods import METHODS
from .snapshots import Snapshot, read_checkpoint
from .tokenize import IGNORE_INDEX

VARIANTS_LORA = ("factors", "delta")


class ProbeError(ValueError):
    """Something the user can fix (no checkpoints, unknown task, wrong variant); the message says what."""


def variants(lora: bool) -> tuple[str, ...]:
    return VARIANTS_LORA if lora else ("full",)


def method_variants(method: str) -> tuple[str, ...]:
    """The line variants of a run of `method` (a RunLog's method name), known before any weights are read:
    a LoRA method's runs blend adapter factors or ΔW; any other run (an unknown method too) full weights."""
    cls = METHODS.get(method)
    return variants(bool(cls and cls.uses_lora))


# -- endpoints -------------------------------------------------------------------------------------
def endpoint(snap: Snapshot, keys: list[str] | None = None) -> dict[str, torch.Tensor]:
    """θ of a snapshot: the trained adapter's tensors (adapter name removed) or the trainable tensors."""
    if snap.lora:
        adapters = snap.trained_adapters
        if not adapters:
            raise ProbeError(f"task {snap.task + 1}: no LoRA adapter was trained")
        tag = f".{adapters[0]}."
        return {n.replace(tag, "."): t for n, t in snap.tensors.items() if tag in n}
    names = keys if keys is not None else snap.trainable
    missing = [n for n in names if n not in snap.tensors]
    if missing:
        raise ProbeError(f"task {snap.task + 1}'s checkpoint lacks {len(missing)} tensors, e.g. {missing[0]}")
    return {n: snap.tensors[n] for n in names}


def _modules(state: dict) -> dict[str, tuple[str, str]]:
    """LoRA module path -> (A key, B key) in an adapter-stripped state."""
    out = {}
    for key in state:
        if ".lora_A." in key:
            path = key.split(".lora_A")[0]
            out[path] = (key, key.replace(".lora_A", ".lora_B"))
    return out


def deltas(state: dict, scaling: dict[str, float]) -> dict[str, torch.Tensor]:
    """ΔW = s·B·A per LoRA module (float32, CPU)."""
    return {path: scaling[path] * (state[b].float() @ state[a].float()) for path, (a, b) in _modules(state).items()}


class Line:
    """θ(a) between two endpoint states in one variant; state(a) is what gets applied to the model."""

    def __init__(self, start: dict, end: dict, variant: str, scaling: dict[str, float] | None = None):
        if set(start) != set(end):
            raise ProbeError("the two checkpoints hold different tensors; they cannot be interpolated")
        self.variant = variant
        if variant == "delta":
            start, end = deltas(start, scaling), deltas(end, scaling)
        self.start, self.end = start, end

    def state(self, a: float) -> dict[str, torch.Tensor]:
        # (1−a)·x + a·y is exactly x at a = 0 and exactly y at a = 1
        return {k: (1.0 - a) * self.start[k] + a * self.end[k] for k in self.start}

    def project(self, point: dict) -> float:
        """a* of a state given in endpoint (factor) space; for "delta" it is projected in ΔW space."""
        num = sum(float(((point[k].double() - self.start[k].double())
                         * (self.end[k].double() - self.start[k].double())).sum()) for k in self.start)
        den = sum(float(((self.end[k].double() - self.start[k].double()) ** 2).sum()) for k in self.start)
        return num / den if den > 0 else float("nan")


# -- applying a state to the model -----------------------------------------------------------------
class Applier:
    """Writes states into a model and restores its own weights afterwards (exact copies)."""

    def __init__(self, model, lora: bool):
        self.model, self.lora = model, lora
        params = dict(model.named_parameters())
        if lora:
            self.slot = next(iter(model.peft_config))          # the adapter created at setup
            tag = f".{self.slot}."
            self.params = {n.replace(tag, "."): p for n, p in params.items() if ".lora_" in n and tag in n}
        else:
            self.slot, self.params = None, params

    def scaling(self) -> dict[str, float]:
        return {path: float(self.model.get_submodule(path).scaling[self.slot]) for path in _modules(self.params)}

    @contextlib.contextmanager
    def params_state(self, state: dict):
        """Factor/full states: the tensors go into the slot adapter (LoRA) or the parameters."""
        unknown = [k for k in state if k not in self.params]
        if unknown:
            raise ProbeError(f"the model has no tensor {unknown[0]!r}: was the run made with another model?")
        saved = {k: self.params[k].detach().clone() for k in state}
        try:
            with torch.no_grad():
                for k, t in state.items():
                    self.params[k].copy_(t)
            if self.lora:
                from .methods.lora_tools import active_adapter
                with active_adapter(self.model, self.slot):
                    yield self.model
            else:
                yield self.model
        finally:
            with torch.no_grad():
                for k, t in saved.items():
                    self.params[k].copy_(t)

    @contextlib.contextmanager
    def delta_state(self, state: dict):
        """ΔW per module added to the frozen base weight, with every adapter switched off."""
        layers = {path: self.model.get_submodule(path).get_base_layer() for path in state}
        saved = {path: layer.weight.detach().clone() for path, layer in layers.items()}
        try:
            with torch.no_grad():
                for path, layer in layers.items():
                    d = state[path].T if getattr(self.model.get_submodule(path), "fan_in_fan_out", False) \
                        else state[path]
                    layer.weight.add_(d.to(layer.weight.device, layer.weight.dtype))
            with self.model.disable_adapter():
                yield self.model
        finally:
            with torch.no_grad():
                for path, layer in layers.items():
                    layer.weight.copy_(saved[path])

    def apply(self, state: dict, variant: str):
        return self.delta_state(state) if variant == "delta" else self.params_state(state)


def make_line(applier: Applier, start: Snapshot, end: Snapshot, variant: str) -> Line:
    allowed = variants(start.lora)
    if variant not in allowed:
        raise ProbeError(f"variant {variant!r} does not apply to this run; choose from {list(allowed)}")
    keys = None if start.lora else end.trainable
    return Line(endpoint(start, keys), endpoint(end, keys), variant,
                applier.scaling() if variant == "delta" else None)


@contextlib.contextmanager
def model_at(model, start: Snapshot, end: Snapshot, a: float, variant: str | None = None):
    """The model with θ(a) applied (e.g. to generate sample answers); its own weights come back after."""
    applier = Applier(model, start.lora)
    line = make_line(applier, start, end, variant or variants(start.lora)[0])
    was_training = model.training
    model.eval()
    try:
        with applier.apply(line.state(float(a)), line.variant) as m:
            yield m
    finally:
        model.train(was_training)


# held-out examples per task at each point (None = all): greedy decoding of every example at every point
# dominates a probe; 32 keeps a task pair within seconds and the accuracy steps at 1/32
DEFAULT_MAX_EVAL = 32


# -- measuring ------------------------------------------------------------------------------------
class Meter:
    """Loss and accuracy of a set of tasks for whatever weights the model holds now."""

    def __init__(self, model, encoder, tasks, batch_size: int = 64, max_eval: int | None = None, device=None):
        self.model, self.encoder, self.tasks = model, encoder, list(tasks)
        self.batch_size, self.device = batch_size, device or next(model.parameters()).device
        self.examples = [t.eval[:max_eval] if max_eval else list(t.eval) for t in self.tasks]
        self.owner = [i for i, exs in enumerate(self.examples) for _ in exs]
        self.flat = [ex for exs in self.examples for ex in exs]
        # collate once: the batches are the same at every point of the line
        self.batches = [encoder.collate(self.flat[i:i + batch_size]) for i in range(0, len(self.flat), batch_size)]
        self.answers: list[str] = []        # the last accuracy pass's greedy answers, one per flat example

    @torch.no_grad()
    def losses(self) -> list[float]:
        sums = torch.zeros(len(self.tasks), dtype=torch.float64)
        counts = torch.zeros(len(self.tasks), dtype=torch.float64)
        owner = torch.tensor(self.owner)
        row = 0
        for batch in self.batches:
            b = batch.to(self.device)
            logits = self.model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
            labels = b.labels[:, 1:]
            per_tok = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels,
                                      ignore_index=IGNORE_INDEX, reduction="none")
            n = labels.shape[0]
            rows = owner[row:row + n]
            sums.index_add_(0, rows, per_tok.sum(1).double().cpu())
            counts.index_add_(0, rows, (labels != IGNORE_INDEX).sum(1).double().cpu())
            row += n
        return (sums / counts.clamp(min=1)).tolist()

    def accuracies(self) -> list[float]:
        answers = generate_answers(self.model, self.encoder, self.flat, self.batch_size, device=self.device)
        self.answers = answers              # the greedy answers of this pass (recorded samples read them)
        hits = [0.0] * len(self.tasks)
        for i, (ans, ex) in enumerate(zip(answers, self.flat)):
            hits[self.owner[i]] += SCORE_FUNCTIONS[self.tasks[self.owner[i]].scorer](ans, ex.output)
        return [h / max(1, len(exs)) for h, exs in zip(hits, self.examples)]

    def measure(self) -> tuple[list[float], list[float]]:
        was_training = self.model.training
        self.model.eval()
        try:
            return self.losses(), self.accuracies()
        finally:
            self.model.train(was_training)


def probe_pair(model, encoder, tasks, start: Snapshot, end: Snapshot, variant: str, points: int = 11,
               max_eval: int | None = DEFAULT_MAX_EVAL, batch_size: int = 64, progress=None,
               samples_per_task: int = 0) -> dict:
    """One line: per seen task (0..later task) its loss and accuracy at `points` values of a in [0, 1].

    With samples_per_task > 0 the result also holds "samples": the first held-out prompts of every seen
    task and the blended model's greedy answers to them at every point (the answers the accuracy pass
    generated anyway: no extra decoding), {"examples": [{"task", "prompt", "expected"}], "answers":
    [point][example]}.
    """
    if points < 2:
        raise ProbeError("points must be at least 2 (the two ends of the line)")
    applier = Applier(model, start.lora)
    line = make_line(applier, start, end, variant)
    seen = list(tasks)[:max(start.task, end.task) + 1]
    meter = Meter(model, encoder, seen, batch_size, max_eval)
    alphas = [i / (points - 1) for i in range(points)]
    marks_in = end.extras
    total, started = len(alphas) + len(marks_in), time.perf_counter()
    loss, acc = [[] for _ in seen], [[] for _ in seen]
    picked = _sample_rows(meter, samples_per_task)
    answers = []
    for i, a in enumerate(alphas):
        with applier.apply(line.state(a), variant):
            ls, ac = meter.measure()
        if picked:
            answers.append([meter.answers[row] for row in picked])
        for k in range(len(seen)):
            loss[k].append(ls[k])
            acc[k].append(ac[k])
        if progress:
            progress(i + 1, total)
    marks = []
    for j, (name, state) in enumerate(marks_in.items()):
        point = deltas(state, applier.scaling()) if variant == "delta" else state
        with applier.params_state(state):
            ls, ac = meter.measure()
        marks.append({"name": name, "a": line.project(point), "loss": ls, "accuracy": ac})
        if progress:
            progress(len(alphas) + j + 1, total)
    result = {"from": start.task, "to": end.task, "variant": variant, "a": alphas,
              "tasks": [t.name for t in seen], "loss": loss, "accuracy": acc, "marks": marks,
              "eval_per_task": [len(x) for x in meter.examples],
              "seconds": round(time.perf_counter() - started, 3)}
    if picked:
        result["samples"] = {"examples": [{"task": meter.owner[row], "prompt": _prompt(meter.flat[row]),
                                           "expected": meter.flat[row].output} for row in picked],
                             "answers": answers}
    return result


def _sample_rows(meter: "Meter", per_task: int) -> list[int]:
    """Rows of meter.flat holding the first `per_task` held-out examples of every task, task by task."""
    rows, offset = [], 0
    for exs in meter.examples:
        rows.extend(range(offset, offset + min(per_task, len(exs))))
        offset += len(exs)
    return rows


def _prompt(example) -> str:
    return f"{example.instruction} {example.input}".strip()


# -- live trainer ---------------------------------------------------------------------------------
def trainer_snapshot(trainer, task: int) -> Snapshot:
    """Task `task`'s end snapshot: in memory, else from the trainer's run directory."""
    snap = trainer.snapshots.get(task)
    if snap is not None:
        return snap
    run_dir = getattr(trainer, "run_dir", None)
    path = run_dir / "checkpoints" / f"task{task}.safetensors" if run_dir else None
    if path is None or not path.exists():
        raise ProbeError(f"task {task + 1} has no task-end snapshot yet (it has not finished)")
    return read_checkpoint(path)


def probe_trainer(trainer, start_task: int, end_task: int, variant: str | None = None, points: int = 11,
                  max_eval: int | None = DEFAULT_MAX_EVAL, progress=None) -> dict:
    """probe_pair on a live trainer's model and snapshots. The caller makes sure it is not training."""
    start, end = trainer_snapshot(trainer, start_task), trainer_snapshot(trainer, end_task)
    return probe_pair(trainer.model, trainer.encoder, trainer.lesson.tasks, start, end,
                      variant or variants(start.lora)[0], points, max_eval, trainer.cfg.train.eval_batch, progress)


# -- saved runs -----------------------------------------------------------------------------------
class SavedRun:
    """A saved run rebuilt from config.json + checkpoints (a fresh model; no live trainer needed)."""

    def __init__(self, run_dir: Path, lesson=None):
        from .config import RunConfig
        from .methods import resolve
        from .runs import read_run
        from .trainer import Trainer
        self.dir = Path(run_dir)
        try:
            cfg = resolve(RunConfig.from_dict(json.loads((self.dir / "config.json").read_text())))
            log = read_run(self.dir)
        except (OSError, ValueError) as err:
            raise ProbeError(f"cannot read the run in {self.dir}: {err}") from err
        if not log.checkpoints:
            raise ProbeError(f"{self.dir} has no checkpoints (a run recorded before checkpoints existed, "
                             "or one that has not finished a task)")
        self.log = log
        self.refs = dict(log.checkpoints)
        self.trainer = Trainer(cfg, lesson=lesson)   # builds the model and the method's adapters; never runs
        self._snaps: dict[int, Snapshot] = {}

    def snapshot(self, task: int) -> Snapshot:
        if task not in self.refs:
            raise ProbeError(f"task {task + 1} has no checkpoint; saved: {[t + 1 for t in sorted(self.refs)]}")
        if task not in self._snaps:
            self._snaps[task] = read_checkpoint(self.dir / self.refs[task])
        return self._snaps[task]

    def pair(self, start_task: int, end_task: int, variant: str, points: int = 11, max_eval=DEFAULT_MAX_EVAL,
             progress=None, samples_per_task: int = 0):
        t = self.trainer
        return probe_pair(t.model, t.encoder, t.lesson.tasks, self.snapshot(start_task), self.snapshot(end_task),
                          variant, points, max_eval, t.cfg.train.eval_batch, progress, samples_per_task)


def run_pairs(tasks: list[int]) -> list[tuple[int, int]]:
    """The lines a run is probed on: every consecutive pair of task ends, then first -> last (the pair a
    user asks about most after the consecutive ones) when it is not consecutive."""
    tasks = sorted(tasks)
    pairs = list(zip(tasks, tasks[1:]))
    if len(tasks) > 2:
        pairs.append((tasks[0], tasks[-1]))
    return pairs


# samples recorded per seen task at every point when a run is probed for the gallery
RECORDED_SAMPLES = 3
FORMAT = 2        # connectivity.json: 2 added first -> last, "max_eval" and the optional "samples"


def probe_saved(run_dir: Path, points: int = 11, log=print, lesson=None, max_eval: int | None = DEFAULT_MAX_EVAL,
                samples_per_task: int = 0) -> dict:
    """Every line of `run_pairs` on a saved run's checkpoints, every variant: the connectivity.json data.

    {"version", "method", "points", "max_eval", "samples_per_task", "tasks", "variants", "pairs": [{"from",
    "to", "variant", "a", "tasks", "loss" [task][point], "accuracy" [task][point], "marks" [{"name", "a",
    "loss", "accuracy"}], "eval_per_task", "seconds", "samples" (optional, see probe_pair)}]}.
    """
    run = SavedRun(run_dir, lesson)
    tasks = sorted(run.refs)
    lora = run.snapshot(tasks[0]).lora
    pairs = []
    for s, e in run_pairs(tasks):
        for variant in variants(lora):
            result = run.pair(s, e, variant, points, max_eval, samples_per_task=samples_per_task)
            log(f"connectivity task {s + 1} -> {e + 1} ({variant}): {result['seconds']:.1f} s")
            pairs.append(result)
    return {"version": FORMAT, "method": run.log.method, "points": points, "max_eval": max_eval,
            "samples_per_task": samples_per_task, "tasks": run.log.tasks, "variants": list(variants(lora)),
            "pairs": pairs}


def probe_run(run_dir: Path, points: int = 11, log=print, lesson=None,
              max_eval: int | None = DEFAULT_MAX_EVAL, samples_per_task: int = 0) -> Path:
    """probe_saved, written to DIR/connectivity.json."""
    from .runs import write_json_atomic
    data = probe_saved(run_dir, points, log, lesson, max_eval, samples_per_task)
    out = Path(run_dir) / "connectivity.json"
    write_json_atomic(out, data)
    return out


def read_connectivity(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "connectivity.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


__all__ = ["Applier", "Line", "Meter", "ProbeError", "SavedRun", "deltas", "endpoint", "make_line", "method_variants",
           "model_at", "probe_pair", "probe_run", "probe_saved", "probe_trainer", "read_connectivity", "run_pairs",
           "trainer_snapshot", "variants"]
