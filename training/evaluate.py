#!/usr/bin/env python3
"""Quality figures for a cmpaint model, rerunnable by anyone, offline (no Inception weights here):

- a small CNN trained on the training split to tell the 10 emoji categories gives 32-d features;
- Fréchet distance (FD) of those features: model samples vs the 64 held-out images, beside the same figure
  for 512 training images (the floor) and for 512 pure-noise images (the ceiling);
- nearest-neighbour distance to the training set (RMS per pixel in [−1, 1]) of samples, beside that of the
  held-out images (samples much closer than held-out images would mean memorisation);
- colour statistics: mean RGB, mean saturation, share of near-white (background) pixels.

Samples come from the Rust engine itself (`cmpaint generate`), so the figures measure what ships.

    cargo build --release
    python3 training/evaluate.py assets/emoji32.safetensors [--name cpu-50min] [--steps 1|2]
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cm_model import load_data  # noqa: E402

ROOT = os.path.join(HERE, "..")


class Classifier(nn.Module):
    def __init__(self, classes=10, feat=32):
        super().__init__()
        c = [3, 32, 64, 128]
        self.convs = nn.ModuleList(nn.Conv2d(c[i], c[i + 1], 3, padding=1) for i in range(3))
        self.feat = nn.Linear(128, feat)
        self.head = nn.Linear(feat, classes)

    def features(self, x):
        for conv in self.convs:
            x = F.max_pool2d(F.silu(conv(x)), 2)
        return self.feat(x.mean((2, 3)))

    def forward(self, x):
        return self.head(F.silu(self.features(x)))


def classifier(x_train, c_train, res, cache):
    """Trains (or loads) the feature network; deterministic for a given data split."""
    model = Classifier()
    if os.path.exists(cache):
        model.load_state_dict(torch.load(cache))
        return model.eval()
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for epoch in range(6):
        perm = torch.randperm(len(x_train))
        correct = 0
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            x = x_train[idx]
            x = torch.where(torch.rand(len(idx))[:, None, None, None] < 0.5, x.flip(-1), x)
            logits = model(x)
            loss = F.cross_entropy(logits, c_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            correct += (logits.argmax(1) == c_train[idx]).sum().item()
        print(f"classifier epoch {epoch}: train accuracy {correct / len(perm):.2f}", file=sys.stderr)
    torch.save(model.state_dict(), cache)
    return model.eval()


def frechet(a, b):
    """FD between Gaussian fits of two feature sets (eigen-decomposition, no scipy)."""
    a, b = a.double().numpy(), b.double().numpy()
    mu = ((a.mean(0) - b.mean(0)) ** 2).sum()
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(w.clip(0))) @ v.T
    m = r1 @ s2 @ r1
    cross = np.sqrt(np.linalg.eigvalsh((m + m.T) / 2).clip(0)).sum()
    return float(mu + np.trace(s1) + np.trace(s2) - 2 * cross)


def nn_rms(x, ref):
    d = torch.cdist(x.flatten(1), ref.flatten(1)) / np.sqrt(x[0].numel())
    return d.min(1).values.mean().item()


def colour(x):
    rgb = (x + 1) / 2
    sat = rgb.max(1).values - rgb.min(1).values
    white = (rgb > 0.9).all(1).float().mean().item()
    return {"mean_rgb": [round(v, 3) for v in rgb.mean((0, 2, 3)).tolist()],
            "saturation": round(sat.mean().item(), 3), "white_share": round(white, 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--name", default=None)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "emoji64.npz"))
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--multistep", action="store_true", help="two steps with the model's ts")
    ap.add_argument("--cmpaint", default=os.path.join(ROOT, "target", "release", "cmpaint"))
    a = ap.parse_args()
    torch.set_grad_enabled(True)
    cfg = json.loads(__import__("safetensors").safe_open(a.model, "pt").metadata()["cmpaint.config"])
    res = cfg["unet"]["image_size"]
    x_all, cat_all, train_idx, held_idx = load_data(a.data, res)
    x_train, held = x_all[train_idx], x_all[held_idx]
    net = classifier(x_train, cat_all[train_idx], res, os.path.join(HERE, "runs", f"classifier{res}.pt"))
    torch.set_grad_enabled(False)

    out = os.path.join(HERE, "runs", "eval_samples.safetensors")
    cmd = [a.cmpaint, "generate", "--model", a.model, "--batch", str(a.samples), "--seed", "1000", "-o", out]
    if a.multistep:
        cmd.append("--multistep")
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    samples = load_file(out)["image"]

    g = torch.Generator().manual_seed(0)
    train_sub = x_train[torch.randperm(len(x_train), generator=g)[:a.samples]]
    noise = torch.randn(samples.shape, generator=g).clamp(-1, 1)
    f = lambda x: torch.cat([net.features(x[i:i + 256]) for i in range(0, len(x), 256)])  # noqa: E731
    fh = f(held)
    result = {
        "model": a.name or os.path.basename(a.model),
        "steps": 2 if a.multistep else 1,
        "fd_samples": round(frechet(f(samples), fh), 2),
        "fd_floor_train": round(frechet(f(train_sub), fh), 2),
        "fd_ceiling_noise": round(frechet(f(noise), fh), 2),
        "nn_rms_samples": round(nn_rms(samples, x_train), 4),
        "nn_rms_heldout": round(nn_rms(held, x_train), 4),
        "colour_samples": colour(samples),
        "colour_data": colour(x_train),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
