"""The Class board in Debian's chromium (issue 19): a teacher's link with `room=` fills the board's room, and
the board lists the room's participants with their runs' own AP, as the page formats it. One page load."""
from __future__ import annotations

import json
import os
import shutil
import socket

import pytest
from support.lessons import small_config, small_lesson

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import app as app_module  # noqa: E402
from cit_core import store  # noqa: E402
from cit_core.trainer import Trainer  # noqa: E402
from pages import board as page  # noqa: E402
from playwright.sync_api import expect  # noqa: E402
from serve import board, downloads  # noqa: E402
from serve.registry import RunRegistry  # noqa: E402

PEOPLE = [("Ada", "seqft", 0), ("Bo", "seqft", 1), ("Cy", "replay", 0)]
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def room():
    """Three finished tiny runs in the store (CIT_RUNS_DIR: tests/conftest.py), joined to room t1; a fourth
    run in room t2 must stay off t1's board. Returns {participant: AP from the run's summary.json}."""
    aps, dirs = {}, {}
    for person, method, seed in PEOPLE:
        cfg = small_config(method, steps=2)
        cfg.train.seed, cfg.train.eval_general = seed, False
        dirs[person] = run_dir = store.new_run_dir(cfg)
        Trainer(cfg, lesson=small_lesson(n_train=16, n_eval=8), run_dir=run_dir).run_to_end()
        board.join(run_dir, "t1", person, owner=f"session-{person}")
        aps[person] = json.loads((run_dir / "summary.json").read_text())["metrics"]["AP"]
    other = store.run_path(dirs["Ada"].name + "-copy")       # Ada's run files, in another room
    shutil.copytree(dirs["Ada"], other)
    board.join(other, "t2", "Dee", owner="session-Dee")
    return aps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_rooms_participants_and_their_ap_appear(browser, room):
    demo = app_module.build_app(RunRegistry(max_runs=2, idle_ttl_s=600))
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        pg = context.new_page()
        pg.set_default_timeout(WAIT_MS)
        pg.goto(f"http://127.0.0.1:{port}/?workshop=forgetting&room=t1")
        pg.get_by_role("tab", name="Class board").click()
        expect(pg.locator("#cit-board-room textarea, #cit-board-room input").first).to_have_value("t1",
                                                                                                 timeout=WAIT_MS)
        grid = pg.locator("#cit-board-table")
        for person, _, _ in PEOPLE:
            expect(grid).to_contain_text(person, timeout=WAIT_MS)
        # the shown rows of Gradio's (virtual) table: role=row, one role=gridcell per column
        rows = [[c.strip() for c in row.locator("[role=gridcell]").all_inner_texts()]
                for row in grid.locator("[role=row]").all()]
        by_person = {cells[0]: cells for cells in rows if cells}
        ap = page.HEADERS.index("AP")
        for person, method, _ in PEOPLE:
            cells = by_person[person]
            assert cells[1] == method and cells[ap] == page.fmt(room[person]), cells
        assert "Dee" not in by_person                         # room t2's run is not on t1's board
        panel = pg.locator("[role=tabpanel]:visible")
        assert store.runs_root().as_posix() not in panel.inner_html()   # no server path on the board
    finally:
        context.close()
        demo.close()


# -- the page's handlers, without a browser -----------------------------------------------------------
class _Request:
    def __init__(self, query=None, session_hash="sess-1"):
        self.query_params, self.session_hash = query or {}, session_hash


def test_the_link_fills_the_room_and_a_bad_room_is_refused():
    assert page.from_url(_Request({"room": "t1"}))[0] == "t1"
    room, name, note = page.from_url(_Request({"room": "../etc"}))
    assert "refused" in note and "1-40 letters" in note and room.__class__ is not str
    assert board.default_name("sess-1") in page.from_url(_Request())[1]["placeholder"]


def test_the_csv_download_is_the_class_table_and_old_files_go(room, monkeypatch):
    monkeypatch.setattr(downloads, "KEEP", 2)
    for _ in range(3):
        update, message = page.download("t1", False)
    path = update["value"]
    assert open(path, encoding="utf-8", newline="").read() == board.class_csv(board.room_runs("t1"))
    assert len(list(downloads.root().glob("*/*.csv"))) == 2          # bounded: the oldest one went
    assert str(downloads.root()) not in message
    assert page.download("no such/room", False)[0]["visible"] is False


def test_my_run_joins_the_board_from_the_page(tmp_path):
    class Run:
        trainer, recorded, owner = type("T", (), {"run_dir": tmp_path})(), False, None

    registry = type("Reg", (), {"get": lambda self, run_id: Run() if run_id == "r1" else None})()
    note = page.join_run(registry, "r1", "t9", "", _Request(session_hash="sess-9"))
    assert board.default_name("sess-9") in note and "t9" in note
    assert store.read_meta(tmp_path)["room"] == "t9"
    assert "No run" in page.join_run(registry, None, "t9", "x", _Request())
