"""serve.session without gradio: a session makes its run from the controls, plays it chunk by chunk (the
handle's steps_per_call), pauses, steps exactly, watches a recording in its place, resets and says whether a
loop drives its run."""
from __future__ import annotations

import threading
import time

import pytest

from serve import session as session_module
from serve.controls import Controls, UserError
from serve.handles import RunHandle
from serve.registry import RunRegistry
from serve.session import SETTINGS_CHANGED, CannotStart, Session, advance, step_count
from support.handles import CountingHandle
from support.lessons import small_lesson


Handle = CountingHandle


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
    # a chunk trains one step at a time (so it can stop early when its time is up)
    assert run.trainer.calls == [1] * 10 and run.streaming is None and not session.is_training()


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
    assert run.trainer.calls == [1] * 7 and run.trainer.log.step == 7
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


# -- sharing the CPU and the work of one run (issue 14) -------------------------------------------
class SlowHandle(Handle):
    """A handle whose steps take real time, and which notes when each step starts and ends."""
    steps_per_call = 2

    def __init__(self, cfg, total=8, step_s=0.01, trace=None):
        super().__init__(cfg, total)
        self.step_s, self.trace = step_s, trace if trace is not None else []

    def advance(self, steps):
        self.trace.append(("start", id(self)))
        time.sleep(self.step_s * steps)
        self.trace.append(("end", id(self)))
        return super().advance(steps)


def test_two_runs_take_turns_neither_waits_for_the_others_whole_run():
    trace: list = []
    registry = RunRegistry(max_runs=4, idle_ttl_s=60, factory=lambda cfg: SlowHandle(cfg, 12, 0.01, trace))
    runs = [Session(registry, owner=o).obtain(controls())[0] for o in ("a", "b")]
    loops = [threading.Thread(target=lambda r=r: list(Session(registry, r.id).play(r, shown))) for r in runs]
    for t in loops:
        t.start()
    for t in loops:
        t.join(timeout=30)
    assert all(r.trainer.finished for r in runs)
    ids = [who for what, who in trace if what == "start"]
    a, b = (id(r.trainer) for r in runs)
    # interleaved: each run trained before the other's last chunk ...
    assert ids.index(a) < len(ids) - 1 - ids[::-1].index(b) and ids.index(b) < len(ids) - 1 - ids[::-1].index(a)
    # ... and one turn at a time: no step of one run overlaps a step of the other
    assert all(trace[i][0] == "start" and trace[i + 1] == ("end", trace[i][1]) for i in range(0, len(trace), 2))


def test_a_loop_waiting_for_its_turn_shows_its_place_in_line():
    registry = RunRegistry(max_runs=4, idle_ttl_s=60, factory=lambda cfg: Handle(cfg, 6))
    session = Session(registry, owner="me")
    run, _ = session.obtain(controls())
    other = registry.scheduler.ticket("someone else")
    assert other.wait(0)                             # another run holds the CPU's only turn
    loop = session.play(run, shown, waiting=lambda r, words: words)
    words = next(loop)
    assert words.startswith("waiting for the CPU: 1 run ahead, about") and run.trainer.log.step == 0
    other.done()
    assert next(loop) == (3, False, 3)
    loop.close()
    assert registry.scheduler.waiting() == 0         # a closed loop leaves no ticket behind


def test_a_chunk_stops_when_its_time_is_up(monkeypatch):
    monkeypatch.setattr(session_module, "CHUNK_MAX_S", 0.05)
    registry = RunRegistry(max_runs=2, idle_ttl_s=60, factory=lambda cfg: SlowHandle(cfg, 100, 0.03))
    session = Session(registry)
    run, _ = session.obtain(controls())
    run.trainer.steps_per_call = 50
    assert next(session.play(run, shown))[0] == 2    # two 30 ms steps, not fifty


def test_a_public_server_refuses_a_run_past_its_work_cap(monkeypatch):
    monkeypatch.setenv("CIT_PUBLIC", "1")
    monkeypatch.setenv("CIT_MAX_RUN_STEPS", "100")
    session = session_with()
    with pytest.raises(CannotStart, match=r"at most 100 steps per run .* 50 steps x 5 tasks = 250"):
        session.obtain(controls(steps_per_task=50))
    with pytest.raises(CannotStart, match="100,000 steps per task alone"):
        session.obtain(controls(steps_per_task=100_000))
    assert session.obtain(controls(steps_per_task=20))[0].cfg.train.steps_per_task == 20
    monkeypatch.delenv("CIT_MAX_RUN_STEPS")          # the public default: steps 100000 refused at once
    with pytest.raises(CannotStart, match="at most 2,000 steps"):
        session_with().obtain(controls(steps_per_task=100_000))
