#!/usr/bin/env python3
"""Consistency distillation of the built-in student from the built-in EDM teacher (the paper's
Algorithm 2; cm_reference §g.1), on the CPU, resumable like train_edm.py:

- the student starts as a copy of the teacher's EMA weights, with the consistency (boundary) scalings;
- per image: i ~ U{0, …, N−2} on the N-point Karras grid, t = σ_i, t₂ = σ_{i+1}; x_t = x + t·z; one
  Heun step of the teacher (EDM scalings, clamped D) from t to t₂; target f_θ⁻(x_t₂, t₂) from the
  target network θ⁻ (an EMA of the student with μ = 0.95, the paper's), no gradient;
- distance: pseudo-Huber, √(‖a − b‖² + c²) − c with c = 0.00054·√d (iCT's; LPIPS needs ImageNet weights
  that cannot be had offline), or `--loss l2` (mean squared error, the reference's `l2`);
- an EMA of the student for sampling (EDM-style half-life ramp), which is what gets exported.

    nohup nice -n 19 python3 training/train_cd.py --teacher training/runs/edm-c32w/checkpoint.pt \\
        --out training/runs/cd-c32w --cpu-minutes 120 >> training/runs/cd-c32w/stdout.log 2>&1 &
    python3 training/export.py training/runs/cd-c32w/checkpoint.pt assets/emoji32.safetensors
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import torch
from diffusers import UNet2DModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cm_model import consistency_fn, diffusers_config, edm_denoiser, karras_sigma, parameter_count, save_grid  # noqa: E402
from cm_model import load_data  # noqa: E402


@torch.no_grad()
def heun_step(teacher, x_t, t, t2, labels):
    """One Heun step of the teacher's PF-ODE from σ = t to t₂ (per-sample [B] tensors)."""
    d = (x_t - edm_denoiser(teacher, x_t, t, labels).clamp(-1, 1)) / t[:, None, None, None]
    dt = (t2 - t)[:, None, None, None]
    x2 = x_t + dt * d
    d2 = (x2 - edm_denoiser(teacher, x2, t2, labels).clamp(-1, 1)) / t2[:, None, None, None]
    return x_t + dt * (d + d2) / 2


@torch.no_grad()
def sample_grid(ema, classes, path, seeds=8):
    """One-step samples, one row per category, written as a PNG grid."""
    g = torch.Generator().manual_seed(1234)
    labels = torch.arange(classes).repeat_interleave(seeds)
    x = consistency_fn(ema, torch.randn(len(labels), 3, 32, 32, generator=g) * 80.0, 80.0, labels)
    save_grid(x, classes, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "emoji64.npz"))
    ap.add_argument("--teacher", required=True, help="a train_edm.py checkpoint (its EMA weights are used)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=18, help="N of the Karras grid the student is distilled on")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--mu", type=float, default=0.95, help="target network EMA (the paper's CD setting)")
    ap.add_argument("--loss", choices=["huber", "l2"], default="huber")
    ap.add_argument("--ema-halflife", type=float, default=50_000)
    ap.add_argument("--cpu-minutes", type=float, default=30)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    ckpt_path, log_path = os.path.join(a.out, "checkpoint.pt"), os.path.join(a.out, "train.log")

    t_ck = torch.load(a.teacher, map_location="cpu", weights_only=False)
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False) if os.path.exists(ckpt_path) else None
    config = ck["config"] if ck else dict(copy.deepcopy(t_ck["config"]), name="cmpaint-emoji32")
    config["sampling"].update(parameterization="consistency", steps=a.steps if not ck else config["sampling"]["steps"])
    n = config["sampling"]["steps"]
    teacher = UNet2DModel(**diffusers_config(t_ck["config"])).eval().requires_grad_(False)
    teacher.load_state_dict(t_ck["ema"])
    student = UNet2DModel(**diffusers_config(config))
    student.load_state_dict(ck["model"] if ck else t_ck["ema"])
    target = copy.deepcopy(student).eval().requires_grad_(False)
    ema = copy.deepcopy(student).eval().requires_grad_(False)
    opt = torch.optim.RAdam(student.parameters(), lr=a.lr)
    state = {"images": 0, "steps": 0, "seconds": 0.0, "cpu_seconds": 0.0, "log": [],
             "teacher": os.path.abspath(a.teacher), "loss": a.loss}
    if ck:
        target.load_state_dict(ck["target"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        state.update(ck["state"])
        print(f"resumed at {state['images']:,} images, {state['cpu_seconds'] / 60:.1f} CPU-min", flush=True)
    x_all, cat_all, train_idx, _ = load_data(a.data, 32)
    x_train, c_train = x_all[train_idx], cat_all[train_idx]
    classes = int(cat_all.max()) + 1
    print(f"distilling into {parameter_count(student):,} parameters on N = {n}, {a.loss} loss", flush=True)

    sigmas = torch.tensor([karras_sigma(i, n) for i in range(n)], dtype=torch.float32)
    huber_c = 0.00054 * math.sqrt(3 * 32 * 32)
    gen = torch.Generator().manual_seed(state["steps"] + 7)
    cpu0, wall0, base_cpu, base_wall = time.process_time(), time.time(), state["cpu_seconds"], state["seconds"]
    cpu_done = lambda: base_cpu + (time.process_time() - cpu0) / a.threads  # noqa: E731
    wall_done = lambda: base_wall + time.time() - wall0  # noqa: E731
    budget_end = base_cpu + a.cpu_minutes * 60
    last_log = last_save = time.time()
    losses = []

    def checkpoint():
        s = dict(state, cpu_seconds=cpu_done(), seconds=wall_done())
        tmp = ckpt_path + ".tmp"
        torch.save({"model": student.state_dict(), "target": target.state_dict(), "ema": ema.state_dict(),
                    "opt": opt.state_dict(), "state": s, "config": config}, tmp)
        os.replace(tmp, ckpt_path)

    while cpu_done() < budget_end:
        idx = torch.randint(0, len(x_train), (a.batch,), generator=gen)
        x = x_train[idx]
        x = torch.where((torch.rand(a.batch, generator=gen) < 0.5)[:, None, None, None], x.flip(-1), x)
        labels = c_train[idx]
        i = torch.randint(0, n - 1, (a.batch,), generator=gen)
        t, t2 = sigmas[i], sigmas[i + 1]
        x_t = x + t[:, None, None, None] * torch.randn(x.shape, generator=gen)
        x_t2 = heun_step(teacher, x_t, t, t2, labels)
        with torch.no_grad():
            goal = consistency_fn(target, x_t2, t2, labels)
        out = consistency_fn(student, x_t, t, labels)
        if a.loss == "l2":
            loss = ((out - goal) ** 2).mean()
        else:
            loss = (((out - goal) ** 2).flatten(1).sum(1) + huber_c**2).sqrt().sub(huber_c).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["images"] += a.batch
        state["steps"] += 1
        with torch.no_grad():
            beta = 0.5 ** (a.batch / max(min(a.ema_halflife, state["images"] * 0.1), 1e-8))
            for pt, pe, p in zip(target.parameters(), ema.parameters(), student.parameters()):
                pt.lerp_(p, 1 - a.mu)
                pe.lerp_(p, 1 - beta)
        losses.append(loss.item())
        now = time.time()
        if now - last_log > 120:
            entry = {"cpu_min": round(cpu_done() / 60, 2), "wall_min": round(wall_done() / 60, 2),
                     "images": state["images"], "loss": round(sum(losses) / len(losses), 5)}
            state["log"].append(entry)
            with open(log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
            print(json.dumps(entry), flush=True)
            last_log, losses = now, []
        if now - last_save > 300:
            checkpoint()
            last_save = now
    checkpoint()
    sample_grid(ema, classes, os.path.join(a.out, f"onestep_{state['images'] // 1000:06d}k.png"))
    print(f"saved {ckpt_path}: {state['images']:,} images, {cpu_done() / 60:.1f} CPU-min", flush=True)


if __name__ == "__main__":
    main()
