#!/usr/bin/env bash
# One-step latency of cmpaint (candle, CPU) beside PyTorch eager on the same weights, inputs and thread
# count, in one run. Needs a Python with torch, diffusers and safetensors: PYTHON=/path/to/python.
# Prints a table with the ratio (cmpaint time / PyTorch time; below 1 means cmpaint is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-$(nproc)}
weights=target/bench/cm25m.safetensors

cargo bench --bench onestep -- --noplot
cargo build --release --quiet
# same weights, same noise: check both sides compute the same image
noise=target/bench/noise.safetensors
"$PYTHON" -c "import torch; from safetensors.torch import save_file; g=torch.Generator().manual_seed(0); save_file({'noise': torch.randn(1,1,3,64,64, generator=g)}, '$noise')"
target/release/cmpaint generate --model "$weights" --noise "$noise" --device cpu -o target/bench/rust_out.safetensors 2>/dev/null
"$PYTHON" benches/pytorch_baseline.py "$weights" --threads "$THREADS" \
  --noise "$noise" --rust-output target/bench/rust_out.safetensors > target/bench/pytorch.json

"$PYTHON" - "$THREADS" <<'PY'
import json, sys, platform, os
py = json.load(open("target/bench/pytorch.json"))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"machine: {cpu}, {os.cpu_count()} cores; threads {sys.argv[1]}; PyTorch {py['torch']}")
print(f"max |cmpaint − PyTorch| on the same noise: {py.get('max_abs_diff_vs_cmpaint', float('nan')):.2e}")
print("| model | batch | cmpaint (candle) | PyTorch eager | ratio |")
print("|---|---|---|---|---|")
for b, t_py in py["mean_s"].items():
    est = json.load(open(f"target/criterion/cpu/onestep_25m_64px_b{b}/new/estimates.json"))
    t_rs = est["mean"]["point_estimate"] / 1e9
    print(f"| 25 M, 64², one step | {b} | {t_rs*1000:.0f} ms | {t_py*1000:.0f} ms | {t_rs/t_py:.2f}× |")
PY
