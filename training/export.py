#!/usr/bin/env python3
"""Exports a training checkpoint's EMA (or raw, `--weights model`) weights to the engine's format (f16
safetensors, openai names, the ModelConfig in the metadata), which `cmpaint --model` and the embedded
default load unchanged. Pick by evaluate.py's figures: on a short run the EMA may still carry the
random initialisation.

    python3 training/export.py training/runs/cpu32/checkpoint.pt assets/emoji32.safetensors [--weights model]
        [--sketch-strength 0.4] [--ts 0,10,17]
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cm_model import MILESTONE_COUNTERS, export, make_unet, parameter_count  # noqa: E402

ckpt, out = sys.argv[1], sys.argv[2]
opt = lambda name: sys.argv[sys.argv.index(name) + 1] if name in sys.argv else None  # noqa: E731
which = opt("--weights") or "ema"
ck = torch.load(ckpt, map_location="cpu", weights_only=False)
# what the model's tests chose (training/sketches.py, evaluate_edm.py) becomes the model's own default
if opt("--sketch-strength"):
    ck["config"]["sampling"]["sketch_strength"] = float(opt("--sketch-strength"))
if opt("--ts"):
    ck["config"]["sampling"]["ts"] = [int(t) for t in opt("--ts").split(",")]
unet = make_unet(ck["config"])
unet.load_state_dict(ck[which])
s = ck["state"]
progress = {k: s[k] for k in MILESTONE_COUNTERS if k in s}
export(unet, ck["config"], out, extra_metadata={"cmpaint.training": json.dumps(progress)})
print(f"{out}: {parameter_count(unet):,} parameters ({which}), {s['images']:,} images seen in "
      f"{s['seconds'] / 60:.1f} min, {os.path.getsize(out) / 1e6:.1f} MB")
