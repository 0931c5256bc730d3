#!/usr/bin/env python3
"""Writes tests/fixtures/default_model_ref.safetensors: the shipped default model's one-step and two-step
output computed in PyTorch from the exported weights, for fixed noise and labels. tests/default_model.rs
checks the engine against it, so rerun this whenever assets/emoji32.safetensors changes.

    python3 training/reference_output.py
"""
import json
import os
import sys

import torch
from diffusers import UNet2DModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cm_model import consistency_fn, diffusers_config, from_openai, karras_sigma  # noqa: E402

ROOT = os.path.join(HERE, "..")
torch.set_grad_enabled(False)
path = os.path.join(ROOT, "assets", "emoji32.safetensors")
cfg = json.loads(safe_open(path, "pt").metadata()["cmpaint.config"])
dcfg = diffusers_config(cfg)
unet = UNet2DModel(**dcfg).eval()
unet.load_state_dict(from_openai({k: v.float() for k, v in load_file(path).items()}, dcfg))
size = cfg["unet"]["image_size"]
noise = torch.randn((3, 4, 3, size, size), generator=torch.Generator().manual_seed(0))
labels = torch.tensor([0, 3, 7, 9])
onestep = consistency_fn(unet, 80.0 * noise[0], 80.0, labels).clamp(-1, 1)
# two steps on the model's ts (Algorithm 1): denoise, re-noise to σ_ts[1], denoise
ts, n = cfg["sampling"]["ts"], cfg["sampling"]["steps"]
s1 = karras_sigma(ts[1], n)
x = onestep + noise[1] * (s1**2 - 0.002**2) ** 0.5
twostep = consistency_fn(unet, x, s1, labels).clamp(-1, 1)
out = os.path.join(ROOT, "tests", "fixtures", "default_model_ref.safetensors")
save_file({"noise": noise, "labels": labels, "onestep": onestep.contiguous(), "twostep": twostep.contiguous()}, out)
print(f"wrote {out}")
