#!/usr/bin/env bash
# The GPU measurements in one run of under 10 minutes on one H200, as JSON under one folder:
#   1. training speed of the `paper`, `seed` and `fast` presets (train_speed.py, 50 steps each);
#   2. time to the published 0.1537 test NDCG@10 on ML-1M (time_to_quality.py, 240 s budget);
#   3. top 10 for every user of that run on the GPU, float32 and bf16, with the bf16 top-10
#      agreement (scoring.py), and the same on the CPU for comparison.
#
#   benchmarks/gpu.sh [--device cuda] [--data-dir DIR] [--out DIR] [--budget 240] [--tiny]
#
# From the repository root, with the package importable (PYTHONPATH=src or installed) and
# ML-1M's ml-1m.txt under DIR/ml-1m/ (default $BERT4REC_DATA_DIR). OUT defaults to
# benchmarks/out/gpu-<date>; it gets train_speed.json, time_to_quality.json (and .png, and its
# run directory), scoring_<device>.json, scoring_cpu.json and machine.json.
# `--tiny --device cpu` is the dry run the test suite makes: tiny shapes, seconds of work.
set -euo pipefail

device=cuda
data_dir=${BERT4REC_DATA_DIR:-}
out=""
budget=240
tiny=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --tiny) tiny=1; shift ;;
    *) echo "gpu.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ -z $data_dir || ! -f $data_dir/ml-1m/ml-1m.txt ]]; then
  echo "gpu.sh: ml-1m/ml-1m.txt not found under '${data_dir}': pass --data-dir or set BERT4REC_DATA_DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
out=${out:-$here/out/gpu-$(date +%Y-%m-%d)}
mkdir -p "$out"
python=${PYTHON:-python}

if [[ $tiny == 1 ]]; then
  speed=(--steps 1 --warmup 0 --matmul-size 128
         --set model.max_len=16 model.hidden=16 loop.batch_size=8)
  quality=(--budget 5 --epochs 1 --set model.max_len=16 model.hidden=16 loop.batch_size=64
           loop.valid_users=50)
  scoring=(--users 64 --repeats 1)
else
  speed=(--steps 50)
  quality=(--budget "$budget" --epochs 80
           --set model.dropout=0.1 masking.windows_per_sequence=2 masking.window_shift=100)
  scoring=(--repeats 3)
fi

"$python" - "$out/machine.json" "$device" <<'PY'
import json, platform, subprocess, sys
import torch
device = sys.argv[2]
facts = {"platform": platform.platform(), "processor": platform.processor(),
         "python": platform.python_version(), "torch": torch.__version__, "device": device,
         "cuda": torch.version.cuda, "cpu_threads": torch.get_num_threads()}
if device.startswith("cuda"):
    facts["gpu"] = torch.cuda.get_device_name(device)
    facts["nvidia_smi"] = subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout
with open(sys.argv[1], "w") as handle:
    json.dump(facts, handle, indent=2)
PY

started=$(date +%s)
"$python" "$here/train_speed.py" --device "$device" --data-dir "$data_dir" --out "$out" \
  "${speed[@]}"
"$python" "$here/time_to_quality.py" --device "$device" --data-dir "$data_dir" --out "$out" \
  "${quality[@]}"
run="$out/time_to_quality-run"
"$python" "$here/scoring.py" "$run" --device "$device" --out "$out" \
  --variants model,bf16,window64 "${scoring[@]}"
mv "$out/scoring.json" "$out/scoring_${device%%:*}.json"
if [[ ${device%%:*} != cpu ]]; then
  "$python" "$here/scoring.py" "$run" --device cpu --out "$out" --variants model,exact \
    "${scoring[@]}"
  mv "$out/scoring.json" "$out/scoring_cpu.json"
fi
echo "gpu.sh: done in $(( $(date +%s) - started )) s; results in $out"
