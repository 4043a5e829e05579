"""Security boundaries: the run store cannot be escaped, nothing unpickles outside data, no remote code,
the app binds to loopback, Hub downloads need both the user's and the server's consent, uploads are capped.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cit_core import model as model_mod
from cit_core.config import ModelConfig
from cit_core.lessons.files import MAX_FILE_BYTES, MAX_FILES, LessonFileError, load_lesson_files
from cit_core.store import RunNotFound, list_runs, run_path
from support.paths import ROOT


BAD_NAMES = ["..", ".", "../x", "../../etc/passwd", "a/../../b", "/etc/passwd", "/", "a/b", "a\\..\\b",
             "a\x00b", "\x00", "", " ", ".hidden", "-rf", "~", "~root", "x" * 129, "r\u00e9sum\u00e9",
             "%2e%2e", "..\u2215x", None, 5, b"run", ["run"]]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_run_names_that_could_leave_the_store_are_refused(tmp_path, name):
    with pytest.raises(RunNotFound):
        run_path(name, tmp_path)


def test_a_trailing_newline_is_not_a_run_name(tmp_path):
    with pytest.raises(RunNotFound):
        run_path("run\n", tmp_path)


def test_plain_names_stay_inside_the_store(tmp_path):
    for name in ["run1", "20260101-120000-seqft-s0-abc123", "a.b_c-d", "x" * 128]:
        path = run_path(name, tmp_path)
        assert path.parent == tmp_path and path.name == name


def test_a_symlink_in_the_store_is_not_followed_out(tmp_path):
    store, outside = tmp_path / "store", tmp_path / "outside"
    store.mkdir()
    outside.mkdir()
    (outside / "events.jsonl").write_text("")
    (store / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunNotFound):
        run_path("escape", store)
    assert "escape" not in list_runs(store) or _refused("escape", store)


def _refused(name, root) -> bool:
    try:
        run_path(name, root)
    except RunNotFound:
        return True
    return False


def test_lesson_errors_name_only_the_file_not_its_folder(tmp_path):
    """Uploaded files live in a server temp folder: messages shown to users carry the base name only."""
    folder = tmp_path / "secret-server-folder"
    folder.mkdir()
    bad = folder / "upload.jsonl"
    bad.write_text("{oops\n")
    with pytest.raises(LessonFileError) as info:
        load_lesson_files([bad])
    assert str(info.value).startswith("upload.jsonl:1: ") and "secret-server-folder" not in str(info.value)


def test_upload_caps_size_and_count(tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"")
    os.truncate(big, MAX_FILE_BYTES + 1)
    with pytest.raises(LessonFileError, match="too large"):
        load_lesson_files([big])
    small = tmp_path / "s.jsonl"
    small.write_text('{"task": "t", "instruction": "i", "input": "1", "output": "o"}\n')
    with pytest.raises(LessonFileError, match=f"too many files \\({MAX_FILES + 1}; the limit is {MAX_FILES}\\)"):
        load_lesson_files([small] * (MAX_FILES + 1))
    assert MAX_FILE_BYTES == 20 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Source-tree greps: honest about being greps; they catch a reintroduced call, not a dynamic one.


def source_files() -> list[Path]:
    skip = {".venv", ".git", "node_modules", "__pycache__", ".hypothesis"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def _calls(text: str, func: str) -> list[str]:
    """The argument text of each call to `func` (balanced parentheses)."""
    out = []
    for m in re.finditer(re.escape(func) + r"\s*\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append(text[m.end():i - 1])
    return out


def test_no_torch_load_without_weights_only_and_no_pickle():
    files = source_files()
    assert len(files) > 20 and any(p.name == "trainer.py" for p in files)
    this = Path(__file__).resolve()
    offenders = []
    for path in files:
        if path.resolve() == this:
            continue
        text = path.read_text(encoding="utf-8")
        for args in _calls(text, "torch.load"):
            if not re.search(r"weights_only\s*=\s*True", args):
                offenders.append(f"{path.relative_to(ROOT)}: torch.load({args[:60]})")
        if "tests" in path.relative_to(ROOT).parts:
            continue                    # tests may pickle their own objects (e.g. error round trips)
        for pattern in (r"\bpickle\.loads?\s*\(", r"\bjoblib\.load\s*\(", r"safe_serialization\s*=\s*False"):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert offenders == []


def test_the_only_unpickler_is_the_signed_chunk_state():
    """serve/chunks.py unpickles the app's own training states (HMAC-checked first, classes
    allow-listed: tests/test_chunks.py); no other source file may define or use an Unpickler."""
    users = sorted(str(p.relative_to(ROOT)) for p in source_files()
                   if "tests" not in p.relative_to(ROOT).parts and p.resolve() != Path(__file__).resolve()
                   and re.search(r"\bUnpickler\b", p.read_text(encoding="utf-8")))
    assert users == ["serve/chunks.py"]
    text = (ROOT / "serve" / "chunks.py").read_text(encoding="utf-8")
    assert "_verified(data)" in text and "def find_class" in text


def test_grep_helper_finds_what_it_should():
    """The grep above would catch a bad call (guards against a regex that never matches)."""
    assert _calls("x = torch.load(f, map_location=dict(a=1))\n", "torch.load") == ["f, map_location=dict(a=1)"]


def test_trust_remote_code_is_never_enabled():
    this = Path(__file__).resolve()
    hits = [str(p.relative_to(ROOT)) for p in source_files() if p.resolve() != this
            and re.search(r"trust_remote_code\s*=\s*(True|1\b)", p.read_text(encoding="utf-8"))]
    assert hits == []
    # and the loader passes it explicitly off
    assert len(re.findall(r"trust_remote_code=False", Path(model_mod.__file__).read_text())) == 2


# ---------------------------------------------------------------------------------------------
# Binding and Hub downloads


def test_the_app_binds_to_loopback_by_default(monkeypatch):
    monkeypatch.delenv("CIT_HOST", raising=False)
    import app
    assert app.launch_kwargs()["server_name"] == "127.0.0.1"
    monkeypatch.setenv("CIT_HOST", "0.0.0.0")
    assert app.launch_kwargs()["server_name"] == "0.0.0.0"      # only when told otherwise


class _Recorder:
    """Stands in for AutoTokenizer/AutoModelForCausalLM: records the call, then fails like a cache miss."""

    def __init__(self):
        self.calls = []

    def from_pretrained(self, source, **kwargs):
        self.calls.append((source, kwargs))
        raise OSError("not in the local cache")


@pytest.fixture
def recorder(monkeypatch):
    import transformers
    rec = _Recorder()
    monkeypatch.setattr(transformers, "AutoTokenizer", rec)
    monkeypatch.setattr(transformers, "AutoModelForCausalLM", rec)
    for name in ("CIT_ALLOW_HUB", "SPACE_ID", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return rec


@pytest.mark.parametrize("env, allow_download, may_download", [
    ({}, True, True),                                   # local machine, the user asked
    ({}, False, False),                                 # the user did not ask
    ({"HF_HUB_OFFLINE": "1"}, True, False),             # offline environment wins
    ({"CIT_ALLOW_HUB": "0"}, True, False),              # the server forbids it
    ({"SPACE_ID": "someone/cit-explorer"}, True, False),   # a Space: off unless configured
    ({"SPACE_ID": "someone/cit-explorer", "CIT_ALLOW_HUB": "1"}, True, True),
])
def test_hub_downloads_need_the_user_and_the_server(recorder, monkeypatch, env, allow_download, may_download):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(model_mod.ModelUnavailable) as info:
        model_mod.load_hf("some-org/some-model", allow_download, dtype=None)
    if may_download:
        source, kwargs = recorder.calls[0]
        assert source == "some-org/some-model"
        assert kwargs["local_files_only"] is False and kwargs["trust_remote_code"] is False
    else:
        # refused before transformers is asked at all (it looks the Hub up in DNS even with local_files_only)
        assert recorder.calls == [] and "downloading is off" in str(info.value)
    # a model already in the local cache loads from it, with the network off, whether or not downloads are on
    monkeypatch.setattr(model_mod, "_in_hub_cache", lambda name: True)
    recorder.calls.clear()
    with pytest.raises(model_mod.ModelUnavailable):
        model_mod.load_hf("some-org/some-model", allow_download, dtype=None)
    assert recorder.calls[0][1]["local_files_only"] is (not may_download)


def test_build_model_with_a_hub_id_offline_is_a_clear_message(monkeypatch):
    """The real loaders, no stand-ins: offline, an unknown Hub id is ModelUnavailable, not a network call."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(model_mod.ModelUnavailable, match="downloading is off"):
        model_mod.build_model(ModelConfig(name="no-such-org/no-such-model-xyz", allow_download=True), seed=0)


def test_a_public_server_never_looks_up_a_model_folder(monkeypatch, tmp_path):
    """`?model=/root` and `?model=/nonexistent` must fail alike on a public server (no folder probing)."""
    from cit_core import model as model_module
    monkeypatch.setenv("CIT_PUBLIC", "1")
    messages = []
    for name in (str(tmp_path), str(tmp_path / "nonexistent"), "../assets", "~"):
        with pytest.raises(model_module.ModelUnavailable) as err:
            model_module.load_hf(name, allow_download=False, dtype=None)
        messages.append(str(err.value).replace(name[:80], "<name>"))
    assert len(set(messages)) == 1 and "never a folder" in messages[0]
