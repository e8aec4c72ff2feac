"""Long commands restart once under jemalloc when it is installed, and only then."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

from bert4rec import cli
from bert4rec.cli import allocator

LIB = "libjemalloc.so.2"


@pytest.mark.parametrize(("env", "platform", "library", "expected"), [
    ({}, "linux", LIB, LIB),
    ({"LD_PRELOAD": "libfoo.so"}, "linux", LIB, f"{LIB}:libfoo.so"),
    ({}, "linux", None, None),  # not installed
    ({}, "darwin", LIB, None),
    ({"BERT4REC_MALLOC": "system"}, "linux", LIB, None),  # the user's opt-out
    ({"BERT4REC_MALLOC": "jemalloc"}, "linux", LIB, None),  # set by the restart: no loop
    ({"LD_PRELOAD": "/usr/lib/libtcmalloc.so.4"}, "linux", LIB, None),  # the user's choice
])
def test_preload_decision(env, platform, library, expected):
    assert allocator.jemalloc_preload(env, platform, library) == expected


class Restarted(Exception):
    pass


def test_restart_execs_the_same_command_with_the_preload(monkeypatch):
    calls = []

    def fake_execve(path, args, env):
        calls.append((path, args, env))
        raise Restarted

    monkeypatch.setattr(allocator.ctypes.util, "find_library", lambda name: LIB)
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.sys, "orig_argv", ["python3", "-m", "bert4rec", "train", "x"])
    monkeypatch.setattr(allocator.os, "execve", fake_execve)
    monkeypatch.delenv("BERT4REC_MALLOC", raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.delenv("MALLOC_CONF", raising=False)
    with pytest.raises(Restarted):
        allocator.restart_under_jemalloc("dirty_decay_ms:-1")
    path, args, env = calls[0]
    assert path == sys.executable
    assert args == [sys.executable, "-m", "bert4rec", "train", "x"]
    assert env["LD_PRELOAD"] == LIB and env["BERT4REC_MALLOC"] == "jemalloc"
    assert env["MALLOC_CONF"] == "dirty_decay_ms:-1"


def test_only_long_commands_run_as_a_program_restart(monkeypatch, capsys):
    def fake_restart(conf):
        raise Restarted(conf)

    monkeypatch.setattr(cli, "restart_under_jemalloc", fake_restart)
    monkeypatch.setattr(sys, "argv", ["bert4rec", "train", "ratings.csv", "--out", "run"])
    with pytest.raises(Restarted, match="dirty_decay_ms:-1"):
        cli.main()
    # Called as a library (tests, notebooks) the process is never replaced.
    assert cli.main(["train", "missing.csv", "--out", "nowhere"]) == 1
    # Short commands never restart.
    monkeypatch.setattr(sys, "argv", ["bert4rec", "data", "list"])
    assert cli.main() == 0


NO_JEMALLOC = ctypes.util.find_library("jemalloc") is None or not sys.platform.startswith("linux")


@pytest.mark.skipif(NO_JEMALLOC, reason="jemalloc is not installed (apt install libjemalloc2)")
def test_a_real_restart_runs_under_jemalloc():
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "BERT4REC_MALLOC")}
    code = ("from bert4rec.cli.allocator import restart_under_jemalloc; restart_under_jemalloc(); "
            "print(open('/proc/self/maps').read().count('jemalloc') > 0)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "True"
