"""The import graph (read from the source, tests/support/imports.py) has no cycle and no upward arrow:
the engine (cit_core) imports nothing of serving (serve) or pages, serving imports nothing of pages."""
from support.imports import cycles, import_graph, upward_edges


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_no_upward_import():
    assert upward_edges(import_graph()) == []


def test_the_graph_sees_cycles_and_upward_arrows():
    """The checks can fail: a made-up graph with a cycle and an engine -> pages import is caught."""
    graph = {"cit_core.a": {"cit_core.b"}, "cit_core.b": {"cit_core.a", "pages.x"}, "pages.x": set()}
    assert cycles(graph) == [["cit_core.a", "cit_core.b"]]
    assert upward_edges(graph) == [("cit_core.b", "pages.x")]


def test_serving_imports_no_gradio():
    graph = import_graph()
    assert any(name.startswith("serve.") for name in graph)
    from support.imports import ROOT
    offenders = [p.name for p in (ROOT / "serve").glob("*.py")
                 if "import gradio" in p.read_text() or "from gradio" in p.read_text()]
    assert offenders == []
