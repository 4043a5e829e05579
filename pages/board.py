"""The Class board tab: every run of a workshop room side by side, live, for the teacher's screen.

A teacher's link names the room (`?workshop=forgetting&room=monday-a`); the room box is filled from the
page URL when the page loads. A participant's run joins the room through serve.board.join (meta.json in
its run directory), either when the session creates it or with this tab's "Put my run on the board"
button. The table, the overlay (AP and forgetting per participant, grouped by method, with mean ± std)
and the final matrices redraw only when a run of the room changed, polled while the tab is shown.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from serve import board, downloads

from .figures import board as bf
from .source import TIMER_S
from .view import View

HEADERS = ["participant", "method", "seed", "state", "tasks done", "AP", "forgetting", "BWT"]
HOW = ("_One row per run of the room: AP is the average accuracy over all tasks after the last one (higher "
       "is better), forgetting the average drop from each task's best score (lower is better), BWT "
       "negative when later tasks hurt earlier ones. Metrics appear when a run finishes._")
# "choose": tests/e2e/test_browser.py's every-tab check expects a view without data to say what to pick
ASK_ROOM = ("Choose a room: type the room name from your teacher's link (its `room=` part), or open the "
            "link itself.")


@dataclass
class BoardView(View):
    """The View app.py expects, plus the room and name boxes: the Train tab's run creation may read them
    (serve.board.join(run_dir, room, name, request.session_hash))."""
    room: gr.Textbox | None = None
    name: gr.Textbox | None = None


def fmt(value) -> str:
    """A metric as the table shows it (the browser test reads it back the same way)."""
    return "—" if value is None else f"{value:.3f}"


def table(rows: list[board.Row]) -> pd.DataFrame:
    data = [[r.name, r.method, "" if r.seed is None else str(r.seed), r.state,
             f"{len(r.matrix)} / {len(r.tasks)}", fmt(r.AP), fmt(r.forgetting), fmt(r.BWT)] for r in rows]
    return pd.DataFrame(data, columns=HEADERS)


def method_markdown(groups: list[dict]) -> str:
    """Per method: n finished runs, mean ± std of AP and forgetting."""
    def pm(pair):
        return "—" if pair is None else f"{pair[0]:.3f} ± {pair[1]:.3f}"
    lines = ["| method | finished runs | AP (mean ± std) | forgetting (mean ± std) |", "|---|---|---|---|"]
    lines += [f"| {g['method']} | {g['n']} | {pm(g['AP'])} | {pm(g['forgetting'])} |" for g in groups]
    return "\n".join(lines)


def _rows_key(room: str, include: bool, rows: list[board.Row]) -> tuple:
    """What the board draws: a new run, a new name, a state, a metric or a matrix row changes it."""
    return ("room", room, bool(include),
            tuple((r.run, r.recording, r.name, r.state, r.AP, r.forgetting, r.BWT, len(r.matrix)) for r in rows))


def _nothing(message: str) -> tuple:
    return message, table([]), None, None


def refresh(room_text, include, shown_key) -> tuple:
    """(key, message, table, overlay, matrices) of the room; gr.skip()s when the key is on screen."""
    if not (room_text or "").strip():
        key, outputs = ("none", ASK_ROOM), _nothing(ASK_ROOM)
    else:
        try:
            room = board.check_room(room_text)
            rows = board.room_runs(room, include_recordings=bool(include))
        except board.BoardError as err:
            key, outputs = ("none", str(err)), _nothing(f"**{err}**")
        else:
            key = _rows_key(room, include, rows)
            outputs = None if key == shown_key else _draw(room, rows)
    if key == shown_key:
        return (gr.skip(),) * 5
    return (key, *outputs)


def _draw(room: str, rows: list[board.Row]) -> tuple:
    if not rows:
        return (f"Room **{room}** has no runs yet: train a run on the Train tab and put it on the board.",
                table([]), None, None)
    groups = board.by_method(rows)
    done = sum(r.state == "finished" for r in rows)
    message = f"Room **{room}**: {len(rows)} runs, {done} finished.\n\n{method_markdown(groups)}\n\n{HOW}"
    overlay = bf.overlay_figure(rows, groups) if done else None
    return message, table(rows), overlay, bf.matrices_figure(rows)


# -- the class table as a file ----------------------------------------------------------------------
def write_csv(room: str, text: str) -> Path:
    """Write one class table in a download folder of its own (serve/downloads.py bounds how many stay)."""
    path = downloads.fresh_folder(f"class-{room}") / f"class-{room}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    path.write_text(text, encoding="utf-8", newline="")      # the csv module's own line ends
    return path


def download(room_text, include) -> tuple:
    """(file update, message): the room's class table as CSV (file name only on the page, no path)."""
    try:
        room = board.check_room(room_text)
        rows = board.room_runs(room, include_recordings=bool(include))
    except board.BoardError as err:
        return gr.update(value=None, visible=False), f"**{err}**"
    path = write_csv(room, board.class_csv(rows))
    return gr.update(value=str(path), visible=True), f"Class table of room **{room}**: {len(rows)} runs."


# -- joining and the page URL -----------------------------------------------------------------------
def join_run(registry, run_id, room_text, name_text, request: gr.Request = None) -> str:
    """Put this session's run on the room's board under the typed name (or the session's default)."""
    run = registry.get(run_id) if run_id else None
    run_dir = getattr(getattr(run, "trainer", None), "run_dir", None)
    if run is None:
        return "No run in this session yet: start one on the Train tab, then put it on the board."
    if run_dir is None or run.recorded:
        return "A recorded run's playback is not yours to put on the board: train a run of your own."
    session = getattr(request, "session_hash", None) or run.owner or run_id
    try:
        meta = board.join(run_dir, room_text, name_text, owner=session)
    except board.BoardError as err:
        return f"**{err}**"
    return f"Your run is on the board of room **{meta['room']}** as **{meta['display_name']}**."


def from_url(request: gr.Request = None) -> tuple:
    """Page load: the room from the URL's `room=` (checked) and the session's default name as the
    name box's placeholder."""
    params = dict(getattr(request, "query_params", None) or {})
    session = getattr(request, "session_hash", None) or ""
    name_box = gr.update(placeholder=f"{board.default_name(session)} (leave empty to keep it)")
    raw = params.get("room")
    if raw is None:
        return gr.skip(), name_box, gr.skip()
    try:
        return board.check_room(raw), name_box, gr.skip()
    except board.BoardError as err:
        return gr.skip(), name_box, f"**The link's room was refused:** {err}"


def build_board_tab(registry, run_state) -> BoardView:
    gr.Markdown("_The class board of a workshop room: every participant's run side by side, updated live. "
                "Project it while the class trains, then download the table._")
    with gr.Row(elem_classes=["cit-buttons"]):
        room = gr.Textbox(label="Room", placeholder="e.g. monday-a", max_length=40, scale=2, elem_id="cit-board-room")
        name = gr.Textbox(label="Your name on the board", max_length=40, scale=2, elem_id="cit-board-name")
        include = gr.Checkbox(False, label="include recordings", scale=1)
    with gr.Row():
        join_btn = gr.Button("Put my run on the board", scale=0, min_width=220)
        csv_btn = gr.Button("Download class table (CSV)", scale=0, min_width=260)
    note = gr.Markdown()
    csv_file = gr.File(label="Class table", visible=False, interactive=False)
    message = gr.Markdown(ASK_ROOM, elem_classes=["cit-small"])
    grid = gr.Dataframe(table([]), headers=HEADERS, interactive=False, wrap=True, elem_id="cit-board-table")
    overlay = gr.Plot(show_label=False)
    matrices = gr.Plot(show_label=False, elem_classes=["cit-wide-plot"])
    shown = gr.State(None)                   # the key of what is on screen
    timer = gr.Timer(TIMER_S, active=False)

    args = dict(inputs=[room, include, shown], outputs=[shown, message, grid, overlay, matrices],
                concurrency_limit=None, show_progress="hidden")
    timer.tick(refresh, api_name="board_refresh", **args)
    for trigger in (room.change, include.change):
        trigger(refresh, api_visibility="private", **args)
    gr.on(None, from_url, None, [room, name, note], api_visibility="private", show_progress="hidden")  # page load
    def on_join(run_id, room_text, name_text, request: gr.Request = None):
        return join_run(registry, run_id, room_text, name_text, request)

    join_btn.click(on_join, [run_state, room, name], [note], api_visibility="private")
    csv_btn.click(download, [room, include], [csv_file, note], api_visibility="private")
    return BoardView(timer, room=room, name=name)
