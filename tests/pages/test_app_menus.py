"""The app's run menus (issue 18): "Open in every view" sets every analysis view's run picker, and the
menus list the runs that exist when the page is opened or a tab is shown, not only those of the server's
start. The events go through Gradio's own processing (Blocks.process_api), which is where one update dict
shared by several outputs lost its value after the first."""
from __future__ import annotations

import asyncio

import gradio as gr
import pytest
from gradio.state_holder import SessionState

from app import _source_pickers, build_app
from serve.registry import RunRegistry


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("CIT_RUNS_DIR", str(tmp_path / "store"))
    make_run(tmp_path / "store", "old-run")
    demo = build_app(RunRegistry(max_runs=2, idle_ttl_s=60))
    return demo, tmp_path / "store"


def make_run(root, name):
    (root / name).mkdir(parents=True)
    (root / name / "events.jsonl").write_text("", encoding="utf-8")


def call(demo, fn, inputs, event_data=None):
    return asyncio.run(demo.process_api(block_fn=fn, inputs=inputs, state=SessionState(demo),
                                        event_data=event_data))["data"]


def listeners(demo, trigger_id, event):
    return [fn for fn in demo.fns.values() if (trigger_id, event) in fn.targets]


ANALYSIS_TABS = ("forgetting", "coefficients", "connectivity", "embeddings")


def analysis_pickers(demo) -> list:
    """The run menus of the four analysis tabs (each offers this session's live run)."""
    tabs = [b for b in demo.blocks.values() if isinstance(b, gr.Tab) and b.id in ANALYSIS_TABS]
    assert len(tabs) == len(ANALYSIS_TABS)
    return [p for tab in tabs for p in _source_pickers(tab)]


def by_label(demo, cls, label):
    found = [b for b in demo.blocks.values() if isinstance(b, cls) and getattr(b, "label", None) == label]
    assert found, label
    return found


def _inside(block, ancestor) -> bool:
    while block is not None:
        if block is ancestor:
            return True
        block = block.parent
    return False


def choice_values(update) -> list:
    return [c[1] if isinstance(c, (list, tuple)) else c for c in update["choices"]]


def test_open_in_every_view_sets_every_analysis_picker(app):
    demo, _ = app
    pickers = analysis_pickers(demo)
    assert len(pickers) == 4                     # Forgetting, Coefficients, Connectivity, Embeddings
    button = [b for b in demo.blocks.values() if isinstance(b, gr.Button) and b.value == "Open in every view"]
    (fn,) = listeners(demo, button[0]._id, "click")
    data = call(demo, fn, ["old-run"])
    by_id = dict(zip([o._id for o in fn.outputs], data))
    for picker in pickers:
        assert by_id[picker._id].get("value") == "old-run", picker.label
    assert "Opened `old-run` in every analysis view" in data[-1]


def _menus_refreshed(demo, fn, data, new_name):
    outputs = {o._id: d for o, d in zip(fn.outputs, data)}
    runs_tab = [b for b in demo.blocks.values() if isinstance(b, gr.Tab) and b.id == "runs"][0]
    runs_pick = [d for d in by_label(demo, gr.Dropdown, "Run") if _inside(d, runs_tab)]
    menus = [*analysis_pickers(demo), *by_label(demo, gr.Dropdown, "Runs to compare"), *runs_pick]
    assert len(menus) == 6
    for menu in menus:
        assert menu._id in outputs, menu.label
        assert new_name in choice_values(outputs[menu._id]), menu.label
        assert "value" not in outputs[menu._id]           # the picked run stays picked


def test_menus_list_runs_made_after_the_server_started_on_page_load(app):
    demo, root = app
    make_run(root, "new-run")
    first = analysis_pickers(demo)[0]
    (fn,) = [f for f in listeners(demo, demo._id, "load") if first in f.outputs]
    _menus_refreshed(demo, fn, call(demo, fn, []), "new-run")


def test_menus_refresh_when_a_tab_is_shown(app):
    demo, root = app
    tabs = [b for b in demo.blocks.values() if isinstance(b, gr.Tabs)][0]
    make_run(root, "newer-run")
    select = gr.SelectData(tabs, {"index": 1, "value": "Forgetting", "selected": True})
    found = [f for f in listeners(demo, tabs._id, "select") if analysis_pickers(demo)[0] in f.outputs]
    assert len(found) == 1
    _menus_refreshed(demo, found[0], call(demo, found[0], [], event_data=select), "newer-run")


def test_about_says_training_runs_on_the_server_and_links_the_five_papers():
    from app import ABOUT, PAPER_LINKS
    assert "in your browser session" not in ABOUT and "on the server" in ABOUT
    assert len(PAPER_LINKS) == 5
    for arxiv_id in PAPER_LINKS:
        assert f"(https://arxiv.org/abs/{arxiv_id})" in ABOUT
