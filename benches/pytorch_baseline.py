#!/usr/bin/env python3
"""PyTorch eager baseline for benches/onestep.rs: the same weights (the project's safetensors), the same
sampling (one step, and two steps over the model's ts), the same thread count. Prints JSON with the best
time per "{1step,2step}_b{batch}", and, given --noise/--rust-output, the largest difference to cmpaint's
one-step output on the same noise. `--bf16` adds "1step_b{batch}_bf16": the same step under PyTorch's CPU
bf16 autocast, with its error against PyTorch's own f32 output (and, given --rust-output-bf16,
cmpaint's `--precision bf16` error against cmpaint's f32 output). `--ops` times the bench's single
operations instead.

    python3 benches/pytorch_baseline.py target/bench/cm25m.safetensors --threads 2
    python3 benches/pytorch_baseline.py --ops --threads 2
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "training"))

TWO_STEP_TS = [0, 22, 39]  # as benches/onestep.rs, where a model has no ts of its own


def denoise(unet, x, sigma, s, classes):
    """clamp(f(x, σ)) with the consistency-model boundary scalings (cm_reference §a)."""
    sd, smin = s["sigma_data"], s["sigma_min"]
    c_in = 1 / math.sqrt(sigma**2 + sd**2)
    c_skip = sd**2 / ((sigma - smin) ** 2 + sd**2)
    c_out = (sigma - smin) * sd / math.sqrt(sigma**2 + sd**2)
    t = torch.full((x.shape[0],), 250 * math.log(sigma + 1e-44), dtype=torch.float32, device=x.device)
    out = unet(x * c_in, t, class_labels=classes).sample
    return (c_skip * x + c_out * out).clamp(-1, 1)


def karras(i, s):
    """σ_i of the N-point Karras grid (cm_reference §b)."""
    n, rho = s["steps"], s["rho"]
    a, b = s["sigma_max"] ** (1 / rho), s["sigma_min"] ** (1 / rho)
    return (a + i / (n - 1) * (b - a)) ** rho


def sample(unet, z, s, ts, classes):
    """One step from σ_max, then (Algorithm 1, cm's stochastic_iterative_sampler) re-noise to σ_t and
    denoise for every inner t of ts: ts = [0, 22, 39] is two network calls (the last index is σ_min,
    where the re-noising adds nothing)."""
    x = denoise(unet, z * s["sigma_max"], s["sigma_max"], s, classes)
    for i in ts[1:-1]:
        sigma = karras(i, s)
        x = x + math.sqrt(sigma**2 - s["sigma_min"] ** 2) * torch.randn_like(x)
        x = denoise(unet, x, sigma, s, classes)
    return x


DEVICE = "cpu"


def best_time(fn, min_runs=5, min_seconds=2.0, max_runs=30):
    """Best of several runs: on a shared machine the minimum is what the code costs, the rest is noise
    (compare.sh takes the same statistic from criterion's samples)."""
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    fn()  # warm-up
    sync()
    times = []
    while len(times) < max_runs and (len(times) < min_runs or sum(times) < min_seconds):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def models(a):
    from diffusers import UNet2DModel
    from safetensors import safe_open
    from safetensors.torch import load_file
    from cm_model import diffusers_config, from_openai

    with safe_open(a.weights, "pt") as f:
        cfg = json.loads(f.metadata()["cmpaint.config"])
    dcfg = diffusers_config(cfg)
    unet = UNet2DModel(**dcfg).eval()
    unet.load_state_dict(from_openai(load_file(a.weights), dcfg))
    unet = unet.to(DEVICE)
    s = cfg["sampling"]
    size = cfg["unet"]["image_size"]
    conditional = cfg["unet"].get("num_classes") is not None
    ts = s.get("ts") or TWO_STEP_TS
    result = {"threads": a.threads, "device": DEVICE, "torch": torch.__version__, "best_s": {},
              "parameters": sum(p.numel() for p in unet.parameters())}
    for b in map(int, a.batches.split(",")):
        z = torch.randn(b, 3, size, size, device=DEVICE)
        classes = torch.zeros(b, dtype=torch.long, device=DEVICE) if conditional else None
        for name, steps in [("1step", ts[:1]), (f"{len(ts) - 1}step", ts)]:
            result["best_s"][f"{name}_b{b}"] = best_time(lambda: sample(unet, z, s, steps, classes))
        if a.bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                result["best_s"][f"1step_b{b}_bf16"] = best_time(lambda: sample(unet, z, s, ts[:1], classes))
    if a.noise and a.rust_output:
        z = load_file(a.noise)["noise"][0].to(DEVICE)
        classes = torch.zeros(z.shape[0], dtype=torch.long, device=DEVICE) if conditional else None
        ref = sample(unet, z, s, ts[:1], classes).cpu()
        rust = load_file(a.rust_output)["image"]
        result["max_abs_diff_vs_cmpaint"] = (ref - rust).abs().max().item()
        if a.bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = sample(unet, z, s, ts[:1], classes).float().cpu()
            result["bf16_error_pytorch"] = error(low, ref)
            if a.rust_output_bf16:
                result["bf16_error_cmpaint"] = error(load_file(a.rust_output_bf16)["image"], rust)
    return result


def error(low, ref):
    """Max |Δ| and PSNR (images in [−1, 1], peak-to-peak 2) of a bf16 output against its f32 one."""
    mse = ((low - ref) ** 2).mean().item()
    return {"max_abs": (low - ref).abs().max().item(),
            "psnr_db": 10 * math.log10(4 / mse) if mse > 0 else float("inf")}


def ops(a):
    """The single operations of benches/onestep.rs `ops`: 128 channels, 64², batch 1 and 8."""
    ch = 128
    weight, bias = torch.randn(ch, ch, 3, 3) * 0.03, torch.randn(ch) * 0.1
    gamma, beta = torch.ones(ch), torch.zeros(ch)
    result = {"threads": a.threads, "torch": torch.__version__, "best_s": {}}
    for b in (1, 8):
        x = torch.randn(b, ch, 64, 64)
        result["best_s"][f"conv3x3_b{b}"] = best_time(lambda: F.conv2d(x, weight, bias, padding=1), 10, 1.0, 50)
        result["best_s"][f"groupnorm_silu_b{b}"] = best_time(
            lambda: F.silu(F.group_norm(x, 32, gamma, beta, 1e-5)), 10, 1.0, 50)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", nargs="?")
    ap.add_argument("--ops", action="store_true", help="time single operations instead of a model")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--noise", help="replay noise [1,B,3,H,W] to compare with --rust-output")
    ap.add_argument("--rust-output", help="cmpaint's one-step output image for --noise")
    ap.add_argument("--bf16", action="store_true", help="also time one step under CPU bf16 autocast")
    ap.add_argument("--rust-output-bf16", help="cmpaint's --precision bf16 output for --noise")
    a = ap.parse_args()
    global DEVICE
    DEVICE = a.device
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    print(json.dumps(ops(a) if a.ops else models(a)))


if __name__ == "__main__":
    main()
