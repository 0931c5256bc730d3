//! Sampling latency on the CPU, per model, batch and number of steps, and the two operations that
//! dominate a UNet (3×3 convolution, GroupNorm+SiLU), each beside candle's own implementation.
//!
//! Models: the embedded default (`assets/emoji32.safetensors`), a ~25 M-parameter 64² stand-in (base
//! 64, mults 1,2,3,4, 2 blocks, attention at 16² and 8²: the size of the training probe) and, with
//! `CMPAINT_BENCH_IMAGENET=1`, ImageNet-64's released configuration (296 M). The last two have random
//! weights (fixed seed) written once under `target/bench/` in the project format and loaded through
//! the real loader.
//!
//! `benches/compare.sh` runs this and `benches/pytorch_baseline.py` on the same weights and thread
//! count and prints the ratio table that BENCHMARKS.md records. `CMPAINT_BENCH_DEVICE=cuda` runs the
//! models on the GPU instead (a `--features cuda` build; `scripts/gpu-bench.sh`).

use candle_core::{DType, Device, Module, Tensor};
use cmpaint::engine::Precision;
use cmpaint::engine::cm::noise::{NoiseSource, SeededNoise};
use cmpaint::engine::cm::sample::{Step, run_to_end};
use cmpaint::engine::image::tensor_to_rgb8;
use cmpaint::engine::kernels::conv::Conv2dParams;
use cmpaint::engine::model::config::UNetConfig;
use cmpaint::engine::model::layers::GroupNorm;
use cmpaint::engine::model::load::{Checkpoint, save_project};
use cmpaint::engine::model::spec::{ModelConfig, SamplingConfig};
use cmpaint::engine::pipeline::{GenerateRequest, generate};
use criterion::{Criterion, criterion_group};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The ts list used for "2 steps" where a model has none of its own (the CD ImageNet-64 one).
const TWO_STEP_TS: [usize; 3] = [0, 22, 39];

/// Paths are relative to the working directory: the package root under `cargo bench`, the copied
/// repository on the GPU machine (scripts/gpu-bench.sh).
fn bench_dir() -> PathBuf {
    PathBuf::from("target/bench")
}

pub fn stand_in_25m() -> ModelConfig {
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
        styles: Vec::new(),
    }
}

/// Random weights scaled by 1/√fan_in (GroupNorm scales near 1), so activations stay O(1).
fn write_random_weights(cfg: &ModelConfig, path: &Path) {
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
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    save_project(path, cfg, &tensors).unwrap();
}

/// (criterion group, weights file); random-weight files are written on first use.
fn models() -> Vec<(&'static str, PathBuf)> {
    let mut models = vec![("emoji32", PathBuf::from("assets/emoji32.safetensors"))];
    let mut random = vec![("cm25m", stand_in_25m())];
    if std::env::var_os("CMPAINT_BENCH_IMAGENET").is_some() {
        let mut imagenet = cmpaint::engine::model::spec::preset("cd_imagenet64_l2").unwrap();
        imagenet.name = "bench-imagenet64-random".into();
        random.push(("imagenet64", imagenet));
    }
    for (key, cfg) in random {
        let path = bench_dir().join(format!("{key}.safetensors"));
        if !path.exists() {
            write_random_weights(&cfg, &path);
        }
        models.push((key, path));
    }
    models
}

fn sampling(c: &mut Criterion) {
    let device = std::env::var("CMPAINT_BENCH_DEVICE").unwrap_or("cpu".into());
    let device = cmpaint::engine::select_device(&device).unwrap();
    for (key, path) in models() {
        let ck = Checkpoint::open(&path, None).unwrap();
        let unet = ck.load(&device).unwrap();
        // `--precision bf16` beside f32 (one step), where the CPU has AVX512-BF16
        let bf16 = (device.is_cpu() && Precision::Bf16.check().is_ok())
            .then(|| ck.load_with(&device, Precision::Bf16).unwrap());
        let cfg = &ck.config;
        eprintln!("{key}: {} parameters", cfg.unet.parameter_count());
        let size = cfg.unet.image_size;
        let big = cfg.unet.parameter_count() > 100_000_000;
        let ts = cfg.sampling.ts.clone().unwrap_or(TWO_STEP_TS.to_vec());
        let mut group = c.benchmark_group(key);
        group.sample_size(10);
        if big {
            group.warm_up_time(Duration::from_millis(1));
            group.measurement_time(Duration::from_secs(1));
        }
        for batch in [1usize, 8] {
            let labels = cfg.unet.num_classes.map(|_| vec![0u32; batch]);
            let mut runs = vec![
                ("1step", None, "", &unet),
                ("2step", Some(&ts[..]), "", &unet),
            ];
            if let Some(bf16) = &bf16 {
                runs.push(("1step", None, "_bf16", bf16));
            }
            for (name, ts, precision, unet) in runs {
                group.bench_function(format!("{name}_b{batch}{precision}"), |b| {
                    b.iter(|| {
                        let mut noise = SeededNoise::new(0, batch);
                        let req = GenerateRequest {
                            shape: [batch, 3, size, size],
                            class_labels: labels.as_deref(),
                            ts,
                            steps: cfg.sampling.steps,
                            ode: None,
                        };
                        let x = generate(
                            unet,
                            &cfg.sampling,
                            &req,
                            &mut noise,
                            &device,
                            &mut run_to_end,
                        )
                        .unwrap()
                        .unwrap();
                        device.synchronize().unwrap();
                        x
                    })
                });
            }
        }
        group.finish();
    }
}

/// What step previews cost a multistep job: 10 network calls (ts 0, 4, …, 36, 39) with no callback,
/// then with every step's estimate turned into pixels — the worst case, as the worker converts at
/// most one estimate per 100 ms (`worker::PREVIEW_INTERVAL`).
fn previews(c: &mut Criterion) {
    let ts: Vec<usize> = (0..40).step_by(4).chain([39]).collect();
    for (key, path) in models().into_iter().take(2) {
        let ck = Checkpoint::open(&path, None).unwrap();
        let unet = ck.load(&Device::Cpu).unwrap();
        let cfg = &ck.config;
        let size = cfg.unet.image_size;
        let labels = cfg.unet.num_classes.map(|_| vec![0u32]);
        let mut group = c.benchmark_group(format!("{key}_previews"));
        group.sample_size(10);
        for with_preview in [false, true] {
            let name = if with_preview { "every_step" } else { "none" };
            group.bench_function(name, |b| {
                b.iter(|| {
                    let mut noise = SeededNoise::new(0, 1);
                    let req = GenerateRequest {
                        shape: [1, 3, size, size],
                        class_labels: labels.as_deref(),
                        ts: Some(&ts),
                        steps: cfg.sampling.steps,
                        ode: None,
                    };
                    let mut shown = 0usize;
                    let mut preview = |step: Step| {
                        if let Some(x) = step.estimate.filter(|_| with_preview) {
                            let img = tensor_to_rgb8(&x.get(0).unwrap()).unwrap();
                            shown += img.pixels.len();
                        }
                        std::ops::ControlFlow::Continue(())
                    };
                    let x = generate(
                        &unet,
                        &cfg.sampling,
                        &req,
                        &mut noise,
                        &Device::Cpu,
                        &mut preview,
                    )
                    .unwrap()
                    .unwrap();
                    (x, shown)
                })
            });
        }
        group.finish();
    }
}

/// One 3×3 convolution and one GroupNorm+SiLU at 128 channels, 64², batch 1 and 8: the engine's
/// kernel and candle's built-in operations on the same tensors.
fn ops(c: &mut Criterion) {
    let dev = Device::Cpu;
    let ch = 128;
    let mut group = c.benchmark_group("ops");
    group.sample_size(20);
    let weight = Tensor::randn(0f32, 0.03, (ch, ch, 3, 3), &dev).unwrap();
    let bias = Tensor::randn(0f32, 0.1, ch, &dev).unwrap();
    let params = Conv2dParams {
        stride: 1,
        padding: 1,
    };
    let packed = cmpaint::engine::kernels::conv::pack_weight(
        &weight,
        &params,
        cmpaint::engine::kernels::Precision::F32,
    )
    .unwrap();
    let mut gn_weights = HashMap::new();
    gn_weights.insert(
        "weight".to_string(),
        Tensor::ones(ch, DType::F32, &dev).unwrap(),
    );
    gn_weights.insert(
        "bias".to_string(),
        Tensor::zeros(ch, DType::F32, &dev).unwrap(),
    );
    let vb = candle_nn::VarBuilder::from_tensors(gn_weights.clone(), DType::F32, &dev);
    let gn = GroupNorm::new(ch, vb).unwrap();
    let candle_gn = candle_nn::GroupNorm::new(
        gn_weights["weight"].clone(),
        gn_weights["bias"].clone(),
        ch,
        32,
        1e-5,
    )
    .unwrap();
    for batch in [1usize, 8] {
        let x = Tensor::randn(0f32, 1.0, (batch, ch, 64, 64), &dev).unwrap();
        group.bench_function(format!("conv3x3_b{batch}"), |b| {
            b.iter(|| x.apply_op3_no_bwd(&packed, &bias, &params).unwrap())
        });
        group.bench_function(format!("conv3x3_b{batch}_candle"), |b| {
            b.iter(|| {
                x.conv2d(&weight, 1, 1, 1, 1)
                    .unwrap()
                    .broadcast_add(&bias.reshape((1, ch, 1, 1)).unwrap())
                    .unwrap()
            })
        });
        group.bench_function(format!("groupnorm_silu_b{batch}"), |b| {
            b.iter(|| gn.forward_silu(&x).unwrap())
        });
        group.bench_function(format!("groupnorm_silu_b{batch}_candle"), |b| {
            b.iter(|| candle_gn.forward(&x).unwrap().silu().unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, sampling, previews, ops);

/// criterion_main!, with the allocator set up as the CLI and the app set it.
fn main() {
    cmpaint::engine::kernels::memory::retain_freed_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
