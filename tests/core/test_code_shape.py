"""The shape issue 17 asked for, kept: no production function over 60 lines, and the Train page (widgets
and wiring only; its session logic is serve/session.py) under 350 lines."""
import ast

from support.paths import ROOT

MAX_FUNCTION_LINES = 60


def long_functions(source: str, path: str) -> list[str]:
    tree = ast.parse(source)
    return [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


def test_no_production_function_is_over_60_lines():
    files = [ROOT / "app.py"] + [p for pkg in ("cit_core", "serve", "pages") for p in (ROOT / pkg).rglob("*.py")]
    found = [hit for p in files for hit in long_functions(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
    assert found == []


def test_the_check_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}\n", "x.py") == ["x.py:1 f (61 lines)"]


def test_the_train_page_stays_small():
    lines = (ROOT / "pages" / "train.py").read_text(encoding="utf-8").count("\n")
    assert lines < 350, f"pages/train.py has {lines} lines: session logic belongs in serve/session.py"
