#!/usr/bin/env python3
"""PyTorch's side of `cargo bench --bench attention`: torch.nn.functional.scaled_dot_product_attention
(what diffusers' attention processor calls) on the same shapes, [batch, heads, tokens, channels] f32,
at the threads torch uses by default. One JSON line per shape, best of the runs.

    /tmp/ref/bin/python benches/attention_pytorch.py [--runs 5]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

# (name, batch, channels, heads, tokens), as in benches/attention.rs
SHAPES = [
    ("sd15-64x64", 1, 320, 8, 4096),
    ("sd15-32x32", 1, 640, 8, 1024),
    ("sd15-16x16", 1, 1280, 8, 256),
    ("imagenet64-32x32-b8", 8, 192, 3, 1024),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    with torch.inference_mode():
        for name, batch, c, heads, t in SHAPES:
            d = c // heads
            q, k, v = (0.5 * torch.randn(batch, heads, t, d) for _ in range(3))
            F.scaled_dot_product_attention(q, k, v)
            best = float("inf")
            for _ in range(args.runs):
                start = time.perf_counter()
                F.scaled_dot_product_attention(q, k, v)
                best = min(best, time.perf_counter() - start)
            ms = best * 1e3
            gflop = 4.0 * batch * heads * t * t * d / 1e9
            print(json.dumps({"side": "pytorch", "shape": name, "heads": heads, "head_channels": d,
                              "tokens": t, "ms": round(ms, 1), "gflop_per_s": round(gflop / (ms / 1e3)),
                              "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
