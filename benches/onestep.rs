//! One-step latency of a ~25 M-parameter 64×64 consistency model on the CPU (the size of the
//! project's default-model probe: base 64, mults 1,2,3,4, 2 blocks, attention at 16² and 8²).
//!
//! Run `benches/compare.sh` to get this beside PyTorch on the same weights and thread count; it runs
//! this bench, then `benches/pytorch_baseline.py`, and prints the ratio.
//!
//! The weights are random (fixed seed), written once to `target/bench/cm25m.safetensors` in the
//! project format and loaded through the real loader.

use candle_core::{DType, Device, Tensor};
use cmpaint::engine::cm::noise::{NoiseSource, SeededNoise};
use cmpaint::engine::cm::sample::run_to_end;
use cmpaint::engine::model::config::UNetConfig;
use cmpaint::engine::model::load::{Checkpoint, save_project};
use cmpaint::engine::model::spec::{ModelConfig, SamplingConfig};
use cmpaint::engine::pipeline::{GenerateRequest, generate};
use criterion::{Criterion, criterion_group, criterion_main};
use std::collections::HashMap;
use std::path::PathBuf;

pub fn bench_config() -> ModelConfig {
    ModelConfig {
        name: "bench-25m-64px".into(),
        unet: UNetConfig {
            image_size: 64,
            in_channels: 3,
            out_channels: 3,
            model_channels: 64,
            channel_mult: vec![1, 2, 3, 4],
            num_res_blocks: 2,
            attention_ds: vec![4, 8],
            num_head_channels: 64,
            use_scale_shift_norm: true,
            resblock_updown: true,
            num_classes: None,
        },
        sampling: SamplingConfig::default(),
    }
}

fn weights_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench/cm25m.safetensors")
}

/// Random weights scaled by 1/√fan_in (GroupNorm scales near 1), so activations stay O(1).
fn write_random_weights(cfg: &ModelConfig) {
    let mut noise = SeededNoise::new(2024, 1);
    let mut tensors = HashMap::new();
    for (name, shape) in cfg.unet.expected_weights() {
        let n: usize = shape.iter().product();
        let z = noise
            .next(&[1, n, 1, 1])
            .unwrap()
            .reshape(shape.clone())
            .unwrap();
        let t = if shape.len() >= 2 {
            let fan_in: usize = shape[1..].iter().product();
            (z / (fan_in as f64).sqrt()).unwrap()
        } else if name.ends_with("weight") {
            ((z * 0.2).unwrap() + 1.0).unwrap()
        } else {
            (z * 0.1).unwrap()
        };
        tensors.insert(name, t.to_dtype(DType::F32).unwrap());
    }
    std::fs::create_dir_all(weights_path().parent().unwrap()).unwrap();
    save_project(&weights_path(), cfg, &tensors).unwrap();
}

fn onestep(c: &mut Criterion) {
    let cfg = bench_config();
    if !weights_path().exists() {
        write_random_weights(&cfg);
    }
    let ck = Checkpoint::open(&weights_path(), None).unwrap();
    let unet = ck.load(&Device::Cpu).unwrap();
    eprintln!("{}: {} parameters", cfg.name, cfg.unet.parameter_count());
    let mut group = c.benchmark_group("cpu");
    group.sample_size(10);
    for batch in [1usize, 4] {
        let shape = [batch, 3, 64, 64];
        group.bench_function(format!("onestep_25m_64px_b{batch}"), |b| {
            b.iter(|| {
                let mut noise = SeededNoise::new(0, batch);
                let req = GenerateRequest {
                    shape,
                    class_labels: None,
                    ts: None,
                    steps: 40,
                };
                let x: Tensor = generate(
                    &unet,
                    &ck.config.sampling,
                    &req,
                    &mut noise,
                    &Device::Cpu,
                    &mut run_to_end,
                )
                .unwrap()
                .unwrap();
                x
            })
        });
    }
    group.finish();
}

criterion_group!(benches, onestep);
criterion_main!(benches);
