"""The command's persistent compilation cache (``jaxcost.cli.common``): where it is, how
it is turned off, and that a command fills it (subprocesses: the cache is decided once
per process, and the library itself never sets it)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaxcost.cli.common import CACHE_DIR_ENV, NO_CACHE_ENV, compilation_cache_dir


def test_cache_dir_default_override_and_off(monkeypatch, tmp_path):
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilation_cache_dir() == tmp_path / "xdg" / "jaxcost" / "xla"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compilation_cache_dir() == tmp_path / "home" / ".cache" / "jaxcost" / "xla"
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert compilation_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv(NO_CACHE_ENV, "0")  # "0" and "" mean on
    assert compilation_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    assert compilation_cache_dir() is None


def _chips(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jaxcost", "chips"], env=env,
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("off", [False, True])
def test_command_fills_the_cache_unless_off(tmp_path, off):
    env = {k: v for k, v in os.environ.items()
           if k not in (NO_CACHE_ENV, "JAX_COMPILATION_CACHE_DIR")}
    cache = tmp_path / "xla"
    env[CACHE_DIR_ENV] = str(cache)
    if off:
        env[NO_CACHE_ENV] = "1"
    proc = _chips(env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no cache warning
    files = sorted(Path(cache).iterdir()) if cache.exists() else []
    assert (len(files) == 0) if off else (len(files) > 0)


def test_cache_folder_that_cannot_be_made_is_skipped_quietly(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    env = {k: v for k, v in os.environ.items()
           if k not in (NO_CACHE_ENV, "JAX_COMPILATION_CACHE_DIR")}
    env[CACHE_DIR_ENV] = str(blocker / "xla")  # a folder inside a file: mkdir fails
    proc = _chips(env)
    assert proc.returncode == 0 and proc.stderr == ""
