#!/usr/bin/env python3
"""The judge of the built-in models: a category classifier of 32×32 emoji, and its features for FD,
precision/recall and nearest neighbours (training/evaluate_edm.py).

Honest by construction:
- it never sees the 64 held-out images (the fixed split of train.load_data);
- it is chosen on a validation split of the training images made by emoji *name*, so the Noto and
  Twemoji drawings of one emoji land on the same side, and validation accuracy is not a look-up of the
  other style's twin;
- augmentation: flips, shifts of up to 3 px (white fill), small scale changes, brightness/saturation
  jitter — what a generated sample may differ by without changing its category.

    python3 training/classifier.py            # → training/runs/judge32.pt and its accuracies
    python3 training/classifier.py --data training/data/emoji5.npz --out training/runs/judge5.pt
        # the second-generation judge: the five-style set, held out by name across every style, its
        # held-out accuracy reported per style
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cm_model import load_dataset  # noqa: E402

DATA = os.path.join(HERE, "..", "..", "shared", "data", "emoji64.npz")
OUT = os.path.join(HERE, "runs", "judge32.pt")
FEATURES = 128


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.SiLU())


class Judge(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stages = nn.ModuleList([block(3, 32), block(32, 64), block(64, 128), block(128, 192)])
        self.feat = nn.Linear(192, FEATURES)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURES, classes)

    def features(self, x):
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.stages) - 1:
                x = F.max_pool2d(x, 2)
        return self.feat(x.mean((2, 3)))

    def forward(self, x):
        return self.head(self.drop(F.silu(self.features(x))))


def augment(x, g):
    b = len(x)
    x = torch.where(torch.rand(b, generator=g)[:, None, None, None] < 0.5, x.flip(-1), x)
    # shift and scale by an affine grid, white outside
    scale = 1 + 0.15 * (torch.rand(b, generator=g) - 0.5)
    shift = (torch.rand(b, 2, generator=g) - 0.5) * (6 / 32)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    # shifted so the zero padding is white (x − 1 = 0 ⇔ x = 1)
    x = F.grid_sample(x - 1, grid, padding_mode="zeros", align_corners=False) + 1
    grey = x.mean(1, keepdim=True)
    sat = 1 + 0.3 * (torch.rand(b, 1, 1, 1, generator=g) - 0.5)
    bright = 0.1 * (torch.rand(b, 1, 1, 1, generator=g) - 0.5)
    return (grey + sat * (x - grey) + bright).clamp(-1, 1)


def split_by_name(names, train_idx, frac=0.15, seed=0):
    """Training indices → (fit, validation), every emoji name wholly on one side."""
    uniq = sorted(set(names[train_idx]))
    rng = np.random.default_rng(seed)
    val_names = set(rng.permutation(uniq)[: int(len(uniq) * frac)])
    val = np.array([i for i in train_idx if names[i] in val_names])
    fit = np.array([i for i in train_idx if names[i] not in val_names])
    return fit, val


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    pred = torch.cat([model(x[i:i + 512]).argmax(1) for i in range(0, len(x), 512)])
    return (pred == y).float().mean().item()


def load_judge(path=OUT):
    model = Judge()
    # stored in f16 (half the size); the judge runs in f32
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in torch.load(path, map_location="cpu")["model"].items()})
    return model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--epochs", type=int, default=40)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count())))
    d = load_dataset(a.data, 32)
    x_all, cat_all = d.x, d.category
    train_idx, held_idx = d.train.numpy(), d.held_out.numpy()
    raw = np.load(a.data, allow_pickle=True)
    # the first set names each emoji; the second gives its code points (its skin tones share them)
    names = raw["names"] if "names" in raw else raw["code"]
    fit, val = split_by_name(names, train_idx)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = Judge()
    epochs = a.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=epochs * ((len(fit) + 63) // 64))
    # classes are unbalanced (Component: 10 images, People & Body: 772): weight the loss by 1/√count
    counts = torch.bincount(cat_all[fit], minlength=10).float().clamp(min=1)
    weight = (1 / counts.sqrt()) / (1 / counts.sqrt()).mean()
    best, best_state = -1.0, None
    for epoch in range(epochs):
        model.train()
        perm = torch.from_numpy(fit)[torch.randperm(len(fit), generator=g)]
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(model(augment(x_all[idx], g)), cat_all[idx], weight=weight, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(model, x_all[val], cat_all[val])
        if acc >= best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
        print(f"epoch {epoch}: validation accuracy {acc:.3f}", flush=True)
    model.load_state_dict(best_state)
    result = {"validation_accuracy": round(best, 4),
              "heldout_accuracy": round(accuracy(model, x_all[held_idx], cat_all[held_idx]), 4),
              "fit_images": len(fit), "validation_images": len(val), "heldout_images": len(held_idx)}
    if d.styles:
        result["heldout_accuracy_per_style"] = {
            name: round(accuracy(model, x_all[held_idx[mask]], cat_all[held_idx[mask]]), 4)
            for s, name in enumerate(d.styles)
            for mask in [d.style[held_idx].numpy() == s]}
    half = {k: v.half() if v.is_floating_point() else v for k, v in best_state.items()}
    torch.save({"model": half, "result": result}, a.out)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
