#!/usr/bin/env python3
"""Sample grids for assets/MODEL_CARD.md, made with the cmpaint binary and the built-in model:
one step and two steps (random categories), one row per category, and every edit on held-out emoji.

    cargo build --release && python3 training/make_card_figures.py
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cm_model import load_data  # noqa: E402

ROOT = os.path.join(HERE, "..")
BIN = os.path.join(ROOT, "target", "release", "cmpaint")
OUT = os.path.join(ROOT, "assets", "card")
SCALE = 3


def cmpaint(*args):
    subprocess.run([BIN, *map(str, args)], check=True, stderr=subprocess.DEVNULL)


def to_pil(x):
    """[3, H, W] in [−1, 1] → PIL RGB."""
    a = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(a)


def rows_figure(rows, path):
    """rows: list of lists of PIL images of one size → one grid PNG, scaled up for reading."""
    w, h = rows[0][0].size
    fig = Image.new("RGB", (w * max(map(len, rows)), h * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            fig.paste(im, (c * w, r * h))
    fig.resize((fig.width * SCALE, fig.height * SCALE), Image.NEAREST).save(path)


def upscale(src, dst):
    im = Image.open(src)
    im.resize((im.width * SCALE, im.height * SCALE), Image.NEAREST).save(dst)


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp()
    cmpaint("generate", "--batch", 64, "--seed", 0, "-o", f"{tmp}/one.png")
    upscale(f"{tmp}/one.png", f"{OUT}/onestep.png")
    cmpaint("generate", "--batch", 64, "--seed", 0, "--multistep", "-o", f"{tmp}/two.png")
    upscale(f"{tmp}/two.png", f"{OUT}/twostep.png")
    rows = []
    for k in range(10):
        cmpaint("generate", "--batch", 8, "--seed", 100 * k, "--class", k, "--separate", "-o", f"{tmp}/c{k}.png")
        rows.append([Image.open(f"{tmp}/c{k}_{i:03d}.png").convert("RGB") for i in range(8)])
    rows_figure(rows, f"{OUT}/categories.png")

    # edits on 8 held-out emoji: rows = original, edit input, result
    x_all, _, _, held = load_data(os.path.join(ROOT, "..", "shared", "data", "emoji64.npz"), 32)
    src = x_all[held[:8]]
    size = src.shape[-1]
    mask = np.zeros((size, size, 3), np.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    Image.fromarray(mask).save(f"{tmp}/mask.png")
    edits = {}
    for i, x in enumerate(src):
        to_pil(x).save(f"{tmp}/src{i}.png")
        grey = x.mul(torch.tensor([0.2989, 0.5870, 0.1140])[:, None, None]).sum(0, keepdim=True).repeat(3, 1, 1)
        to_pil(grey).save(f"{tmp}/grey{i}.png")
        low = torch.nn.functional.avg_pool2d(x[None], 4)[0]
        to_pil(low).save(f"{tmp}/low{i}.png")
        # a crude "painting": the picture posterized to 3 levels per channel and blurred
        paint = torch.nn.functional.avg_pool2d(((x + 1) * 1.5).round()[None] / 1.5 - 1, 3, 1, 1)[0]
        to_pil(paint).save(f"{tmp}/paint{i}.png")
        holed = x.clone()
        holed[:, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = -1
        for name, args, shown in [
            ("inpaint", ["--image", f"{tmp}/src{i}.png", "--mask", f"{tmp}/mask.png"], to_pil(holed)),
            ("colorize", ["--image", f"{tmp}/grey{i}.png"], to_pil(grey)),
            ("superres", ["--image", f"{tmp}/low{i}.png", "--factor", 4], to_pil(low).resize((size, size), Image.NEAREST)),
            ("sdedit", ["--image", f"{tmp}/paint{i}.png"], to_pil(paint)),
        ]:
            cmpaint("edit", name, *args, "--seed", i, "-o", f"{tmp}/{name}{i}.png")
            edits.setdefault(name, ([], [], []))
            edits[name][0].append(to_pil(x))
            edits[name][1].append(shown)
            edits[name][2].append(Image.open(f"{tmp}/{name}{i}.png").convert("RGB"))
    for name, rows in edits.items():
        rows_figure(list(rows), f"{OUT}/{name}.png")
    print(f"figures in {OUT}")


if __name__ == "__main__":
    main()
