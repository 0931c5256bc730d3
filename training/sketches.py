#!/usr/bin/env python3
"""The acceptance test of the built-in models: sketch → image (SDEdit) through the Rust binary (what
ships), on both sketch sets of ../shared/sketches/ — the flat-colour sketches and `rough/`, mouse-drawn
outlines and scribbles — at a range of strengths. Writes one grid per set — one row per strength and
sketch, the sketch first, then one image per seed — and prints, per set and strength:

- `judge_hits`: the share of outputs that the judge (training/classifier.py) puts in the sketch's
  intended category (its classes.json); issue 27 asks ≥ 0.7 of the rough set at the default strength;
  `judged_as` lists the category the judge gave each output (seed by seed);
- `kept_rms`: RMS distance of the output to the sketch blurred by 3×3 (how much of the drawing's shape
  and colour survives; 0 = the sketch itself) — the flat set must keep its shape;
- `fill_outlines`: closed coloured outlines filled first (`edit sdedit --fill-outlines`), as the app
  does by default (its "Fill closed outlines"); `--no-fill` runs the bare SDEdit;
- `roughness`: mean absolute difference between neighbouring pixels, beside the real emoji's (smears
  and leftover noise raise it, flat blobs and bare outlines lower it).

    python3 training/sketches.py assets/emoji32.safetensors --strengths 0.2 0.3 0.4 0.5 0.6
    python3 training/sketches.py MODEL --data training/data/emoji5.npz --judge training/runs/judge5.pt \\
        --sets flat rough --extra --style noto
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from classifier import DATA, OUT as JUDGE, load_judge  # noqa: E402
from cm_model import load_dataset, save_grid  # noqa: E402

ROOT = os.path.join(HERE, "..")
SKETCHES = {"flat": os.path.join(ROOT, "..", "shared", "sketches"),
            "rough": os.path.join(ROOT, "..", "shared", "sketches", "rough")}


def roughness(x):
    return ((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()).item() / 2


def run(binary, model, sketch, cls, strength, seeds, extra):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "x.safetensors")
        cmd = [binary, "edit", "sdedit", "--model", model, "--image", sketch, "--class", str(cls),
               "--strength", str(strength), "--batch", str(seeds), "--seed", "7", "--device", "cpu",
               "-o", out, *extra]
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        return load_file(out)["image"]


def load_sketch(path):
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 127.5 - 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5, 0.6])
    ap.add_argument("--sets", nargs="+", choices=list(SKETCHES), default=list(SKETCHES))
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--data", default=DATA, help="the dataset the judge was trained on (real roughness)")
    ap.add_argument("--judge", default=JUDGE)
    ap.add_argument("--out", default=None, help="grid PNG prefix (default: beside the model, …_sketches)")
    ap.add_argument("--no-fill", action="store_true", help="without --fill-outlines (the app's default is on)")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more cmpaint arguments")
    ap.add_argument("--cmpaint", default=os.path.join(ROOT, "target", "release", "cmpaint"))
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    judge = load_judge(a.judge)
    d = load_dataset(a.data, 32)
    real_rough = roughness(d.x[d.train[:512]])
    extra = a.extra + ([] if a.no_fill else ["--fill-outlines"])
    prefix = a.out or os.path.splitext(a.model)[0] + "_sketches"
    for set_name in a.sets:
        folder = SKETCHES[set_name]
        classes = json.load(open(os.path.join(folder, "classes.json")))
        rows = []
        for s in a.strengths:
            hits, kept, rough, judged = [], [], [], []
            for name, cls in classes.items():
                path = os.path.join(folder, f"{name}.png")
                sketch = load_sketch(path)
                x = run(a.cmpaint, a.model, path, cls, s, a.seeds, extra)
                said = judge(x).argmax(1)
                hits.append((said == cls).float().mean().item())
                judged.append(said.tolist())
                blurred = F.avg_pool2d(sketch[None], 3, 1, 1, count_include_pad=False)
                kept.append(((x - blurred) ** 2).mean().sqrt().item())
                rough.append(roughness(x))
                rows.append(torch.cat([sketch[None], x]))
            print(json.dumps({"model": os.path.basename(a.model), "set": set_name, "strength": s,
                              "fill_outlines": not a.no_fill, "judge_hits": round(float(np.mean(hits)), 3),
                              "per_sketch": dict(zip(classes, [round(h, 2) for h in hits])),
                              "judged_as": dict(zip(classes, judged)),
                              "kept_rms": round(float(np.mean(kept)), 3),
                              "roughness": round(float(np.mean(rough)), 4), "roughness_real": round(real_rough, 4)}),
                  flush=True)
        out = f"{prefix}_{set_name}.png"
        save_grid(torch.cat(rows), len(rows), out)  # a row: the sketch, then one image per seed
        print(f"wrote {out}: rows = strengths {a.strengths} × sketches {list(classes)}", file=sys.stderr)


if __name__ == "__main__":
    main()
