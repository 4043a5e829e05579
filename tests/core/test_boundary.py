"""The UI boundary, checked once: importing the engine (cit_core) and serving (serve) pulls in no UI library
(gradio, plotly, umap), and only pages/ and app.py import gradio or plotly at all. The engine must run
headless and lean (CLI, sweeps, ZeroGPU workers); the layer rules themselves (no cycles, no upward
import) are tests/core/test_import_graph.py."""
import ast
import json
import subprocess
import sys

from support.imports import ROOT, project_modules

UI_LIBRARIES = ("gradio", "plotly", "umap")
UI_PACKAGES = ("pages", "app")          # the only users of gradio / plotly


def _headless_modules() -> list[str]:
    return sorted(m for m in project_modules()
                  if m.split(".")[0] in ("cit_core", "serve") and not m.endswith("__main__"))


def _ui_imports(path) -> set[str]:
    """The UI libraries a source file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        found |= {n.split(".")[0] for n in names} & {"gradio", "plotly"}
    return found


def test_importing_every_engine_and_serving_module_loads_no_ui_library():
    modules = _headless_modules()
    assert "cit_core.trainer" in modules and "serve.registry" in modules and len(modules) > 30
    code = (f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print(json.dumps([m for m in {UI_LIBRARIES!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_only_pages_and_app_import_gradio_or_plotly():
    users = {name: _ui_imports(path) for name, path in project_modules().items()}
    offenders = {name: sorted(libs) for name, libs in users.items()
                 if libs and name.split(".")[0] not in UI_PACKAGES}
    assert offenders == {}
    assert users["app"] and any(libs for name, libs in users.items() if name.startswith("pages."))


def test_the_source_scan_sees_an_ui_import(tmp_path):
    """The static check can fail: an import of gradio inside a function is found."""
    path = tmp_path / "m.py"
    path.write_text("def f():\n    import plotly.graph_objects as go\n    from gradio import Blocks\n")
    assert _ui_imports(path) == {"gradio", "plotly"}
