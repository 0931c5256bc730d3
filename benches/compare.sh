#!/usr/bin/env bash
# cmpaint (candle + the engine's CPU kernels) beside PyTorch eager on the same weights, inputs and thread
# count, in one run: every model of benches/onestep.rs at batch 1 and 8, one step and two steps, and the
# single operations. Prints the Markdown tables BENCHMARKS.md records (ratio = cmpaint time / PyTorch
# time; below 1 means cmpaint is faster).
#
# On a CPU with AVX512-BF16 it adds cmpaint's `--precision bf16` beside PyTorch's CPU bf16 autocast (one
# step), with each side's error against its own f32 image.
#
# Needs a Python with torch, diffusers and safetensors: PYTHON=/path/to/python.
# Anything else busy on the machine skews the two sides differently (cmpaint's threads sleep between
# operations, PyTorch's spin): stop background jobs first, or run them as SCHED_IDLE (chrt --idle 0).
# CMPAINT_BENCH_IMAGENET=1 adds ImageNet-64's 296 M-parameter configuration (random weights, 1.2 GB file,
# about 15 minutes more on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-$(nproc)}
export RAYON_NUM_THREADS=$THREADS
out=target/bench
mkdir -p $out

cargo build --release --quiet
# the machine's limits: FMA peak per vector width, best gemm throughput
cargo bench --bench peak > $out/peak.txt

# unet_config FILE EXPR: EXPR evaluated on c, the UNet config stored in a project safetensors file
unet_config() {
  "$PYTHON" -c "import json,sys; from safetensors import safe_open; c=json.loads(safe_open(sys.argv[1],'pt').metadata()['cmpaint.config'])['unet']; print($2)" "$1"
}

models="emoji32:assets/emoji32.safetensors cm25m:$out/cm25m.safetensors"
[ -n "${CMPAINT_BENCH_IMAGENET:-}" ] && models="$models imagenet64:$out/imagenet64.safetensors"
for m in $models; do
  key=${m%%:*} weights=${m#*:}
  # same weights, same noise: check both sides compute the same image
  size=$(unet_config "$weights" "c['image_size']")
  "$PYTHON" -c "import torch; from safetensors.torch import save_file; g=torch.Generator().manual_seed(0); save_file({'noise': torch.randn(1,1,3,$size,$size, generator=g)}, '$out/noise_$key.safetensors')"
  class=$(unet_config "$weights" "'--class=0' if c.get('num_classes') else ''")
  target/release/cmpaint generate --model "$weights" --noise $out/noise_$key.safetensors $class --device cpu \
    -o $out/rust_out_$key.safetensors 2>/dev/null
  bf16=()
  if grep -q avx512_bf16 /proc/cpuinfo; then
    target/release/cmpaint generate --model "$weights" --noise $out/noise_$key.safetensors $class --device cpu \
      --precision bf16 -o $out/rust_out_bf16_$key.safetensors 2>/dev/null
    bf16=(--bf16 --rust-output-bf16 $out/rust_out_bf16_$key.safetensors)
  fi
  # each side right after the other, so both see the same machine
  cargo bench --bench onestep -- --noplot "^$key/"
  "$PYTHON" benches/pytorch_baseline.py "$weights" --threads "$THREADS" \
    --noise $out/noise_$key.safetensors --rust-output $out/rust_out_$key.safetensors "${bf16[@]}" \
    > $out/pytorch_$key.json
done
cargo bench --bench onestep -- --noplot "^ops/"
"$PYTHON" benches/pytorch_baseline.py --ops --threads "$THREADS" > $out/pytorch_ops.json

# peak resident memory: load + one 1-step image, cmpaint's CLI and PyTorch, each in a fresh process
rss() { "$PYTHON" benches/peak_rss.py "$@"; }
: > $out/rss.txt
for m in $models; do
  key=${m%%:*} weights=${m#*:}
  class=$(unet_config "$weights" "'--class=0' if c.get('num_classes') else ''")
  target/release/cmpaint convert --model "$weights" --f16 -o $out/${key}_f16.safetensors >/dev/null 2>&1
  echo "$key $(stat -c %s "$weights") $(rss target/release/cmpaint generate --model "$weights" $class --device cpu -o $out/rss.png) \
$(rss target/release/cmpaint generate --model $out/${key}_f16.safetensors $class --device cpu -o $out/rss.png) \
$(rss "$PYTHON" benches/pytorch_baseline.py "$weights" --threads "$THREADS" --batches 1)" >> $out/rss.txt
done

"$PYTHON" - "$THREADS" $models <<'PY'
import json, sys, platform, os
threads, models = sys.argv[1], [m.split(":")[0] for m in sys.argv[2:]]
weights = dict(m.split(":", 1) for m in sys.argv[2:])
def rust(group, bench):
    """Best time per iteration over criterion's samples (PyTorch's side reports its best run too)."""
    s = json.load(open(f"target/criterion/{group}/{bench}/new/sample.json"))
    return min(t / n for t, n in zip(s["times"], s["iters"])) / 1e9
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
ops = json.load(open("target/bench/pytorch_ops.json"))
print(f"machine: {cpu}, {os.cpu_count()} cores; threads {threads}; PyTorch {ops['torch']}\n")
print("| model | params | batch | steps | cmpaint | PyTorch eager | ratio | max abs diff (1 step) |")
print("|---|---|---|---|---|---|---|---|")
for key in models:
    py = json.load(open(f"target/bench/pytorch_{key}.json"))
    for bench, t_py in py["best_s"].items():
        if bench.endswith("_bf16"):
            continue
        steps, batch = bench.split("_b")
        t_rs = rust(key, bench)
        print(f"| {key} | {py['parameters']/1e6:.1f} M | {batch} | {steps[0]} | {t_rs*1000:.1f} ms | "
              f"{t_py*1000:.1f} ms | {t_rs/t_py:.2f}× | {py.get('max_abs_diff_vs_cmpaint', float('nan')):.1e} |")
bf16 = [k for k in models if "bf16_error_cmpaint" in json.load(open(f"target/bench/pytorch_{k}.json"))]
if bf16:
    print("\nbf16, one step: cmpaint `--precision bf16` beside PyTorch's CPU bf16 autocast; errors are each side's")
    print("bf16 image against its own f32 image (max |Δ| in [−1, 1], PSNR)\n")
    print("| model | batch | cmpaint f32 | cmpaint bf16 | PyTorch f32 | PyTorch bf16 | bf16 ratio | cmpaint bf16 error | PyTorch bf16 error |")
    print("|---|---|---|---|---|---|---|---|---|")
for key in bf16:
    py = json.load(open(f"target/bench/pytorch_{key}.json"))
    ours, theirs = py["bf16_error_cmpaint"], py["bf16_error_pytorch"]
    for batch in (1, 8):
        f32, low = rust(key, f"1step_b{batch}"), rust(key, f"1step_b{batch}_bf16")
        p32, plow = py["best_s"][f"1step_b{batch}"], py["best_s"][f"1step_b{batch}_bf16"]
        print(f"| {key} | {batch} | {f32*1000:.1f} ms | {low*1000:.1f} ms | {p32*1000:.1f} ms | {plow*1000:.1f} ms | "
              f"{low/plow:.2f}× | {ours['max_abs']:.3f} / {ours['psnr_db']:.1f} dB | {theirs['max_abs']:.3f} / {theirs['psnr_db']:.1f} dB |")
print("\n| operation (128 ch, 64²) | batch | cmpaint kernel | candle built-in | PyTorch | cmpaint / PyTorch |")
print("|---|---|---|---|---|---|")
for bench, t_py in ops["best_s"].items():
    op, batch = bench.split("_b")
    ours, theirs = rust("ops", bench), rust("ops", bench + "_candle")
    print(f"| {op} | {batch} | {ours*1000:.2f} ms | {theirs*1000:.2f} ms | {t_py*1000:.2f} ms | {ours/t_py:.2f}× |")
# fraction of the machine's peak: the UNet's FLOPs per image (PyTorch's flop counter on the same
# network) over the best batch-8 one-step time
peak = dict(l.split(": ") for l in open("target/bench/peak.txt") if "gflops" in l)
fma = max(float(v) for k, v in peak.items() if k.startswith("fma_peak"))
best_gemm = max(float(v) for k, v in peak.items() if k.startswith("gemm_"))
print(f"\nFMA peak {fma:.0f} GFLOP/s ({', '.join(k for k in peak if k.startswith('fma'))}), best gemm {best_gemm:.0f} GFLOP/s, {threads} threads\n")
print("| model | GFLOP / image | cmpaint GFLOP/s (b8) | of FMA peak | of best gemm | PyTorch GFLOP/s (b8) |")
print("|---|---|---|---|---|---|")
sys.path.insert(0, "training")
import torch
from torch.utils.flop_counter import FlopCounterMode
from safetensors import safe_open
from diffusers import UNet2DModel
from cm_model import diffusers_config
for key in models:
    cfg = json.loads(safe_open(weights[key], "pt").metadata()["cmpaint.config"])
    with torch.device("meta"):
        unet = UNet2DModel(**diffusers_config(cfg))
    size, classes = cfg["unet"]["image_size"], cfg["unet"].get("num_classes")
    with FlopCounterMode(display=False) as fc, torch.device("meta"):
        unet(torch.zeros(1, 3, size, size), torch.zeros(1), class_labels=torch.zeros(1, dtype=torch.long) if classes else None)
    gflop = fc.get_total_flops() / 1e9
    py = json.load(open(f"target/bench/pytorch_{key}.json"))["best_s"]["1step_b8"]
    ours = 8 * gflop / rust(key, "1step_b8")
    print(f"| {key} | {gflop:.2f} | {ours:.0f} | {ours / fma:.0%} | {ours / best_gemm:.0%} | {8 * gflop / py:.0f} |")
print("\n| model | f32 weights | peak RSS, cmpaint (f32 file) | cmpaint (f16 file) | PyTorch (f32 file) |")
print("|---|---|---|---|---|")
for line in open("target/bench/rss.txt"):
    key, size, f32, f16, py = line.split()
    print(f"| {key} | {int(size)/1e6:.0f} MB | {f32} MB | {f16} MB | {py} MB |")
PY
