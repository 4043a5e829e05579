"""Load lessons from user files: JSONL, Super-NaturalInstructions task JSON, TRACE-style JSON.

Every problem with a file comes out as a `LessonFileError` that names the file (and the line
where one is known), so the app can show it to the user as one line instead of a traceback.
Only the standard library is used.
"""
from __future__ import annotations

import json
import os
import random
import re
import stat
import unicodedata
from pathlib import Path

from .base import SCORERS, Example, Lesson, Task

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_FILES = 32                 # files per lesson: each is a task or more, and a run trains them all
# Tasks per lesson. A run trains every task and scores every task after each one (T x T evaluations),
# and the pages draw a T x T matrix: 64 is twice MAX_FILES and four times the longest CIT benchmarks
# (SuperNI's 15-task sequence, InsCL's 16, TRACE's 8), yet keeps a run and its matrix usable on a CPU.
MAX_TASKS = 64
MAX_LINE_CHARS = 100_000
EVAL_FRACTION = 0.2
SUPERNI_EVAL_CAP = 64          # held-out decoding is the slow part; 64 examples give a usable score
MAX_LABELS = 10
MAX_LABEL_WORDS = 3
JSONL_FIELDS = ("task", "instruction", "input", "output")

# C0 and C1 controls except \t and \n: they break tokenisers and the app's text boxes. Lone surrogates
# (JSON "\ud800") cannot be encoded as UTF-8, so tokenisers, seeding and run files would crash on them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _bad_char(value: str) -> str | None:
    """'control character U+0007' / 'lone surrogate U+D800' for the first unusable character, else None."""
    bad = _CONTROL.search(value)
    if bad is None:
        return None
    code = ord(bad.group())
    return f"{'lone surrogate' if 0xD800 <= code <= 0xDFFF else 'control character'} U+{code:04X}"


# Task names are shown on every page, in Markdown, and on one line of `validate`'s output. These
# characters would be markup there (HTML, code spans), so a loader rule keeps them out of names.
_MARKUP = "<>`"
# Characters that show nothing: with only these a name looks empty in every menu and table.
_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp"}


def _name_problem(name: str) -> str | None:
    """Why `name` cannot be a task name, or None. Messages quote the name with repr: one line always."""
    if all(ch.isspace() or unicodedata.category(ch) in _INVISIBLE for ch in name):
        return f"task name {name!r} has no visible characters"
    for ch in name:
        category = unicodedata.category(ch)
        if category in ("Cc", "Zl", "Zp"):      # \n, \t, U+2028...: they break lines and columns
            return f"task name {name!r} contains control character U+{ord(ch):04X}"
        if category == "Cs":                    # a file name that is not UTF-8 (surrogateescape)
            return f"task name {name!r} contains lone surrogate U+{ord(ch):04X}"
        if ch in _MARKUP:
            return (f"task name {name!r} contains {ch!r}: task names may not contain "
                    f"{', '.join(_MARKUP)} (the app shows them as Markdown)")
    return None


def _check_name(path: Path, line: int | None, name: str, from_file_name: bool = False) -> None:
    problem = _name_problem(name)
    if problem:
        note = " (SuperNI and TRACE tasks are named after their file)" if from_file_name else ""
        raise LessonFileError(path, line, problem + note)


class LessonFileError(ValueError):
    """A lesson file cannot be used; `str()` is one line: `file:line: problem`."""

    def __init__(self, path, line: int | None, problem: str):
        self.path = str(path) if path is not None else ""
        self.line = line
        self.problem = problem
        name = Path(self.path).name if self.path else "<no file>"
        where = f"{name}:{line}" if line is not None else name
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):
        # The default reduce would call __init__ with the message only; keep it picklable.
        return (type(self), (self.path, self.line, self.problem))


# ---------------------------------------------------------------------------------------------
# Reading


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def _check_regular(path: Path, st: os.stat_result) -> None:
    """Refuse anything but a regular file: /dev/zero never ends, and a FIFO blocks its reader forever."""
    if stat.S_ISREG(st.st_mode):
        return
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
    raise LessonFileError(path, None, f"cannot read file: it is {kind}, not a regular file")


def _check_size(path: Path, size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise LessonFileError(path, None, f"file is too large ({size:,} bytes; the limit is {MAX_FILE_BYTES:,})")


def _cannot_read(path: Path, e: Exception) -> LessonFileError:
    # an OSError's strerror only: str(OSError) quotes the full server path of an upload
    why = (e.strerror or type(e).__name__) if isinstance(e, OSError) else str(e)
    return LessonFileError(path, None, f"cannot read file: {why}")


def _read_bytes(path: Path) -> bytes:
    """At most MAX_FILE_BYTES + 1 bytes of a regular file (symlinks followed)."""
    # stat (which follows symlinks) before open: opening a device can itself do something
    try:
        st = os.stat(path)
    except (OSError, ValueError) as e:     # ValueError: a NUL byte in the path
        raise _cannot_read(path, e) from None
    _check_regular(path, st)
    _check_size(path, st.st_size)           # before reading, so a huge upload never lands in memory
    try:
        # O_NONBLOCK: should the path become a FIFO after the stat, opening it must not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise _cannot_read(path, e) from None
    with open(fd, "rb") as f:
        try:
            _check_regular(path, os.fstat(fd))     # what was opened, not what was stat'ed
            raw = f.read(MAX_FILE_BYTES + 1)       # bounded even if the file grew after the stat
        except OSError as e:
            raise _cannot_read(path, e) from None
    if len(raw) > MAX_FILE_BYTES:
        raise LessonFileError(path, None, f"file is too large (over {MAX_FILE_BYTES:,} bytes; "
                                          f"the limit is {MAX_FILE_BYTES:,})")
    return raw


def _read_text(path: Path) -> str:
    """File contents as text, after the file-type and size caps, emptiness and UTF-8 checks."""
    raw = _read_bytes(path)
    # Editors on Windows often add a UTF-8 byte-order mark; json.loads would reject it.
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise LessonFileError(path, line, f"not valid UTF-8 (byte {e.start}: {e.reason})") from None
    if not text.strip():
        raise LessonFileError(path, None, "file is empty")
    return text


def _parse_json(path: Path, text: str):
    """Whole-file JSON (NaN accepted, as SuperNI files contain it)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LessonFileError(path, e.lineno, f"invalid JSON at column {e.colno}: {e.msg}") from None
    except (ValueError, RecursionError) as e:   # e.g. a 5,000-digit number, or very deep nesting
        raise LessonFileError(path, None, f"invalid JSON: {type(e).__name__}") from None


def _make_task(path: Path, **fields) -> Task:
    """Task(...) raises ValueError for empty splits; re-raise it naming the file."""
    try:
        return Task(**fields)
    except ValueError as e:
        raise LessonFileError(path, None, str(e)) from None


# ---------------------------------------------------------------------------------------------
# Splitting and scoring (shared by all formats)


def _input_key(ex: Example):
    """What makes two examples 'the same input' for the split.

    Whitespace and case are folded so "Dal makhani " and "dal makhani" cannot straddle the split.
    With an empty input the instruction carries the content (Alpaca-style rows), so it is the key.
    """
    text = ex.input if ex.input.strip() else "\0" + ex.instruction
    return " ".join(text.split()).casefold()


def _split(name: str, examples: list[Example], cap: int | None = None) -> tuple[list[Example], list[Example]]:
    """Deterministic ~80/20 split by distinct input, seeded by the task name.

    Whole input groups go to eval so no held-out input was seen in training. With a single
    distinct input that is impossible, so the examples themselves are split instead.
    Both lists keep the file's order.
    """
    rng = random.Random(name)   # str seeds are hashed with SHA-512: stable across runs/processes
    want = max(1, round(len(examples) * EVAL_FRACTION))
    if cap is not None:
        want = min(want, cap)
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(_input_key(ex), []).append(i)
    held: list[int] = []
    if len(groups) > 1:
        order = list(groups.values())
        rng.shuffle(order)
        for group in order[:-1]:        # the last group always stays in training
            if len(held) >= want:
                break
            if cap is not None and held and len(held) + len(group) > cap:
                continue                # a big group would break the cap; a later one may fit
            held += group
    elif len(examples) > 1:
        held = rng.sample(range(len(examples)), min(want, len(examples) - 1))
    held.sort()
    # Only a single group larger than the cap gets here; its extra rows are dropped rather than
    # trained on, since they share their input with held-out rows.
    dropped = set(held[cap:]) if cap is not None else set()
    held = held[:cap] if cap is not None else held
    out = set(held) | dropped
    return [ex for i, ex in enumerate(examples) if i not in out], [examples[i] for i in held]


def _scorer(outputs: list[str]) -> tuple[str, tuple[str, ...]]:
    """'label' for a small closed set of short answers (accuracy on a label), else 'exact'."""
    distinct = set(outputs)
    if len(distinct) <= MAX_LABELS and all(0 < len(o.split()) <= MAX_LABEL_WORDS for o in distinct):
        return "label", tuple(sorted(distinct))
    return "exact", ()


def _build_task(path: Path, name: str, examples: list[Example], description: str,
                cap: int | None = None) -> Task:
    train, held = _split(name, examples, cap)
    scorer, labels = _scorer([ex.output for ex in examples])
    return _make_task(path, name=name, train=train, eval=held, scorer=scorer, labels=labels,
                      description=description)


# ---------------------------------------------------------------------------------------------
# JSONL


def _jsonl_record(path: Path, lineno: int, line: str) -> dict:
    """One validated JSONL row; every problem names its line."""
    if len(line) > MAX_LINE_CHARS:
        raise LessonFileError(path, lineno, f"line is too long ({len(line):,} characters; the limit is {MAX_LINE_CHARS:,})")
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise LessonFileError(path, lineno, f"invalid JSON at column {e.colno}: {e.msg}") from None
    except (ValueError, RecursionError) as e:
        raise LessonFileError(path, lineno, f"invalid JSON: {type(e).__name__}") from None
    if not isinstance(row, dict):
        raise LessonFileError(path, lineno, f"expected a JSON object, got {type(row).__name__}")
    for key in JSONL_FIELDS:
        if key not in row:
            raise LessonFileError(path, lineno, f"missing field {key!r}")
    for key in JSONL_FIELDS + (("split",) if "split" in row else ()):
        value = row[key]
        if not isinstance(value, str):
            raise LessonFileError(path, lineno, f"wrong type for field {key!r}: expected a string, got {type(value).__name__}")
        bad = _bad_char(value)
        if bad:
            raise LessonFileError(path, lineno, f"{bad} in field {key!r}")
    # Empty input is fine (instruction-only rows); the rest must say something.
    for key in ("task", "instruction", "output"):
        if not row[key].strip():
            raise LessonFileError(path, lineno, f"empty field {key!r}")
    if row.get("split", "train") not in ("train", "eval"):
        raise LessonFileError(path, lineno, f"field 'split' must be 'train' or 'eval', got {row['split']!r}")
    if row.get("scorer", "exact") not in SCORERS:
        raise LessonFileError(path, lineno, f"field 'scorer' must be one of {list(SCORERS)}, got {row['scorer']!r}")
    return row


def _tasks_from_jsonl(path: Path, text: str) -> list[Task]:
    rows: dict[str, list[tuple[Example, str | None]]] = {}   # dicts keep first-seen task order
    scorers: dict[str, str] = {}      # a task's optional "scorer" (given on any of its rows, the same on all)
    # Split on "\n" only: str.splitlines() would also break on U+2028 etc. inside JSON strings.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        row = _jsonl_record(path, lineno, line.rstrip("\r"))
        ex = Example(row["instruction"], row["input"], row["output"])
        name = row["task"].strip()
        if name not in rows:
            _check_name(path, lineno, name)
            _check_task_count(path, lineno, name, len(rows) + 1)
        rows.setdefault(name, []).append((ex, row.get("split")))
        if "scorer" in row:
            if scorers.setdefault(name, row["scorer"]) != row["scorer"]:
                raise LessonFileError(path, lineno, f"task {name!r} has scorer {scorers[name]!r} on an earlier "
                                                    f"row and {row['scorer']!r} here: give one per task")
    if not rows:
        raise LessonFileError(path, None, "file is empty")
    tasks = [_jsonl_task(path, name, items) for name, items in rows.items()]
    for task in tasks:
        if task.name in scorers:       # the file's choice wins over the guess from the answers
            task.scorer = scorers[task.name]
    return tasks


def _check_task_count(path: Path, line: int | None, name: str, number: int) -> None:
    """Stop at the first task over the cap, before the rest of the file is turned into tasks."""
    if number > MAX_TASKS:
        raise LessonFileError(path, line, f"too many tasks (task {name!r} is number {number:,}; "
                                          f"the limit is {MAX_TASKS} tasks per lesson)")


def _jsonl_task(path: Path, name: str, items: list[tuple[Example, str | None]]) -> Task:
    examples = [ex for ex, _ in items]
    if any(split is not None for _, split in items):
        # The file chose the split; rows without one are training rows.
        train = [ex for ex, split in items if split != "eval"]
        held = [ex for ex, split in items if split == "eval"]
        scorer, labels = _scorer([ex.output for ex in examples])
        return _make_task(path, name=name, train=train, eval=held, scorer=scorer, labels=labels,
                          description=f"{len(examples)} examples from {path.name}")
    return _build_task(path, name, examples, f"{len(examples)} examples from {path.name}")


def load_jsonl(path) -> list[Task]:
    """Tasks from a JSONL file of {"task", "instruction", "input", "output"[, "split"]} rows."""
    path = Path(path)
    return _tasks_from_jsonl(path, _read_text(path))


# ---------------------------------------------------------------------------------------------
# Super-NaturalInstructions


def _superni_instruction(path: Path, definition) -> str:
    # Older SuperNI versions store Definition as a string, newer ones as a list of strings.
    parts = [definition] if isinstance(definition, str) else definition
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        raise LessonFileError(path, None, "'Definition' must be a string or a list of strings")
    text = " ".join(p.strip() for p in parts if p.strip())
    if not text:
        raise LessonFileError(path, None, "'Definition' is empty")
    if _bad_char(text):
        raise LessonFileError(path, None, f"{_bad_char(text)} in 'Definition'")
    return text


def _superni_target(path: Path, index: int, inst) -> tuple[str, str | None]:
    """(input, target) of instance `index`; target None when every output is empty."""
    if not isinstance(inst, dict):
        raise LessonFileError(path, None, f"instance {index}: expected an object, got {type(inst).__name__}")
    for key in ("input", "output"):
        if key not in inst:
            raise LessonFileError(path, None, f"instance {index}: missing field {key!r}")
    if not isinstance(inst["input"], str):
        raise LessonFileError(path, None, f"instance {index}: 'input' must be a string")
    outputs = inst["output"]
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise LessonFileError(path, None, f"instance {index}: 'output' must be a list of strings")
    for key, value in [("input", inst["input"]), *(("output", o) for o in outputs)]:
        if _bad_char(value):
            raise LessonFileError(path, None, f"instance {index}: {_bad_char(value)} in field {key!r}")
    # The first output is the target; if it is blank, a later non-blank one is still a valid answer.
    target = next((o for o in outputs if o.strip()), None)
    return inst["input"], target


def _task_from_superni(path: Path, data) -> Task:
    if not isinstance(data, dict):
        raise LessonFileError(path, None, "expected a SuperNI task object with 'Definition' and 'Instances'")
    for key in ("Definition", "Instances"):
        if key not in data:
            raise LessonFileError(path, None, f"missing field {key!r}")
    _check_name(path, None, path.stem, from_file_name=True)
    instruction = _superni_instruction(path, data["Definition"])
    instances = data["Instances"]
    if not isinstance(instances, list) or not instances:
        raise LessonFileError(path, None, "'Instances' must be a non-empty list")
    examples, skipped = [], 0
    for index, inst in enumerate(instances):
        text, target = _superni_target(path, index, inst)
        if target is None:          # e.g. task365 "uU" -> "": nothing to learn or score
            skipped += 1
            continue
        examples.append(Example(instruction, text, target))
    if not examples:
        raise LessonFileError(path, None, f"all {skipped} instances have an empty output")
    note = f"; {skipped} skipped (empty output)" if skipped else ""
    desc = f"Super-NaturalInstructions {path.stem}: {len(examples)} instances{note}"
    return _build_task(path, path.stem, examples, desc, cap=SUPERNI_EVAL_CAP)


def load_superni(path) -> Task:
    """One Super-NaturalInstructions task file (`tasks/taskNNN_*.json`)."""
    path = Path(path)
    return _task_from_superni(path, _parse_json(path, _read_text(path)))


# ---------------------------------------------------------------------------------------------
# TRACE


def _trace_example(path: Path, index: int, rec) -> Example:
    if not isinstance(rec, dict):
        raise LessonFileError(path, None, f"record {index}: expected an object, got {type(rec).__name__}")
    for key in ("prompt", "answer"):
        if key not in rec:
            raise LessonFileError(path, None, f"record {index}: missing field {key!r}")
        if not isinstance(rec[key], str):
            raise LessonFileError(path, None, f"record {index}: wrong type for field {key!r}: expected a string")
        if _bad_char(rec[key]):
            raise LessonFileError(path, None, f"record {index}: {_bad_char(rec[key])} in field {key!r}")
    if not rec["answer"].strip():
        raise LessonFileError(path, None, f"record {index}: empty field 'answer'")
    # Downstream code needs a non-empty instruction: the first non-blank prompt line is it.
    head, _, rest = rec["prompt"].strip().partition("\n")
    if not head.strip():
        raise LessonFileError(path, None, f"record {index}: empty field 'prompt'")
    return Example(head.strip(), rest.strip(), rec["answer"])


def _task_from_trace(path: Path, data) -> Task:
    records = data.get("data") if isinstance(data, dict) else data
    if not isinstance(records, list) or not records:
        raise LessonFileError(path, None, "expected a non-empty TRACE list of {\"prompt\", \"answer\"} objects")
    _check_name(path, None, path.stem, from_file_name=True)
    examples = [_trace_example(path, i, rec) for i, rec in enumerate(records)]
    desc = f"TRACE {path.stem}: {len(examples)} records"
    return _build_task(path, path.stem, examples, desc, cap=SUPERNI_EVAL_CAP)


def load_trace(path) -> Task:
    """One TRACE-style file: a list of {"prompt", "answer"} (or {"data": [...]})."""
    path = Path(path)
    return _task_from_trace(path, _parse_json(path, _read_text(path)))


# ---------------------------------------------------------------------------------------------
# Dispatch


def _is_trace(data) -> bool:
    """{"data": ...}, or a list with a record that has a TRACE field: a list whose first record is broken is
    still meant as TRACE, and the user is better told which record is wrong than that the format is unknown."""
    if isinstance(data, dict):
        return "data" in data
    return isinstance(data, list) and any(isinstance(r, dict) and ("prompt" in r or "answer" in r) for r in data)


def _tasks_from_file(path: Path) -> list[Task]:
    """Pick the format: .jsonl is JSONL; other files are parsed as JSON and judged by shape."""
    text = _read_text(path)
    if path.suffix.lower() == ".jsonl":
        return _tasks_from_jsonl(path, text)
    data = _parse_json(path, text)
    if isinstance(data, dict) and "Instances" in data:
        return [_task_from_superni(path, data)]
    if _is_trace(data):
        return [_task_from_trace(path, data)]
    raise LessonFileError(path, None, "expected a SuperNI task object with 'Instances', a TRACE list of "
                                      "{\"prompt\", \"answer\"} objects (or {\"data\": [...]}), or a .jsonl file")


def load_lesson_files(paths, name: str = "uploaded") -> Lesson:
    """A lesson of every task in `paths`, in order; task names must be unique across files."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise LessonFileError(None, None, "no files given")
    if len(paths) > MAX_FILES:
        raise LessonFileError(None, None, f"too many files ({len(paths)}; the limit is {MAX_FILES})")
    tasks, source = [], {}
    for path in paths:
        for task in _tasks_from_file(path):
            if task.name in source:
                # the base name only: uploads live in a server temp folder that users must not see
                raise LessonFileError(path, None, f"duplicate task name {task.name!r} "
                                                  f"(already loaded from {source[task.name]})")
            _check_task_count(path, None, task.name, len(tasks) + 1)
            source[task.name] = path.name
            tasks.append(task)
    try:
        return Lesson(name, tasks, description=f"{len(tasks)} tasks from {len(paths)} file(s)")
    except ValueError as e:
        raise LessonFileError(paths[-1], None, str(e)) from None
