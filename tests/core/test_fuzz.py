"""Property-based fuzzing of the lesson loaders, the configs and `python -m cit_core validate`.

Every malformed input must end in the documented error type (LessonFileError for lesson files,
ConfigError for configs) whose one-line message names the file (and the line, where the problem is on
a line) — never in any other exception. Each test starts from a valid file/config built by a strategy
and applies exactly one corruption, so the expected message is known for every example.
"""
from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import os
import shutil
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cit_core import cli
from cit_core.config import ConfigError, LessonConfig, ModelConfig, RunConfig, TrainConfig
from cit_core.methods import resolve
from cit_core.lessons.files import MAX_FILE_BYTES, MAX_LINE_CHARS, LessonFileError, load_lesson_files

# No deadline: the machine is shared and timing-dependent failures would not be about the loaders.
# The examples are drawn derandomized (the "ci" profile, tests/conftest.py): the same cases on every run
# and machine; a failure once found by random drawing is kept below as an explicit @example.
def fuzz(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

_DIR = Path(tempfile.mkdtemp(prefix="cit-fuzz-"))
_COUNTER = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    shutil.rmtree(_DIR, ignore_errors=True)


def write(data: bytes, suffix: str, stem: str | None = None) -> Path:
    """A fresh file under the module's temp folder (hypothesis cannot use function-scoped tmp_path)."""
    folder = _DIR / str(next(_COUNTER))
    folder.mkdir()
    path = folder / f"{stem or 'lesson'}{suffix}"
    path.write_bytes(data)
    return path


def expect_error(paths, line: int | None = None, words: tuple[str, ...] = ()) -> LessonFileError:
    """Loading must raise LessonFileError naming the file, the line (when given) and the problem."""
    with pytest.raises(LessonFileError) as info:
        load_lesson_files(paths)
    msg = str(info.value)
    assert "\n" not in msg, msg
    name = Path(info.value.path).name
    assert name and msg.startswith(name), msg
    if line is not None:
        assert msg.startswith(f"{name}:{line}: "), msg
    for word in words:
        assert word in msg, (word, msg)
    return info.value


# ---------------------------------------------------------------------------------------------
# Valid building blocks

text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_categories=("Cc", "Cs")),
               min_size=1, max_size=12).filter(str.strip)

# Task names the loader accepts: `text` may draw '<', '`' or only a soft hyphen (U+00AD), which the name
# rules refuse on the task's first row, before the corruption a test expects
task_name = text.filter(lambda s: not set("<>`") & set(s) and any(
    not c.isspace() and unicodedata.category(c) not in ("Cf", "Zs") for c in s))


@st.composite
def jsonl_rows(draw):
    """Rows of 1-2 tasks, each with enough distinct inputs to split into train and eval."""
    tasks = draw(st.lists(task_name, min_size=1, max_size=2, unique_by=str.strip))
    rows = []
    for task in tasks:
        for i in range(draw(st.integers(4, 8))):
            rows.append({"task": task, "instruction": draw(text), "input": f"in {i}", "output": draw(text)})
    return rows


def dump_jsonl(rows) -> bytes:
    return ("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n").encode("utf-8")


JSONL_CORRUPTIONS = ["invalid_json", "missing_field", "empty_field", "wrong_type", "control_char",
                     "lone_surrogate", "not_object", "bad_split", "long_line"]
CONTROL = st.sampled_from(["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x0b"])


# ---------------------------------------------------------------------------------------------
# JSONL


@fuzz(70)
@given(rows=jsonl_rows(), kind=st.sampled_from(JSONL_CORRUPTIONS), where=st.integers(0, 10 ** 6),
       field=st.sampled_from(["task", "instruction", "input", "output"]), ctrl=CONTROL,
       junk=st.sampled_from([1, 2.5, None, True, [], {}]))
def test_jsonl_corruptions_name_the_line(rows, kind, where, field, ctrl, junk):
    index = where % len(rows)
    row = dict(rows[index])
    words: tuple[str, ...] = ()
    if kind == "invalid_json":
        row = json.dumps(row)[:-1]                     # drop the closing brace
        words = ("invalid JSON", f"at column {len(row) + 1}:")   # the line is in the prefix, the column here
    elif kind == "missing_field":
        del row[field]
        words = (f"missing field {field!r}",)
    elif kind == "empty_field":
        field = "input" if field == "input" else field
        if field == "input":                           # an empty input is allowed: use output instead
            field = "output"
        row[field] = " \t "
        words = (f"empty field {field!r}",)
    elif kind == "wrong_type":
        row[field] = junk
        words = (f"wrong type for field {field!r}",)
    elif kind == "control_char":
        row[field] = row[field] + ctrl
        words = (f"U+{ord(ctrl):04X}", repr(field))
    elif kind == "lone_surrogate":
        row = json.dumps(row).replace('"' + field + '": "', '"' + field + '": "\\ud800', 1)
        words = (repr(field),)
    elif kind == "not_object":
        row = json.dumps(list(row.values()))
        words = ("expected a JSON object",)
    elif kind == "bad_split":
        row["split"] = "test"
        words = ("'split'",)
    elif kind == "long_line":
        row["input"] = "x" * (MAX_LINE_CHARS + 1)
        words = ("line is too long",)
    rows = rows[:index] + [row] + rows[index + 1:]
    expect_error([write(dump_jsonl(rows), ".jsonl")], line=index + 1, words=words)


@fuzz(25)
@given(rows=jsonl_rows(), encoding=st.sampled_from(["utf-16", "latin-1", "cp1252"]))
def test_jsonl_in_another_encoding(rows, encoding):
    rows[0]["output"] = "é€ünï"                       # needs more than ASCII to differ from UTF-8
    data = dump_jsonl(rows).decode("utf-8").encode(encoding, errors="replace")
    err = expect_error([write(data, ".jsonl")], words=("not valid UTF-8",))
    assert err.line is not None


@fuzz(20)
@given(rows=jsonl_rows(), which=st.sampled_from(["train", "eval"]))
def test_jsonl_task_without_one_split(rows, which):
    """A file that sets 'split' but gives a task no eval (or no train) rows names the task."""
    for row in rows:
        row["split"] = which
    task = rows[0]["task"].strip()
    missing = "held-out" if which == "train" else "training"
    expect_error([write(dump_jsonl(rows), ".jsonl")], words=(repr(task), missing))


HOSTILE_NAMES = {
    "invisible": (st.sampled_from(["\u200b", "\u00ad", "\u2060\ufeff", "\u00a0\u200b\u3000", "\u202e"]),
                  "has no visible characters"),
    "control": (st.sampled_from(["\n", "\t", "\u2028", "\u2029"]), "contains control character"),
    "markup": (st.sampled_from(["<", ">", "`", "<script>", "<img src=x onerror=alert(1)>"]), "may not contain"),
}


@fuzz(40)
@given(rows=jsonl_rows(), kind=st.sampled_from(sorted(HOSTILE_NAMES)), data=st.data())
def test_jsonl_hostile_task_names_name_the_first_row_of_the_task(rows, kind, data):
    """An invisible name, a name with a control character or markup: refused on the task's first row."""
    chars, words = HOSTILE_NAMES[kind]
    bad = data.draw(chars)
    old = rows[-1]["task"]
    # invisible: the whole name; otherwise the characters go inside a valid name (the loader strips the ends)
    name = bad if kind == "invisible" else "x" + bad + old.strip()
    for row in rows:
        if row["task"] == old:
            row["task"] = name
    first = next(i for i, row in enumerate(rows) if row["task"] == name)
    err = expect_error([write(dump_jsonl(rows), ".jsonl")], line=first + 1, words=(words, repr(name.strip())))
    assert "\n" not in str(err)


def test_jsonl_zero_instances_and_a_single_instance():
    expect_error([write(b"\n \n\t\n", ".jsonl")], words=("empty",))
    one = {"task": "t", "instruction": "say", "input": "a", "output": "b"}
    expect_error([write(dump_jsonl([one]), ".jsonl")], words=("'t'", "held-out"))


def test_ten_megabyte_line_is_refused_without_parsing():
    row = json.dumps({"task": "t", "instruction": "i", "input": "x" * 10_000_000, "output": "o"})
    expect_error([write(row.encode(), ".jsonl")], line=1, words=("line is too long", f"{MAX_LINE_CHARS:,}"))


def test_file_over_the_size_cap_is_refused_before_reading():
    path = write(b"", ".jsonl")
    os.truncate(path, MAX_FILE_BYTES + 1)             # sparse: nothing is written to disk
    expect_error([path], words=("too large", f"{MAX_FILE_BYTES:,}"))


# ---------------------------------------------------------------------------------------------
# Super-NaturalInstructions and TRACE


@st.composite
def superni_task(draw):
    definition = draw(st.one_of(text, st.lists(text, min_size=1, max_size=2)))   # both SuperNI versions
    n = draw(st.integers(4, 10))
    return {"Definition": definition, "URL": [float("nan")],
            "Instances": [{"id": f"i{i}", "input": f"x{i}", "output": [draw(text)]} for i in range(n)]}


SUPERNI_CORRUPTIONS = {
    "definition_type": (lambda d, i: d.update(Definition=5), "'Definition'"),
    "definition_empty": (lambda d, i: d.update(Definition=["  "]), "'Definition' is empty"),
    "no_definition": (lambda d, i: d.pop("Definition"), "missing field 'Definition'"),
    "instances_empty": (lambda d, i: d.update(Instances=[]), "'Instances' must be a non-empty list"),
    "instances_type": (lambda d, i: d.update(Instances={"0": 1}), "'Instances' must be a non-empty list"),
    "instance_type": (lambda d, i: d["Instances"].__setitem__(i, "x"), "expected an object"),
    "no_input": (lambda d, i: d["Instances"][i].pop("input"), "missing field 'input'"),
    "input_type": (lambda d, i: d["Instances"][i].update(input=3), "'input' must be a string"),
    "output_type": (lambda d, i: d["Instances"][i].update(output="yes"), "'output' must be a list of strings"),
    "output_item_type": (lambda d, i: d["Instances"][i].update(output=[None]), "'output' must be a list"),
    "all_outputs_empty": (lambda d, i: [x.update(output=[""]) for x in d["Instances"]], "empty output"),
    "one_instance": (lambda d, i: d.update(Instances=d["Instances"][:1]), "held-out"),
    "control_char": (lambda d, i: d["Instances"][i].update(input="a\x00b"), "control character U+0000"),
}


@fuzz(45)
@given(data=superni_task(), kind=st.sampled_from(sorted(SUPERNI_CORRUPTIONS)), where=st.integers(0, 99))
def test_superni_corruptions(data, kind, where):
    change, words = SUPERNI_CORRUPTIONS[kind]
    index = where % len(data["Instances"])
    change(data, index)
    expect_error([write(json.dumps(data).encode(), ".json", stem="task001_fuzz")], words=(words,))


@st.composite
def trace_task(draw):
    n = draw(st.integers(4, 10))
    records = [{"prompt": f"{draw(text)}\ninput {i}", "answer": draw(text)} for i in range(n)]
    return draw(st.sampled_from([records, {"data": records}]))


TRACE_CORRUPTIONS = {
    "record_type": (lambda r, i: r.__setitem__(i, [1]), "expected an object"),
    "no_answer": (lambda r, i: r[i].pop("answer"), "missing field 'answer'"),
    "answer_type": (lambda r, i: r[i].update(answer=1.5), "wrong type for field 'answer'"),
    "prompt_type": (lambda r, i: r[i].update(prompt=None), "wrong type for field 'prompt'"),
    "empty_answer": (lambda r, i: r[i].update(answer="  "), "empty field 'answer'"),
    "empty_prompt": (lambda r, i: r[i].update(prompt="\n \n"), "empty field 'prompt'"),
    "control_char": (lambda r, i: r[i].update(answer="a\x1bb"), "control character U+001B"),
    "no_records": (lambda r, i: r.clear(), "non-empty TRACE list"),
}


# found by random drawing (issue 18): a bare TRACE list whose first record is not an object was not
# recognised as TRACE, so the user was told the format is unknown instead of which record is wrong
FOUND_TRACE = [{"prompt": f"Say it.\ninput {i}", "answer": "0"} for i in range(4)]


@fuzz(40)
@given(data=trace_task(), kind=st.sampled_from(sorted(TRACE_CORRUPTIONS)), where=st.integers(0, 99))
@example(data=FOUND_TRACE, kind="record_type", where=0)
@example(data={"data": FOUND_TRACE}, kind="record_type", where=0)
@example(data=FOUND_TRACE, kind="no_answer", where=0)
def test_trace_corruptions(data, kind, where):
    data = copy.deepcopy(data)        # an @example's value is shared between runs: never change it in place
    records = data["data"] if isinstance(data, dict) else data
    change, words = TRACE_CORRUPTIONS[kind]
    change(records, where % len(records))
    if kind == "no_records" and isinstance(data, list):
        data = {"data": []}           # a bare [] is no recognisable format; {"data": []} is an empty TRACE file
    expect_error([write(json.dumps(data).encode(), ".json", stem="trace_fuzz")], words=(words,))


@fuzz(15)
@given(rows=jsonl_rows())
def test_duplicate_task_names_across_files(rows):
    first = write(dump_jsonl(rows), ".jsonl")
    second = write(dump_jsonl(rows), ".jsonl")
    err = expect_error([first, second], words=("duplicate task name",))
    assert Path(err.path) == second


@fuzz(50)
@given(data=st.one_of(st.binary(max_size=300),
                      st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
                      st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | text,
                                   lambda inner: st.lists(inner, max_size=4)
                                   | st.dictionaries(st.sampled_from(["Definition", "Instances", "input", "output",
                                                                      "prompt", "answer", "data", "task"]),
                                                     inner, max_size=5),
                                   max_leaves=20).map(lambda v: json.dumps(v).encode())),
       suffix=st.sampled_from([".jsonl", ".json"]))
def test_arbitrary_bytes_load_or_raise_the_documented_error(data, suffix):
    """Anything at all: either a lesson comes back or LessonFileError; nothing else escapes."""
    path = write(data, suffix)
    try:
        lesson = load_lesson_files([path])
    except LessonFileError as err:
        assert str(err).startswith(path.name) and "\n" not in str(err)
    else:
        assert all(t.train and t.eval for t in lesson.tasks)


def test_path_with_a_nul_byte_or_a_folder():
    expect_error(["bad\x00name.jsonl"], words=("cannot read",))
    expect_error([_DIR], words=("cannot read",))


# ---------------------------------------------------------------------------------------------
# Configs


def _range_of(cls, name):
    from dataclasses import fields
    meta = next(f.metadata for f in fields(cls) if f.name == name)
    return meta["lo"], meta["hi"]


RANGED = [(cls, f) for cls, names in [
    (TrainConfig, ["steps_per_task", "batch_size", "lr", "weight_decay", "grad_clip", "eval_every",
                   "eval_batch", "max_len", "seed", "threads"]),
    (ModelConfig, ["hidden", "layers", "heads", "intermediate", "lora_r", "lora_alpha"]),
    (LessonConfig, ["n_eval"])] for f in names]


@fuzz(60)
@given(which=st.sampled_from(RANGED), offset=st.floats(1e-3, 1e12), below=st.booleans(),
       odd=st.sampled_from([None, float("nan"), float("inf"), "3", True, [1]]))
def test_out_of_range_config_values_name_field_and_range(which, offset, below, odd):
    cls, name = which
    lo, hi = _range_of(cls, name)
    if odd is not None:
        value = odd
    else:
        value = lo - offset if below else hi + offset
        if isinstance(lo, int) and isinstance(hi, int):
            value = int(value) - (1 if below else -1) * (value == int(value))   # stay strictly outside
            value = min(value, lo - 1) if below else max(value, hi + 1)
    with pytest.raises(ConfigError) as info:
        cls(**{name: value})
    msg = str(info.value)
    assert f"{cls.__name__}.{name}" in msg and f"[{lo}, {hi}]" in msg, msg


@fuzz(40)
@given(data=st.dictionaries(st.sampled_from(["method", "model", "train", "lesson", "method_options", "extra"]),
                            st.one_of(st.none(), st.integers(-5, 5), st.floats(), text, st.lists(st.integers()),
                                      st.dictionaries(st.sampled_from(["name", "lr", "steps_per_task", "hidden",
                                                                       "files", "lam", "allow_download"]),
                                                      st.one_of(st.none(), st.integers(-3, 3), text,
                                                                st.lists(st.integers())))),
                            max_size=4))
def test_config_from_arbitrary_dicts(data):
    """RunConfig.from_dict on junk: a config or ConfigError, never TypeError/AttributeError."""
    try:
        cfg = RunConfig.from_dict(data)
    except ConfigError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert isinstance(cfg.model.name, str) and isinstance(cfg.lesson.files, list)


def test_method_option_out_of_range_names_option():
    with pytest.raises(ConfigError, match="lam"):
        resolve(RunConfig(method="ewc", method_options={"lam": -1}))


# ---------------------------------------------------------------------------------------------
# The CLI, in process


def run_cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def test_validate_exits_2_with_one_line_per_bad_file():
    good_rows = [{"task": "t", "instruction": "say", "input": f"x{i}", "output": "y"} for i in range(6)]
    good = write(dump_jsonl(good_rows), ".jsonl", stem="good")
    cases = [
        (write(b'{"task": "t"}\n{oops\n', ".jsonl", stem="broken"), "broken.jsonl:1: missing field 'instruction'"),
        (write("é".encode("latin-1"), ".jsonl", stem="latin"), "latin.jsonl:1: not valid UTF-8"),
        (write(b'{"Definition": "d", "Instances": []}', ".json", stem="task9_empty"), "task9_empty.json: 'Instances'"),
        (write(b'[{"prompt": "p", "answer": 1}]', ".json", stem="trace1"), "trace1.json: record 0: wrong type"),
    ]
    for path, expected in cases:
        code, out, err = run_cli(["validate", str(good), str(path)])
        assert code == 2 and out == "", (code, out)
        assert err.startswith("error: " + expected) and err.count("\n") == 1, err
    code, out, err = run_cli(["validate", str(good)])
    assert code == 0 and out.startswith("t\t") and err == ""


def test_run_with_out_of_range_values_exits_2_before_training(tmp_path):
    for flags, field in [(["--steps-per-task", "-1"], "steps_per_task"), (["--lr", "1e9"], "lr"),
                         (["--batch-size", "0"], "batch_size"), (["--method", "nope"], "unknown method"),
                         (["--option", "lam=2e12", "--method", "ewc"], "lam")]:
        code, _, err = run_cli(["run", "--out", str(tmp_path / "r"), *flags])
        assert code == 2 and field in err and err.count("\n") == 1, (flags, err)
        assert not (tmp_path / "r").exists()


def test_run_with_an_unavailable_model_exits_2_with_one_line(tmp_path):
    code, _, err = run_cli(["run", "--out", str(tmp_path / "r"), "--model", "no-such-org/no-such-model"])
    assert code == 2 and err.startswith("error: model 'no-such-org/no-such-model'") and err.count("\n") == 1, err
