#!/usr/bin/env bash
# Builds the CUDA binary and the CUDA benchmark on a machine with no GPU (../shared/gpu/README.md):
# nvcc and the CUDA 13 libraries from PyPI plus a link-time libcuda stub, via ../shared/gpu/cuda-env.sh.
# Output under target/cuda/ (kept apart from the CPU build): release/cmpaint, bench-onestep, wheels/.
# First build ≈ 15 minutes on 2 cores; PTX for sm_90 (H100/H200) unless CUDA_COMPUTE_CAP says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fetch --quiet
# shellcheck source=/dev/null
. ../shared/gpu/cuda-env.sh
export CARGO_TARGET_DIR=target/cuda
cargo build --release --features cuda
bench=$(cargo bench --features cuda --bench onestep --no-run --message-format=json 2>/dev/null |
  python3 -c "import json,sys; print([m['executable'] for m in map(json.loads, sys.stdin) if m.get('executable') and m['target']['name']=='onestep'][-1])")
cp "$bench" target/cuda/bench-onestep
# the PyTorch baseline needs diffusers, which the GPU machine lacks and cannot download: carry wheels
# (its Python is 3.12 unless GPU_PYTHON says otherwise)
python3 -m pip download --quiet --dest target/cuda/wheels --only-binary=:all: \
  --platform manylinux2014_x86_64 --python-version "${GPU_PYTHON:-3.12}" diffusers safetensors
ls -la target/cuda/release/cmpaint target/cuda/bench-onestep
