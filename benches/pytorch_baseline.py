#!/usr/bin/env python3
"""PyTorch eager baseline for benches/onestep.rs: the same weights (the project's safetensors written by
the bench), the same one-step computation, the same thread count. Prints JSON with the mean time per
batch size, and, given --noise/--rust-output, the largest difference to cmpaint's output.

    python3 benches/pytorch_baseline.py target/bench/cm25m.safetensors --threads 2
"""
import argparse
import json
import math
import os
import sys
import time

import torch
from diffusers import UNet2DModel
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "training"))
from cm_model import diffusers_config, from_openai  # noqa: E402


def onestep(unet, z, s):
    """x = clamp(f(80·z, 80)) with the boundary scalings (cm_reference §a, §c.1)."""
    sigma, sd, smin = s["sigma_max"], s["sigma_data"], s["sigma_min"]
    x = z * sigma
    c_in = 1 / math.sqrt(sigma**2 + sd**2)
    c_skip = sd**2 / ((sigma - smin) ** 2 + sd**2)
    c_out = (sigma - smin) * sd / math.sqrt(sigma**2 + sd**2)
    t = torch.full((z.shape[0],), 250 * math.log(sigma + 1e-44), dtype=torch.float32)
    out = unet(x * c_in, t).sample
    return (c_skip * x + c_out * out).clamp(-1, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--noise", help="replay noise [1,B,3,H,W] to compare with --rust-output")
    ap.add_argument("--rust-output", help="cmpaint's output image for --noise")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    with safe_open(a.weights, "pt") as f:
        cfg = json.loads(f.metadata()["cmpaint.config"])
    dcfg = diffusers_config(cfg)
    unet = UNet2DModel(**dcfg).eval()
    unet.load_state_dict(from_openai(load_file(a.weights), dcfg))
    size = cfg["unet"]["image_size"]
    result = {"threads": a.threads, "torch": torch.__version__, "mean_s": {}}
    for b in map(int, a.batches.split(",")):
        z = torch.randn(b, 3, size, size)
        for _ in range(2):
            onestep(unet, z, cfg["sampling"])
        times = []
        for _ in range(a.iters):
            t0 = time.perf_counter()
            onestep(unet, z, cfg["sampling"])
            times.append(time.perf_counter() - t0)
        result["mean_s"][str(b)] = sum(times) / len(times)
    if a.noise and a.rust_output:
        z = load_file(a.noise)["noise"][0]
        ref = onestep(unet, z, cfg["sampling"])
        rust = load_file(a.rust_output)["image"]
        result["max_abs_diff_vs_cmpaint"] = (ref - rust).abs().max().item()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
