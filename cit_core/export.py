"""Export: metrics as CSV / JSON, figures as standalone HTML, LoRA adapters as peft folders.

No plotly import here: a figure is anything with plotly's `to_html`, written with plotly.js inlined so
the file opens offline (no CDN).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from .compare import METRICS, RunRecord, grouped, run_row
from .runs import write_json_atomic

CSV_FIELDS = ("run", "method", "lesson", "seed", *METRICS, "wall_s", "finished")


def metrics_csv(rows: list[dict]) -> str:
    """One line per run (the compare table); empty cells for an unfinished run's missing numbers."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_FIELDS} for r in rows)
    return buf.getvalue()


def metrics_json(records: list[RunRecord], upper: list[float] | None = None) -> dict:
    """Per run: config, metrics, accuracy matrix, base scores and curves; plus the grouped mean ± std.
    `upper`: RG's per-task upper bounds (compare.single_task_bounds); default each run's own diagonal."""
    rows = [run_row(r, upper) for r in records]
    runs = []
    for rec, row in zip(records, rows):
        runs.append({**row, "tasks": list(rec.log.tasks), "base_scores": list(rec.log.base_scores),
                     "acc_matrix": [list(x) for x in rec.log.acc_matrix], "curves": rec.log.curves(),
                     "config": rec.config})
    groups = [{**g, **{k: (None if g[k] is None else {"mean": g[k][0], "std": g[k][1]})
                       for k in (*METRICS, "wall_s")}} for g in grouped(rows)]
    return {"runs": runs, "groups": groups, "std": "population (numpy default, ddof=0)",
            "rg_upper": "own diagonal R[i][i]" if upper is None else list(upper)}


def write_metrics(records: list[RunRecord], folder, stem: str = "metrics",
                  upper: list[float] | None = None) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
    csv_path.write_text(metrics_csv([run_row(r, upper) for r in records]), encoding="utf-8")
    write_json_atomic(json_path, metrics_json(records, upper))
    return [csv_path, json_path]


def write_figure_html(fig, path) -> Path:
    """A standalone HTML file: plotly.js is inlined, so it opens without a network."""
    path = Path(path)
    path.write_text(fig.to_html(include_plotlyjs=True, full_html=True), encoding="utf-8")
    return path


# -- adapters -------------------------------------------------------------------------------------
def is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:         # peft is a dependency; this only keeps the check cheap to call
        return False
    return isinstance(model, PeftModel)


def adapter_folders(folder, names) -> dict[str, Path]:
    """Where peft's save_pretrained puts each adapter: 'default' at the top, the others in subfolders."""
    folder = Path(folder)
    return {n: (folder if n == "default" else folder / n) for n in names}


def save_adapters(model, folder) -> dict[str, Path]:
    """Every LoRA adapter of a peft model, each loadable with `PeftModel.from_pretrained(base, path)`.

    Returns {adapter name: folder}; {} for a model without adapters (full fine-tuning methods)."""
    if not is_peft(model):
        return {}
    names = list(model.peft_config)
    model.save_pretrained(str(folder), selected_adapters=names)
    return adapter_folders(folder, names)


def base_state(model) -> dict:
    """The frozen base weights under a peft model, keyed as in the plain model (LoRA tensors left out)."""
    inner = model.get_base_model()
    return {k.replace(".base_layer.", "."): v for k, v in inner.state_dict().items() if ".lora_" not in k}


def save_base(model, cfg, folder) -> Path:
    """The base model as a Hugging Face folder (tiny model only: it is built in code, not on the Hub).

    Built fresh from the config and filled (strictly) with the live base weights, so what is saved is
    exactly what the adapters sit on."""
    from .model import build_tiny
    fresh, _tok = build_tiny(cfg.model, cfg.train.seed)
    fresh.load_state_dict(base_state(model), strict=True)
    fresh.save_pretrained(str(folder))
    return Path(folder)


def export_model(trainer, folder) -> dict:
    """Adapters (and, for the tiny model, the base) of a live trainer into `folder`; a note saying how to load."""
    folder = Path(folder)
    adapters = save_adapters(trainer.model, folder / "adapters")
    base = None
    if adapters and trainer.cfg.model.name in ("tiny", "tiny-scratch"):
        base = save_base(trainer.model, trainer.cfg, folder / "base")
    info = {"adapters": {k: str(v.relative_to(folder)) for k, v in adapters.items()},
            "base": None if base is None else str(base.relative_to(folder)),
            "base_model": trainer.cfg.model.name}
    if adapters:
        (folder / "LOAD.md").write_text(_load_note(info), encoding="utf-8")
    return info


def _load_note(info: dict) -> str:
    name, path = next(iter(info["adapters"].items()))
    base = (f'AutoModelForCausalLM.from_pretrained("{info["base"]}")' if info["base"]
            else f'AutoModelForCausalLM.from_pretrained(...)  # the base model: {info["base_model"]}')
    return ("# Loading these adapters\n\n```python\nfrom transformers import AutoModelForCausalLM\n"
            f"from peft import PeftModel\nbase = {base}\n"
            f'model = PeftModel.from_pretrained(base, "{path}", adapter_name="{name}")\n```\n\n'
            "Adapters: " + ", ".join(f"`{k}` → `{v}`" for k, v in info["adapters"].items()) + "\n"
            + ("\nThe tiny model's tokenizer is byte-level (`cit_core.tokenize`), not a Hugging Face one.\n"
               if info["base"] else ""))

