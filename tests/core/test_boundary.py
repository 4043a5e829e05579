"""cit_core never imports gradio or plotly (the engine must run headless and lean)."""
import subprocess
import sys


def test_engine_imports_no_ui():
    code = ("import sys, cit_core, cit_core.trainer, cit_core.cli, cit_core.runs, serve.registry, "
            "cit_core.lessons.files, cit_core.methods; "
            "bad = [m for m in ('gradio', 'plotly', 'umap') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
