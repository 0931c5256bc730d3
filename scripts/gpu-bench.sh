#!/usr/bin/env bash
# Runs on the GPU machine (device tool; no Rust, no network there), from the repository root, carrying
# target/gpu-carry (made by scripts/build-cuda.sh):
#   run(command="bash scripts/gpu-bench.sh", carry=["target/gpu-carry"], timeout_s=540)
# The CUDA bench (every model at batch 1 and 8, one and two steps; the 25 M stand-in's random weights are
# written there first) and then PyTorch eager on the same card and weight files. Prints both sides'
# times (best of runs) and keeps them in $OUT/gpu-bench.txt for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib | paste -sd:)
OUT=${OUT:-target/gpu-bench}
mkdir -p "$OUT"
carry=target/gpu-carry
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('$carry/bench-onestep.xz'), open('$carry/bench-onestep', 'wb'))"
chmod +x $carry/bench-onestep
python3 -c "import diffusers" 2>/dev/null ||
  python3 -m pip install --quiet --no-index --no-deps --find-links $carry/wheels diffusers huggingface_hub safetensors regex
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu-bench.txt"
CMPAINT_BENCH_DEVICE=cuda $carry/bench-onestep --bench --noplot '^(emoji32|cm25m)/' 2>&1 |
  grep -E "time:|parameters" | tee -a "$OUT/gpu-bench.txt"
for weights in assets/emoji32.safetensors target/bench/cm25m.safetensors; do
  python3 benches/pytorch_baseline.py "$weights" --device cuda | tee -a "$OUT/gpu-bench.txt"
done
