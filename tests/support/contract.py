"""The method contract: the table over every registered method and the check each row runs
(tests/methods/test_methods_contract.py runs it; tests/methods/test_adding_a_method.py runs it on a toy
method; the chunked-training and SmolLM2 tests reuse its rows). Adding a method adds one row here."""
import json
import math
import pickle

# one row per method: options that make the short run exercise the method's own code path
CONTRACT = {
    "seqft": {},
    "seqft_lora": {},
    "multitask": {},
    "replay": {"per_task": 8, "mix_ratio": 0.5},
    "inscl": {"per_task": 8, "mix_ratio": 0.5},
    "ewc": {"batches": 2},
    "mas": {"batches": 2},
    "tir": {"batches": 2},
    "expansion": {"init": "similar"},
    "oracle_lora": {},
    "switchcit": {},
    "ilora": {"buffer_size": 16},
    "lcia": {"tau": 0.0},   # τ = 0: task 2 retrains group 0 with DEMA on
}

# what a method card (assets/cards/<key>.md) must talk about
CARD_PARTS = ("idea", "update rule", "knobs", "paper", "our reading")


def check_contract(name: str, options: dict, run_dir):
    """Run `name` with `options` for 2 tasks x 4 steps on the small lesson, writing a run directory under
    run_dir, and check what every method owes the engine and the views; returns the trainer."""
    from cit_core.events import StepLogged
    from cit_core.runs import RunWriter, read_run
    from cit_core.trainer import Trainer

    from .lessons import small_config, small_lesson

    lesson = small_lesson(n_tasks=2)
    trainer = Trainer(small_config(name, steps=4, **options), lesson=lesson)
    with RunWriter(run_dir / name, trainer.cfg.to_dict()) as writer:   # every event must be writable
        for event in trainer.events():
            writer.write(event)
            if isinstance(event, StepLogged) and event.step == 5:      # the second task's first step
                check_state_pickles(trainer.method)
    summary = trainer.log.summary
    log = trainer.log
    reread = read_run(run_dir / name)
    assert reread.acc_matrix == log.acc_matrix and reread.task_end_info == json.loads(
        json.dumps(log.task_end_info, default=lambda v: v.tolist() if hasattr(v, "tolist") else list(v)))
    assert log.error is None
    assert all(math.isfinite(loss) for _, loss in log.losses)
    assert len(log.losses) == 2 * 4
    assert len(summary["acc_matrix"]) == 2 and all(len(r) == 2 for r in summary["acc_matrix"])
    assert len(summary["base_scores"]) == 2
    assert set(summary["metrics"]) == {"AP", "BWT", "FWT", "forgetting", "MAA", "RG"}
    # periodic evaluation: base + one mid-task point + the task end, per task
    assert summary["curves"]["steps"] == [0, 2, 4, 6, 8]
    assert summary["method"] == name
    return trainer


def check_state_pickles(method) -> None:
    """The method's state survives a pickle round trip between two steps: what a ZeroGPU chunk needs
    (serve/chunks.py pickles the whole training state, the method included)."""
    again = pickle.loads(pickle.dumps(method))
    assert type(again) is type(method) and set(vars(again)) == set(vars(method))


def check_card(key: str, text: str) -> None:
    """A method card names each of CARD_PARTS (case-insensitive)."""
    for part in CARD_PARTS:
        assert part in text.lower(), (key, part)
