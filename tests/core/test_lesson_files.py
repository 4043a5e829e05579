"""Lesson file loaders: good and bad synthetic files, and the real SuperNI subsets."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from cit_core.lessons import files
from cit_core.lessons.files import (LessonFileError, load_jsonl, load_lesson_files, load_superni,
                                    load_trace)
from support.paths import ROOT, TESTS

SUPERNI_DIR = TESTS / "data" / "superni"   # real SuperNI subsets (README there: source, licence)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _rows(n: int, task: str = "t", **extra) -> list[dict]:
    return [dict(task=task, instruction="Say it.", input=f"x{i}", output=f"y{i}", **extra) for i in range(n)]


def _jsonl(path: Path, rows) -> Path:
    return _write(path, "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


def _superni(path: Path, n: int = 10, definition=("Do the thing.",), **over) -> Path:
    data = {"Definition": list(definition) if not isinstance(definition, str) else definition,
            "Instances": [{"input": f"in {i}", "output": [f"out {i}"]} for i in range(n)]}
    data.update(over)
    return _write(path, json.dumps(data))


def _inputs(examples) -> set[str]:
    return {ex.input for ex in examples}


# --- JSONL: good files -------------------------------------------------------------------------

def test_jsonl_groups_tasks_in_first_seen_order_and_splits(tmp_path):
    rows = _rows(10, "b") + _rows(5, "a")
    rows.insert(3, dict(task="a", instruction="Say it.", input="first", output="z"))
    tasks = load_jsonl(_jsonl(tmp_path / "t.jsonl", rows))
    assert [t.name for t in tasks] == ["b", "a"]
    b, a = tasks
    assert (len(b.train), len(b.eval)) == (8, 2)
    assert (len(a.train), len(a.eval)) == (5, 1)
    assert not _inputs(b.train) & _inputs(b.eval)


def test_jsonl_scorer_per_task_for_example_rouge_l(tmp_path):
    rows = _rows(6, "long", scorer="rougeL") + _rows(6, "plain")
    long, plain = load_jsonl(_jsonl(tmp_path / "t.jsonl", rows))
    assert long.scorer == "rougeL" and plain.scorer == "label"     # the file's choice; else the guess
    with pytest.raises(LessonFileError, match=r"mixed.jsonl:2: .*scorer 'rougeL' on an earlier row and 'exact' here"):
        load_jsonl(_jsonl(tmp_path / "mixed.jsonl", _rows(1, scorer="rougeL") + _rows(1, scorer="exact")))
    with pytest.raises(LessonFileError, match=r"bad.jsonl:1: field 'scorer' must be one of"):
        load_jsonl(_jsonl(tmp_path / "bad.jsonl", _rows(2, scorer="bleu")))


def test_jsonl_split_is_deterministic(tmp_path):
    path = _jsonl(tmp_path / "t.jsonl", _rows(40))
    first, second = load_jsonl(path)[0], load_jsonl(path)[0]
    assert first.eval == second.eval and first.train == second.train


def test_jsonl_held_out_inputs_are_disjoint_even_when_repeated(tmp_path):
    # Each input appears with three paraphrased instructions; no input may straddle the split.
    rows = [dict(task="p", instruction=f"Q{k}", input=f"n{i}", output="yes" if i % 2 else "no")
            for i in range(20) for k in range(3)]
    task = load_jsonl(_jsonl(tmp_path / "t.jsonl", rows))[0]
    assert not _inputs(task.train) & _inputs(task.eval)
    assert len(task.eval) >= 12 and len(task.eval) % 3 == 0
    assert task.scorer == "label" and task.labels == ("no", "yes")


def test_jsonl_explicit_split_blank_lines_and_empty_input(tmp_path):
    rows = [dict(task="t", instruction="Hi", input="", output="a", split="train"),
            "", "   ",
            dict(task="t", instruction="Hi", input="q", output="b", split="eval"),
            dict(task="t", instruction="Hi", input="r", output="c")]       # no split: training
    task = load_jsonl(_jsonl(tmp_path / "t.jsonl", rows))[0]
    assert [ex.output for ex in task.train] == ["a", "c"]
    assert [ex.output for ex in task.eval] == ["b"]


def test_jsonl_crlf_line_endings(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes("\r\n".join(json.dumps(r) for r in _rows(5)).encode())
    assert len(load_jsonl(path)[0].eval) == 1


# --- JSONL: bad files (line number and a key word) ---------------------------------------------

@pytest.mark.parametrize("bad_line, word", [
    ('{"task": "t", "instruction": "i", "input": "x", ', "invalid json"),
    ('["a", "b"]', "object"),
    ('{"task": "t", "instruction": "i", "input": "x"}', "missing field 'output'"),
    ('{"task": "t", "instruction": "i", "input": "x", "output": 3}', "wrong type"),
    ('{"task": "t", "instruction": "i", "input": "x", "output": ["a"]}', "wrong type"),
    ('{"task": "t", "instruction": "i", "input": "x", "output": "  "}', "empty field 'output'"),
    ('{"task": "t", "instruction": "i", "input": "x\\u0007", "output": "y"}', "control character"),
    ('{"task": "t", "instruction": "i", "input": "x", "output": "y", "split": "test"}', "split"),
    ('{"task": "t", "instruction": "", "input": "x", "output": "y"}', "empty field 'instruction'"),
    ('{"task": "t", "instruction": "i", "input": "' + "x" * 100_001 + '", "output": "y"}', "too long"),
])
def test_jsonl_bad_line_is_reported_with_its_line(tmp_path, bad_line, word):
    rows = [json.dumps(r) for r in _rows(3)]
    path = _jsonl(tmp_path / "bad.jsonl", rows[:1] + [""] + rows[1:] + [bad_line])
    with pytest.raises(LessonFileError) as info:
        load_jsonl(path)
    err = info.value
    assert err.line == 5 and err.path == str(path)
    assert word in err.problem.lower()
    assert str(err).startswith("bad.jsonl:5: ")


def test_jsonl_newline_and_tab_are_allowed(tmp_path):
    rows = _rows(5)
    rows[0]["input"] = "a\tb\nc"
    assert load_jsonl(_jsonl(tmp_path / "t.jsonl", rows))[0]


def test_jsonl_single_example_task_is_an_error_naming_the_task(tmp_path):
    path = _jsonl(tmp_path / "t.jsonl", _rows(5) + _rows(1, task="lonely"))
    with pytest.raises(LessonFileError, match="lonely") as info:
        load_jsonl(path)
    assert "t.jsonl" in str(info.value)


def test_jsonl_explicit_split_without_eval_is_an_error(tmp_path):
    with pytest.raises(LessonFileError, match="eval"):
        load_jsonl(_jsonl(tmp_path / "t.jsonl", _rows(4, split="train")))


# --- whole-file problems -------------------------------------------------------------------------

def test_empty_file(tmp_path):
    with pytest.raises(LessonFileError, match="empty"):
        load_lesson_files([_write(tmp_path / "e.jsonl", "")])
    with pytest.raises(LessonFileError, match="empty"):
        load_lesson_files([_write(tmp_path / "e.json", "\n  \n")])


def test_not_utf8_reports_the_line(tmp_path):
    path = tmp_path / "latin.jsonl"
    good = "\n".join(json.dumps(r) for r in _rows(2)).encode()
    path.write_bytes(good + b'\n{"task": "t", "instruction": "caf\xe9"}\n')
    with pytest.raises(LessonFileError, match="UTF-8") as info:
        load_lesson_files([path])
    assert info.value.line == 3


def test_size_cap_is_checked_before_reading(tmp_path, monkeypatch):
    path = _jsonl(tmp_path / "big.jsonl", _rows(5))
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 10)
    monkeypatch.setattr(files.os, "open", lambda *a, **k: pytest.fail("opened before the size check"))
    with pytest.raises(LessonFileError, match="too large"):
        load_lesson_files([path])


def test_missing_file(tmp_path):
    with pytest.raises(LessonFileError, match="cannot read"):
        load_lesson_files([tmp_path / "nope.jsonl"])


def test_error_pickles_and_formats_without_line(tmp_path):
    err = LessonFileError(tmp_path / "x.json", None, "bad")
    assert str(err) == "x.json: bad"
    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.line, again.problem) == (err.path, None, "bad")


# --- SuperNI (synthetic) ---------------------------------------------------------------------------

def test_superni_minimal(tmp_path):
    task = load_superni(_superni(tmp_path / "task1_x.json", definition=["Part one.", "Part two."]))
    assert task.name == "task1_x"
    assert task.instructions == ["Part one. Part two."]
    assert (len(task.train), len(task.eval)) == (8, 2)


def test_superni_eval_is_capped(tmp_path):
    task = load_superni(_superni(tmp_path / "task2_big.json", n=1000))
    assert len(task.eval) == files.SUPERNI_EVAL_CAP
    assert len(task.train) == 1000 - files.SUPERNI_EVAL_CAP


@pytest.mark.parametrize("change, word", [
    (lambda d: d.pop("Definition"), "definition"),
    (lambda d: d.pop("Instances"), "instances"),
    (lambda d: d.update(Instances={"a": 1}), "list"),
    (lambda d: d.update(Instances=[]), "non-empty"),
    (lambda d: d["Instances"][1].pop("input"), "missing field 'input'"),
    (lambda d: d["Instances"][1].pop("output"), "missing field 'output'"),
    (lambda d: d["Instances"][1].update(output="out"), "list of strings"),
    (lambda d: d["Instances"][1].update(output=[1]), "list of strings"),
    (lambda d: d.update(Definition=[1]), "definition"),
])
def test_superni_bad_files(tmp_path, change, word):
    data = json.loads(_superni(tmp_path / "src.json").read_text())
    change(data)
    path = _write(tmp_path / "task3_bad.json", json.dumps(data))
    with pytest.raises(LessonFileError) as info:
        load_lesson_files([path]) if "Instances" in data else load_superni(path)
    assert word in info.value.problem.lower()
    assert str(info.value).startswith("task3_bad.json")


def test_superni_invalid_json_has_a_line(tmp_path):
    path = _write(tmp_path / "task4.json", '{\n  "Definition": "x",\n  "Instances": [,]\n}')
    with pytest.raises(LessonFileError, match="invalid JSON") as info:
        load_lesson_files([path])
    assert info.value.line == 3
    # the line and the column: the stray comma is the 17th character of line 3
    assert str(info.value) == "task4.json:3: invalid JSON at column 17: Expecting value"


def test_jsonl_invalid_json_names_line_and_column(tmp_path):
    good = '{"task": "t", "instruction": "i", "input": "a", "output": "b"}'
    path = _write(tmp_path / "bad.jsonl", good + "\n" + '{"task": "t", "instruction": "i" "input": "a"}')
    with pytest.raises(LessonFileError) as info:
        load_lesson_files([path])
    assert str(info.value) == "bad.jsonl:2: invalid JSON at column 34: Expecting ',' delimiter"


# --- TRACE ---------------------------------------------------------------------------------------

def test_trace_list_and_data_dict(tmp_path):
    recs = [{"prompt": f"Translate to French.\nword {i}\n", "answer": f"mot {i}"} for i in range(12)]
    as_list = load_trace(_write(tmp_path / "C-STANCE.json", json.dumps(recs)))
    assert as_list.name == "C-STANCE"
    assert as_list.instructions == ["Translate to French."]
    assert as_list.train[0].input.startswith("word ")
    as_dict = load_lesson_files([_write(tmp_path / "other.json", json.dumps({"data": recs}))]).tasks[0]
    assert as_dict.name == "other" and len(as_dict.eval) == len(as_list.eval) == 2
    assert as_list.scorer == "exact"             # 12 distinct answers: more than a label set


def test_trace_label_answers_and_prompt_without_input(tmp_path):
    recs = [{"prompt": f"Is {i} even?", "answer": "yes" if i % 2 == 0 else "no"} for i in range(10)]
    task = load_trace(_write(tmp_path / "even.json", json.dumps(recs)))
    assert task.scorer == "label" and task.labels == ("no", "yes")
    assert all(ex.input == "" for ex in task.train + task.eval)
    assert not {ex.instruction for ex in task.train} & {ex.instruction for ex in task.eval}


@pytest.mark.parametrize("recs, word", [
    ([{"prompt": "p"}], "missing field 'answer'"),
    ([{"prompt": "p", "answer": 3}], "wrong type"),
    ([{"prompt": "  \n ", "answer": "a"}, {"prompt": "q", "answer": "b"}], "empty field 'prompt'"),
    ({"data": "nope"}, "trace"),
])
def test_trace_bad_files(tmp_path, recs, word):
    with pytest.raises(LessonFileError) as info:
        load_lesson_files([_write(tmp_path / "tr.json", json.dumps(recs))])
    assert word in info.value.problem.lower()


def test_unknown_json_shape_says_what_was_expected(tmp_path):
    with pytest.raises(LessonFileError, match="expected a SuperNI") as info:
        load_lesson_files([_write(tmp_path / "odd.json", json.dumps({"rows": []}))])
    assert info.value.line is None


# --- lessons from several files ------------------------------------------------------------------

def test_lesson_concatenates_in_order(tmp_path):
    a = _jsonl(tmp_path / "a.jsonl", _rows(5, "j1") + _rows(5, "j2"))
    b = _superni(tmp_path / "task9_s.json")
    lesson = load_lesson_files([b, a], name="mine")
    assert lesson.name == "mine" and lesson.task_names == ["task9_s", "j1", "j2"]


def test_duplicate_task_names_across_files(tmp_path):
    a = _jsonl(tmp_path / "a.jsonl", _rows(5, "same"))
    b = _jsonl(tmp_path / "b.jsonl", _rows(5, "same"))
    with pytest.raises(LessonFileError, match="duplicate task name") as info:
        load_lesson_files([a, b])
    assert str(info.value).startswith("b.jsonl")


def test_no_files(tmp_path):
    with pytest.raises(LessonFileError, match="no files"):
        load_lesson_files([])


# --- the real SuperNI subsets --------------------------------------------------------------------

@pytest.fixture(scope="module")
def superni_paths() -> list[Path]:
    paths = sorted(SUPERNI_DIR.glob("*.json"))
    assert paths, f"no task files in {SUPERNI_DIR}"
    return paths


@pytest.fixture(scope="module")
def superni(superni_paths) -> dict:
    lesson = load_lesson_files(superni_paths, name="superni")
    return {t.name: t for t in lesson.tasks}


def _task(superni: dict, prefix: str):
    (task,) = [t for name, t in superni.items() if name.startswith(prefix + "_")]
    return task


def test_real_superni_all_load_with_disjoint_splits(superni, superni_paths):
    assert list(superni) == [p.stem for p in superni_paths]
    for task in superni.values():
        assert task.train and 0 < len(task.eval) <= files.SUPERNI_EVAL_CAP
        assert not _inputs(task.train) & _inputs(task.eval), task.name
        assert all(ex.output.strip() and ex.instruction for ex in task.train + task.eval)


def test_real_task365_skips_the_empty_target(superni, superni_paths):
    task = _task(superni, "task365")
    raw = json.loads(next(p for p in superni_paths if p.stem == task.name).read_text())
    assert len(task.train) + len(task.eval) == len(raw["Instances"]) - 1
    assert "uU" not in _inputs(task.train + task.eval)
    assert "1 skipped" in task.description


def test_real_task374_with_nan_url_loads(superni_paths):
    task = load_superni(next(p for p in superni_paths if p.name.startswith("task374_")))
    assert task.scorer == "exact" and task.train


def test_real_label_tasks(superni):
    food = _task(superni, "task1193")
    assert food.scorer == "label" and set(food.labels) == {"dessert", "main course", "snack"}
    prime = _task(superni, "task092")
    assert prime.scorer == "label" and set(prime.labels) == {"Yes", "No"}


def test_real_string_and_list_definitions(superni, superni_paths):
    kinds = {}
    for path in superni_paths:
        kinds.setdefault(type(json.loads(path.read_text())["Definition"]).__name__, path.stem)
    assert set(kinds) == {"str", "list"}
    for stem in kinds.values():
        (instruction,) = superni[stem].instructions
        assert instruction.strip()


def test_real_same_stem_from_two_dirs_is_a_duplicate(superni_paths, tmp_path):
    original = superni_paths[0]
    copy = tmp_path / original.name
    copy.write_bytes(original.read_bytes())
    with pytest.raises(LessonFileError, match="duplicate task name") as info:
        load_lesson_files([original, copy])
    assert info.value.path == str(copy)


# --- hostile uploads (issue 14, points 4 and 9) ----------------------------------------------------

class _CountingName(str):
    """A task name that counts its equality comparisons: the cost of the duplicate-name check, counted
    instead of timed, so the check holds on any machine however busy."""
    comparisons = 0

    def __eq__(self, other):
        type(self).comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def _many_tasks(path: Path, n: int, prefix: str = "task") -> Path:
    """n tasks of two rows each (one trains, one is held out)."""
    return _jsonl(path, [dict(task=f"{prefix} {i}", instruction="Say it.", input=f"x{j}", output=f"y{j}")
                         for i in range(n) for j in range(2)])


def test_loading_many_tasks_compares_names_a_linear_number_of_times(tmp_path, monkeypatch):
    # names.count(name) for every name made n*(n-1) comparisons: 20,000 tasks took half a minute
    n = 2000
    monkeypatch.setattr(files, "MAX_TASKS", n, raising=False)     # raising=False: the cap is new
    real_lesson = files.Lesson

    def counting_lesson(name, tasks, **kw):
        for task in tasks:
            task.name = _CountingName(task.name)
        _CountingName.comparisons = 0
        return real_lesson(name, tasks, **kw)

    monkeypatch.setattr(files, "Lesson", counting_lesson)
    lesson = load_lesson_files([_many_tasks(tmp_path / "many.jsonl", n)])
    assert len(lesson.tasks) == n
    assert _CountingName.comparisons <= n, _CountingName.comparisons     # a set makes ~0; n*(n-1) before


def test_lesson_duplicate_names_are_still_found():
    from cit_core.lessons.base import Lesson, Task
    ex = [files.Example("i", "x", "y")]
    with pytest.raises(ValueError, match=r"duplicate task names \['a', 'b'\]"):
        Lesson("l", [Task(n, ex, ex) for n in ("b", "a", "c", "a", "b", "b")])


def test_task_cap_in_one_file_names_the_line_and_the_limit(tmp_path):
    cap = files.MAX_TASKS
    assert 16 <= cap <= 200
    assert len(load_lesson_files([_many_tasks(tmp_path / "full.jsonl", cap)]).tasks) == cap
    with pytest.raises(LessonFileError) as info:
        load_lesson_files([_many_tasks(tmp_path / "over.jsonl", cap + 1)])
    # the first row of the task over the cap: 2 rows per task
    assert str(info.value) == (f"over.jsonl:{2 * cap + 1}: too many tasks (task 'task {cap}' is number "
                               f"{cap + 1}; the limit is {cap} tasks per lesson)")


def test_task_cap_counts_across_files(tmp_path):
    half = files.MAX_TASKS // 2 + 1
    a = _many_tasks(tmp_path / "a.jsonl", half, prefix="a")
    b = _many_tasks(tmp_path / "b.jsonl", half, prefix="b")
    with pytest.raises(LessonFileError, match=rf"^b\.jsonl: too many tasks .*the limit is {files.MAX_TASKS} "):
        load_lesson_files([a, b])


def _load_in_child(path: Path, timeout: float = 60) -> str:
    """Load `path` in a child process under a 2 GiB address-space limit: what it printed (the error).

    A child, so that a regression (reading /dev/zero until memory runs out, or blocking on a FIFO
    forever) fails this test instead of taking the machine or the test run down with it."""
    code = ("import resource, sys\n"
            "try:\n    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
            "except (ValueError, OSError):\n    pass\n"        # not every system lets a process cap it
            "from cit_core.lessons.files import LessonFileError, load_lesson_files\n"
            "try:\n    load_lesson_files([sys.argv[1]])\n"
            "except LessonFileError as err:\n    print(err)\n")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {path.name} did not finish in {timeout} s")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_symlink_to_dev_zero_is_refused_without_reading(tmp_path):
    link = tmp_path / "zero.jsonl"
    link.symlink_to("/dev/zero")
    assert _load_in_child(link) == "zero.jsonl: cannot read file: it is a device, not a regular file"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    assert _load_in_child(fifo) == "pipe.jsonl: cannot read file: it is a pipe (FIFO), not a regular file"
    link = tmp_path / "link.json"
    link.symlink_to(fifo)                     # the target is judged, not the link
    assert _load_in_child(link) == "link.json: cannot read file: it is a pipe (FIFO), not a regular file"


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_read_is_bounded_when_the_size_on_disk_says_nothing(tmp_path, monkeypatch):
    # /proc files are regular but report size 0: the size check passes, so only a bounded read stops them
    link = tmp_path / "status.jsonl"
    link.symlink_to("/proc/self/status")
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 10)
    with pytest.raises(LessonFileError, match=r"^status\.jsonl: file is too large \(over 10 bytes"):
        load_lesson_files([link])


@pytest.mark.parametrize("name", ["\u200b", "\u200b\u200c\u200d", "\u00a0\u200b", "\u2060\ufeff", "\u3000\u00ad"])
def test_task_name_of_only_invisible_characters_is_refused(tmp_path, name):
    path = _jsonl(tmp_path / "t.jsonl", _rows(1) + _rows(4, task=name))
    with pytest.raises(LessonFileError, match=r"^t\.jsonl:2: task name .* has no visible characters$"):
        load_lesson_files([path])


@pytest.mark.parametrize("name, code", [("a\nb", "000A"), ("a\tb", "0009"), ("a\u2028b", "2028")])
def test_task_name_with_a_control_character_is_refused(tmp_path, name, code):
    path = _jsonl(tmp_path / "t.jsonl", _rows(4, task=name))
    with pytest.raises(LessonFileError, match=rf"^t\.jsonl:1: task name .* contains control character U\+{code}$"):
        load_lesson_files([path])


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "a > b", "`code`", "<img src=x onerror=alert(1)>"])
def test_task_name_with_markup_is_refused(tmp_path, name):
    path = _jsonl(tmp_path / "t.jsonl", _rows(4, task=name))
    with pytest.raises(LessonFileError, match=r"^t\.jsonl:1: task name .* may not contain <, >, ` "):
        load_lesson_files([path])


def test_superni_and_trace_names_come_from_the_file_name_and_are_checked(tmp_path):
    with pytest.raises(LessonFileError, match=r"contains '<'.*named after their file"):
        load_lesson_files([_superni(tmp_path / "task1_<b>x.json")])
    trace = _write(tmp_path / "a\nb.json", json.dumps([{"prompt": f"p\n{i}", "answer": "a"} for i in range(5)]))
    with pytest.raises(LessonFileError, match=r"control character U\+000A.*named after their file"):
        load_lesson_files([trace])


@pytest.mark.parametrize("name", ["café au lait", "数学 問題", "emoji 🙂", "👩\u200d💻 coder", "a_b-c.d (v2) [x] *y*",
                                  "\u200bvisible"])
def test_ordinary_names_still_load(tmp_path, name):
    lesson = load_lesson_files([_jsonl(tmp_path / "t.jsonl", _rows(4, task=name))])
    assert lesson.task_names == [name]


def test_no_error_message_shows_the_server_folder(tmp_path):
    """Uploads live in a server temp folder: every message names a file by its base name only."""
    secret = tmp_path / "srv-secret-upload-dir"
    (secret / "one").mkdir(parents=True)
    (secret / "two").mkdir()
    first = _jsonl(secret / "one" / "a.jsonl", _rows(4, task="same"))
    second = _jsonl(secret / "two" / "b.jsonl", _rows(4, task="same"))
    big = _jsonl(secret / "big.jsonl", _rows(1))
    os.truncate(big, files.MAX_FILE_BYTES + 1)
    dangling = secret / "dangling.jsonl"
    dangling.symlink_to(secret / "nowhere")
    # no FIFO here: before the fix it blocked the loader (test_fifo_is_refused_without_blocking)
    cases = [[first, second], [big], [dangling], [secret / "one"], [secret / "missing.json"],
             [_jsonl(secret / "bad.jsonl", ["{oops"])], [_write(secret / "u.json", "[1]")]]
    for paths in cases:
        with pytest.raises(LessonFileError) as info:
            load_lesson_files(paths)
        msg = str(info.value)
        assert "srv-secret" not in msg and str(tmp_path) not in msg and "/" not in msg, msg
    with pytest.raises(LessonFileError, match=r"^b\.jsonl: duplicate task name 'same' \(already loaded from a\.jsonl\)$"):
        load_lesson_files([first, second])
