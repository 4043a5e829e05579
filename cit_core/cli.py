"""Command line: python -m cit_core run|methods|validate ...  (progress on stderr, results in files)."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from .config import ConfigError, LessonConfig, ModelConfig, RunConfig, TrainConfig, help_text
from .metrics import format_value


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_config(args) -> RunConfig:
    from .threads import default_threads
    train = {"seed": args.seed}
    for name in ("steps_per_task", "lr", "batch_size", "eval_every", "threads"):
        value = getattr(args, name)
        if value is not None:
            train[name] = value
    if args.threads is None:            # safe on a busy machine: one core left free (README, "Threads")
        train["threads"] = default_threads()
    options = {}
    for item in args.option or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--option expects key=value, got {item!r}")
        options[key] = _parse_value(value)
    from .methods import resolve
    model = ModelConfig(name=args.model, allow_download=args.allow_download)
    return resolve(RunConfig(method=args.method, model=model, train=TrainConfig(**train),
                             lesson=LessonConfig(name=args.lesson, files=list(args.tasks or [])),
                             method_options=options))


def cmd_run(args) -> int:
    from .events import Evaluated, RunEnded, RunFailed, StepLogged, TaskEnded
    from .trainer import Trainer
    cfg = build_config(args)
    trainer = Trainer(cfg, run_dir=args.out)   # the trainer writes the run directory itself
    progress = _progress if trainer.dist.is_main else (lambda *_: None)   # one voice under torchrun
    started = time.perf_counter()
    for event in trainer.events():
        if isinstance(event, StepLogged) and event.step % 50 == 0:
            progress(f"step {event.step}/{trainer.log.total_steps} task {event.task + 1} "
                      f"loss {event.loss:.4f}")
        elif isinstance(event, Evaluated) and event.task < 0:
            progress(f"base scores {_fmt(event.scores)}{_general(event.general)}")
        elif isinstance(event, TaskEnded):
            progress(f"after task {event.task + 1} ({trainer.lesson.tasks[event.task].name}): "
                      f"{_fmt(event.acc_row)}{_general(event.general)}")
        elif isinstance(event, RunFailed):
            progress(f"error: {event.message}")
            return 1
        elif isinstance(event, RunEnded):
            m = event.summary["metrics"]
            progress("done in {:.1f} s: ".format(time.perf_counter() - started)
                      + " ".join(f"{k}={format_value(k, v)}" for k, v in m.items()))
    return 0


def cmd_sweep(args) -> int:
    from .methods import METHODS
    from .sweep import sweep
    methods = list(METHODS) if args.methods == ["all"] else args.methods
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown methods {unknown}; choose from {sorted(METHODS)} or 'all'")
    args.method, args.seed, args.option = methods[0], args.seeds[0], []
    base = build_config(args)
    table = sweep(base, methods, args.seeds, Path(args.out), log=_progress)
    print((Path(args.out) / "table.md").read_text(), end="")
    return 0 if table else 1


def cmd_pretrain(args) -> int:
    from .pretrain import PretrainConfig, pretrain
    cfg = PretrainConfig(**{k: v for k, v in vars(args).items()
                            if k in PretrainConfig.__dataclass_fields__ and v is not None})
    command = "python -m cit_core " + shlex.join(args.argv)      # the manifest records the exact command
    pretrain(Path(args.out), cfg, command=command, log=_progress)
    return 0


def cmd_methods(args) -> int:
    from .methods import METHODS
    for name, cls in METHODS.items():
        print(f"{name}\t{cls.title}")
    return 0


def cmd_validate(args) -> int:
    from .lessons.files import LessonFileError, load_lesson_files
    try:
        lesson = load_lesson_files(args.files)
    except LessonFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for task in lesson.tasks:
        print(f"{_shown_name(task.name)}\t{len(task.train)} train\t{len(task.eval)} eval\t{task.scorer}")
    return 0


def _shown_name(name: str) -> str:
    """A task name for one TSV cell: as is when every character prints, else repr-escaped and quoted.
    The loader refuses tabs and newlines in names; this keeps one line per task should one get through."""
    return name if name.isprintable() else repr(name)


def cmd_compare(args) -> int:
    from .compare import load_run, load_runs, run_row, single_task_bounds, table_text
    from .export import metrics_csv
    records = load_runs(args.dirs)
    upper = single_task_bounds(load_run(args.rg_upper), records) if args.rg_upper else None
    rows = [run_row(r, upper) for r in records]
    print(table_text(rows))
    if args.out:
        try:
            Path(args.out).write_text(metrics_csv(rows), encoding="utf-8")
        except OSError as err:
            raise ValueError(f"cannot write {args.out}: {err.strerror or err}") from err
        _progress(f"wrote {args.out}")
    return 0


RUNS_COLUMNS = ("run", "method", "seed", "tasks done", "AP", "BWT", "forgetting", "created", "size")


def cmd_runs(args) -> int:
    from .compare import CompareError, load_run, store_row
    from .store import list_runs, run_path, runs_root
    names = list_runs()
    _progress(f"{len(names)} runs in {runs_root()}")
    print("\t".join(RUNS_COLUMNS))          # a header line: the TSV reads into a spreadsheet or pandas as is
    for name in names:
        try:
            row = store_row(load_run(run_path(name)))
        except CompareError as err:
            print(f"{name}\tunreadable: {err}")
            continue
        print("\t".join(str(row[k]) for k in RUNS_COLUMNS))
    return 0


def cmd_gallery_build(args) -> int:
    from .gallery import build
    entries = build(args.from_dir, args.out, seed=args.seed, log=_progress,
                    connectivity=not args.no_connectivity, embeddings=not args.no_embeddings)
    total = sum(e["size"] for e in entries)
    print(f"{len(entries)} recordings in {args.out or 'assets/gallery'} ({total / 1024:.0f} KiB)")
    return 0


def cmd_gallery_list(args) -> int:
    from .gallery import index
    for e in index(args.dir):
        m = e["metrics"]
        print(f"{e['name']}\tseed {e['seed']}\t{e['lesson']}\tAP {m.get('AP', float('nan')):.3f}\t"
              f"BWT {m.get('BWT', float('nan')):.3f}\tdrift {'yes' if e['has_drift'] else 'no'}\t{e['size']} B")
    return 0


def cmd_probe_connectivity(args) -> int:
    from .connectivity import probe_run
    out = probe_run(Path(args.run), points=args.points, log=_progress, max_eval=args.max_eval or None)
    print(out)
    return 0


def cmd_probe_embeddings(args) -> int:
    from .embeddings import probe_run
    out = probe_run(Path(args.run), projection=args.projection, log=_progress)
    print(out)
    return 0


def _fmt(scores) -> str:
    return " ".join(f"{s:.2f}" for s in scores)


def _general(score) -> str:
    return "" if score is None else f" | general {score:.2f}"


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _knob_help(name: str) -> str:
    """A TrainConfig field's help, its range and its default (the flag help of `run` and `sweep`)."""
    from dataclasses import fields
    default = {f.name: f.default for f in fields(TrainConfig)}[name]
    return f"{help_text(TrainConfig, name)}; default {default}".replace("%", "%%")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """Lesson, model and training flags shared by `run` and `sweep`."""
    from .lessons import BUILTIN
    p.add_argument("--lesson", default="default", metavar="NAME",
                   help=f"built-in lesson: {', '.join(BUILTIN)} (default: default); ignored with --tasks")
    p.add_argument("--tasks", nargs="+", metavar="FILE",
                   help="lesson files instead of a built-in lesson (JSONL, SuperNI task JSON, TRACE JSON)")
    p.add_argument("--model", default="tiny", metavar="MODEL",
                   help="tiny (the instruction-tuned base), tiny-scratch (random init), smollm2, or a Hugging "
                        "Face id or folder (default: tiny)")
    p.add_argument("--allow-download", dest="allow_download", action="store_true",
                   help="let --model download a Hugging Face Hub id (needs network; off by default: nothing "
                        "is downloaded unless you ask)")
    p.add_argument("--steps-per-task", dest="steps_per_task", type=int, metavar="N", help=_knob_help("steps_per_task"))
    p.add_argument("--lr", type=float, help=_knob_help("lr"))
    p.add_argument("--batch-size", dest="batch_size", type=int, metavar="N", help=_knob_help("batch_size"))
    p.add_argument("--eval-every", dest="eval_every", type=int, metavar="N", help=_knob_help("eval_every"))
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch; default: env CIT_TORCH_THREADS, else every core but one "
                        "(1 on a 2-core machine: safe when the machine is busy, README 'Threads')")
    p.add_argument("--out", required=True, metavar="DIR", help="the run directory to write (created)")


def _add_probe_commands(sub) -> None:
    """`probe connectivity` and `probe embeddings`."""
    pr = sub.add_parser("probe", help="analyse a saved run; writes a JSON file into its directory")
    probes = pr.add_subparsers(dest="probe", required=True)
    c = probes.add_parser("connectivity", help="loss and accuracy along the line between task solutions "
                                               "-> DIR/connectivity.json")
    c.add_argument("--run", required=True, metavar="DIR", help="a finished run directory with checkpoints")
    c.add_argument("--points", type=int, default=11, help="interpolation points from a=0 to a=1")
    c.add_argument("--max-eval", type=int, default=32, metavar="N",
                   help="held-out examples per task at each point (0 = all)")
    c.set_defaults(func=cmd_probe_connectivity)
    e = probes.add_parser("embeddings", help="2-D map of the lesson's instruction embeddings and the "
                                             "methods' similarity matrices -> DIR/embeddings.json")
    e.add_argument("--run", required=True, metavar="DIR", help="a run directory (its lesson is embedded)")
    e.add_argument("--projection", choices=["umap", "pca"], default="umap",
                   help="2-D projection of the embeddings (default: umap, seeded)")
    e.set_defaults(func=cmd_probe_embeddings)


def _add_gallery_commands(sub) -> None:
    """`gallery build` and `gallery list`."""
    g = sub.add_parser("gallery", help="the shipped recordings (assets/gallery)")
    gs = g.add_subparsers(dest="gallery", required=True)
    gb = gs.add_parser("build", help="pack finished run directories (e.g. a sweep's DIR) into the gallery")
    gb.add_argument("--from", dest="from_dir", required=True, metavar="DIR",
                    help="a folder of finished run directories (a sweep's --out)")
    gb.add_argument("--out", default=None, metavar="DIR", help="default: assets/gallery")
    gb.add_argument("--seed", type=int, default=0, help="which seed's runs to pack (default 0)")
    gb.add_argument("--no-connectivity", action="store_true",
                    help="ship no connectivity lines (default: probe each run that has task-end checkpoints, "
                         "reusing its connectivity.json when it was probed with the gallery's settings)")
    gb.add_argument("--no-embeddings", action="store_true",
                    help="do not ship the lessons' instruction embeddings and maps (assets/gallery/embeddings)")
    gb.set_defaults(func=cmd_gallery_build)
    gl = gs.add_parser("list", help="list the recordings")
    gl.add_argument("--dir", default=None, metavar="DIR", help="default: assets/gallery")
    gl.set_defaults(func=cmd_gallery_list)


def _add_pretrain_command(sub) -> None:
    """`pretrain`: the tiny base's instruction tuning."""
    pt = sub.add_parser("pretrain", help="multi-task instruction-tune the tiny byte model on the generated "
                                         "corpus -> DIR/model.safetensors + manifest.json")
    pt.add_argument("--out", required=True, metavar="DIR", help="where model.safetensors and manifest.json go")
    pt.add_argument("--steps", type=int, metavar="N", help="AdamW steps (default 7000)")
    pt.add_argument("--batch-size", dest="batch_size", type=int, metavar="N", help="examples per step (default 64)")
    pt.add_argument("--lr", type=float, help="peak learning rate, after warm-up, before cosine decay (default 3e-3)")
    pt.add_argument("--seed", type=int, help="seed of the corpus sampling and the init (default 0)")
    pt.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default 2, as recorded in "
                                                             "the shipped manifest)")
    pt.add_argument("--eval-every", dest="eval_every", type=int, metavar="N",
                    help="score the held-out family prompts every N steps (default 1000)")
    pt.set_defaults(func=cmd_pretrain)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cit_core", description="CIT Explorer engine")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train through a lesson and write a run directory")
    _add_run_args(r)
    r.add_argument("--method", default="seqft", help="a registered method (`python -m cit_core methods`; "
                                                     "default: seqft)")
    r.add_argument("--seed", type=int, default=0, help=help_text(TrainConfig, "seed") + "; default 0")
    r.add_argument("--option", action="append", metavar="KEY=VALUE", help="a method option, repeatable")
    r.set_defaults(func=cmd_run)
    w = sub.add_parser("sweep", help="run methods x seeds and write a table of mean ± std")
    _add_run_args(w)
    w.add_argument("--methods", nargs="+", default=["all"], help="registry keys, or 'all'")
    w.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds to run for every method (default: 0)")
    w.set_defaults(func=cmd_sweep)
    _add_probe_commands(sub)
    cp = sub.add_parser("compare", help="one row per run directory: method, seed, AP, BWT, FWT, forgetting, "
                                        "RG, wall_s (printed; --out writes CSV)")
    cp.add_argument("dirs", nargs="+", metavar="DIR", help="run directories (e.g. a sweep's DIR/*)")
    cp.add_argument("--out", metavar="FILE.csv", help="also write the table as CSV")
    cp.add_argument("--rg-upper", metavar="DIR", help="a finished per-task run (e.g. oracle_lora) whose "
                    "score on each task right after training it is RG's upper bound U_i (InsCL's single-task "
                    "bound); default: each run's own R[i][i]")
    cp.set_defaults(func=cmd_compare)
    ls = sub.add_parser("runs", help="list the runs in the run store (CIT_RUNS_DIR)")
    ls.set_defaults(func=cmd_runs)
    _add_gallery_commands(sub)
    _add_pretrain_command(sub)
    m = sub.add_parser("methods", help="list the registered methods")
    m.set_defaults(func=cmd_methods)
    v = sub.add_parser("validate", help="check lesson files; exit 0 when valid, 2 otherwise")
    v.add_argument("files", nargs="+", metavar="FILE", help="lesson files (JSONL, SuperNI task JSON, TRACE JSON)")
    v.set_defaults(func=cmd_validate)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except Exception as err:
        # ModelUnavailable is looked up, not imported: importing cit_core.model would import torch for
        # every command; if it was raised, the module is loaded
        model = sys.modules.get(f"{__package__}.model")
        if not isinstance(err, (ConfigError, ValueError)) and not (model and isinstance(err, model.ModelUnavailable)):
            raise
        # one line: a message may quote a multi-line cause (e.g. a Hub error)
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
