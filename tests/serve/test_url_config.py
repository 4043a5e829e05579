"""Shareable links: a RunConfig and the view flags round-trip through the page URL's query string; bad links
give messages (never exceptions); the workshop links open the intended settings, hidden controls and guide."""
from __future__ import annotations

import random
import string
import types
from dataclasses import fields

import pytest

from cit_core.methods import METHODS
from cit_core.config import LessonConfig, ModelConfig, RunConfig, TrainConfig
from cit_core.methods import resolve as resolve_run
from serve.urlconfig import HIDEABLE, MAX_QUERY_CHARS, UrlConfigError, decode, encode, shareable
from pages.workshop import PRESETS, WORKSHOPS, resolve, workshop_link
from serve import controls as controls_module
from serve.controls import (Controls, build_config, control_values, has_text_options, keep_options, option_fields,
                            options_text)

CONFIGS = [
    resolve_run(RunConfig()),
    resolve_run(RunConfig(method="lcia", train=TrainConfig(seed=1, steps_per_task=40, lr=0.001), method_options={"tau": 0.3})),
    resolve_run(RunConfig(method="lcia", train=TrainConfig(lr=3e-5, batch_size=7, eval_every=0),
                          method_options={"tau": 0.05, "fallback": 0.2, "new_group_init": "fresh"})),
    resolve_run(RunConfig(method="replay", train=TrainConfig(seed=123456789), method_options={"per_task": 16, "mix_ratio": 0.5})),
    resolve_run(RunConfig(method="ewc", model=ModelConfig(name="smollm2"), method_options={"lam": 500.0, "batches": 2})),
    resolve_run(RunConfig(method="inscl", method_options={"allocation": "uniform", "dbscan_eps": 0.123456789})),
    resolve_run(RunConfig(method="switchcit", method_options={"features": "base_lm", "hidden": 17, "switch_lr": 0.0003})),
    resolve_run(RunConfig(method="tir", train=TrainConfig(steps_per_task=1), method_options={"base": "mas", "direction": "heavier"})),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.method)
def test_encode_decode_round_trip(cfg):
    state = decode(encode(cfg))
    assert state.errors == []
    assert state.config.to_dict() == cfg.to_dict()
    assert (state.hide, state.workshop, state.step) == ((), None, 1)


def test_round_trip_with_view_flags_and_a_workshop():
    cfg = CONFIGS[1]
    state = decode(encode(cfg, hide=("lr", "seed")))
    assert state.config.to_dict() == cfg.to_dict() and state.hide == ("lr", "seed")
    # a workshop link written out in full reads back to the same settings, step and (replaced) hide list
    state = decode(encode(cfg, hide=("batch",), workshop="replay_vs_inscl", step=2), PRESETS)
    assert state.errors == [] and state.config.to_dict() == cfg.to_dict()
    assert (state.workshop, state.step, state.hide) == ("replay_vs_inscl", 2, ("batch",))


def test_the_documented_scheme():
    cfg = RunConfig(method="lcia", train=TrainConfig(seed=1, steps_per_task=40, lr=0.001), method_options={"tau": 0.05})
    assert encode(cfg) == ("method=lcia&lesson=default&model=tiny&seed=1&steps=40&lr=0.001&batch=16&eval=25"
                           "&opt.tau=0.05")
    assert encode(RunConfig(), hide=("method", "lr")).endswith("&hide=method,lr")
    # a hand-written short link: only what it names changes
    state = decode("?method=lcia&seed=1&steps=40&lr=0.001&opt.tau=0.3")
    assert state.errors == []
    assert (state.config.method, state.config.train.seed, state.config.train.steps_per_task) == ("lcia", 1, 40)
    assert state.config.train.lr == 0.001 and state.config.method_options["tau"] == 0.3
    assert state.config.train.batch_size == TrainConfig().batch_size
    assert state.config.method_options["fallback"] == 0.01          # LCIA's own default


def test_shareable_keeps_only_what_a_link_carries():
    cfg = RunConfig(method="replay", train=TrainConfig(threads=2, weight_decay=0.1, seed=4),
                    model=ModelConfig(hidden=64), method_options={"per_task": 8})
    back = decode(encode(cfg)).config
    assert back.to_dict() == shareable(cfg).to_dict()
    assert (back.train.threads, back.train.weight_decay, back.model.hidden) == (0, 0.0, 128)
    assert (back.train.seed, back.method_options["per_task"]) == (4, 8)


def test_allow_download_round_trips_and_is_written_only_when_set():
    # the key is opt-in: most links never ask for a download, so they do not carry the key at all
    asked = resolve_run(RunConfig(model=ModelConfig(name="gpt2", allow_download=True)))
    query = encode(asked)
    assert "allow_download=1" in query.split("&")
    state = decode(query)
    assert state.errors == [] and state.config.to_dict() == asked.to_dict()
    assert state.config.model.allow_download is True
    assert "allow_download" not in encode(resolve_run(RunConfig()))
    assert decode("model=gpt2").config.model.allow_download is False
    assert decode("allow_download=true").config.model.allow_download is True
    assert decode("allow_download=0").config.model.allow_download is False
    assert shareable(asked).model.allow_download is True


def test_a_bad_allow_download_value_gives_a_message():
    state = decode("allow_download=maybe")
    assert any("allow_download must be true or false" in e for e in state.errors), state.errors
    assert state.config.model.allow_download is False


def test_control_values_carry_allow_download():
    assert control_values(decode("allow_download=1").config)["allow_download"] is True
    assert control_values(decode("").config)["allow_download"] is False


def test_the_allow_download_box_reaches_the_run_config():
    # the Train tab's handlers get the box as the `allow_download` keyword, like every config control
    values = dict(steps_per_task=5, lr=1e-3, batch_size=8, eval_every=0, seed=0, model="gpt2")
    ticked = Controls.from_values({**values, "allow_download": True})
    assert ticked.allow_download is True and "allow_download" not in ticked.option_values
    assert build_config(ticked).model.allow_download is True
    assert build_config(Controls.from_values(values)).model.allow_download is False
    # a link's allow_download=1 sets the box, and the box's config writes the key back
    assert encode(build_config(ticked)).endswith("allow_download=1")


@pytest.mark.parametrize("allow_hub,offline,possible", [(True, False, True), (False, False, False),
                                                         (True, True, False)])
def test_the_box_says_whether_this_server_downloads(monkeypatch, allow_hub, offline, possible):
    fake = types.SimpleNamespace(allow_hub=allow_hub, hf_offline=offline)
    monkeypatch.setattr(controls_module, "settings", lambda: fake)
    assert controls_module.downloads_possible() is possible
    assert ("does not download" in controls_module.download_info()) is (not possible)


def test_uploaded_lesson_files_cannot_be_encoded(tmp_path):
    cfg = RunConfig(lesson=LessonConfig(files=[str(tmp_path / "x.jsonl")]))
    with pytest.raises(UrlConfigError, match="uploaded lesson files"):
        encode(cfg)


BAD = [
    ("seed=abc", "seed must be a whole number, got 'abc'", ("train", "seed", 0)),
    ("steps=1.5", "steps must be a whole number", ("train", "steps_per_task", 45)),
    ("lr=5", "lr: must be in [1e-07, 1.0], got 5.0", ("train", "lr", 2e-3)),
    ("lr=nan", "lr must be a finite number", ("train", "lr", 2e-3)),
    ("batch=0", "batch: must be in [1, 1024]", ("train", "batch_size", 16)),
    ("eval=-1", "eval: must be in [0, 100000]", ("train", "eval_every", 25)),
    ("model=", "model is empty", ("model", "name", "tiny")),
    ("lesson=files", "lesson must be one of ['classic', 'default']", ("lesson", "name", "default")),
    ("method=nope", "method: no method named 'nope'", ("method", None, "seqft")),
    ("foo=1", "unknown setting 'foo'", ("method", None, "seqft")),
    ("opt.tau=0.3", "method 'seqft' has no option 'tau'", ("method", None, "seqft")),
    ("method=lcia&opt.tau=2", "opt.tau: LCIAOptions.tau must be in [0.0, 1.0]", ("opts", "tau", 0.3)),
    ("method=lcia&opt.tau=x", "opt.tau must be a number, got 'x'", ("opts", "tau", 0.3)),
    ("method=lcia&opt.new_group_init=zzz", "new_group_init must be one of", ("opts", "new_group_init", "latest")),
    ("hide=lr,bogus", "hide: 'bogus' is not a control that can be hidden", ("method", None, "seqft")),
    ("workshop=nope", "workshop: no workshop named 'nope'", ("method", None, "seqft")),
    ("workshop=forgetting&step=9", "step must be between 1 and 3, got '9'", ("method", None, "seqft")),
    ("seed=1&seed=2", "'seed' is given more than once", ("train", "seed", 2)),
    ("x" * (MAX_QUERY_CHARS + 1), "too long", ("method", None, "seqft")),
    ("&".join(f"k{i}=1" for i in range(100)), "more than 64 settings", ("method", None, "seqft")),
]


@pytest.mark.parametrize("query,message,kept", BAD, ids=[b[1][:30] for b in BAD])
def test_bad_links_give_a_message_and_keep_defaults(query, message, kept):
    state = decode(query, PRESETS)
    assert any(message in e for e in state.errors), state.errors
    assert message in state.message() and state.message().startswith("The link's settings had problems")
    where, name, expected = kept
    if where == "method":
        assert state.config.method == expected
    elif where == "opts":
        assert state.config.method == "lcia" and state.config.method_options[name] == expected
    else:
        assert getattr(getattr(state.config, where), name) == expected


def test_one_bad_value_does_not_spoil_the_others():
    state = decode("method=lcia&seed=7&lr=banana&opt.tau=0.5&opt.fallback=-3&hide=lr,nope,seed")
    assert len(state.errors) == 3
    assert (state.config.method, state.config.train.seed, state.config.train.lr) == ("lcia", 7, 2e-3)
    assert state.config.method_options["tau"] == 0.5 and state.config.method_options["fallback"] == 0.01
    assert state.hide == ("lr", "seed")


def test_gradio_own_keys_and_stray_separators_are_ignored():
    state = decode("?&&view=api&__theme=dark&=&seed=3&")
    assert state.errors == [] and state.config.train.seed == 3


def test_random_garbage_never_raises():
    rng = random.Random(0)
    alphabet = string.printable + "é☃%&=+.,?#\x00"
    for _ in range(400):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        state = decode(query, PRESETS)
        RunConfig.from_dict(state.config.to_dict())          # always a valid config
        assert set(state.hide) <= set(HIDEABLE)


# -- workshops ------------------------------------------------------------------------------------------
# the intended view of each documented link, spelled out by hand: (step, method, options subset, hidden)
_MOST = {"lesson", "model", "lr", "batch", "eval", "seed", "steps"}
WORKSHOP_VIEWS = {
    "forgetting": [(1, "seqft", {}, _MOST | {"method", "options"}), (3, "seqft", {}, _MOST | {"method", "options"})],
    "replay_vs_inscl": [(1, "replay", {"per_task": 64}, _MOST), (2, "inscl", {"per_task": 64}, _MOST),
                        (3, "inscl", {"per_task": 16}, _MOST)],
    "isolation_vs_ema": [(1, "switchcit", {}, _MOST), (2, "ilora", {}, _MOST), (3, "lcia", {}, _MOST)],
}


def test_three_workshops_with_several_steps_each():
    assert set(WORKSHOPS) == set(WORKSHOP_VIEWS) and len(WORKSHOPS) >= 3
    for ws in WORKSHOPS.values():
        assert len(ws.steps) >= 2 and all(step.text.strip() for step in ws.steps)
    assert "predict" in WORKSHOPS["forgetting"].steps[0].text.lower()


@pytest.mark.parametrize("key", sorted(WORKSHOP_VIEWS))
def test_workshop_links_decode_to_the_intended_settings(key):
    assert workshop_link(key, "http://host/") == f"http://host/?workshop={key}"
    for step, method, options, hidden in WORKSHOP_VIEWS[key]:
        state = resolve(f"workshop={key}&step={step}")
        assert state.errors == [], state.errors
        assert (state.workshop, state.step, state.config.method) == (key, step, method)
        assert options.items() <= state.config.method_options.items()
        assert set(state.hide) == hidden
    assert resolve(f"workshop={key}").step == 1


def test_a_link_overrides_its_workshop():
    state = resolve("workshop=forgetting&steps=60&hide=")
    assert state.config.train.steps_per_task == 60 and state.hide == ()
    assert state.config.method == "seqft"


def test_control_values_and_options_text():
    state = decode("method=lcia&opt.tau=0.05&opt.new_group_init=fresh&lr=0.002&seed=5")
    values = control_values(state.config)
    assert values["method"] == "lcia" and values["lr"] == 0.002 and values["seed"] == 5
    assert values["method_options"] == "tau=0.05, new_group_init=fresh"
    replay = control_values(decode("method=replay&opt.per_task=9&opt.mix_ratio=0.4").config)
    assert (replay["replay_per_task"], replay["replay_mix_ratio"], replay["method_options"]) == (9, 0.4, "")
    assert options_text("ewc", {"lam": 1e6, "batches": 64, "batch_size": 1}) == ""
    assert keep_options("tau=0.05", "lcia") == "tau=0.05"       # a link sets method and options together
    assert keep_options("tau=0.05", "ewc") == ""                # a hand-picked method starts clean
    assert keep_options("garbled", "lcia") == ""


def test_method_options_show_as_fields_or_text_from_the_options_dataclass():
    """A few ranged numbers get a field each (named method_option in the web API); longer lists, names and
    choices go in the text box; a method without options shows neither."""
    shown = option_fields("replay")
    assert [f.key for f in shown] == ["replay_per_task", "replay_mix_ratio"]
    assert [f.integer for f in shown] == [True, False] and shown[0].label == "Replay: examples kept per task"
    assert not has_text_options("replay") and has_text_options("lcia") and has_text_options("multitask")
    assert option_fields("lcia") == [] and option_fields("seqft") == [] and not has_text_options("seqft")


# -- the app applies a link: the demo.load handler, called directly -------------------------------------
@pytest.fixture(scope="module")
def app_ui():
    from app import build_app
    from serve.registry import RunRegistry

    demo = build_app(RunRegistry(max_runs=2, idle_ttl_s=60))
    return demo.cit_url


def _value(update):
    return update.get("value") if isinstance(update, dict) else update


def _visible(update):
    return update.get("visible") if isinstance(update, dict) else None


def load(ui, query: dict):
    return ui.on_load(types.SimpleNamespace(query_params=query))


@pytest.mark.parametrize("key", sorted(WORKSHOP_VIEWS))
def test_the_app_applies_each_workshop_link(app_ui, key):
    step, method, options, hidden = WORKSHOP_VIEWS[key][0]
    out = load(app_ui, {"workshop": key})
    controls = app_ui.controls
    assert _value(out[controls["method"]]) == method
    for name, comp in (("lr", controls["lr"]), ("lesson", controls["lesson"]), ("seed", controls["seed"]),
                       ("method", controls["method"]), ("step", app_ui.groups["step"][0])):
        assert _visible(out[comp]) is (name not in hidden), name
    free = method != "replay" and bool(fields(METHODS[method].Options)) and "options" not in hidden
    assert _visible(out[app_ui.options_box]) is free
    assert _visible(out[app_ui.method_boxes["replay"]]) is (method == "replay" and "options" not in hidden)
    assert _visible(out[app_ui.guide_box]) is True
    guide = out[app_ui.guide_md]
    assert f"Step 1 of {len(WORKSHOPS[key].steps)}" in guide and WORKSHOPS[key].steps[0].title in guide
    assert out[app_ui.flags]["workshop"] == key
    # Next moves to step 2 and applies its settings (e.g. the method changes in the comparison workshops)
    moved = app_ui._mover(1)(out[app_ui.flags])
    assert "Step 2 of" in moved[app_ui.guide_md]
    assert _value(moved[controls["method"]]) == resolve(f"workshop={key}&step=2").config.method
    assert "Step 1 of" in app_ui._mover(-1)(moved[app_ui.flags])[app_ui.guide_md]


def test_the_app_applies_a_plain_link_and_reports_a_bad_one(app_ui):
    controls = app_ui.controls
    out = load(app_ui, {"method": "lcia", "steps": "40", "lr": "0.002", "opt.tau": "0.05", "hide": "seed"})
    assert _value(out[controls["method"]]) == "lcia" and _value(out[controls["steps_per_task"]]) == 40
    assert _value(out[controls["method_options"]]) == "tau=0.05"
    assert _visible(out[controls["seed"]]) is False and _visible(out[controls["lr"]]) is True
    assert _visible(out[app_ui.guide_box]) is False
    bad = load(app_ui, {"lr": "-1", "method": "nope"})
    assert "lr: must be in" in bad[app_ui.status] and "no method named 'nope'" in bad[app_ui.status]
    assert _value(bad[controls["lr"]]) == 2e-3 and _value(bad[controls["method"]]) == "seqft"
    assert "Traceback" not in bad[app_ui.status]
    plain = load(app_ui, {})
    assert app_ui.status not in plain                  # no link, no message


def test_the_shareable_link_reflects_the_controls(app_ui):
    flags = {"hide": ["lr"], "workshop": None, "step": 1}
    controls = dict(lesson="default", method="lcia", model="tiny", steps_per_task=40, lr=0.002, batch_size=16,
                    eval_every=10, seed=3, replay_per_task=64, replay_mix_ratio=0.25, method_options="tau=0.05",
                    files=[])
    query = app_ui.share_query(flags, **controls)
    state = decode(query)
    assert state.errors == [] and state.hide == ("lr",)
    cfg = state.config
    assert (cfg.method, cfg.train.steps_per_task, cfg.train.lr, cfg.train.batch_size, cfg.train.eval_every,
            cfg.train.seed, cfg.method_options["tau"]) == ("lcia", 40, 0.002, 16, 10, 3, 0.05)
    bad = app_ui.share_query(flags, **{**controls, "method": "seqft", "lr": 7.0, "method_options": ""})
    assert bad.startswith("⚠") and "Learning rate must be in" in bad
    files = app_ui.share_query(flags, **{**controls, "lesson": "uploaded files", "method": "seqft", "lr": 0.001,
                                         "method_options": ""})
    assert files.startswith("⚠") and "lesson files" in files


def test_a_room_link_is_not_an_unknown_setting():
    """The Class board reads `room=` from the same link; the Train tab must not warn about it."""
    state = decode("?workshop=forgetting&room=t1", PRESETS)
    assert state.errors == []
