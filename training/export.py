#!/usr/bin/env python3
"""Exports a training checkpoint's EMA weights to the engine's format (f16 safetensors, openai names,
the ModelConfig in the metadata), which `cmpaint --model` and the embedded default load unchanged.

    python3 training/export.py training/runs/cpu32/checkpoint.pt assets/emoji32.safetensors
"""
import os
import sys

import torch
from diffusers import UNet2DModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cm_model import diffusers_config, export, parameter_count  # noqa: E402

ckpt, out = sys.argv[1], sys.argv[2]
ck = torch.load(ckpt, map_location="cpu", weights_only=False)
unet = UNet2DModel(**diffusers_config(ck["config"]))
unet.load_state_dict(ck["ema"])
export(unet, ck["config"], out)
s = ck["state"]
print(f"{out}: {parameter_count(unet):,} parameters (EMA), {s['images']:,} images seen in "
      f"{s['seconds'] / 60:.1f} min, {os.path.getsize(out) / 1e6:.1f} MB")
