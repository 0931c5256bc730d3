#!/usr/bin/env python3
"""The latent pipeline at real size beside PyTorch eager (issue 26): a Stable Diffusion 1.5-shaped LCM
with random weights (UNet 860 M with the 256-wide w-embedding of LCM_Dreamshaper_v7, the SD VAE, a
ViT-L text encoder), made once as a diffusers folder of f16 safetensors — what users download — then
timed here in f32 and in `cargo bench --bench latent` on the same files.

    /tmp/ref/bin/python benches/lcm_pytorch.py --dir /tmp/sd15-lcm-random   # makes it, then times
    CMPAINT_SD_DIR=/tmp/sd15-lcm-random cargo bench --bench latent

Writes <dir>/parity.safetensors (a 256² UNet call's inputs and PyTorch's output) so the Rust bench
checks it computes the same network before it times it, and prints one JSON line per measurement
(best of the runs: the 2-core VM drifts by ±20 %).
"""
import argparse
import json
import os
import resource
import shutil
import time

import torch
from diffusers import AutoencoderKL, LatentConsistencyModelPipeline, LCMScheduler, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "tests", "fixtures", "tiny_lcm", "tokenizer")


def make(path):
    """SD 1.5's shapes (diffusers' defaults but for cross-attention 768, heads 8, the w-embedding)."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                time_cond_proj_dim=256)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=512,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                        hidden_act="quick_gelu"))
    # the real vocabulary is 49 k tokens; the fixture's small one reads prompts the same way
    tokenizer = CLIPTokenizer(os.path.join(TOKENIZER, "vocab.json"), os.path.join(TOKENIZER, "merges.txt"),
                              model_max_length=77)
    scheduler = LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    pipe = LatentConsistencyModelPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                          scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(path, safe_serialization=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(TOKENIZER, name), os.path.join(path, "tokenizer", name))
    tj = os.path.join(path, "tokenizer", "tokenizer.json")
    if os.path.exists(tj):
        os.remove(tj)


def best(f, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def report(**kw):
    print(json.dumps(kw), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/sd15-lcm-random")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="", help="e.g. unet512,txt2img (default: everything)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not os.path.exists(os.path.join(args.dir, "model_index.json")):
        make(args.dir)
    started = time.perf_counter()
    pipe = LatentConsistencyModelPipeline.from_pretrained(args.dir, torch_dtype=torch.float32, safety_checker=None)
    report(side="pytorch", what="load", ms=(time.perf_counter() - started) * 1e3,
           peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    pipe.tokenizer.model_max_length = 77  # folders made before this line was fixed lack it
    wanted = lambda what: not args.only or what in args.only.split(",")
    unet, vae = pipe.unet, pipe.vae
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        ids = pipe.tokenizer("a red cat on a blue house", padding="max_length", max_length=77,
                             truncation=True, return_tensors="pt").input_ids
        states = pipe.text_encoder(ids).last_hidden_state
        w = pipe.get_guidance_scale_embedding(torch.tensor([7.0]), embedding_dim=256)
        for side in (256, 512):
            x = torch.randn(1, 4, side // 8, side // 8, generator=g)
            out = unet(x, 759, encoder_hidden_states=states, timestep_cond=w).sample
            if side == 256:
                save_file({"sample": x, "states": states, "w": w, "out": out},
                          os.path.join(args.dir, "parity.safetensors"))
            if wanted(f"unet{side}"):
                ms = best(lambda: unet(x, 759, encoder_hidden_states=states, timestep_cond=w), args.runs)
                report(side="pytorch", what="unet", size=side, ms=ms)
            if wanted(f"vae{side}"):
                ms = best(lambda: vae.decode(x / vae.config.scaling_factor), args.runs)
                report(side="pytorch", what="vae_decode", size=side, ms=ms)
        if wanted("txt2img"):
            ms = best(lambda: pipe("a red cat on a blue house", num_inference_steps=4, guidance_scale=8.0, height=512,
                               width=512, output_type="pt"), max(1, args.runs - 1))
            report(side="pytorch", what="txt2img_4_steps", size=512, ms=ms)
    report(side="pytorch", what="peak", peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    main()
