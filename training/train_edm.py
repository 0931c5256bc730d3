#!/usr/bin/env python3
"""The built-in diffusion teacher: an EDM denoiser of the emoji (Karras et al. 2022; cm_reference §g.3),
trained on the CPU for as long as work on the project goes on, resumed from its checkpoint each time.

- D(x, σ) with the EDM scalings (cm_model.edm_denoiser), the engine's own UNet family, class-conditional;
- loss λ(σ)·‖D(x + σn, σ) − x‖², λ(σ) = (σ² + σd²)/(σ·σd)², ln σ ~ N(−1.2, 1.2²), horizontal flips;
- Adam; an EMA with EDM's half-life ramp (what is exported and sampled); bf16 autocast of the network
  where the CPU multiplies bf16 in hardware (weights, optimiser, loss in f32);
- the budget is counted in CPU time of this process (per thread), so runs that shared the machine with
  builds compare fairly; the wall clock is logged beside it.

One resumable command; run it again to continue (the architecture is the checkpoint's own):

    nohup nice -n 19 python3 training/train_edm.py --out training/runs/edm-c64 --arch c64 --cpu-minutes 600 \
        >> training/runs/edm-c64/stdout.log 2>&1 &
    python3 training/export.py training/runs/edm-c64/checkpoint.pt assets/emoji32_teacher.safetensors

Every `--sample-every` CPU-minutes it writes a grid of Heun-18 samples (one row per category) beside the
log, and appends the log's JSON lines to train.log.
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cm_model import (ARCHS, EDM_SAMPLING, MILESTONE_COUNTERS, edm_denoiser, heun_sample, karras_sigma,  # noqa: E402
                      load_dataset, load_joint_state_dict, make_unet, model_config, parameter_count,
                      save_checkpoint, save_grid)

@torch.no_grad()
def sample_grid(ema, classes, path, styles=1, seeds=8, steps=18):
    """Heun samples, one row per category (its styles in turn along the row), written as a PNG grid."""
    g = torch.Generator().manual_seed(1234)
    cols = seeds if styles == 1 else 2 * styles
    labels = torch.arange(classes).repeat_interleave(cols) * styles + torch.arange(cols).repeat(classes) % styles
    device = next(ema.parameters()).device
    labels = labels.to(device)
    x = torch.randn(len(labels), 3, 32, 32, generator=g).to(device) * 80.0
    sigmas = [karras_sigma(i, steps) for i in range(steps)] + [0.0]
    x = heun_sample(lambda x, s: edm_denoiser(ema, x, s, labels).clamp(-1, 1), x, sigmas)
    save_grid(x.cpu(), classes, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "emoji64.npz"),
                    help="emoji64.npz (the first set) or make_dataset.py's emoji5.npz (five styles: the network "
                         "is then conditioned on category and style)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", choices=sorted(ARCHS), default="c32x2")  # the shipped teacher's
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--lr-decay", nargs=2, type=float, metavar=("START", "IMAGES"), default=None,
                    help="anneal the lr (cosine) from --lr to --lr-min between START and START + IMAGES images "
                         "seen; stored in the checkpoint, so every later resume follows it")
    ap.add_argument("--lr-min", type=float, default=2e-5)
    ap.add_argument("--dropout", type=float, default=0.1, help="a few thousand training images: guard against memorising")
    ap.add_argument("--ema-halflife", type=float, default=50_000, help="EMA half-life in images (EDM-style ramp)")
    ap.add_argument("--cpu-minutes", type=float, default=30, help="budget of this invocation, CPU time per thread")
    ap.add_argument("--sample-every", type=float, default=30, help="CPU-minutes between sample grids")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (training/gpu.sh)")
    ap.add_argument("--wall-minutes", type=float, default=None,
                    help="budget in wall time instead of CPU time (a GPU run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                    help="bf16 autocast of the network (weights, optimiser and loss stay f32); auto = on a GPU, "
                         "and where the CPU has bf16 dot products (AVX512-BF16 or AMX): ~1.45× faster on a Zen 4")
    ap.add_argument("--init-from", default=None,
                    help="a milestone (exported .safetensors) to start from when there is no checkpoint")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    ckpt_path = os.path.join(a.out, "checkpoint.pt")
    log_path = os.path.join(a.out, "train.log")

    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False) if os.path.exists(ckpt_path) else None
    data = load_dataset(a.data, 32)
    # an emoji's skin tones share its weight (cm_model.load_dataset)
    dev = torch.device(a.device)
    x_train, sample_weight = data.x[data.train].to(dev), data.weight.to(dev)
    classes = int(data.category.max()) + 1
    styles = len(data.styles or [None])
    labels_train = (data.category * styles + data.style)[data.train].to(dev)
    config = ck["config"] if ck else model_config(a.arch, classes, "cmpaint-emoji32-teacher", EDM_SAMPLING,
                                                  data.styles)
    torch.manual_seed(a.seed)
    unet = make_unet(config, dropout=a.dropout)
    ema = make_unet(config, dropout=a.dropout).eval().requires_grad_(False)
    ema.load_state_dict(unet.state_dict())
    opt = torch.optim.Adam(unet.parameters(), lr=a.lr)
    state = {"images": 0, "steps": 0, "seconds": 0.0, "cpu_seconds": 0.0, "log": [], "last_grid_cpu": 0.0}
    if ck:
        unet.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        state.update(ck["state"])
        print(f"resumed at {state['images']:,} images, {state['cpu_seconds'] / 60:.1f} CPU-min", flush=True)
    elif a.init_from:
        # a lost checkpoint: the milestone's EMA weights for both copies, a fresh optimiser, and the
        # counters the milestone recorded (so the log and the EMA ramp go on)
        from safetensors import safe_open
        from cm_model import diffusers_config, from_openai
        with safe_open(a.init_from, "pt") as f:
            config = json.loads(f.metadata()["cmpaint.config"])
            meta = json.loads(f.metadata().get("cmpaint.training", "{}"))
            weights = {k: f.get_tensor(k).float() for k in f.keys()}
        unet, ema = make_unet(config, dropout=a.dropout), make_unet(config, dropout=a.dropout)
        ema.eval().requires_grad_(False)
        sd = from_openai(weights, diffusers_config(config))
        load_joint_state_dict(unet, sd)
        load_joint_state_dict(ema, sd)
        opt = torch.optim.Adam(unet.parameters(), lr=a.lr)
        state.update({k: meta[k] for k in MILESTONE_COUNTERS if k in meta})
        print(f"started from milestone {a.init_from} ({state['images']:,} images)", flush=True)
    print(f"{config['name']} ({a.arch if not ck else 'from checkpoint'}): {parameter_count(unet):,} parameters, "
          f"{len(x_train)} training images, {classes} classes × {styles} styles, {a.threads} threads", flush=True)

    if a.lr_decay:
        state["lr_decay"] = {"start": a.lr_decay[0], "images": a.lr_decay[1], "from": a.lr, "to": a.lr_min}
    print(f"lr schedule: {state.get('lr_decay') or f'constant {a.lr}'}", flush=True)
    unet.to(dev)
    ema.to(dev)
    if ck:
        opt.load_state_dict(ck["opt"])  # once the weights are on the device, where its state goes
    bf16 = a.bf16 == "on" or (a.bf16 == "auto" and (dev.type == "cuda" or cpu_has_bf16()))
    print(f"bf16 autocast: {'on' if bf16 else 'off'}", flush=True)
    sd = 0.5
    gen = torch.Generator(device=dev).manual_seed(a.seed * 1_000_003 + state["steps"] + 1)
    # totals = what the checkpoint had + this invocation's share
    cpu0, wall0, base_cpu, base_wall = time.process_time(), time.time(), state["cpu_seconds"], state["seconds"]
    cpu_done = lambda: base_cpu + (time.process_time() - cpu0) / a.threads  # noqa: E731
    wall_done = lambda: base_wall + time.time() - wall0  # noqa: E731
    if a.wall_minutes is None:
        budget_end, spent = base_cpu + a.cpu_minutes * 60, cpu_done
    else:
        budget_end, spent = base_wall + a.wall_minutes * 60, wall_done
    last_log, last_save, loss_sum, loss_n, log_cpu = time.time(), time.time(), 0.0, 0, cpu_done()
    while spent() < budget_end:
        idx = torch.multinomial(sample_weight, a.batch, replacement=True, generator=gen)
        x = x_train[idx]
        flip = torch.rand(a.batch, generator=gen, device=dev) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        sigma = (-1.2 + 1.2 * torch.randn(a.batch, generator=gen, device=dev)).exp()
        noisy = x + sigma[:, None, None, None] * torch.randn(x.shape, generator=gen, device=dev)
        loss_weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            denoised = edm_denoiser(unet, noisy, sigma, labels_train[idx])
        loss = (loss_weight * ((denoised.float() - x) ** 2).mean((1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lr = learning_rate(state["images"], a.lr, state.get("lr_decay"))
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        state["images"] += a.batch
        state["steps"] += 1
        with torch.no_grad():
            halflife = min(a.ema_halflife, state["images"] * 0.1)
            beta = 0.5 ** (a.batch / max(halflife, 1e-8))
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - beta)
        loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1

        now = time.time()
        if now - last_log > 120:
            cpu = cpu_done()
            entry = {"cpu_min": round(cpu / 60, 2), "wall_min": round(wall_done() / 60, 2),
                     "images": state["images"], "loss": round(loss_sum / loss_n, 4), "lr": float(f"{lr:.3g}"),
                     "img_per_cpu_s": round(a.batch * loss_n / max(cpu - log_cpu, 1e-9), 1)}
            state["log"].append(entry)
            with open(log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
            print(json.dumps(entry), flush=True)
            last_log, loss_sum, loss_n, log_cpu = now, 0.0, 0, cpu
            if cpu - state["last_grid_cpu"] >= a.sample_every * 60:
                state["last_grid_cpu"] = cpu
                sample_grid(ema, classes, os.path.join(a.out, f"heun18_{state['images'] // 1000:06d}k.png"), styles)
        if now - last_save > 300:
            save_checkpoint(ckpt_path, unet, ema, opt, dict(state, cpu_seconds=cpu_done(), seconds=wall_done()), config)
            last_save = now
    cpu = cpu_done()
    save_checkpoint(ckpt_path, unet, ema, opt, dict(state, cpu_seconds=cpu, seconds=wall_done()), config)
    print(f"saved {ckpt_path}: {state['images']:,} images, {cpu / 60:.1f} CPU-min", flush=True)
    sample_grid(ema, classes, os.path.join(a.out, f"heun18_{state['images'] // 1000:06d}k.png"), styles)


def learning_rate(images, lr, decay):
    """Constant until the run is given a decay; then a cosine from decay["from"] to decay["to"], then flat.

    The constant-lr plateau (Heun-18 FD 75 from 313 k to 405 k images) left annealing as the cheap lever."""
    if not decay:
        return lr
    progress = min(max((images - decay["start"]) / decay["images"], 0.0), 1.0)
    return decay["to"] + (decay["from"] - decay["to"]) * 0.5 * (1 + math.cos(math.pi * progress))


def cpu_has_bf16():
    """Whether the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX), so autocast pays."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


if __name__ == "__main__":
    main()
