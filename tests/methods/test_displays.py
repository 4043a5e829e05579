"""What methods show of themselves, read from a RunLog alone: typed info records that keep the run files'
JSON as it was (checked on the shipped recordings), and panel records for the Coefficients view."""
import numpy as np
import pytest

from cit_core import gallery
from cit_core.displays import coefficient_panels, logged_matrices, method_title
from cit_core.events import RunLog, RunStarted
from cit_core.methods.ilora import ILoRATaskEnd, ILoRATaskStart
from cit_core.methods.inscl import InsCLTaskStart
from cit_core.methods.lcia import LCIATaskEnd, LCIATaskStart
from cit_core.methods.regularization import ImportanceTaskEnd, PenaltyTaskStart
from cit_core.methods.switchcit import SwitchStage
from cit_core.panels import Heatmap, Message, Table

# recording -> (TaskStarted record, TaskEnded record)
RECORDS = {"lcia": (LCIATaskStart, LCIATaskEnd), "ilora": (ILoRATaskStart, ILoRATaskEnd),
           "ewc": (PenaltyTaskStart, ImportanceTaskEnd), "mas": (PenaltyTaskStart, ImportanceTaskEnd),
           "tir": (PenaltyTaskStart, ImportanceTaskEnd), "inscl": (InsCLTaskStart, None),
           "switchcit": (None, SwitchStage)}


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_info_records_read_and_write_the_recorded_json_unchanged(name):
    if name not in gallery.names():
        pytest.skip(f"no {name} recording shipped")
    log = gallery.load(name)
    start, end = RECORDS[name]
    for record, infos in ((start, log.task_info), (end, log.task_end_info)):
        for info in infos if record else []:
            again = record.from_dict(info).to_dict()
            assert list(again.items()) == [(k, v) for k, v in info.items() if k in again], name
            assert set(info) - set(again) <= {"adapter", "retained"}, name   # SwitchCIT's start adds these


def test_a_record_leaves_out_what_a_task_did_not_log():
    assert ILoRATaskStart(0, lam=0.99).to_dict() == {"buffer": 0, "lambda": 0.99}
    assert ILoRATaskStart.from_dict({"lambda": 0.9}).lam == 0.9
    assert LCIATaskEnd.from_dict({}) == LCIATaskEnd()


@pytest.mark.parametrize("name", ["lcia", "ilora", "ewc"])
def test_recordings_show_their_panels(name):
    log = gallery.load(name)
    panels = coefficient_panels(log)
    heat = panels[0]
    assert isinstance(heat, Heatmap) and heat.values.shape[0] == len(heat.rows) and heat.how
    assert heat.side is not None and len(heat.side) == len(heat.rows)
    if name == "lcia":
        assert isinstance(panels[1], Table) and len(panels[1].rows) == len(log.tasks)
        assert np.nanmax(heat.marks) <= 1


def test_a_method_without_panels_says_which_have_them():
    log = RunLog()
    log.add(RunStarted(("p",), "replay", 4, 4, {}))
    (message,) = coefficient_panels(log)
    assert isinstance(message, Message) and message.how == message.text
    assert message.text == f"{method_title('replay')} has no balance coefficients — pick EWC, MAS, TIR, I-LoRA or LCIA."
    assert logged_matrices(log) == {}
