"""README.md and docs/*.md name only files that exist, and docs/deployment.md's settings table is the one in
cit_core/settings.py's docstring (every row of it, every variable in cit_core.settings.NAMES)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from cit_core.settings import NAMES
from support.paths import ROOT

TOP = ("tests", "cit_core", "serve", "pages", "bench", "assets", "docs", ".ci")
# a repository path: one of TOP, a slash, then path characters (placeholders <key> and globs * allowed)
PATH = re.compile(r"(?<![\w./$-])((?:%s)/[\w./<>*-]*)" % "|".join(re.escape(t) for t in TOP))
LINK = re.compile(r"\]\(([^)\s]+)\)")          # a markdown link or image target


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def named_paths(text: str) -> set[str]:
    """Repository paths named in a markdown text (backticked, in code blocks or in prose)."""
    found = set()
    for match in PATH.finditer(text):
        path = match.group(1).rstrip(".")
        if path.rstrip("/") not in TOP:
            found.add(path)
    return found


def exists(path: str, base: Path = ROOT) -> bool:
    """A path exists; `<placeholder>` and `*` parts must match at least one file or folder."""
    pattern = re.sub(r"<[^>]*>", "*", path.rstrip("/"))
    if "*" in pattern:
        return any(base.glob(pattern))
    return (base / pattern).exists()


def broken_links(doc: Path, text: str) -> list[str]:
    """Relative link targets (resolved from the document's folder) that do not exist."""
    out = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:|#", target):             # http:, mailto:, an anchor in the same page
            continue
        target = target.split("#")[0]
        if not (doc.parent / target).exists():
            out.append(target)
    return out


@pytest.mark.parametrize("doc", documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_named_path_exists(doc):
    text = doc.read_text(encoding="utf-8")
    missing = sorted(p for p in named_paths(text) if not exists(p))
    assert missing == [], f"{doc.name} names paths that do not exist: {missing}"
    assert broken_links(doc, text) == [], f"{doc.name} links to files that do not exist"


def test_the_docs_exist_and_the_readme_points_to_them():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("results", "deployment", "limits", "testing", "adding-a-method"):
        assert (ROOT / "docs" / f"{name}.md").is_file(), name
        assert f"docs/{name}.md" in readme, name


def test_the_scan_catches_a_wrong_path(tmp_path):
    """The checks can fail: a moved test, a moved module and a dead link are all reported."""
    text = ("Run `tests/test_gallery.py`; see cit_core/registry.py and `assets/cards/<key>.md`, "
            "`serve/registry.py`. [gone](nowhere.md) [here](../README.md)")
    assert named_paths(text) == {"tests/test_gallery.py", "cit_core/registry.py", "assets/cards/<key>.md",
                                 "serve/registry.py"}
    assert [p for p in sorted(named_paths(text)) if not exists(p)] == ["cit_core/registry.py",
                                                                       "tests/test_gallery.py"]
    doc = ROOT / "docs" / "x.md"
    assert broken_links(doc, text) == ["nowhere.md"]


# -- the settings table ---------------------------------------------------------------------------------
def table_rows(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.startswith("| `")]


def test_the_settings_table_in_the_docs_is_the_settings_modules_and_names_every_variable():
    source = ast.get_docstring(ast.parse((ROOT / "cit_core" / "settings.py").read_text(encoding="utf-8")))
    module_rows = table_rows(source)
    assert len(module_rows) >= 10
    docs = table_rows((ROOT / "docs" / "deployment.md").read_text(encoding="utf-8"))
    assert [r for r in module_rows if r not in docs] == [], "docs/deployment.md: copy the table from settings.py"
    table = "\n".join(docs)
    unlisted = [name for name in NAMES if not re.search(rf"\b{name}\b", table)]
    assert unlisted == []
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "cit_core/settings.py" in readme and "docs/deployment.md" in readme
