#!/usr/bin/env python3
"""Quality figures for the built-in teacher and student, judged by training/classifier.py's network
(never trained on the 64 held-out images):

- class accuracy of class-conditional samples (balanced over the 10 categories), beside the judge's
  accuracy on the real held-out images;
- FD of the judge's features, samples vs the held-out images, beside the floor (as many training images
  vs the held-out images);
- precision and recall (Kynkäänniemi et al. 2019, k = 3, judge features, against the training images);
- nearest-neighbour RMS distance (pixels in [−1, 1]) of samples to the training set, beside the held-out
  images' own, and how many samples sit closer to a training image than any held-out image does
  (memorised copies; `--near-copies DIR` writes each beside its training image, to look at).

A model is a training checkpoint (sampled here in PyTorch with its EMA weights) or an exported
`.safetensors` (sampled by the Rust binary, so the figures measure what ships):

    python3 training/evaluate_edm.py training/runs/edm-c32w/checkpoint.pt --steps 18 40
    python3 training/evaluate_edm.py assets/emoji32_teacher.safetensors --steps 18 40
    python3 training/evaluate_edm.py assets/emoji32.safetensors --steps 1 2          # a consistency model
    python3 training/evaluate_edm.py assets/emoji32.safetensors --seed 1000 2000 3000  # + their mean
    python3 training/evaluate_edm.py assets/emoji32.safetensors --steps 2 --ts 0,4,17 0,8,17  # choose ts

The second generation (issue 27) is judged on its own set by its own judge, per style:

    python3 training/evaluate_edm.py training/runs/pilots5/c32x2/checkpoint.pt --data training/data/emoji5.npz \
        --judge training/runs/judge5.pt --style each
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from classifier import DATA, OUT as JUDGE, load_judge  # noqa: E402
from cm_model import consistency_fn, edm_denoiser, heun_sample, karras_sigma, load_dataset, make_unet, save_grid  # noqa: E402
from evaluate import frechet  # noqa: E402

ROOT = os.path.join(HERE, "..")


@torch.no_grad()
def sample_checkpoint(path, labels, steps, seed, style=None):
    """EMA samples of a training checkpoint: Heun over `steps` grid points (EDM) or CM steps. On a model
    with styles, `style` (an index), else each sample's from its seed as the engine takes it."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    unet = make_unet(cfg)
    unet.load_state_dict(ck["ema"])
    unet.eval()
    g = torch.Generator().manual_seed(seed)
    styles = len(cfg.get("styles") or [])
    if styles:
        per = torch.full_like(labels, style) if style is not None else (seed + torch.arange(len(labels))) % styles
        labels = labels * styles + per
    out = []
    for i in range(0, len(labels), 100):
        lab = labels[i:i + 100]
        x = torch.randn(len(lab), 3, 32, 32, generator=g) * 80.0
        if cfg["sampling"].get("parameterization") == "edm":
            sigmas = [karras_sigma(j, steps) for j in range(steps)] + [0.0]
            x = heun_sample(lambda x, s: edm_denoiser(unet, x, s, lab).clamp(-1, 1), x, sigmas)
        else:
            x = consistency_fn(unet, x, 80.0, lab).clamp(-1, 1)
        out.append(x.clamp(-1, 1))
    return torch.cat(out)


def sample_binary(path, labels, steps, seed, binary, extra=(), style=None):
    """Samples of an exported model from `cmpaint generate`: for a teacher `--steps`, for a
    consistency model one step (steps = 1), its tuned ts (steps = 2) or a ts list (steps = "0,6,17")."""
    cfg = json.loads(__import__("safetensors").safe_open(path, "pt").metadata()["cmpaint.config"])
    edm = cfg["sampling"].get("parameterization") == "edm"
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "x.safetensors")
        cmd = [binary, "generate", "--model", path, "--batch", str(len(labels)), "--seed", str(seed),
               "--class", ",".join(map(str, labels.tolist())), "--device", "cpu", "-o", out]
        if style is not None:
            cmd += ["--style", str(style)]
        if edm:
            cmd += ["--steps", str(steps)]
        elif isinstance(steps, str):
            cmd += ["--ts", steps]
        elif steps == 2:
            cmd.append("--multistep")
        cmd += extra
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        return load_file(out)["image"]


def knn_radii(f, k=3):
    d = torch.cdist(f, f)
    return d.kthvalue(k + 1, dim=1).values  # the 0th neighbour is the point itself


def precision_recall(real, fake, k=3):
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    d = torch.cdist(fake, real)
    precision = (d <= r_real[None, :]).any(1).float().mean().item()
    recall = (d.T <= r_fake[None, :]).any(1).float().mean().item()
    return precision, recall


def nn_rms(x, ref):
    """RMS pixel distance of each image in `x` to its nearest in `ref`: (distances, indices)."""
    d = torch.cdist(x.flatten(1), ref.flatten(1)) / np.sqrt(x[0].numel())
    return d.min(1)


def save_near_copies(x, nearest, x_train, path):
    """The samples that sit closer to a training image than any held-out image does, each beside that
    training image (one pair per row), so a reader can tell a copy from a flat swatch."""
    rows = [torch.stack([x[i], x_train[j]]) for i, j in nearest]
    save_grid(torch.cat(rows), len(rows), path, scale=4)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--steps", type=int, nargs="+", default=[18])
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--seed", type=int, nargs="+", default=[1000],
                    help="one set of samples per seed; with several, a mean row follows (FD moves by ±7 "
                         "between sets of 500, more than the stopping rule's 5 %%)")
    ap.add_argument("--ts", nargs="+", default=[],
                    help="exported consistency models: also judge these multistep ts lists (e.g. 0,4,17), "
                         "to choose the model's default")
    ap.add_argument("--near-copies", metavar="DIR", default=None,
                    help="write the samples closer to a training image than any held-out image, each beside "
                         "that image, as DIR/steps…_seed….png")
    ap.add_argument("--name", default=None)
    ap.add_argument("--data", default=DATA, help="the dataset whose held-out images are the reference")
    ap.add_argument("--judge", default=JUDGE, help="the classifier trained on that dataset")
    ap.add_argument("--style", nargs="+", default=[None],
                    help="a dataset with styles: judge these styles (names; `each` = every one) — the "
                         "real images of that style only, the samples asked in it; default: all styles "
                         "together, each sample's style from its seed")
    ap.add_argument("--cmpaint", default=os.path.join(ROOT, "target", "release", "cmpaint"))
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                    help="exported models: more `cmpaint generate` arguments (e.g. --s-churn 10), last")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    d = load_dataset(a.data, 32)
    judge = load_judge(a.judge)
    styles = a.style if a.style != ["each"] else list(d.styles or [None])
    for style in styles:
        s_idx = None if style is None else d.styles.index(style)
        judge_style(a, d, judge, style, s_idx)


def judge_style(a, d, judge, style, s_idx):
    """The figures for one style (None: every style together)."""
    train_idx, held_idx = d.train, d.held_out
    if s_idx is not None:
        train_idx, held_idx = train_idx[d.style[train_idx] == s_idx], held_idx[d.style[held_idx] == s_idx]
    x_train, held, held_cat = d.x[train_idx], d.x[held_idx], d.category[held_idx]
    feats = lambda x: torch.cat([judge.features(x[i:i + 500]) for i in range(0, len(x), 500)])  # noqa: E731
    predict = lambda x: torch.cat([judge(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])  # noqa: E731
    f_train, f_held = feats(x_train), feats(held)
    labels = torch.arange(10).repeat_interleave(a.per_class)
    n = len(labels)
    g = torch.Generator().manual_seed(0)
    floor = frechet(feats(x_train[torch.randperm(len(x_train), generator=g)[:n]]), f_held)
    held_nn = nn_rms(held, x_train).values
    base = {"judge_accuracy_heldout": round((predict(held) == held_cat).float().mean().item(), 3),
            "fd_floor": round(floor, 2), "nn_rms_heldout": round(held_nn.mean().item(), 4),
            **({"style": style} if style is not None else {})}
    for steps in a.steps + a.ts:
        rows = []
        for seed in a.seed:
            if a.model.endswith(".pt"):
                x = sample_checkpoint(a.model, labels, steps, seed, s_idx)
            else:
                x = sample_binary(a.model, labels, steps, seed, a.cmpaint, extra=a.extra, style=style)
            f = feats(x)
            precision, recall = precision_recall(f_train, f)
            nn, nn_idx = nn_rms(x, x_train)
            near = (nn < held_nn.min()).nonzero().flatten().tolist()
            if a.near_copies and near:
                os.makedirs(a.near_copies, exist_ok=True)
                name = f"steps{str(steps).replace(',', '-')}_seed{seed}.png"
                save_near_copies(x, [(i, nn_idx[i]) for i in near], x_train, os.path.join(a.near_copies, name))
            rows.append({
                "model": a.name or os.path.basename(os.path.dirname(a.model) if a.model.endswith(".pt") else a.model),
                "steps": steps, "seed": seed, "samples": n,
                "class_accuracy": round((predict(x) == labels).float().mean().item(), 3),
                "fd": round(frechet(f, f_held), 2),
                "precision": round(precision, 3), "recall": round(recall, 3),
                "nn_rms_samples": round(nn.mean().item(), 4),
                "closer_than_any_heldout": len(near),
                **base,
            })
            print(json.dumps(rows[-1]), flush=True)
        if len(rows) > 1:
            mean = {k: round(float(np.mean([r[k] for r in rows])), 4 if k.startswith("nn") else 3)
                    for k in ("class_accuracy", "fd", "precision", "recall", "nn_rms_samples")}
            print(json.dumps({**rows[0], "seed": "mean", "samples": len(rows) * n, **mean,
                              "closer_than_any_heldout": sum(r["closer_than_any_heldout"] for r in rows)}), flush=True)


if __name__ == "__main__":
    main()
