"""Fair sharing for a room (issue 14), against the live app through gradio_client: the lean version of
bench/workshop.py. Asserts completion and fairness, never times (the CI machine may be busy).

- Six sessions press Play at once (max_runs=6, one turn on the CPU at a time on 2 cores): all finish, and
  runs take turns chunk by chunk: every session saw its first trained chunk before any session's run ended
  (before, Gradio's train queue ran one whole Play at a time).
- A session whose run finished keeps its tab open; a new session still gets a run (a finished run holds no
  slot), and a scripted session without a heartbeat gives way to a browser session.
"""
from __future__ import annotations

import pytest

from support.load import BASE, play_sessions, running_app, session_run

SESSIONS = 6
LEAN = dict(BASE, steps_per_task=4, eval_every=0, batch_size=8)


@pytest.fixture(scope="module")
def app():
    with running_app(SESSIONS) as (url, registry):
        yield url, registry


@pytest.fixture(scope="module")
def played(app):
    """The six sessions' results; their clients stay alive, so their tabs stay open for the next test."""
    url, _ = app
    return play_sessions(url, [dict(LEAN, seed=i) for i in range(SESSIONS)], poll_every_s=1.0)


def test_six_sessions_all_finish_and_take_turns(app, played):
    _, registry = app
    results = played
    assert [r.get("error") for r in results] == [None] * SESSIONS, results
    assert all("20 / 20" in r["status"] for r in results), [r["status"] for r in results]
    assert all("first_chart_s" in r and "first_step_s" in r for r in results), results
    # time slicing: every run had trained a chunk before the first run ended (FIFO of whole runs would
    # have started the last one only after five others ended)
    assert max(r["first_step_s"] for r in results) < min(r["wall_s"] for r in results), \
        [(round(r["first_step_s"], 1), round(r["wall_s"], 1)) for r in results]
    assert all(r["poll_s"] for r in results)          # status reads answered while runs trained
    assert registry.training() == 0 and registry.scheduler.waiting() == 0
    for r in results:
        assert session_run(registry, r["session_hash"]).trainer.finished


def test_finished_runs_hold_no_slot_and_a_script_gives_way_to_a_browser(app, played, monkeypatch):
    """The registry is full of finished runs whose tabs stay open; more sessions still train."""
    url, registry = app
    monkeypatch.setattr("serve.registry.GRACE_S", 0.0)
    for r in played:                                   # their tabs are still open: the page's timer beats
        r["client"].predict(api_name="/heartbeat")
    assert len(registry) == SESSIONS and registry.training() == 0
    registry.max_held = len(registry)                  # no room for one more without a parked run leaving
    scripted = play_sessions(url, [dict(LEAN, seed=50)], heartbeat=False)
    browser = play_sessions(url, [dict(LEAN, seed=51)])
    assert scripted[0]["error"] is None and browser[0]["error"] is None, (scripted, browser)
    assert "20 / 20" in browser[0]["status"]
    assert session_run(registry, browser[0]["session_hash"]).trainer.finished
    # the scripted session's finished run made way for the browser session's, not an open tab's run
    owners = [registry.peek(i).owner for i in registry.ids()]
    assert scripted[0]["session_hash"] not in owners and len(owners) == registry.max_held
