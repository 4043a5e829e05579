"""Offline by default: with downloads off, asking for a Hub model makes no network call at all — not even
the DNS query transformers makes before it honours local_files_only (issue 19). Python's audit hooks see
every getaddrinfo / connect of the process."""
import json
import os
import subprocess
import sys

from support.app import free_port
from support.paths import ROOT

WATCH = r"""
import json, sys
seen = []
def hook(event, args):
    if event in ("socket.getaddrinfo", "socket.connect", "socket.gethostbyname", "socket.gethostbyname_ex"):
        seen.append([event, repr(args)[:160]])
sys.addaudithook(hook)
%s
loopback = ("127.0.0.1", "'localhost'", "::1")
print(json.dumps([s for s in seen if not any(l in s[1] for l in loopback)]))
"""

APP_AND_GPT2 = """
import app
demo = app.build_app()
demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=PORT, quiet=True)
from cit_core.config import ModelConfig
from cit_core.model import ModelUnavailable, build_model
try:
    build_model(ModelConfig(name="gpt2"), 0)
    raise SystemExit("gpt2 loaded although downloads are off")
except ModelUnavailable as err:
    assert "allow-download" in str(err), err
demo.close()
"""


def _connections(code: str, env_extra: dict) -> list:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(GRADIO_ANALYTICS_ENABLED="False", **env_extra)
    done = subprocess.run([sys.executable, "-c", WATCH % code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_app_start_and_a_gpt2_request_touch_no_network(tmp_path):
    """HF_HUB_OFFLINE unset on purpose: the app itself must not reach out, whatever the environment."""
    code = APP_AND_GPT2.replace("PORT", str(free_port()))
    assert _connections(code, {"CIT_RUNS_DIR": str(tmp_path)}) == []


def test_the_watch_sees_a_lookup():
    """The check can fail: a plain DNS lookup in the watched process is reported."""
    seen = _connections("import socket\ntry:\n    socket.getaddrinfo('huggingface.co', 443)\nexcept OSError:\n    pass", {})
    assert seen and seen[0][0] == "socket.getaddrinfo"
