"""Workshop mode and shareable links for the Train tab.

A link's query string (serve.urlconfig) sets the Train tab's controls; `hide=` hides the controls a
lesson does not need; `workshop=<name>` opens a ready-made lesson whose guided text walks through it step
by step (◀ Back / Next ▶ move between steps; the page at step N is exactly the link with `step=N`). A
workshop is data: a title and its steps, each step a guided text plus the query keys it sets. The
"Shareable link" box under the controls always holds the link for the current settings, and the address
bar follows it, like TensorFlow Playground.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import gradio as gr

from cit_core.config import ConfigError
from serve import controls as ctl
from serve.urlconfig import HIDEABLE, UrlConfigError, UrlState, decode, encode


@dataclass(frozen=True)
class GuideStep:
    title: str
    text: str
    query: str = ""           # the settings this step sets (urlconfig keys); later steps apply on top


@dataclass(frozen=True)
class Workshop:
    title: str
    summary: str
    steps: tuple[GuideStep, ...]


_HIDE_MOST = "hide=lesson,model,lr,batch,eval,seed,steps"


def _watch_hint(recording: str) -> str:
    return (f" (Short on time, or on a busy server? The same run is under *Recorded runs*: pick {recording} "
            "and press **▶ Watch recording**.)")

WORKSHOPS: dict[str, Workshop] = {
    "forgetting": Workshop(
        "Catastrophic forgetting under plain fine-tuning",
        "one model, five tasks in a row, no remedy: watch task 1 disappear",
        (
            GuideStep(
                "Predict, then learn task 1",
                "The model is a tiny language model that was already instruction-tuned on 40 small skills "
                "(copy, reverse, first letter, does it contain a letter, ...). It will now learn five *new* tasks "
                "one after another with plain fine-tuning (SeqFT). Task 1 is **last_two** (*the last two "
                "letters of kemado?* → *do*), task 2 is **has_seven** (*does 417 contain the digit 7?* → "
                "*yes*): other inputs, another question.\n\n"
                "**Predict:** after the model has learned task 2, what will its score on task 1 be: about the "
                "same, a bit lower, or close to zero? Write your guess down.\n\n"
                "Then type **45** in the *steps* box and press **Step**: the model trains on task 1 only and "
                "the row *after 1. last_two* of the accuracy matrix fills. Notice the **general** column: "
                "the skills the model had before this lesson.",
                "method=seqft&hide=lesson,method,options,model,lr,batch,eval,seed,steps"),
            GuideStep(
                "Learn task 2 and check your prediction",
                "Press **Step** again (45 steps): the model now learns task 2 (has_seven) and sees no last_two "
                "example at all.\n\n"
                "Look at the **last_two** column of the accuracy matrix: compare the row *after 2. has_seven* "
                "with the row *after 1. last_two*. Was your prediction right? The score curves below show "
                "*when* it happened: the last_two curve falls while has_seven is being trained. The "
                "**general** column fell too: fine-tuning on one task erases what the model already knew "
                "(TRACE calls this the loss of general ability)."),
            GuideStep(
                "Play to the end and read the metrics",
                "Press **▶ Play** to train tasks 3 to 5. Then read the metrics under the curves: **forgetting** "
                "is the average drop from each task's best score to its final one, and **BWT** is negative when "
                "later tasks hurt earlier ones.\n\n"
                "**Discuss:** which tasks were forgotten most: those that share the answers *yes/no* "
                "(has_seven, vowel_end), those that share the inputs and the phrasing (last_two, first_two) or "
                "those that share nothing? The **Forgetting** tab shows which layers changed. To see why the "
                "instruction-tuned start matters, switch *Model* to *tiny · random init* and Play again. Next "
                "workshop: `?workshop=replay_vs_inscl` tries a remedy."),
        )),
    "replay_vs_inscl": Workshop(
        "Replay vs InsCL: two ways to spend a replay budget",
        "random replay against instruction-aware replay, the same number of replayed examples",
        (
            GuideStep(
                "Experience replay",
                "Plain fine-tuning forgets most of each task on this lesson. **Experience replay** keeps 64 "
                "examples of every finished task and mixes them into a quarter of each batch.\n\n"
                "**Predict:** with replay, will the final forgetting be about the same, halved, or close to "
                "zero? Then press **▶ Play** and let the run finish (about 20 seconds). Write down **AP** and "
                "**forgetting** from the metrics.",
                f"method=replay&{_HIDE_MOST}"),
            GuideStep(
                "InsCL",
                "**InsCL** replays as many examples, chosen differently: an old task whose instructions lie "
                "*further* from the new task's (1-Wasserstein distance between instruction embeddings) gets "
                "more of the replay, and inside a task the most informative instructions are replayed first. "
                "It is not quite the same memory: InsCL draws its replay set afresh from the old tasks' full "
                "training data at every new task, while replay keeps one fixed sample per task.\n\n"
                "The method is now InsCL. **Predict:** more or less forgetting than replay? Press **↺ Reset**, "
                "then **▶ Play**, and compare AP and forgetting with your notes.",
                "method=inscl"),
            GuideStep(
                "Scarce memory",
                "Now give InsCL a quarter of the memory: the method options say `per_task=16`. **Predict** "
                "which suffers more from the smaller memory, then press **↺ Reset** and **▶ Play**. To compare "
                "with replay at the same budget, switch the method to *Experience replay*, set *examples kept "
                "per task* to 16 and run again.\n\n"
                "**Discuss:** which tasks still drop with replay? Look at the tasks that share the answers "
                "*yes/no*.",
                "method=inscl&opt.per_task=16"),
        )),
    "isolation_vs_ema": Workshop(
        "Parameter isolation (SwitchCIT) vs a moving average (I-LoRA, LCIA)",
        "protect old tasks by never touching their weights, or by updating them slowly",
        (
            GuideStep(
                "Parameter isolation: SwitchCIT",
                "**SwitchCIT** gives each task its own small LoRA adapter; a little *switch* network reads the "
                "prompt and picks the adapter that answers. Old adapters are never trained again.\n\n"
                "**Predict:** how much can this forget? What could still go wrong (think of the switch)? Press "
                "**▶ Play** and let it finish. Note AP, forgetting and the diagonal of the matrix (how well each "
                "task was learned in the first place)." + _watch_hint("SwitchCIT"),
                f"method=switchcit&{_HIDE_MOST}"),
            GuideStep(
                "A moving average: I-LoRA",
                "**I-LoRA** keeps one LoRA in two copies: a *fast* learner trained on the new task (with "
                "replay) and a *slow* learner that follows it as an exponential moving average "
                "(slow ← λ·slow + (1 − λ)·fast, λ = 0.99 after every step). The slow learner answers.\n\n"
                "**Predict:** will the slow learner remember old tasks better than SwitchCIT, and will it learn "
                "each *new* task as well? Press **↺ Reset**, then **▶ Play**; compare the diagonal and the last "
                "row of the matrix with your SwitchCIT notes." + _watch_hint("I-LoRA"),
                "method=ilora"),
            GuideStep(
                "Both at once: LCIA",
                "**LCIA** groups tasks by how similar their instructions are (TF-IDF): a task similar enough "
                "(≥ τ) to an earlier group retrains that group's LoRA through an adaptive moving average, any "
                "other task opens a new LoRA (isolation). At the default τ = 0.30, *first_two* is phrased like "
                "*last_two* and retrains its group; the other tasks open groups of their own.\n\n"
                "**Predict:** will the shared group keep *last_two* and learn *first_two*? Press **↺ Reset** "
                "and **▶ Play**, then compare with the two runs before; the **Coefficients** tab shows the "
                "adaptive coefficient α of every LoRA tensor at every step of the shared task. The method card "
                "(*About this method*) has the update rule." + _watch_hint("LCIA"),
                "method=lcia"),
        )),
}

# workshop name -> its steps' query strings (what urlconfig.decode needs)
PRESETS: dict[str, list[str]] = {key: [s.query for s in w.steps] for key, w in WORKSHOPS.items()}


def workshop_link(key: str, base: str = "") -> str:
    """The short link a teacher hands out: `<base>?workshop=<key>`."""
    if key not in WORKSHOPS:
        raise KeyError(key)
    return f"{base}?workshop={key}"


def resolve(query) -> UrlState:
    """What a page URL asks for, workshops included. Never raises."""
    return decode(query, PRESETS)


def guide_markdown(state: UrlState) -> str:
    if not state.workshop:
        return ""
    ws = WORKSHOPS[state.workshop]
    step = ws.steps[state.step - 1]
    return (f"#### Workshop: {ws.title}\n**Step {state.step} of {len(ws.steps)}: {step.title}**\n\n{step.text}")


def flags_of(state: UrlState, base_query: str) -> dict:
    """The small per-session record of the view flags (gr.State)."""
    return {"base": base_query, "workshop": state.workshop, "step": state.step, "hide": list(state.hide)}


def _query_of(request) -> list[tuple[str, str]]:
    params = getattr(request, "query_params", None) or {}
    items = params.multi_items() if hasattr(params, "multi_items") else params.items()
    return [(str(k), str(v)) for k, v in items]


# -- the page: guide panel, shareable link, load handler -------------------------------------------
SHARE_JS = """(q) => {
  if (!q || q.startsWith('\u26a0')) { return q; }
  // the Class board's room stays in the address bar when the settings rewrite it
  const room = new URLSearchParams(window.location.search).get('room');
  if (room) { q += '&room=' + encodeURIComponent(room); }
  const url = window.location.origin + window.location.pathname + '?' + q;
  try { window.history.replaceState(null, '', url); } catch (e) {}
  return url;
}"""


SETTINGS_KEYS = ("steps", "lr", "batch", "eval", "seed")     # the hideable controls in "Training settings"


class UrlUI:
    """The guide panel, the shareable-link box and the handlers that apply a link to the Train tab."""

    def __init__(self):
        self.controls: dict = {}
        self.groups: dict = {}

    def build_guide(self):
        """The workshop's guided text with Back / Next (hidden unless the link names a workshop)."""
        with gr.Group(visible=False, elem_id="cit-guide") as self.guide_box:
            self.guide_md = gr.Markdown("", elem_classes=["cit-guide"])
            with gr.Row():
                self.back_btn = gr.Button("◀ Back", size="sm", min_width=80)
                self.next_btn = gr.Button("Next ▶", size="sm", min_width=80)
        self.flags = gr.State(flags_of(resolve(""), ""))

    def build_share(self):
        self.share = gr.Textbox("", label="Shareable link", interactive=False, buttons=["copy"], max_lines=2,
                                elem_id="cit-share-link",
                                info="opens this page with the settings above (the address bar follows them)")

    def attach(self, controls: dict, groups: dict, status, method_boxes: dict, options_box, settings_box=None):
        """Wire the handlers. `controls`: the config controls by their API names (serve.controls.CONTROL_NAMES
        and `files`); `groups`: HIDEABLE name -> components; `method_boxes` (method -> the group of its option
        fields) and `options_box` (the options text box) are shown by the method; `settings_box`: the
        accordion around SETTINGS_KEYS' controls, hidden when a link hides them all."""
        self.controls, self.groups, self.status = controls, groups, status
        self.method_boxes, self.options_box = method_boxes, options_box
        self.settings_box = settings_box
        self.share_inputs = {name: controls[name] for name in (*ctl.CONTROL_NAMES, "files")}
        gr.on([controls[n].change for n in ctl.CONTROL_NAMES], self.share_query, [self.flags], self.share,
              inputs_kwargs=self.share_inputs, queue=False, show_progress="hidden", api_visibility="private") \
            .then(None, self.share, self.share, js=SHARE_JS, queue=False, show_progress="hidden")
        for btn, delta in ((self.back_btn, -1), (self.next_btn, 1)):
            btn.click(self._mover(delta), self.flags, self.outputs(), queue=False, show_progress="hidden",
                      api_visibility="private") \
                .then(self.share_query, [self.flags], self.share, inputs_kwargs=self.share_inputs, queue=False,
                      show_progress="hidden") \
                .then(None, self.share, self.share, js=SHARE_JS, queue=False, show_progress="hidden")

    def wire_load(self, demo: gr.Blocks):
        """demo.load: apply the page URL's query to the Train tab (app.py calls this once)."""
        demo.load(self.on_load, None, self.outputs(), api_visibility="private", show_progress="hidden",
                  concurrency_limit=None) \
            .then(self.share_query, [self.flags], self.share, inputs_kwargs=self.share_inputs, queue=False,
                  show_progress="hidden") \
            .then(None, self.share, self.share, js=SHARE_JS, queue=False, show_progress="hidden")
        demo.cit_url = self

    def outputs(self) -> list:
        comps = [*(self.controls[n] for n in ctl.CONTROL_NAMES), self.guide_box, self.guide_md, self.flags,
                 self.status, *self.method_boxes.values(), self.options_box, self.back_btn, self.next_btn]
        if self.settings_box is not None:
            comps.append(self.settings_box)
        for name in HIDEABLE:
            comps += [c for c in self.groups.get(name, []) if c not in comps]
        return comps

    # -- handlers -------------------------------------------------------------------------------
    def on_load(self, request: gr.Request = None):
        pairs = _query_of(request)
        state = resolve(pairs)
        base = urlencode([(k, v) for k, v in pairs if k != "step"])
        return self.apply(state, base, announce=bool(pairs))

    def _mover(self, delta: int):
        def move(flags):
            flags = flags or {}
            if not flags.get("workshop"):
                return {}
            n_steps = len(WORKSHOPS[flags["workshop"]].steps)
            step = min(max(1, flags.get("step", 1) + delta), n_steps)
            base = flags.get("base", "")
            state = resolve(f"{base}&step={step}" if base else f"workshop={flags['workshop']}&step={step}")
            return self.apply(state, base, announce=False)
        return move

    def apply(self, state: UrlState, base_query: str, announce: bool) -> dict:
        """Updates that put `state` on the page: control values, hidden controls, the guide, a message."""
        hidden = set(state.hide)
        shown = {comp: name not in hidden for name in HIDEABLE for comp in self.groups.get(name, [])}
        values = ctl.control_values(state.config)
        out = {comp: gr.update(visible=visible) for comp, visible in shown.items()}
        for name in ctl.CONTROL_NAMES:   # one update per component: its value and, if hideable, visibility
            comp = self.controls[name]
            out[comp] = gr.update(value=values[name], visible=shown[comp]) if comp in shown else values[name]
        method, options_shown = state.config.method, "options" not in hidden
        for key, box in self.method_boxes.items():
            out[box] = gr.update(visible=method == key and options_shown)
        out[self.options_box] = gr.update(visible=ctl.has_text_options(method) and options_shown)
        out[self.guide_box] = gr.update(visible=bool(state.workshop))
        n_steps = len(WORKSHOPS[state.workshop].steps) if state.workshop else 0
        out[self.back_btn] = gr.update(interactive=bool(state.workshop) and state.step > 1)
        out[self.next_btn] = gr.update(interactive=bool(state.workshop) and state.step < n_steps)
        if self.settings_box is not None:       # an accordion with every control hidden is an empty box
            out[self.settings_box] = gr.update(visible=not set(SETTINGS_KEYS) <= hidden)
        out[self.guide_md] = guide_markdown(state)
        out[self.flags] = flags_of(state, base_query)
        if state.errors:
            message = state.message()
            gr.Warning(message)
            out[self.status] = f"**No run yet** · press Play (or Step) to start  \n_⚠ {message}_"
        elif announce:
            out[self.status] = "**No run yet** · the link's settings are set · press Play (or Step) to start"
        return out

    def share_query(self, flags, **controls):
        """The query string for the current controls, given by their API names (SHARE_JS turns it into the
        full link)."""
        if controls.get("lesson") == ctl.LESSON_FILES:
            return "⚠ Uploaded lesson files cannot go into a link: choose the default lesson to share."
        try:
            cfg = ctl.build_config(ctl.Controls.from_values(controls))
            flags = flags or {}
            return encode(cfg, flags.get("hide", ()), flags.get("workshop"), flags.get("step"))
        except (ctl.UserError, ConfigError, UrlConfigError) as err:
            return f"⚠ Fix the settings to get a link: {ctl.friendly(str(err))}"


__all__ = ["WORKSHOPS", "PRESETS", "GuideStep", "Workshop", "UrlUI", "resolve", "guide_markdown", "workshop_link"]
