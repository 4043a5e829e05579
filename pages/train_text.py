"""The Train tab's words: the lead, the how-to-read intro and the instant status lines of its buttons."""
from __future__ import annotations

import json

LEAD = """\
A small language model learns **instruction tasks one after another** and is tested on all of them after each:
press **▶ Play** and the **accuracy matrix** and the **curves** show what it forgets.
"""

INTRO = """\
The **accuracy matrix** has one row per stage (before training, then after each task) and one column per task:
the outlined diagonal is each task's score right after it was learned, and lower numbers further down a column
mean the model **forgot** that task while learning later ones (catastrophic forgetting). The **curves** show
the same scores at every periodic evaluation, with the task being trained shaded; the **metrics** summarise the
matrix. The last column, **general** (dotted grey curve), scores skills the base already had before this lesson
(held-out prompts of the families it was instruction-tuned on): not part of the metrics, it shows what
continual tuning does to what the model already knew. Choose the lesson, method and model under **Settings**,
then press **Play** (Pause stops at a clean step; Step moves a given number of steps). Changed settings apply on
**Reset**, or on **Play** once the run has finished (switch the method to Replay and press Play to see
forgetting shrink). **Ask the model** (under the charts) shows what the model answers now and after each task.
"""

PENDING_PLAY = ("**▶ Play pressed** · starting: waiting for a free training slot (other runs may be training; "
                "your place in the queue shows here) or building the model. No need to press again.")
PENDING_STEP = ("**Step pressed** · starting: waiting for a free training slot or building the model; the "
                "charts update as the steps run. No need to press again.")


def pending_js(text: str) -> str:
    """A client-side handler that puts `text` in the status box the moment a button is pressed."""
    return f"() => {json.dumps(text)}"
