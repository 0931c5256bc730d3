#!/usr/bin/env python3
"""Consistency training of cmpaint's default emoji model, from scratch, in the style of Easy Consistency
Tuning (Geng et al. 2025; cm_reference.md §g.5): a plain denoising phase (r = 0, the Δt = t limit), then
stages in which r → t shrinks geometrically; target sg[f(x_r, r)] on the same noise; pseudo-Huber loss
weighted by 1/(t − r); lognormal σ; an EMA of the weights for sampling. The model and f(x, σ) are those of
cm_model.py, i.e. exactly what the Rust engine runs. Resumable: --resume continues a run's checkpoint,
and --minutes/--images extend it (the GPU run later resumes the CPU one).

    python3 training/train.py --out training/runs/cpu32 --arch cpu32 --minutes 50
    python3 training/train.py --out training/runs/cpu32 --resume --minutes 30 --total-images 3e5  # continue
    python3 training/train.py --out training/runs/gpu64 --arch gpu64 --batch 256 --minutes 9       # on a GPU
    python3 training/train.py --out training/runs/ect-c32x2 --init-from training/runs/edm-c32x2/checkpoint.pt \
        --denoise-frac 0 --lr 1e-4 --cpu-minutes 50                        # ECT tuning from the teacher
    python3 training/export.py training/runs/cpu32/checkpoint.pt assets/emoji32.safetensors
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cm_model import (ARCHS, CT_SAMPLING, consistency_fn, load_dataset, make_unet, model_config,  # noqa: E402
                      parameter_count, save_checkpoint)

def r_of_t(t, stage, q=2.0, k=8.0, b=1.0):
    """ECT's r(t): stage 0 is plain denoising (r = 0); stage s ≥ 1 has (t − r)/t = q^(−s)(1 + k·sigmoid(−b·t))."""
    if stage == 0:
        return torch.zeros_like(t)
    ratio = q ** (-stage) * (1 + k * torch.sigmoid(-b * t))
    return (t * (1 - ratio)).clamp(min=0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "emoji64.npz"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", choices=sorted(ARCHS), default="cpu32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--minutes", type=float, default=45, help="wall-clock budget of this invocation")
    ap.add_argument("--cpu-minutes", type=float, default=None,
                    help="budget in CPU time per thread instead (fair between runs that shared the machine)")
    ap.add_argument("--denoise-frac", type=float, default=0.4, help="share of the schedule spent at r = 0")
    ap.add_argument("--stages", type=int, default=5)
    ap.add_argument("--total-images", type=float, default=None,
                    help="images the stage schedule spans (default: what --minutes allows at the measured speed)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init-from", default=None,
                    help="ECT from a teacher: a train_edm.py checkpoint whose EMA weights start the run "
                         "(use with --denoise-frac 0: the denoising phase is what the teacher already did)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    ckpt_path = os.path.join(a.out, "checkpoint.pt")
    dev = torch.device(a.device)

    ck = torch.load(ckpt_path, map_location=dev, weights_only=False) if a.resume and os.path.exists(ckpt_path) else None
    # a resumed run keeps its own architecture, whatever --arch says
    config = ck["config"] if ck else None
    teacher = None if ck or not a.init_from else torch.load(a.init_from, map_location=dev, weights_only=False)
    if teacher:
        config = dict(teacher["config"], name="cmpaint-emoji32")
        config["sampling"] = dict(config["sampling"], parameterization="consistency")
    res = config["unet"]["image_size"] if config else ARCHS[a.arch].get("res", 32)
    data = load_dataset(a.data, res)
    styles = len(data.styles or [None])
    x_train = data.x[data.train].to(dev)
    # the network's label: category·S + style (the category alone where the set has one style)
    c_train = (data.category * styles + data.style)[data.train].to(dev)
    sample_weight = data.weight.to(dev)  # an emoji's skin tones share its weight
    classes = int(data.category.max()) + 1
    config = config or model_config(a.arch, classes, f"cmpaint-emoji{res}", CT_SAMPLING, data.styles)
    unet = make_unet(config).to(dev)
    ema = make_unet(config).to(dev).eval().requires_grad_(False)
    if teacher:
        unet.load_state_dict(teacher["ema"])
    ema.load_state_dict(unet.state_dict())
    opt = torch.optim.RAdam(unet.parameters(), lr=a.lr)
    state = {"images": 0, "steps": 0, "seconds": 0.0, "total_images": a.total_images, "log": []}
    if ck:
        unet.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
        if a.total_images:
            state["total_images"] = a.total_images
        print(f"resumed at {state['images']} images, {state['seconds'] / 60:.1f} min")
    print(f"{config['name']}: {parameter_count(unet):,} parameters, {len(x_train)} training images at {res}², "
          f"{classes} classes, device {dev}, {a.threads} threads")

    # the stage schedule is the run's own: a resume without --denoise-frac must not move it
    denoise_frac = state.setdefault("denoise_frac", a.denoise_frac)
    sd, smin, smax = 0.5, 0.002, 80.0
    p_mean, p_std = -1.1, 2.0
    dim = 3 * res * res
    huber_c = 0.00054 * math.sqrt(dim)
    gen = torch.Generator(device=dev).manual_seed(state["steps"] + 1)
    start, last_save, last_log = time.time(), time.time(), time.time()
    cpu0, images0 = time.process_time(), state["images"]
    if a.cpu_minutes:
        budget, spent = a.cpu_minutes * 60, lambda: (time.process_time() - cpu0) / a.threads
    else:
        budget, spent = a.minutes * 60, lambda: time.time() - start
    while spent() < budget:
        # the stage schedule spans total_images; until it is known, estimate it from the speed so far
        if state["total_images"] is None and state["steps"] >= 20:
            rate = (state["images"] - images0) / max(spent(), 1e-9)
            state["total_images"] = state["images"] + rate * (budget - spent())
        total = state["total_images"] or float("inf")
        progress = state["images"] / total
        stage = 0 if progress < denoise_frac else min(
            a.stages, 1 + int((progress - denoise_frac) / (1 - denoise_frac) * a.stages))

        idx = torch.multinomial(sample_weight, a.batch, replacement=True, generator=gen)
        x = x_train[idx]
        flip = torch.rand(a.batch, generator=gen, device=dev) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        labels = c_train[idx]
        t = (p_mean + p_std * torch.randn(a.batch, generator=gen, device=dev)).exp().clamp(smin * 1.5, smax)
        r = r_of_t(t, stage)
        eps = torch.randn(x.shape, generator=gen, device=dev)
        x_t = x + t[:, None, None, None] * eps
        if stage == 0:
            target = x  # plain denoising: no target network call
        else:
            with torch.no_grad():
                x_r = x + r[:, None, None, None] * eps
                target = consistency_fn(unet, x_r, r.clamp(min=smin), labels)
                target = torch.where((r > 0)[:, None, None, None], target, x)
        out = consistency_fn(unet, x_t, t, labels)
        dist = ((out - target) ** 2).flatten(1).sum(1)
        loss = ((dist + huber_c**2).sqrt() - huber_c) / (t - r)
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            # EMA with a warm-up, so a short run's average is not dominated by the random initialisation
            decay = min(a.ema, (1 + state["steps"]) / (10 + state["steps"]))
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - decay)
        state["images"] += a.batch
        state["steps"] += 1

        now = time.time()
        if now - last_log > 60:
            seconds = state["seconds"] + now - start
            entry = {"min": round(seconds / 60, 2), "cpu_min_this_run": round(spent() / 60, 2) if a.cpu_minutes else None,
                     "images": state["images"], "stage": stage,
                     "loss": round(loss.item(), 5), "img_per_s": round(state["images"] / seconds, 1)}
            state["log"].append(entry)
            print(json.dumps(entry), flush=True)
            last_log = now
        if now - last_save > 300:
            save(ckpt_path, unet, ema, opt, state, start, config)
            last_save = now
    state = save(ckpt_path, unet, ema, opt, state, start, config)
    print(f"saved {ckpt_path}: {state['images']} images in {state['seconds'] / 60:.1f} min")


def save(path, unet, ema, opt, state, start, config):
    """Writes the checkpoint atomically; returns the state as saved (seconds up to now)."""
    state = dict(state)
    state["seconds"] = state["seconds"] + time.time() - start
    save_checkpoint(path, unet, ema, opt, state, config)
    return state


if __name__ == "__main__":
    main()
