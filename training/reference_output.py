#!/usr/bin/env python3
"""Writes tests/fixtures/default_model_ref.safetensors: the shipped default model's one-step and two-step
output computed in PyTorch from the exported weights, for fixed noise and labels, and
tests/fixtures/teacher_ref.safetensors: the built-in teacher's Heun samples (6 steps). tests/default_model.rs
checks the engine against both, so rerun this whenever assets/emoji32*.safetensors change.

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
from cm_model import consistency_fn, diffusers_config, edm_denoiser, from_openai, heun_sample, karras_sigma  # noqa: E402

ROOT = os.path.join(HERE, "..")
torch.set_grad_enabled(False)


def load(name):
    path = os.path.join(ROOT, "assets", name)
    cfg = json.loads(safe_open(path, "pt").metadata()["cmpaint.config"])
    dcfg = diffusers_config(cfg)
    unet = UNet2DModel(**dcfg).eval()
    unet.load_state_dict(from_openai({k: v.float() for k, v in load_file(path).items()}, dcfg))
    return unet, cfg


unet, cfg = load("emoji32.safetensors")
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

# the teacher: Heun over 6 steps of the Karras grid (σ in float32, as the reference's linspace), then 0
teacher, _ = load("emoji32_teacher.safetensors")
steps = 6
sigmas = [float(torch.tensor(karras_sigma(i, steps), dtype=torch.float32)) for i in range(steps)] + [0.0]
heun = heun_sample(lambda x, s: edm_denoiser(teacher, x, s, labels).clamp(-1, 1), 80.0 * noise[0], sigmas)
out = os.path.join(ROOT, "tests", "fixtures", "teacher_ref.safetensors")
save_file({"noise": noise[:1].contiguous(), "labels": labels, "heun6": heun.clamp(-1, 1).contiguous()}, out)
print(f"wrote {out}")
