"""I-LoRA: a fast and a slow LoRA learner on one base model, with replay and a consistency loss.

Update rule
- Two peft LoRA adapters: `fast` (θ_f, trained by the optimizer) and `slow` (θ_s, frozen, starts as a
  copy of θ_f). After every optimizer step, for every pair of matching tensors (fast and slow tensors
  paired by name with the adapter name swapped):  θ_s ← λ·θ_s + (1 − λ)·θ_f.
- A reservoir buffer of `buffer_size` examples over the training streams of the finished tasks; each
  batch takes `mix_ratio` of its rows from it once it is non-empty.
- Loss on a batch with current rows C and buffer rows M:
      L = ½·(CE(C) + CE(M)) + γ · mean over all of transformers' hidden_states of (h_f − max(h_f, h_s))²
  on the rows M: h_f / h_s = the embedding output, every decoder layer's output and the final normalised
  state under the fast / slow adapter (h_s under no_grad), one mean over all their entries, as the
  released code takes it; without buffer rows (the first task) L = CE(C).
- Inference uses the slow learner (`infer="fast"` to compare).

Follows the paper: two learners, EMA interpolation after every step, replay, the consistency loss on
the hidden states of all layers, the slow learner at test time.
Released code differs (which47/LLMCL), and we follow the paper: its EMA loop pairs each tensor with
itself (the names include the adapter name), so the slow learner never moves; its λ =
min(1 − 1/(step+1), 0.25) keeps only 25% of the slow weights per step, which contradicts "slow" (we use
a fixed λ, default 0.99); its buffer pads labels with 0 (ours: −100, ignored by the loss);
`load_ema_model` does not exist.
Follows the released code where the paper is vague: the consistency loss's form (one mean over the
concatenated hidden states, LLMCL `method/ILORA.py`). Option `consistency=layers` keeps this project's
earlier form, Σ over the raw decoder-layer outputs of each layer's MSE; on the tuned tiny base it is about
200x larger at the same γ, almost all from the last layer's output before the final norm (7.3 of 7.5 at
step 100 of the default run; the normalised state contributes 0.05).
Our interpretation: λ = 0.99 (the paper's value is unverified); "inference on the slow learner" is
unverified; the reservoir runs over each finished task's training set (not over the batches drawn);
the consistency mean runs over the non-padded positions of the buffer rows (the released buffer batch
has no attention mask, so its mean also counts padding); the trainer's loss is CE over the whole batch, so this method's extra term is ½(CE(C)+CE(M)) − CE(C∪M) +
γ·consistency, which makes the total exactly L.
Logs per step: λ, the consistency loss, CE(current), CE(buffer) and ‖θ_s − θ_f‖ (scalars, the distance
as it was when the step began), and ‖θ_s − θ_f‖ per tensor after the update (coefficients).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from ..config import knob, validate
from ..data import Pool
from ..events import InfoRecord
from ..model import lora_config
from ..panels import Message, Table, row_means, step_heatmap
from ..tokenize import IGNORE_INDEX
from .base import Method
from .lora_tools import active_adapter, adapter_parameters, copy_adapter, short_names, state_of, train_only


CONSISTENCY_FORMS = ("released", "layers")


@dataclass
class ILoRAOptions:
    ema_lambda: float = knob(0.99, "λ: after every step slow ← λ·slow + (1−λ)·fast", 0.9, 0.999)
    gamma: float = knob(1.0, "γ: weight of the consistency loss on buffer rows", 0.0, 100.0)
    buffer_size: int = knob(256, "reservoir replay buffer size (examples)", 1, 1_000_000)
    mix_ratio: float = knob(0.5, "share of each batch drawn from the buffer (the paper's ½·CE + ½·CE: "
                            "equal halves)", 0.05, 0.95)
    infer: str = knob("slow", "which learner answers at evaluation", choices=("slow", "fast"))
    consistency: str = knob("released", "consistency loss: 'released' = one mean over all of transformers' "
                            "hidden_states (embedding output, every layer, the final normalised state) as in "
                            "LLMCL; 'layers' = Σ over the raw decoder-layer outputs of each layer's MSE",
                            choices=CONSISTENCY_FORMS)

    def __post_init__(self):
        validate(self)


@dataclass(frozen=True)
class ILoRATaskStart(InfoRecord):
    """TaskStarted info: the replay buffer the task mixes in, and λ."""

    buffer: int | None = None
    buffer_per_task: list | None = None      # buffered examples per earlier task (once the buffer fills)
    lam: float | None = field(default=None, metadata={"key": "lambda"})


@dataclass(frozen=True)
class ILoRATaskEnd(InfoRecord):
    """TaskEnded info: the buffer size and how far the slow learner trails the fast one."""

    buffer: int | None = None
    slow_fast_distance: float | None = None   # ‖θ_s − θ_f‖₂ over all LoRA tensors


HOW_TO_READ = ("How to read this: each row is one LoRA tensor, each column a step; the colour is the distance "
               "between the slow learner (used for answers) and the fast one (trained). Large = the slow learner "
               "lags behind (stable, protects old tasks); λ sets how fast it follows. The bar: mean distance.")


def token_ce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token CE per row and the number of answer tokens per row (the HF causal-LM shift).

    Only the answer positions are gathered before the float upcast, so a large vocabulary costs
    (answer tokens x vocab), not (batch x length x vocab).
    """
    labels = labels[:, 1:]
    valid = labels != IGNORE_INDEX
    rows, cols = valid.nonzero(as_tuple=True)
    loss = F.cross_entropy(logits[:, :-1][rows, cols].float(), labels[rows, cols], reduction="none")
    sums = torch.zeros(labels.shape[0], dtype=loss.dtype, device=loss.device).index_add(0, rows, loss)
    return sums, valid.sum(1)


def find_layers(model) -> torch.nn.ModuleList:
    """The decoder's block list (the first ModuleList as long as config.num_hidden_layers)."""
    n = getattr(model.config, "num_hidden_layers", None)
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) and (n is None or len(module) == n):
            return module
    raise RuntimeError("I-LoRA could not find the decoder layers of this model")


def find_final_norm(model, layers: torch.nn.ModuleList) -> torch.nn.Module:
    """The norm applied after the last decoder layer (Llama/Qwen/Mistral `norm`, GPT-2 `ln_f`, OPT
    `final_layer_norm`): a sibling of the layer list."""
    for _, parent in model.named_modules():
        children = dict(parent.named_children())
        if any(child is layers for child in children.values()):
            for name in ("norm", "ln_f", "final_layer_norm", "final_layernorm"):
                if name in children:
                    return children[name]
    raise RuntimeError("I-LoRA could not find the final norm of this model; use consistency=layers")


class _HiddenStateHook:
    """Forward hook that keeps a hidden state for the consistency loss under key i: a decoder layer's
    output (0..L-1), the embedding output ("embedding") or the final norm's ("final_norm"). A class, not a
    closure, so that the training state can be pickled for chunked training (serve/chunks.py); for the
    same reason the states are not asked of transformers (output_hidden_states installs closure hooks)."""

    def __init__(self, method, i):
        self.method, self.i = method, i

    def __call__(self, module, args, output):
        h = output[0] if isinstance(output, tuple) else output
        if self.method._slow_h is not None:
            self.method._slow_h[self.i] = h
        elif torch.is_grad_enabled() and module.training:
            self.method._fast_h[self.i] = h


class ILoRA(Method):
    name = "ilora"
    title = "I-LoRA (fast/slow LoRA, EMA + replay)"
    uses_lora = True
    Options = ILoRAOptions

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.buffer: list = []
        self.seen = 0
        self._fast_h: dict[int, torch.Tensor] = {}
        self._slow_h: dict[int, torch.Tensor] | None = None

    def setup(self, model):
        from peft import get_peft_model
        cfg = lora_config(self.ctx.config.model)
        self.model = get_peft_model(model, cfg, adapter_name="fast")
        self.model.add_adapter("slow", cfg)
        copy_adapter(self.model, "fast", "slow")      # θ_s starts as θ_f
        train_only(self.model, "fast")                 # slow is frozen
        self.pairs = self.pair_tensors()
        self.layers = find_layers(self.model)
        for i, layer in enumerate(self.layers):
            layer.register_forward_hook(_HiddenStateHook(self, i))
        if self.options.consistency == "released":     # transformers' hidden_states: embedding .. final norm
            self.model.get_input_embeddings().register_forward_hook(_HiddenStateHook(self, "embedding"))
            find_final_norm(self.model, self.layers).register_forward_hook(_HiddenStateHook(self, "final_norm"))
        return self.model

    def hidden_states(self, captured: dict) -> list[torch.Tensor]:
        """What transformers returns as `hidden_states`: the embedding output, the outputs of layers
        1..L−1, and the final norm applied to layer L's output (checked against it in the tests)."""
        return [captured["embedding"], *(captured[i] for i in range(len(self.layers) - 1)), captured["final_norm"]]

    def pair_tensors(self) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """(short name, fast tensor, slow tensor), paired by name with the adapter name swapped."""
        fast = adapter_parameters(self.model, "fast")
        slow = adapter_parameters(self.model, "slow")
        short = short_names(fast)
        pairs = []
        for name, p in fast.items():
            partner = name.replace(".fast.", ".slow.")
            if partner not in slow or slow[partner] is p:
                raise RuntimeError(f"I-LoRA: no slow tensor for {name}")
            pairs.append((short[name], p, slow[partner]))
        if not pairs or len(pairs) != len(slow):
            raise RuntimeError("I-LoRA: fast and slow adapters do not match")
        return pairs

    # -- data ---------------------------------------------------------------------------------
    def before_task(self, index, task, pools):
        self._fast_h = {}
        if not self.buffer:
            return pools, ILoRATaskStart(0, lam=self.options.ema_lambda).to_dict()
        current = pools[0]
        current.weight = 1.0 - self.options.mix_ratio
        by_task = [0] * index                  # buffered examples per earlier task
        for _, t in self.buffer:
            by_task[t] += 1
        return ([current, Pool(list(self.buffer), self.options.mix_ratio, name="buffer")],
                ILoRATaskStart(len(self.buffer), by_task, self.options.ema_lambda).to_dict())

    def after_task(self, index, task):
        order = list(task.train)
        self.ctx.rng.shuffle(order)
        size = self.options.buffer_size
        for ex in order:                      # reservoir sampling over the stream of training examples
            self.seen += 1
            if len(self.buffer) < size:
                self.buffer.append((ex, index))
            else:
                j = self.ctx.rng.randrange(self.seen)
                if j < size:
                    self.buffer[j] = (ex, index)
        self._fast_h = {}
        return ILoRATaskEnd(len(self.buffer), self.distance()).to_dict()

    # -- loss ---------------------------------------------------------------------------------
    def loss(self, batch, out):
        lam = self.options.ema_lambda
        ce_sum, n_tok = token_ce(out.logits, batch.labels)
        cur, buf = batch.sources == 0, batch.sources != 0
        ce_cur = ce_sum[cur].sum() / n_tok[cur].sum().clamp(min=1)
        scalars = {"lambda": lam, "slow_fast_dist": self.distance(), "ce_current": float(ce_cur.detach())}
        fast_h, self._fast_h = self._fast_h, {}
        if not bool(buf.any()):
            scalars.update(consistency=0.0)
            return None, scalars          # no buffer rows: the trainer's CE is already CE(current)
        ce_buf = ce_sum[buf].sum() / n_tok[buf].sum().clamp(min=1)
        if self.options.consistency == "released":
            consistency = self.released_consistency(batch, buf, fast_h)
        else:
            consistency = self.consistency(batch, buf, fast_h)
        total = 0.5 * (ce_cur + ce_buf) + self.options.gamma * consistency
        scalars.update(ce_buffer=float(ce_buf.detach()), consistency=float(consistency.detach()))
        return total - out.loss, scalars

    def _slow_hidden(self, rows) -> dict:
        """The slow learner's hidden states on the buffer rows (no gradients), captured by the same hooks."""
        self._slow_h = {}
        try:
            with torch.no_grad(), active_adapter(self.model, "slow"):
                self.model(input_ids=rows.input_ids, attention_mask=rows.attention_mask)
            return self._slow_h
        finally:
            self._slow_h = None

    def released_consistency(self, batch, buf, fast_h) -> torch.Tensor:
        """LLMCL's form: one mean of (h_f − max(h_f, h_s))² over every entry of every tensor in transformers'
        `hidden_states` (embedding output, each layer's output, the final normalised state), at the
        non-padded positions of the buffer rows."""
        if len(fast_h) != len(self.layers) + 2:
            raise RuntimeError("I-LoRA: the fast hidden states of this step were not captured")
        rows = batch.select(buf)
        slow_h = self._slow_hidden(rows)
        mask = rows.attention_mask.bool()
        squared = []
        for h_f, h_s in zip(self.hidden_states(fast_h), self.hidden_states(slow_h)):
            h_f, h_s = h_f[buf][mask].float(), h_s[mask].float()
            squared.append((h_f - torch.maximum(h_f, h_s)) ** 2)
        return torch.cat(squared).mean()

    def consistency(self, batch, buf, fast_h) -> torch.Tensor:
        """Σ_layers MSE(h_f, max(h_f, h_s)) over the non-padded positions of the buffer rows."""
        if not all(i in fast_h for i in range(len(self.layers))):
            raise RuntimeError("I-LoRA: the fast hidden states of this step were not captured")
        rows = batch.select(buf)
        slow_h = self._slow_hidden(rows)
        mask = rows.attention_mask.bool()
        total = 0.0
        for i in range(len(self.layers)):
            h_f = fast_h[i][buf][mask].float()
            h_s = slow_h[i][mask].float()
            total = total + F.mse_loss(h_f, torch.maximum(h_f, h_s))
        return total

    # -- the slow learner -------------------------------------------------------------------
    @torch.no_grad()
    def after_step(self, step):
        lam = self.options.ema_lambda
        for _, fast, slow in self.pairs:
            slow.mul_(lam).add_(fast, alpha=1.0 - lam)
        if not self.pairs:
            return {}
        norms = torch.stack([torch.linalg.vector_norm((s - f).float()) for _, f, s in self.pairs]).tolist()
        return {name: value for (name, _, _), value in zip(self.pairs, norms)}

    @torch.no_grad()
    def distance(self) -> float:
        """‖θ_s − θ_f‖₂ over all LoRA tensors."""
        if not self.pairs:
            return 0.0
        return float(torch.stack([((s - f).float() ** 2).sum() for _, f, s in self.pairs]).sum().sqrt())

    def extra_states(self):
        return {"slow": state_of(self.model, "slow")}

    def route(self, examples):
        return [self.options.infer] * len(examples)

    def use_for_inference(self, adapter):
        return active_adapter(self.model, adapter)

    # -- displays -----------------------------------------------------------------------------
    @classmethod
    def panels(cls, log):
        """‖θ_slow − θ_fast‖ per LoRA tensor per step (how far the slow learner trails; λ is fixed) and the
        distance and buffer size at each task end."""
        if not log.coefficients:
            return [Message("No step trained yet.", how=HOW_TO_READ)]
        lam = log.config.get("method_options", {}).get("ema_lambda")
        lam_text = f"λ = {lam:g}" if lam is not None else "λ fixed"
        heat = step_heatmap(log, title=f"I-LoRA: ‖θ_slow − θ_fast‖ per tensor after each step "
                                       f"({lam_text}: slow ← λ·slow + (1−λ)·fast)",
                            value_name="‖θs−θf‖", how=HOW_TO_READ, side_title="mean distance", side_log=True,
                            table_label="distance")
        ends = ILoRATaskEnd.read_all(log.task_end_info)
        rows = tuple((f"{i + 1}. {log.tasks[i]}",
                      format(float("nan") if e.slow_fast_distance is None else e.slow_fast_distance, ".4g"),
                      "·" if e.buffer is None else str(e.buffer)) for i, e in enumerate(ends))
        per_task = Table(("task", "‖θ_slow − θ_fast‖ at its end (all tensors)", "buffer size"), rows,
                         numeric=(False, True, True))
        return [replace(heat, side=tuple(row_means(heat.values))), per_task]
