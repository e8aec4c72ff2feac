"""Torch threads fitted to the machine as it is (training/threads.py): the count from the free
cores, measured again while a command runs, kept where one was asked for, and the OpenMP wait
policy chosen before torch loads."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch
from planted import planted_corpus, tiny_settings
from tiny_run import make_run_dir

from bert4rec import cli
from bert4rec.inference.recommender import Recommender
from bert4rec.training import threads
from bert4rec.training.loop import fit

STAT = """cpu  900 0 300 5000 20 0 10 0 0 0
cpu0 100 0 50 2000 10 0 5 0 0 0
cpu1 200 7 60 1500 10 0 5 3 0 0
cpu2 999 0 999 100 0 0 0 0 0 0
intr 12345
"""


@pytest.mark.parametrize(("cores", "others", "expected"), [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 9.5, 1), (8, 2.2, 6), (1, 0.0, 1),
])
def test_the_count_is_the_free_cores_rounded_and_at_least_one(cores, others, expected):
    assert threads.fitted_threads(cores, others) == expected


def test_busy_time_counts_only_the_usable_cpus_and_not_idle_or_iowait():
    # cpu0: 100 + 50 + 5 = 155 ticks; cpu1: 200 + 7 + 60 + 5 + 3 (steal) = 275; cpu2 not ours
    assert threads.busy_seconds(STAT, [0, 1], 100.0) == pytest.approx(4.30)


@pytest.mark.parametrize(("cpu_max", "expected"), [
    ("max 100000\n", 4), ("150000 100000\n", 2), ("50000 100000\n", 1), (None, 4)])
def test_a_cgroup_quota_caps_the_usable_cores(tmp_path, cpu_max, expected):
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    assert threads.usable_cores([0, 1, 2, 3], path) == expected


def test_a_count_asked_for_comes_from_the_call_then_the_environment():
    assert threads.asked_threads(3, {"BERT4REC_THREADS": "2"}) == 3
    assert threads.asked_threads(None, {"BERT4REC_THREADS": "2", "OMP_NUM_THREADS": "4"}) == 2
    assert threads.asked_threads(None, {"OMP_NUM_THREADS": "4"}) == 4
    assert threads.asked_threads(None, {}) is None
    with pytest.raises(ValueError, match=r"BERT4REC_THREADS must be .* at least 1, got 'two'"):
        threads.asked_threads(None, {"BERT4REC_THREADS": "two"})
    with pytest.raises(ValueError, match=r"threads must be .* at least 1, got 0"):
        threads.asked_threads(0, {})


class FakeWork:
    """Other work as a test says it is, one reading at a time; `age` seconds since the last."""

    def __init__(self, readings: list[float], age: float = 0.0) -> None:
        self.readings, self.seconds, self.latest = readings, age, None

    def age(self) -> float:
        return self.seconds

    def read(self) -> float:
        self.latest = self.readings.pop(0)
        return self.latest


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_count_follows_the_other_work_measured_every_interval(caplog):
    clock, before = Clock(), torch.get_num_threads()
    governor = threads.Governor(None, 2, FakeWork([1.0, 0.1]), interval=2.0, clock=clock)
    try:
        with caplog.at_level(logging.INFO, logger="bert4rec.training.threads"):
            assert governor.start(0.2) == 2 and torch.get_num_threads() == 2
            clock.now = 1.0
            governor.tick()  # too soon: nothing measured, nothing changed
            assert torch.get_num_threads() == 2
            clock.now = 2.5
            governor.tick()  # a busy neighbour: one thread
            assert torch.get_num_threads() == 1
            clock.now = 5.0
            governor.tick()  # gone: both cores again
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith("threads: 2 (fitted: 2 usable cores, 0.2 busy with other work)")
    assert said[1] == "threads: 1, was 2 (1.0 of 2 cores busy with other work over the last 2 s)"
    assert said[2].startswith("threads: 2, was 1 (0.1 of 2 cores")


def test_a_count_asked_for_is_kept_whatever_the_load(caplog):
    clock, before = Clock(), torch.get_num_threads()
    governor = threads.Governor(2, 2, FakeWork([5.0]), clock=clock)
    try:
        with caplog.at_level(logging.INFO, logger="bert4rec.training.threads"):
            governor.start(7.0)
            clock.now = 100.0
            governor.tick()
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "threads: 2 (asked for"]


@pytest.fixture
def fitted(monkeypatch):
    """Nothing asked for; 2 usable cores, idle at start, then a busy neighbour measured at
    every interval (of no seconds)."""
    monkeypatch.delenv("BERT4REC_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda cpus: 2)
    monkeypatch.setattr(threads, "OtherWork", lambda cpus: FakeWork([0.0] + [1.3] * 10_000))
    monkeypatch.setattr(threads, "_meters", {})
    monkeypatch.setattr(threads, "INTERVAL_S", 0.0)
    monkeypatch.setattr(threads, "FIRST_WINDOW_S", 0.0)


def test_governed_sets_the_count_back_on_the_way_out(fitted):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threads.governed():
            assert torch.get_num_threads() == 2
            threads.tick()
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
        threads.tick()  # outside a governed block: nothing to fit
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_first_count_comes_from_a_short_measured_window_not_the_load_average(monkeypatch):
    """The load average lags a neighbour by a minute and counts this process's own last
    command; the meter waits out the rest of a short first window instead."""
    monkeypatch.setattr(threads, "start_load", lambda: 1.5)  # would say: a core busy
    meter, waited = FakeWork([0.1, 1.2], age=0.1), []
    assert threads.other_work_now(meter, sleep=waited.append) == 0.1
    assert waited == [pytest.approx(threads.FIRST_WINDOW_S - 0.1)]
    meter.seconds = 0.5  # too soon to measure again: the latest reading
    assert threads.other_work_now(meter, sleep=waited.append) == 0.1
    meter.seconds = 30.0  # measured since, long enough: no wait
    assert threads.other_work_now(meter, sleep=waited.append) == 1.2
    assert len(waited) == 1


def test_a_later_command_in_the_process_starts_from_the_measured_work(monkeypatch):
    """A meter kept between commands measures the other work since the last one."""
    monkeypatch.delenv("BERT4REC_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda cpus: 2)
    monkeypatch.setattr(threads, "start_load", lambda: 1.5)  # mostly our own last command
    monkeypatch.setattr(threads, "FIRST_WINDOW_S", 0.0)
    meter = FakeWork([1.2, 0.1], age=0.0)
    monkeypatch.setattr(threads, "_meters", {tuple(threads.usable_cpus()): meter})
    before = torch.get_num_threads()
    try:
        with threads.governed():  # measured: 1.2 cores busy
            assert torch.get_num_threads() == 1
        meter.seconds = 30.0
        with threads.governed():  # measured since: 0.1 cores
            assert torch.get_num_threads() == 2
        meter.seconds = 0.5
        with threads.governed():  # too soon to measure again: the latest reading
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_training_fits_the_count_while_it_runs(fitted, tmp_path, caplog):
    corpus = planted_corpus(n_users=40)
    with caplog.at_level(logging.INFO, logger="bert4rec.training.threads"), threads.governed():
        fit(corpus, tiny_settings(epochs=1), tmp_path / "run", progress=False)
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith("threads: 2 (fitted")
    assert said[1].startswith("threads: 1, was 2 (1.3 of 2 cores busy")


def test_scoring_fits_the_count_while_it_runs(fitted, tmp_path):
    rec = Recommender.load(make_run_dir(tmp_path / "run"))
    flat, offsets = np.arange(1, 13), np.array([0, 4, 8, 12])
    before = torch.get_num_threads()
    try:
        with threads.governed():
            assert torch.get_num_threads() == 2
            rec.top_k(flat, offsets, 3, batch_size=1)
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_command_line_logs_the_count_and_refuses_a_bad_one(tmp_path, caplog, capsys):
    missing = str(tmp_path / "missing.csv")
    with caplog.at_level(logging.INFO, logger="bert4rec.training.threads"):
        assert cli.main(["train", missing, "--out", str(tmp_path / "r"), "--threads", "1"]) == 1
    assert any(r.getMessage().startswith("threads: 1 (asked for") for r in caplog.records)
    assert cli.main(["train", missing, "--out", str(tmp_path / "r"), "--threads", "0"]) == 1
    assert "error: threads must be a whole number of threads, at least 1, got 0" in (
        capsys.readouterr().err)


@pytest.mark.parametrize(("words", "expected"), [
    (["train", "x", "--threads", "3"], 3), (["recommend", "r", "--threads=2"], 2),
    (["train", "x"], None), (["train", "x", "--threads", "two"], None),
    (["train", "--threads"], None),
])
def test_the_count_is_read_from_the_words_before_the_parser(words, expected):
    assert cli.threads_in(words) == expected


@pytest.mark.parametrize(("asked", "others", "expected"), [
    (None, 1.5, None), (1, 1.5, None), (2, 0.0, None), (2, 1.0, "PASSIVE"), (4, 0.0, "PASSIVE"),
])
def test_spinning_is_given_up_only_for_a_count_asked_beyond_the_free_cores(asked, others,
                                                                           expected):
    assert threads.wait_policy(asked, 2, others) == expected


def test_the_wait_policy_is_set_before_torch_loads_unless_the_user_chose_one(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda cpus: 2)
    monkeypatch.setattr(threads, "start_load", lambda: 1.0)
    env: dict[str, str] = {}
    assert threads.prepare_process(2, env) == "PASSIVE" and env == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert threads.prepare_process(None, {}) is None
    for mine in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "1000"}):
        assert threads.prepare_process(2, dict(mine)) is None
    assert threads.prepare_process(None, {"BERT4REC_THREADS": "bad"}) is None  # refused later

    seen = []
    monkeypatch.setattr(cli, "prepare_process", seen.append)
    monkeypatch.setattr(cli, "restart_under_jemalloc", lambda conf: None)
    monkeypatch.setattr(sys, "argv", ["bert4rec", "recommend", "no-run", "--threads", "2"])
    assert cli.main() == 1  # no such run; the policy was chosen first, from the words
    assert seen == [2]
