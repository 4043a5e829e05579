"""Train tab and view details without a browser: recording labels, the recording-vs-live note, Step that
streams, workshop buttons, readable empty states, the Embeddings ring and lesson map, the Connectivity
a-marker, the LCIA card's formulas, the Ask table."""
from __future__ import annotations

import re

import gradio as gr

from cit_core import gallery
from cit_core.ask import Answer
from cit_core.config import RunConfig
from cit_core.events import RunLog
from serve.registry import RunRegistry
from pages.figures import analysis as af
from pages.ask import answers_markdown
from pages.coefficients import coefficient_view
from pages.figures.connectivity import curve_figure
from pages.embeddings import refresh as embeddings_refresh, scatter_figure
from pages.source import LIVE
from pages.train import CARD_LATEX, TrainTab, build_train_tab, method_card
from serve.playback import gallery_choices, readable, recording_note
from pages.workshop import WORKSHOPS, resolve


def test_recording_labels_name_model_and_lesson_and_only_the_knobs_that_differ():
    choices = gallery_choices()
    labels = [label for label, _ in choices]
    assert len(set(labels)) == len(labels) == len(gallery.names())          # no two entries look alike
    by_name = dict((name, label) for label, name in choices)
    assert "tiny base" in by_name["switchcit"] and "default lesson" in by_name["switchcit"]
    assert "SmolLM2-135M" in by_name["smollm2-switchcit"] and "classic lesson" in by_name["smollm2-switchcit"]
    assert "30 steps/task" in by_name["smollm2-lcia"]                        # a schedule that is not the default
    for label in labels:
        assert "=" not in label and not re.search(r"\d\.0\b|e\+?\d", label), label   # no knob dump
    assert labels[0].startswith("Sequential fine-tuning ·")                   # the default pick stays SeqFT
    assert [n for _, n in choices].index("smollm2-lcia") > [n for _, n in choices].index("lcia")   # tiny first
    assert readable(100000000.0) == "100,000,000" and readable(0.002) == "0.002"


def test_a_live_run_with_a_recordings_settings_says_why_its_numbers_may_differ():
    e = gallery.entry("seqft")
    cfg = RunConfig.from_dict(e["config"])
    note = recording_note(cfg, 0.375)
    assert "'seqft'" in note and "0.33" in note and "0.38" in note
    assert "thread count" in note and "processor" in note
    other = RunConfig.from_dict({**e["config"], "train": {**e["config"]["train"], "seed": 1}})
    assert recording_note(other, 0.375) == ""


def _build_tab():
    registry = RunRegistry(max_runs=4, idle_ttl_s=600)
    with gr.Blocks():
        tab = build_train_tab(registry)
    return registry, tab


def test_step_streams_its_progress_and_pauses_at_the_end():
    registry, tab = _build_tab()
    controls = dict(lesson="default", files=[], method="seqft", model="tiny", steps_per_task=6, lr=0.002,
                    batch_size=8, eval_every=0, seed=0, replay_per_task=64, replay_mix_ratio=0.25, method_options="")
    frames = list(tab.step(None, 12, **controls))
    statuses = [f[1] for f in frames if isinstance(f[1], str)]
    stepping = [s for s in statuses if s.startswith("**▶ Stepping**")]
    assert len(stepping) >= 2, statuses                        # several updates while it runs
    assert re.search(r"(?<!\d)5 of 12 steps", stepping[0]) and "step 5 / 30" in stepping[0]
    assert statuses[-1].startswith("**Paused**") and "step 12 / 30" in statuses[-1]
    assert any(not isinstance(f[2], type(gr.skip())) for f in frames[:-1])   # the matrix drew before the end
    run = registry.get(frames[-1][0])
    assert run.trainer.log.step == 12


def test_workshop_next_is_disabled_on_the_last_step_and_an_empty_settings_box_is_hidden():
    _, tab = _build_tab()
    url = tab.url
    key = "forgetting"
    last = len(WORKSHOPS[key].steps)
    out = url.apply(resolve(f"workshop={key}&step={last}"), f"workshop={key}", announce=False)
    assert out[url.next_btn]["interactive"] is False and out[url.back_btn]["interactive"] is True
    assert out[url.settings_box]["visible"] is False          # this workshop hides every training setting
    first = url.apply(resolve(f"workshop={key}&step=1"), f"workshop={key}", announce=False)
    assert first[url.next_btn]["interactive"] is True and first[url.back_btn]["interactive"] is False
    plain = url.apply(resolve(""), "", announce=True)
    assert plain[url.settings_box]["visible"] is True
    assert "on the left" not in plain[url.status]


def test_an_empty_coefficients_view_explains_itself_in_full():
    log = RunLog()
    log.tasks, log.method = ["a", "b"], "lcia"
    fig, _, how = coefficient_view(log)
    text = fig.layout.annotations[0].text
    lines = text.split("<br>")
    assert len(lines) > 1 and all(len(line) <= af.MESSAGE_WIDTH for line in lines)
    assert "lower τ" in text.replace("<br>", " ") and "lower τ" in how       # the note beside says it too
    assert fig.layout.height >= 80 + 22 * len(lines)


def test_the_selected_embedding_point_is_ringed_visibly():
    from cit_core.embeddings import Points
    pts = Points(("a", "b", "c"), ("t1", "t1", "t2"), ("instruction",) * 3, ("t1", "t2"))
    fig = scatter_figure(pts, [[0, 0], [1, 1], [2, 0]], "PCA", selected=0, near=[1])
    ring = fig.data[-1]
    assert ring.name == "selected + nearest" and ring.marker.symbol == "circle-open"
    colour = ring.marker.color
    assert colour and "rgba(0,0,0,0)" not in str(colour).replace(" ", "")


def test_embeddings_show_the_default_lesson_before_any_run():
    out = embeddings_refresh(RunRegistry(max_runs=2, idle_ttl_s=60), None, LIVE, None, None)
    shown, data, note = out[0], out[1], out[2]
    assert shown is not None and data is not None and len(data["texts"]) > 10
    assert "default lesson" in note and "No run in this session" not in note


def test_connectivity_marks_the_slider_and_keeps_the_legend_off_the_axis_title():
    res = {"from": 0, "to": 1, "variant": "full", "a": [0.0, 0.5, 1.0], "tasks": ["x", "y"],
           "loss": [[1, 2, 3], [3, 2, 1]], "accuracy": [[1, 0.5, 0], [0, 0.5, 1]], "marks": []}
    fig = curve_figure(res, "accuracy", 0.35)
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 1 and abs(lines[0].x0 - 0.35) < 1e-9 and abs(lines[0].x1 - 0.35) < 1e-9
    assert fig.layout.legend.orientation == "v" and fig.layout.legend.x >= 1.0
    assert not [s for s in curve_figure(res, "loss").layout.shapes if s.type == "line"]


def test_the_lcia_card_writes_its_update_rule_as_math():
    card = method_card("lcia")
    rule = card.split("**Update rule.**", 1)[1].split("**Knobs.**", 1)[0]
    prose = re.sub(r"\$[^$]*\$", "", rule)                  # what Markdown reads outside the math
    assert "θ*" not in prose and "*_" not in prose and "_{" not in prose   # it read these as emphasis
    assert r"\theta^*_{t-1}" in rule and r"\alpha_t" in rule
    assert rule.count("$") % 2 == 0
    assert {"left": "$", "right": "$", "display": False} in CARD_LATEX


def test_ask_table_shows_adapters_and_right_or_wrong():
    class T:
        name, scorer = "last_two", "exact"
    rows = [Answer("after task 1 (last_two)", 0, "do", "task0"),
            Answer("now", None, "xy", "task1", "")]
    md = answers_markdown(rows, "this run", T, "do")
    assert "| after task 1 (last_two) | do | task0 | ✓ |" in md
    assert "| **now** | xy | task1 | ✗ |" in md
    plain = answers_markdown([Answer("now", None, "", None)], "this run")
    assert "adapter" not in plain and "_(empty)_" in plain


def test_train_tab_ask_refuses_a_recording_clearly():
    from pages.ask import ask_source
    registry = RunRegistry(max_runs=2, idle_ttl_s=60)
    md = ask_source(registry, None, "gallery: seqft", "the last two letters of", "kemado")
    assert "recording has no weights" in md
    assert TrainTab                                       # imported for the tab's handlers above
