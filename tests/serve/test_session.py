"""serve.session without gradio: a session makes its run from the controls, plays it chunk by chunk (the
handle's steps_per_call), pauses, steps exactly, watches a recording in its place, resets and says whether a
loop drives its run."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from serve import session as session_module
from serve.controls import Controls, UserError
from serve.handles import RunHandle
from serve.registry import RunRegistry
from serve.session import SETTINGS_CHANGED, CannotStart, Session, advance, step_count
from support.lessons import small_lesson


class Handle:
    """A run handle that counts steps: no model, no torch."""
    has_weights, run_dir, steps_per_call = True, None, 3

    def __init__(self, cfg, total: int = 10):
        self.cfg, self.lesson, self.total = cfg, None, total
        self.log = SimpleNamespace(step=0)
        self.calls: list[int] = []

    @property
    def finished(self) -> bool:
        return self.log.step >= self.total

    @property
    def steps_done(self) -> int:
        return self.log.step

    def advance(self, steps: int) -> list:
        self.calls.append(steps)
        self.log.step = min(self.total, self.log.step + steps)
        return []


def controls(**changes) -> Controls:
    return Controls(**{**dict(steps_per_task=5, lr=1e-3, batch_size=8, eval_every=0, seed=0), **changes})


def session_with(total: int = 10) -> Session:
    return Session(RunRegistry(max_runs=2, idle_ttl_s=60, factory=lambda cfg: Handle(cfg, total)), owner="me")


def shown(run, over, moved):
    return run.trainer.log.step, over, moved


def test_the_fake_is_a_run_handle():
    assert isinstance(Handle(None), RunHandle)


def test_play_advances_a_chunk_of_the_handle_at_a_time_to_the_end():
    session = session_with(total=10)
    run, note = session.obtain(controls())
    assert note == "" and session.run_id == run.id and run.owner == "me"
    frames = list(session.play(run, shown, first=lambda r: "first"))
    assert frames == ["first", (3, False, 3), (6, False, 6), (9, False, 9), (10, True, 10)]
    assert run.trainer.calls == [3, 3, 3, 3] and run.streaming is None and not session.is_training()


def test_is_training_only_while_a_loop_runs():
    session = session_with(total=100)
    run, _ = session.obtain(controls())
    loop = session.play(run, shown)
    assert not session.is_training()
    next(loop)
    assert session.is_training() and run.is_training()
    loop.close()                                     # a cancelled event closes its generator
    assert not session.is_training() and run.trainer.log.step == 3


def test_pause_stops_a_loop_at_its_next_chunk():
    session = session_with(total=100)
    run, _ = session.obtain(controls())
    loop = session.play(run, shown)
    next(loop), next(loop)
    assert Session(session.registry, run.id).pause() is run      # another event, the same run
    assert list(loop) == [] and run.trainer.log.step == 6 and not session.is_training()


def test_step_moves_exactly_n_steps_and_stops_at_the_runs_end():
    session = session_with(total=100)
    run, _ = session.obtain(controls())
    assert list(session.step(run, 7, shown)) == [(3, False, 3), (6, False, 6), (7, True, 7)]
    assert run.trainer.calls == [3, 3, 1] and run.trainer.log.step == 7
    short = session_with(total=4)
    run, _ = short.obtain(controls())
    assert list(short.step(run, 7, shown))[-1] == (4, True, 4)


def test_a_step_stops_a_running_play():
    session = session_with(total=100)
    run, _ = session.obtain(controls())
    play = session.play(run, shown)
    next(play)
    assert list(session.step(run, 2, shown)) == [(5, True, 2)]
    assert list(play) == []


def test_step_count_is_checked():
    assert step_count("12") == 12
    for bad in (0, 1001, 2.5, "", "many"):
        with pytest.raises(UserError):
            step_count(bad)


def test_obtain_keeps_a_run_notes_changed_settings_and_replaces_a_finished_one():
    session = session_with(total=3)
    run, _ = session.obtain(controls())
    assert session.obtain(controls()) == (run, "")
    assert session.obtain(controls(seed=1)) == (run, SETTINGS_CHANGED)      # unfinished: kept
    assert "not valid" in session.obtain(controls(lr=5.0))[1]
    list(session.play(run, shown))
    fresh, note = session.obtain(controls(seed=1))
    assert fresh is not run and "new run with the changed settings" in note
    assert run.id not in session.registry and session.run_id == fresh.id


def test_obtain_after_eviction_says_so_and_a_bad_config_cannot_start():
    session = Session(RunRegistry(max_runs=2, idle_ttl_s=60, factory=Handle), run_id="gone")
    _, note = session.obtain(controls())
    assert "freed after being idle" in note
    with pytest.raises(CannotStart, match="Learning rate must be in"):
        Session(session.registry).obtain(controls(lr=5.0))


def test_reset_replaces_the_run_and_a_failed_reset_keeps_it():
    session = session_with()
    first = session.reset(controls())
    with pytest.raises(CannotStart, match="no file is uploaded"):
        session.reset(controls(lesson="uploaded files"))
    assert session.run is first
    second = session.reset(controls(seed=2))
    assert second is not first and first.id not in session.registry and len(session.registry) == 1
    assert session.release() and session.run is None


def test_a_crash_while_advancing_marks_the_run_failed():
    session = session_with()
    run, _ = session.obtain(controls())
    run.trainer.advance = lambda n: 1 / 0
    assert list(session.play(run, shown)) == [(0, True, 0)]
    assert run.failure.startswith("ZeroDivisionError")
    advance(run, 3)                                  # a failed run is never advanced again
    assert run.trainer.log.step == 0


def test_watch_plays_a_recording_in_the_sessions_place(monkeypatch):
    monkeypatch.setattr(session_module, "WATCH_FRAME_S", 0.0)
    session = session_with()
    live, _ = session.obtain(controls())
    run, note = session.watch("seqft")
    assert run.recorded and not run.trainer.has_weights and live.id not in session.registry and note == ""
    frames = list(session.watch_frames(run, shown, first=lambda r: "first"))
    assert frames[-1][1] and run.trainer.finished and frames[1][0] == run.trainer.steps_per_call
    with pytest.raises(CannotStart, match="Cannot play the recording"):
        session.watch("nope")
    assert session.run is run


def test_a_tiny_real_run_plays_to_its_end():
    from cit_core.trainer import Trainer
    registry = RunRegistry(max_runs=1, idle_ttl_s=60, factory=lambda cfg: Trainer(cfg, lesson=small_lesson(2, 32, 8)))
    session = Session(registry)
    run, _ = session.obtain(controls(steps_per_task=3, batch_size=4))
    *_, last = session.play(run, shown)
    assert last == (6, True, 6) and run.trainer.finished and run.trainer.log.summary is not None
