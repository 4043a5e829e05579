"""The import graph (read from the source, tests/support/imports.py) has no cycle and no upward arrow:
the engine (cit_core) imports nothing of serving (serve) or pages, serving imports nothing of pages.
Which modules may use gradio or plotly at all: tests/core/test_boundary.py."""
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

