"""Settings with upper bounds (issue 23): absurd counts are refused before the data is read,
and a model whose memory would not fit the machine is refused, with the figures, before
anything is allocated."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
from test_run_dir import TINY, write_log

from bert4rec.cli import main
from bert4rec.config import preset
from bert4rec.errors import SettingsError
from bert4rec.model import BERT4Rec, BERT4RecConfig
from bert4rec.training.memory import fix_mmap_threshold


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1 and "Traceback" not in err and "unexpected" not in err, err
    return lines[0]


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--layers", "100000", "model.layers must be in [1, 1024], got 100000"),
    ("--hidden", "1000000000", "model.hidden must be in [1, 65536], got 1000000000"),
    ("--heads", "4096", "model.heads must be in [1, 1024], got 4096"),
    ("--max-len", "10000000", "model.max_len must be in [2, 65536], got 10000000"),
    ("--batch-size", "1000000000", "loop.batch_size must be in [1, 1048576], got 1000000000"),
])
def test_absurd_counts_are_refused_before_the_data_is_read(tmp_path, capsys, flag, value,
                                                           message):
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "no-such-log.csv"), "--out", str(out), flag,
                 value]) == 1
    assert message in error_line(capsys)  # not the missing log: the settings come first
    assert not out.exists()


def test_a_model_too_large_for_the_machine_is_refused_with_the_figures(tmp_path, capsys,
                                                                      monkeypatch):
    """256 MiB of memory, and a 100-million-parameter model (1.5 GiB with its gradients and
    Adam's moments): refused before it is built."""
    log = write_log(tmp_path / "log.csv")
    real = os.sysconf
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": (256 << 20) // 4096}
    monkeypatch.setattr(os, "sysconf", lambda name: pages.get(name) or real(name))
    built = []
    monkeypatch.setattr(BERT4Rec, "__init__", lambda *a, **k: built.append(1) or 1 / 0)
    out = tmp_path / "run"
    args = ["train", str(log), "--out", str(out), *TINY, "--hidden", "1024", "--layers", "8",
            "--heads", "4"]
    assert main(args) == 1
    line = error_line(capsys)
    assert "this model cannot train here: its 101,884,970 parameters need 1.5 GiB" in line
    assert "this machine's memory is 0.2 GiB" in line and "Lower model.hidden (1024)" in line
    assert built == [] and not out.exists()


def test_the_parameter_count_is_the_models():
    from bert4rec.training.memory import parameter_count

    for shape in ({"hidden": 16, "layers": 1, "heads": 2, "max_len": 8},
                  {"hidden": 48, "layers": 3, "heads": 4, "max_len": 30, "ff_mult": 2},
                  {"hidden": 16, "layers": 1, "heads": 2, "max_len": 8,
                   "feature_vocab_size": 21, "feature_slots": 4}):
        config = BERT4RecConfig(vocab_size=503, **shape)
        assert parameter_count(config) == sum(p.numel() for p in BERT4Rec(config).parameters())


def test_check_fits_passes_the_presets_on_a_large_catalogue():
    import torch

    from bert4rec.training.memory import check_fits

    for name in ("fast", "large", "seed", "paper"):
        check_fits(preset(name), 27_000 + 2, torch.device("cpu"))  # ml-latest's catalogue
    with pytest.raises(SettingsError, match=r"TiB in all"):
        check_fits(preset("fast").override({"model.hidden": 65_536, "model.layers": 1024}),
                   27_002, torch.device("cpu"))



HEAP_PROBE = """
import sys
import torch
from bert4rec.training.memory import fix_mmap_threshold
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold({})
def rss():
    with open("/proc/self/status") as status:
        return next(int(x.split()[1]) for x in status if x.startswith("VmRSS:")) // 1024
base = rss()
for size in (20, 12, 16, 9, 24):  # MiB, each freed again, as a step's temporaries are
    block = torch.ones(size << 18)
    del block
print(rss() - base)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="the fix is for glibc's allocator")
def test_freed_step_temporaries_go_back_to_the_system_under_glibc():
    """glibc by default raises its mapping threshold to the largest block freed, so the next
    blocks come from the heap and stay resident after they are freed; with the fixed threshold
    each was a mapping of its own, unmapped when freed."""
    kept = {mode: int(subprocess.run([sys.executable, "-c", HEAP_PROBE, mode], check=True,
                                     capture_output=True, text=True).stdout)
            for mode in ("default", "fixed")}
    assert kept["default"] >= 12 and kept["fixed"] <= 4, kept  # MiB still resident


def test_a_threshold_the_user_set_is_left_alone():
    assert not fix_mmap_threshold({"MALLOC_MMAP_THRESHOLD_": "65536"})
