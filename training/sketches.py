#!/usr/bin/env python3
"""The acceptance test of the built-in models: sketch → image (SDEdit) on ../shared/sketches/ at a range
of strengths, through the Rust binary (what ships). Writes a grid — one row per sketch and strength, the
sketch first, then one image per seed — and prints, per model and strength:

- `judge_hits`: the share of outputs that the judge (training/classifier.py) puts in the sketch's
  intended category (classes.json);
- `kept_rms`: RMS distance of the output to the sketch blurred by 3×3 (how much of the drawing's shape
  and colour survives; 0 = the sketch itself);
- `roughness`: mean absolute difference between neighbouring pixels, beside the real emoji's (smears
  and leftover noise raise it, flat blobs lower it).

    python3 training/sketches.py assets/emoji32_teacher.safetensors --strengths 0.2 0.3 0.4 0.5 0.6
    python3 training/sketches.py assets/emoji32.safetensors --out training/runs/sketches_student.png
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
from classifier import DATA, load_judge  # noqa: E402
from cm_model import load_data  # noqa: E402

ROOT = os.path.join(HERE, "..")
SKETCHES = os.path.join(ROOT, "..", "shared", "sketches")


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5, 0.6])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--out", default=None, help="grid PNG (default: beside the model, …_sketches.png)")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more cmpaint arguments")
    ap.add_argument("--cmpaint", default=os.path.join(ROOT, "target", "release", "cmpaint"))
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    classes = json.load(open(os.path.join(SKETCHES, "classes.json")))
    judge = load_judge()
    x_all, _, train_idx, _ = load_data(DATA, 32)
    real_rough = roughness(x_all[train_idx][:512])
    rows = []
    for s in a.strengths:
        hits, kept, rough = [], [], []
        for name, cls in classes.items():
            path = os.path.join(SKETCHES, f"{name}.png")
            sketch = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 127.5 - 1
            x = run(a.cmpaint, a.model, path, cls, s, a.seeds, a.extra)
            hits.append((judge(x).argmax(1) == cls).float().mean().item())
            blurred = F.avg_pool2d(sketch[None], 3, 1, 1, count_include_pad=False)
            kept.append(((x - blurred) ** 2).mean().sqrt().item())
            rough.append(roughness(x))
            rows.append(torch.cat([sketch[None], x]))
        print(json.dumps({"model": os.path.basename(a.model), "strength": s,
                          "judge_hits": round(float(np.mean(hits)), 3), "kept_rms": round(float(np.mean(kept)), 3),
                          "roughness": round(float(np.mean(rough)), 4), "roughness_real": round(real_rough, 4)}),
              flush=True)
    grid = torch.stack(rows)  # [rows, 1 + seeds, 3, 32, 32]
    r, c = grid.shape[:2]
    img = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 3, 1, 4, 2).reshape(r * 32, c * 32, 3)
    out = a.out or os.path.splitext(a.model)[0] + "_sketches.png"
    Image.fromarray(img.numpy()).resize((c * 64, r * 64), Image.NEAREST).save(out)
    print(f"wrote {out}: rows = strengths {a.strengths} × sketches {list(classes)}", file=sys.stderr)


if __name__ == "__main__":
    main()
