"""One scaffold for the analysis views: a run picker with its reload button, the key of what is on screen, a
timer that polls while the view's tab is shown, and a refresh that redraws only when that key changed.

How a view adopts it (pages/forgetting.py is the shortest example):

1. Write `view_key(source) -> tuple`: what the view draws, as a key. Most views use `live_key(source,
   *counts)`: a saved run's or a recording's own key, or, for a live run or a playback (whose key bumps on
   every event), its id plus the counts of what the view draws (curves, task ends, ...), so a step that
   adds nothing the view shows does not redraw it.
2. Write `draw(source, *extra) -> tuple` (the view's outputs for a picked run) and `nothing(message) ->
   tuple` (its outputs when there is nothing to draw; the message says why), then
   `refresh = refresher(view_key, draw, nothing, n_outputs)`: refresh(registry, run_id, choice, shown_key,
   *extra) returns (key, *outputs), or a gr.skip() for each when the key equals shown_key. Tests call it
   as is.
3. In the tab builder, make `scaffold = ViewScaffold()` where the picker row goes, lay out the outputs, then
   `scaffold.wire(registry, run_state, refresh, outputs, inputs=[...], triggers=[...], api_name="x_refresh")`
   (`inputs`: the extra components passed after shown_key; `triggers`: other events that redraw, besides
   the timer and the picker) and return `scaffold.view()`: the View record app.py's VIEWS expect.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import gradio as gr

from . import source as src


@dataclass
class View:
    """What app.py needs of a view: the timer it runs only while the view's tab is shown, and the run menus
    ((dropdown, choices()) pairs) it refreshes when the page loads or a tab is shown."""
    timer: gr.Timer
    menus: list = field(default_factory=list)


def live_key(source: src.Source, *counts) -> tuple:
    """The key of what a view draws: a saved run's or a recording's own key (stable while its file is
    unchanged); for a log that grows (a live run, a gallery playback), whose key bumps on every event, the
    run's id plus `counts`, the sizes of the log pieces the view draws."""
    if source.key[0] != "live":
        return source.key
    return (*source.key[:2], *counts)


def refresher(view_key: Callable, draw: Callable, nothing: Callable[[str], tuple], n_outputs: int) -> Callable:
    """refresh(registry, run_id, choice, shown_key, *extra) -> (key, *outputs) for the picked run, or only
    gr.skip()s when its key is the one on screen (`extra`: the view's own inputs, passed to draw). With
    nothing to draw the key is the message, so the same message is not sent again either."""
    def refresh(registry, run_id, choice, shown_key, *extra):
        source, message = src.resolve(registry, run_id, choice)
        key = ("none", message) if source is None else view_key(source)
        if key == shown_key:
            return (gr.skip(),) * (n_outputs + 1)
        return (key, *(nothing(message) if source is None else draw(source, *extra)))
    return refresh


class ViewScaffold:
    """The picker row (made where the scaffold is made), the shown key and the polling timer of a view."""

    def __init__(self, timer_s: float = src.TIMER_S):
        with gr.Row():
            self.pick = gr.Dropdown(src.choices(), value=src.LIVE, label="Run", allow_custom_value=False, scale=3)
            self.reload = gr.Button("↻ runs", scale=0, min_width=60)
        self.shown = gr.State(None)             # the key of what is on screen
        self.timer = gr.Timer(timer_s, active=False)
        self.reload.click(lambda: gr.update(choices=src.choices()), None, [self.pick], concurrency_limit=None,
                          api_visibility="private")

    def wire(self, registry, run_state, refresh: Callable, outputs: Sequence, inputs: Sequence = (),
             triggers: Sequence = (), api_name: str | None = None) -> None:
        """Redraw `outputs` through refresh on every timer tick, picker change and extra trigger; the tick
        is the view's API endpoint (`api_name`), the other events stay private."""
        def on_refresh(run_id, choice, shown_key, *extra):
            return refresh(registry, run_id, choice, shown_key, *extra)

        args = dict(inputs=[run_state, self.pick, self.shown, *inputs], outputs=[self.shown, *outputs],
                    concurrency_limit=None, show_progress="hidden")
        self.timer.tick(on_refresh, api_name=api_name, **args)
        for trigger in (self.pick.change, *triggers):
            trigger(on_refresh, api_visibility="private", **args)

    def view(self, menus: Sequence = ()) -> View:
        return View(self.timer, list(menus))
