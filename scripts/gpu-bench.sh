#!/usr/bin/env bash
# Runs on the GPU machine (device tool; no Rust, no network there): the CUDA benchmark built by
# scripts/build-cuda.sh beside PyTorch eager on the same card and weights, in one call. Carry
# target/cuda/ (binary, bench, wheels) and target/bench/ (the random-weight files).
# Writes $OUT/gpu-bench.txt with both sides' times (best of the runs) and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib | paste -sd:)
python3 -c "import diffusers" 2>/dev/null ||
  python3 -m pip install --quiet --no-index --find-links target/cuda/wheels diffusers safetensors
OUT=${OUT:-target/gpu-bench}
mkdir -p "$OUT"
target/cuda/release/cmpaint info --model assets/emoji32.safetensors --device cuda | tee "$OUT/gpu-bench.txt"
CMPAINT_BENCH_DEVICE=cuda target/cuda/bench-onestep --bench --noplot '^(emoji32|cm25m)/' 2>&1 | grep -E "time:|^[a-z0-9]+/" | tee -a "$OUT/gpu-bench.txt"
for key in emoji32 cm25m; do
  weights=$([ $key = emoji32 ] && echo assets/emoji32.safetensors || echo target/bench/$key.safetensors)
  python3 benches/pytorch_baseline.py "$weights" --device cuda | tee -a "$OUT/gpu-bench.txt"
done
