#!/usr/bin/env bash
# Builds the CUDA binary, and what the GPU run carries, on a machine with no GPU (../shared/gpu/README.md):
# nvcc and the CUDA 13 libraries from PyPI plus a link-time libcuda stub, via ../shared/gpu/cuda-env.sh.
# - target/cuda/release/cmpaint: `cargo build --release --features cuda` (first build ≈ 25 min on 2 cores)
# - target/gpu-carry/: the CUDA bench binary (stripped, xz) and wheels of diffusers and the packages it
#   needs beyond PyTorch's (no deps: the GPU machine has PyTorch and no network), ≈ 15 MB in all, within
#   the device tool's 64 MiB carry limit. Then run scripts/gpu-bench.sh there.
# PTX for sm_90 (H100/H200) unless CUDA_COMPUTE_CAP says otherwise; wheels for Python 3.12 unless
# GPU_PYTHON says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fetch --quiet
# shellcheck source=/dev/null
. ../shared/gpu/cuda-env.sh
export CARGO_TARGET_DIR=target/cuda
cargo build --release --features cuda
bench=$(cargo bench --features cuda --bench onestep --no-run --message-format=json 2>/dev/null |
  python3 -c "import json,sys; print([m['executable'] for m in map(json.loads, sys.stdin) if m.get('executable') and m['target']['name']=='onestep'][-1])")
rm -rf target/gpu-carry && mkdir -p target/gpu-carry
strip -o target/gpu-carry/bench-onestep "$bench"
xz -9 -T0 target/gpu-carry/bench-onestep
python3 -m pip download --quiet --no-deps --dest target/gpu-carry/wheels --only-binary=:all: \
  --platform manylinux2014_x86_64 --python-version "${GPU_PYTHON:-3.12}" diffusers huggingface_hub safetensors regex
ls -la target/cuda/release/cmpaint && du -sh target/gpu-carry
