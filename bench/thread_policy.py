"""The torch thread policy, measured idle and busy side by side (issue 18): which thread count should a run
take by default when the machine may be busy with something else?

One short default-lesson SeqFT run (5 tasks x STEPS steps, no periodic evaluation, the task-end and
general evaluations included) is timed with 1 and with 2 torch threads, on two paths:

- `cli`: `python -m cit_core run ... --threads T` in a fresh process; the time is its own "done in" line
  (training + evaluations, no imports or model building);
- `app`: the app's path in a fresh process: the Trainer built and advanced in Play-sized chunks through
  `serve.compute.run` (the app's compute thread; nothing else in the process uses torch).

and under three loads, started by this script before the timed run and stopped after it:

- `idle`: nothing else (whatever the rest of the machine is doing: the load average is printed);
- `+1-thread run`: a second training process with 1 torch thread (one core busy: a browser drawing
  plots, a second run under the new default);
- `+same run`: a second training process with the same thread count as the timed one (two runs started
  alike: the old default, 2 threads each, on a 2-core machine).

    python bench/thread_policy.py --steps 8 --repeats 2
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "TRANSFORMERS_VERBOSITY": "error"}
ENV.pop("CIT_TORCH_THREADS", None)
LOADS = ("idle", "+1-thread run", "+same run")
PATHS = ("cli", "app")
CHUNK = 4                                 # steps per compute.run call on the app path (a Play chunk)


def _config(threads: int, steps: int, eval_every: int = 0):
    from cit_core.config import RunConfig, TrainConfig
    return RunConfig(method="seqft", train=TrainConfig(threads=threads, steps_per_task=steps, eval_every=eval_every))


def compete(threads: int) -> None:
    """A competing training process: SeqFT steps forever (until killed), `ready` once warmed up."""
    from cit_core.trainer import Trainer
    trainer = Trainer(_config(threads, 100_000))
    trainer.advance(3)
    print("ready", flush=True)
    while True:
        trainer.advance(10)


def app_child(threads: int, steps: int) -> None:
    """The app's path: compute thread, Play-sized chunks; prints the seconds the run's steps took."""
    from serve import compute
    from cit_core.trainer import Trainer
    compute.configure(1)                      # as app.py: one compute thread owns the only OpenMP team
    trainer = compute.run(Trainer, _config(threads, steps))
    started = time.perf_counter()
    while not trainer.finished:
        compute.run(trainer.advance, CHUNK)
    print(time.perf_counter() - started)


def timed(path: str, threads: int, steps: int) -> float:
    if path == "cli":
        with tempfile.TemporaryDirectory() as out:
            proc = subprocess.run([sys.executable, "-m", "cit_core", "run", "--lesson", "default", "--method", "seqft",
                                   "--steps-per-task", str(steps), "--eval-every", "0", "--threads", str(threads),
                                   "--out", os.path.join(out, "run")],
                                  cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
        return float(re.search(r"done in ([0-9.]+) s", proc.stderr).group(1))
    proc = subprocess.run([sys.executable, __file__, "--app-child", str(threads), "--steps", str(steps)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
    return float(proc.stdout.split()[-1])


def measure(path: str, threads: int, load: str, steps: int) -> float:
    competitor = None
    if load != "idle":
        other = 1 if load == "+1-thread run" else threads
        competitor = subprocess.Popen([sys.executable, __file__, "--compete", str(other)], cwd=ROOT, env=ENV,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if competitor.stdout.readline().strip() != "ready":
            raise RuntimeError("the competing run did not start")
    try:
        return timed(path, threads, steps)
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8, help="steps per task of the timed run (5 tasks)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    ap.add_argument("--compete", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--app-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.compete:
        compete(args.compete)
        return
    if args.app_child:
        app_child(args.app_child, args.steps)
        return
    from cit_core.threads import default_threads
    times = {}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):           # alternating settings, so machine noise hits all alike
        for path in args.paths:
            for load in LOADS:
                for threads in args.threads:
                    t = measure(path, threads, load, args.steps)
                    times.setdefault((path, load, threads), []).append(t)
                    print(f"  {path} {load} {threads} threads: {t:.1f} s", file=sys.stderr, flush=True)
    print(f"default-lesson SeqFT, 5 tasks x {args.steps} steps, evaluation at task ends; {os.cpu_count()} cores; "
          f"median of {args.repeats}; load average at start {load_before:.2f}, at end {os.getloadavg()[0]:.2f}; "
          f"the default policy picks {default_threads(1)} thread(s) for the CLI and for one app run\n")
    cols = [f"{t} thread{'s' if t > 1 else ''}" for t in args.threads]
    print("| path | load | " + " | ".join(f"{c} (s)" for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for path in args.paths:
        for load in LOADS:
            cells = [f"{statistics.median(times[(path, load, t)]):.1f}" for t in args.threads]
            print(f"| {path} | {load} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
