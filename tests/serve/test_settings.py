"""One settings object reads every environment variable (cit_core/settings.py); the serving code honours it."""
import pytest

from cit_core.settings import from_env, settings


def test_defaults_and_one_parsing_style():
    s = from_env({})
    assert (s.host, s.port, s.max_runs, s.idle_ttl_s, s.public, s.allow_hub) == ("127.0.0.1", 7860, 32, 1800.0, False, True)
    s = from_env({"CIT_MAX_RUNS": "3", "CIT_IDLE_TTL_S": "60.5", "CIT_TORCH_THREADS": "2"})
    assert (s.max_runs, s.idle_ttl_s, s.torch_threads, s.problems) == (3, 60.5, 2, ())
    s = from_env({"CIT_MAX_RUNS": "many", "CIT_TORCH_THREADS": "-1"})
    assert (s.max_runs, s.torch_threads) == (32, None) and len(s.problems) == 2     # ignored, and said so


def test_a_space_is_public_and_refuses_hub_downloads_unless_the_operator_allows():
    s = from_env({"SPACE_ID": "someone/cit"})
    assert s.public and not s.allow_hub
    s = from_env({"SPACE_ID": "someone/cit", "CIT_ALLOW_HUB": "1", "CIT_PUBLIC": "0"})
    assert not s.public and s.allow_hub


def test_a_public_server_caps_one_runs_work_and_a_sessions_live_runs():
    local, public = from_env({}), from_env({"SPACE_ID": "someone/cit"})
    assert (local.max_run_steps, local.runs_per_session) == (1_000_000, None)
    assert (public.max_run_steps, public.runs_per_session) == (2000, 1)
    s = from_env({"CIT_PUBLIC": "1", "CIT_MAX_RUN_STEPS": "500", "CIT_RUNS_PER_SESSION": "0"})
    assert (s.max_run_steps, s.runs_per_session, s.problems) == (500, None, ())
    s = from_env({"CIT_RUNS_PER_SESSION": "two", "CIT_MAX_RUN_STEPS": "0"})
    assert (s.runs_per_session, s.max_run_steps) == (None, 1_000_000) and len(s.problems) == 2


def test_gradio_server_variables_bind_the_app_and_the_projects_own_win():
    """Spaces set GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; app.py used to pass 127.0.0.1:7860 over them."""
    s = from_env({"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861"})
    assert (s.host, s.port) == ("0.0.0.0", 7861)
    s = from_env({"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861", "CIT_HOST": "127.0.0.2",
                  "CIT_PORT": "9000"})
    assert (s.host, s.port) == ("127.0.0.2", 9000)


def test_settings_follow_the_environment(monkeypatch):
    monkeypatch.setenv("CIT_MAX_RUNS", "5")
    assert settings().max_runs == 5
    monkeypatch.setenv("CIT_MAX_RUNS", "6")
    assert settings().max_runs == 6


def test_a_bad_memory_budget_refuses_to_start():
    with pytest.raises(ValueError, match="CIT_MEM_BUDGET_MB"):
        from_env({"CIT_MEM_BUDGET_MB": "lots"})


@pytest.mark.parametrize("key", ["", "   ", "short"])
def test_a_short_or_empty_chunk_key_is_refused(monkeypatch, key):
    from serve import chunks
    monkeypatch.setenv("CIT_CHUNK_KEY", key)
    with pytest.raises(chunks.ChunkKeyError):          # checked before any state is trusted
        chunks.unpack(chunks.MAGIC + bytes(64))


def test_importing_the_chunk_module_writes_no_environment():
    import subprocess
    import sys
    code = ("import os; os.environ.pop('CIT_CHUNK_KEY', None); import serve.chunks; "
            "print('CIT_CHUNK_KEY' in os.environ)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
