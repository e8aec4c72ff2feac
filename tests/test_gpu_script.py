"""benchmarks/gpu.sh, the GPU measurements in one script, runs end to end: its dry run on the
CPU (tiny shapes, a made-up ml-1m.txt) writes every JSON file the GPU run would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def fake_ml1m(folder: Path, users: int = 60, items: int = 40) -> Path:
    """An ml-1m.txt of `users` users with 12 items each ("user item" lines, in time order)."""
    lines = [f"{user} {1 + (user * 7 + step * 3) % items}"
             for user in range(1, users + 1) for step in range(12)]
    (folder / "ml-1m").mkdir(parents=True)
    (folder / "ml-1m" / "ml-1m.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="gpu.sh is a bash script")
def test_the_gpu_script_dry_run_writes_every_result(tmp_path):
    data, out = fake_ml1m(tmp_path / "data"), tmp_path / "out"
    src = str(ROOT / "src")
    env = {**os.environ, "PYTHON": sys.executable, "BERT4REC_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--device", "cpu", "--tiny",
         "--data-dir", str(data), "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    speed = json.loads((out / "train_speed.json").read_text())
    assert [row["preset"] for row in speed["results"]] == ["paper", "seed", "fast"]
    assert all(row["sequences_per_s"] > 0 for row in speed["results"])
    quality = json.loads((out / "time_to_quality.json").read_text())
    assert quality["epochs"] and "seconds_to_published_ndcg10" in quality
    scoring = json.loads((out / "scoring_cpu.json").read_text())
    assert [row["variant"] for row in scoring["rows"]] == ["model", "bf16", "window64"]
    assert scoring["rows"][0]["top10_agreement"] == 1.0 and scoring["users"] == 60
    assert json.loads((out / "machine.json").read_text())["device"] == "cpu"


@pytest.mark.skipif(shutil.which("bash") is None, reason="gpu.sh is a bash script")
def test_the_gpu_script_names_missing_data(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--data-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "ml-1m/ml-1m.txt not found" in done.stderr
