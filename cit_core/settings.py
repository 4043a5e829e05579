"""Every environment variable the project reads, parsed in one place with one style.

`settings()` returns a frozen `Settings`; it parses the environment once and again only when one of the
variables below changed (a test's monkeypatch, a launcher that sets a variable late), so no module reads
`os.environ` for these itself and nothing happens at import. A malformed value never stops the app: it
falls back to the default (`problems` lists what was ignored) — except CIT_MEM_BUDGET_MB, where a wrong
memory budget would be worse than refusing to start.

| variable | default | what it sets |
|---|---|---|
| `CIT_HOST` / `GRADIO_SERVER_NAME` | 127.0.0.1 | the address the app binds (CIT_HOST wins; Spaces set GRADIO_SERVER_NAME) |
| `CIT_PORT` / `GRADIO_SERVER_PORT` | 7860 | the port the app binds (CIT_PORT wins) |
| `CIT_PUBLIC` | 1 when `SPACE_ID` is set | a public server: sessions see only their own runs, per-run work is capped |
| `CIT_RUNS_DIR` | `$XDG_CACHE_HOME/cit-explorer/runs` | the run store |
| `CIT_STORE_MAX_MB` | 2048 | the run store's size cap: the oldest finished runs go first when a new run starts past it |
| `CIT_CACHE` | `$XDG_CACHE_HOME/cit-explorer` | converted model weights (SmolLM2) |
| `CIT_ALLOW_HUB` | 1 locally, 0 on a Space | whether a user may ask for a Hugging Face Hub download |
| `CIT_TORCH_THREADS` | cores split over training runs, one core left free | torch threads per run |
| `CIT_TRAIN_CONCURRENCY` | half the cores (CPU), up to 4 (CUDA) | runs that train at the same moment |
| `CIT_MAX_RUNS` | 32 | runs that may train at once, taking turns on the CPU (finished, paused and idle runs hold no slot) |
| `CIT_MAX_RUN_STEPS` | 2000 public, 1000000 locally | steps one run may train (steps per task x tasks) |
| `CIT_RUNS_PER_SESSION` | 1 public, no limit locally; 0 = no limit | live runs one browser session may hold |
| `CIT_IDLE_TTL_S` | 1800 | seconds an untouched live run is kept |
| `CIT_QUEUE_MAX` | 64 + 32 per further training slot | pending events Gradio's queue accepts |
| `CIT_MEM_BUDGET_MB` | half the RAM available at start; 0 = none | memory all live runs may use |
| `CIT_GPU_DURATION` | 60 | seconds one ZeroGPU call may take |
| `CIT_CHUNK_KEY` | made at start-up | the HMAC key of ZeroGPU training states (at least 32 characters) |
| `SPACE_ID`, `SPACES_ZERO_GPU` | unset | set by Hugging Face Spaces |
| `HF_HUB_OFFLINE` | unset | `1`: never download a model |
| `XDG_CACHE_HOME` | `~/.cache` | the cache's root: the default run store and model cache live under it |
| `HOME` | the user's home | `~/.cache`, the cache's root when `XDG_CACHE_HOME` is unset |
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

NAMES = ("CIT_HOST", "GRADIO_SERVER_NAME", "CIT_PORT", "GRADIO_SERVER_PORT", "CIT_PUBLIC", "CIT_RUNS_DIR", "CIT_STORE_MAX_MB",
         "CIT_CACHE", "CIT_ALLOW_HUB", "CIT_TORCH_THREADS", "CIT_TRAIN_CONCURRENCY", "CIT_MAX_RUNS",
         "CIT_MAX_RUN_STEPS", "CIT_RUNS_PER_SESSION", "CIT_IDLE_TTL_S", "CIT_QUEUE_MAX", "CIT_MEM_BUDGET_MB", "CIT_GPU_DURATION", "CIT_CHUNK_KEY", "SPACE_ID",
         "SPACES_ZERO_GPU", "HF_HUB_OFFLINE", "XDG_CACHE_HOME", "HOME")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# one run's work cap: on a public server about nine default runs (5 tasks x 45 steps), so that nobody holds
# the CPU for hours; locally only a guard against a typo
PUBLIC_RUN_STEPS, LOCAL_RUN_STEPS = 2000, 1_000_000


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 7860
    public: bool = False
    runs_dir: Path = Path("~/.cache/cit-explorer/runs")
    store_max_mb: float = 2048.0
    cache_dir: Path = Path("~/.cache/cit-explorer")
    allow_hub: bool = True
    torch_threads: int | None = None
    train_concurrency: int | None = None
    max_runs: int = 32
    max_run_steps: int = 1_000_000
    runs_per_session: int | None = None     # None: no limit
    idle_ttl_s: float = 1800.0
    queue_max: int | None = None
    mem_budget_mb: float | None = None      # None: half the available RAM; 0: no budget
    gpu_duration: int = 60
    chunk_key: str | None = None
    space_id: str | None = None
    zero_gpu: bool = False
    hf_offline: bool = False
    problems: tuple[str, ...] = field(default=(), compare=False)


class _Reader:
    def __init__(self, env):
        self.env, self.problems = env, []

    def text(self, *names: str) -> str | None:
        for name in names:                     # the first variable that is set and not blank wins
            value = (self.env.get(name) or "").strip()
            if value:
                return value
        return None

    def positive(self, kind, names, default):
        names = (names,) if isinstance(names, str) else names
        value = self.text(*names)
        if value is None:
            return default
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or number <= 0:
            self.problems.append(f"{names[0]}={value!r} is not a positive {kind.__name__}; using {default}")
            return default
        return number

    def count(self, name: str, default: int) -> int:
        """A whole number of at least 0 (0 means "no limit" where the table says so)."""
        value = self.text(name)
        if value is None:
            return default
        if not value.isdigit():
            self.problems.append(f"{name}={value!r} is not a whole number of at least 0; using {default}")
            return default
        return int(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        if value.lower() in TRUE + FALSE:
            return value.lower() in TRUE
        self.problems.append(f"{name}={value!r} is not 1/0; using {int(default)}")
        return default


def _no_limit_at_zero(value: int) -> int | None:
    return value or None


def _mem_budget(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        raise ValueError(f"CIT_MEM_BUDGET_MB must be a number of megabytes, got {value!r}") from None


def from_env(env=None) -> Settings:
    env = os.environ if env is None else env
    r = _Reader(env)
    cache = Path(r.text("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"))
    space_id = r.text("SPACE_ID")
    public = r.flag("CIT_PUBLIC", space_id is not None)
    key = env.get("CIT_CHUNK_KEY")
    if key is not None and len(key.strip()) < 32:
        r.problems.append("CIT_CHUNK_KEY is shorter than 32 characters; ZeroGPU states will be refused")
    return Settings(
        host=r.text("CIT_HOST", "GRADIO_SERVER_NAME") or "127.0.0.1",
        port=r.positive(int, ("CIT_PORT", "GRADIO_SERVER_PORT"), 7860),
        public=public,
        runs_dir=Path(r.text("CIT_RUNS_DIR") or cache / "cit-explorer" / "runs").expanduser(),
        store_max_mb=r.positive(float, "CIT_STORE_MAX_MB", 2048.0),
        cache_dir=Path(r.text("CIT_CACHE") or cache / "cit-explorer").expanduser(),
        allow_hub=r.flag("CIT_ALLOW_HUB", space_id is None),
        torch_threads=r.positive(int, "CIT_TORCH_THREADS", None),
        train_concurrency=r.positive(int, "CIT_TRAIN_CONCURRENCY", None),
        max_runs=r.positive(int, "CIT_MAX_RUNS", 32),
        max_run_steps=r.positive(int, "CIT_MAX_RUN_STEPS", PUBLIC_RUN_STEPS if public else LOCAL_RUN_STEPS),
        runs_per_session=_no_limit_at_zero(r.count("CIT_RUNS_PER_SESSION", 1 if public else 0)),
        idle_ttl_s=r.positive(float, "CIT_IDLE_TTL_S", 1800.0),
        queue_max=r.positive(int, "CIT_QUEUE_MAX", None),
        mem_budget_mb=_mem_budget(r.text("CIT_MEM_BUDGET_MB")),
        gpu_duration=r.positive(int, "CIT_GPU_DURATION", 60),
        chunk_key=key,
        space_id=space_id,
        zero_gpu=bool(r.text("SPACES_ZERO_GPU")),
        hf_offline=r.text("HF_HUB_OFFLINE") == "1",
        problems=tuple(r.problems),
    )


_cache: tuple[tuple, Settings] | None = None


def settings() -> Settings:
    """The current settings (parsed again only when one of NAMES changed in the environment)."""
    global _cache
    stamp = tuple(os.environ.get(name) for name in NAMES)
    cached = _cache
    if cached is None or cached[0] != stamp:
        cached = _cache = (stamp, from_env())
    return cached[1]


__all__ = ["Settings", "settings", "from_env", "NAMES"]
