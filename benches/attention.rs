//! The self-attention kernel alone at the shapes the UNets give it, beside PyTorch's
//! `scaled_dot_product_attention` on the same shapes (`benches/attention_pytorch.py`, run in the same
//! sitting):
//!
//!     cargo bench --no-default-features --bench attention
//!     /tmp/ref/bin/python benches/attention_pytorch.py
//!
//! Stable Diffusion 1.5 at 512² has five layers of 4096 tokens in 8 heads of 40 channels, five of 1024
//! in 8 × 80 and six of 256 in 8 × 160; ImageNet-64 at 32² and batch 8 has 1024 tokens in 3 heads of
//! 64 (192 channels). One JSON line per shape, best of `CMPAINT_BENCH_RUNS` (default 5).

use candle_core::{Device, Tensor};
use cmpaint::engine::kernels::attention::Attention;
use std::time::Instant;

/// (name, batch, channels, heads, tokens), the order `attention_pytorch.py` uses.
pub const SHAPES: [(&str, usize, usize, usize, usize); 4] = [
    ("sd15-64x64", 1, 320, 8, 4096),
    ("sd15-32x32", 1, 640, 8, 1024),
    ("sd15-16x16", 1, 1280, 8, 256),
    ("imagenet64-32x32-b8", 8, 192, 3, 1024),
];

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("CMPAINT_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    for (name, batch, c, heads, t) in SHAPES {
        // logits of a few units, as in a trained network
        let qkv = (Tensor::randn(0f32, 1.0, (batch, 3 * c, t), &Device::Cpu)? * 0.5)?;
        let op = Attention { heads };
        qkv.apply_op1_no_bwd(&op)?; // warm-up: thread pool, scratch buffers
        let ms = (0..runs)
            .map(|_| {
                let start = Instant::now();
                qkv.apply_op1_no_bwd(&op)
                    .map(|_| start.elapsed().as_secs_f64() * 1e3)
            })
            .try_fold(f64::INFINITY, |best, ms| ms.map(|ms| best.min(ms)))?;
        let d = c / heads;
        let gflop = 4.0 * (batch * heads * t * t * d) as f64 / 1e9;
        println!(
            "{{\"side\": \"cmpaint\", \"shape\": \"{name}\", \"heads\": {heads}, \"head_channels\": {d}, \"tokens\": {t}, \"ms\": {ms:.1}, \"gflop_per_s\": {:.0}}}",
            gflop / (ms / 1e3)
        );
    }
    Ok(())
}
