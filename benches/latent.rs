//! The latent pipeline at Stable Diffusion 1.5's size (issue 26): load (time and peak memory, from
//! f16 files), one UNet call and one VAE decode at 256² and 512², and a whole 4-step 512² picture, on
//! the random-weight folder `benches/lcm_pytorch.py` makes and times in PyTorch.
//!
//!     /tmp/ref/bin/python benches/lcm_pytorch.py --dir /tmp/sd15-lcm-random
//!     CMPAINT_SD_DIR=/tmp/sd15-lcm-random cargo bench --bench latent
//!
//! One JSON line per measurement, best of the runs (`CMPAINT_BENCH_RUNS`, default 3). Before timing,
//! the 256² UNet call is checked against PyTorch's on the same inputs (parity.safetensors).

use candle_core::{Device, Tensor};
use cmpaint::engine::Precision;
use cmpaint::engine::cm::sample::run_to_end;
use cmpaint::engine::latent::{LatentModel, LatentRequest};
use std::path::PathBuf;
use std::time::Instant;

/// Peak and current resident memory of this process, MB (VmHWM, VmRSS).
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn report(what: &str, size: usize, ms: f64) {
    println!("{{\"side\": \"cmpaint\", \"what\": \"{what}\", \"size\": {size}, \"ms\": {ms:.0}}}");
}

fn best(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

/// Whether a measurement is asked for: `CMPAINT_BENCH_ONLY` (e.g. `unet512,txt2img`), else all.
fn wanted(what: &str) -> bool {
    match std::env::var("CMPAINT_BENCH_ONLY") {
        Ok(only) => only.split(',').any(|w| w.trim() == what),
        Err(_) => true,
    }
}

fn main() -> anyhow::Result<()> {
    let Some(dir) = std::env::var_os("CMPAINT_SD_DIR").map(PathBuf::from) else {
        eprintln!(
            "set CMPAINT_SD_DIR to the folder benches/lcm_pytorch.py makes (see the file's header)"
        );
        return Ok(());
    };
    let runs: usize = std::env::var("CMPAINT_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let precision = match std::env::var("CMPAINT_PRECISION").as_deref() {
        Ok("bf16") => Precision::Bf16,
        _ => Precision::F32,
    };
    // as the CLI and the app run: freed activations kept for the next step
    cmpaint::engine::kernels::memory::retain_freed_memory();
    let device = Device::Cpu;
    let started = Instant::now();
    let model = LatentModel::load(&dir, None, &device, precision)?;
    let (peak, now) = memory_mb();
    let weights: u64 = model.parts.iter().map(|p| p.bytes).sum();
    println!(
        "{{\"side\": \"cmpaint\", \"what\": \"load\", \"ms\": {:.0}, \"peak_rss_mb\": {peak:.0}, \"rss_mb\": {now:.0}, \"files_mb\": {:.0}, \"parameters\": {}}}",
        started.elapsed().as_secs_f64() * 1e3,
        weights as f64 / 1e6,
        model.parameters()
    );

    let parity = candle_core::safetensors::load(dir.join("parity.safetensors"), &device)?;
    let (x, states, w) = (&parity["sample"], &parity["states"], &parity["w"]);
    let ours = model.unet.forward(x, 759.0, states, Some(w))?;
    let diff = (&ours - &parity["out"])?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    let scale = parity["out"].abs()?.max_all()?.to_scalar::<f32>()?;
    println!(
        "{{\"side\": \"cmpaint\", \"what\": \"unet_parity\", \"size\": 256, \"max_abs_diff\": {diff:e}, \"max_abs_out\": {scale}}}"
    );

    for side in [256usize, 512] {
        let latents = Tensor::randn(0f32, 1.0, (1, 4, side / 8, side / 8), &device)?;
        if wanted(&format!("unet{side}")) {
            let ms = best(runs, || {
                model
                    .unet
                    .forward(&latents, 759.0, states, Some(w))
                    .expect("a UNet call");
            });
            report("unet", side, ms);
        }
        if wanted(&format!("vae{side}")) {
            let ms = best(runs, || {
                model.vae.decode(&latents).expect("a decode");
            });
            report("vae_decode", side, ms);
        }
    }
    if !wanted("txt2img") {
        let (peak, _) = memory_mb();
        println!("{{\"side\": \"cmpaint\", \"what\": \"peak\", \"peak_rss_mb\": {peak:.0}}}");
        return Ok(());
    }
    let request = LatentRequest {
        prompt: "a red cat on a blue house",
        negative_prompt: "",
        steps: 4,
        guidance: 8.0,
    };
    let noise = Tensor::randn(0f32, 1.0, (4, 1, 4, 64, 64), &device)?;
    let ms = best(runs.saturating_sub(1).max(1), || {
        model
            .run(&request, None, &noise, &mut run_to_end)
            .expect("a picture");
    });
    report("txt2img_4_steps", 512, ms);
    let (peak, _) = memory_mb();
    println!("{{\"side\": \"cmpaint\", \"what\": \"peak\", \"peak_rss_mb\": {peak:.0}}}");
    Ok(())
}
