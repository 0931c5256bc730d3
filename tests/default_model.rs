//! The built-in default model (assets/emoji32.safetensors): it loads with no arguments, matches the
//! PyTorch model it was exported from (tests/fixtures/default_model_ref.safetensors, written by
//! training/reference_output.py: rerun it when the asset changes), and a seed always gives the same
//! image. Tolerance as for the parity tests: max |Δ| ≤ 1e-4. With `--precision bf16` (CPUs with
//! AVX512-BF16 only): max |Δ| ≤ 0.05 and PSNR ≥ 45 dB (measured on Zen 4: 0.014–0.020, 57.9 dB).

mod common;

use candle_core::{DType, Device, Tensor};
use cmpaint::engine::Precision;
use cmpaint::engine::cm::noise::{NoiseSource, ReplayNoise, SeededNoise};
use cmpaint::engine::cm::sample::run_to_end;
use cmpaint::engine::model::load::{Checkpoint, WeightFormat};
use cmpaint::engine::pipeline::{GenerateRequest, generate};
use common::{cmpaint, fixture, max_abs_diff, read_image, s};

#[test]
fn the_default_model_is_built_in() {
    let ck = Checkpoint::embedded_default(None).unwrap();
    assert_eq!(ck.format, WeightFormat::Project);
    let u = &ck.config.unet;
    assert_eq!(
        (u.image_size, u.num_classes, u.parameter_count()),
        (32, Some(10), 1_924_035)
    );
    assert_eq!(ck.config.sampling.ts.as_deref(), Some(&[0, 6, 17][..]));
    assert_eq!(ck.config.sampling.sketch_strength, Some(0.3));
}

/// One- and two-step images of the built-in model in `precision` against the PyTorch original's:
/// (run, max |Δ|, PSNR in dB).
fn against_the_pytorch_original(precision: Precision) -> Vec<(&'static str, f32, f64)> {
    let fx = candle_core::safetensors::load(fixture("default_model_ref.safetensors"), &Device::Cpu)
        .unwrap();
    let ck = Checkpoint::embedded_default(None).unwrap();
    let unet = ck.load_with(&Device::Cpu, precision).unwrap();
    let labels: Vec<u32> = fx["labels"]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut errors = Vec::new();
    // two steps: the model's own ts (training/reference_output.py reads the same)
    let sampling = &ck.config.sampling;
    for (key, ts) in [("onestep", None), ("twostep", sampling.ts.as_deref())] {
        let mut noise = ReplayNoise::from_tensor(fx["noise"].clone()).unwrap();
        let req = GenerateRequest {
            shape: [4, 3, 32, 32],
            class_labels: Some(&labels),
            ts,
            steps: sampling.steps,
            ode: None,
        };
        let out = generate(
            &unet,
            &ck.config.sampling,
            &req,
            &mut noise,
            &Device::Cpu,
            &mut run_to_end,
        )
        .unwrap()
        .unwrap();
        let reference = &fx[key];
        let mse = (&out - reference)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        let psnr = 10.0 * (4.0 / mse.to_scalar::<f32>().unwrap() as f64).log10();
        errors.push((key, max_abs_diff(&out, reference), psnr));
    }
    errors
}

#[test]
fn the_default_model_matches_its_pytorch_original() {
    for (key, err, _) in against_the_pytorch_original(Precision::F32) {
        assert!(err <= 1e-4, "{key}: max abs error {err:e}");
    }
}

#[test]
fn the_default_model_in_bf16_stays_close_to_its_pytorch_original() {
    if Precision::Bf16.check().is_err() {
        eprintln!("bf16 not checked: this CPU has no AVX512-BF16");
        return;
    }
    for (key, err, psnr) in against_the_pytorch_original(Precision::Bf16) {
        eprintln!("built-in model {key}: bf16 max abs {err:e}, PSNR {psnr:.1} dB");
        assert!(
            err <= 0.05 && psnr >= 45.0,
            "{key}: max abs {err}, PSNR {psnr:.1} dB"
        );
    }
}

/// FNV-1a over the bytes of f32 values: a stable fingerprint of a tensor.
fn fingerprint(t: &Tensor) -> u64 {
    let values: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .fold(0xcbf29ce484222325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        })
}

#[test]
fn a_seed_gives_the_same_image_every_time() {
    // The noise of a seed is fixed across machines (ChaCha20 + StandardNormal, drawn on the CPU) ...
    let z = SeededNoise::new(0, 2).next(&[2, 3, 32, 32]).unwrap();
    assert_eq!(
        fingerprint(&z),
        NOISE_SEED0_FINGERPRINT,
        "the seeded noise stream changed"
    );
    // ... and so is the image: the CLI with no --model, twice, bit for bit.
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let out = dir.path().join(name);
        let (ok, _, err) = cmpaint(&["generate", "--seed", "0", "--batch", "2", "-o", s(&out)]);
        assert!(ok, "{err}");
        read_image(&out)
    };
    let (a, b) = (run("a.safetensors"), run("b.safetensors"));
    assert_eq!(a.dims(), &[2, 3, 32, 32]);
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

/// The fingerprint of `SeededNoise::new(0, 2)`'s first draw of [2, 3, 32, 32].
const NOISE_SEED0_FINGERPRINT: u64 = 12_706_143_505_715_508_848;

#[test]
fn the_built_in_teacher_matches_its_pytorch_original() {
    // Heun over 6 steps (11 network calls) from fixed noise, against training/reference_output.py
    use cmpaint::engine::model::default_model::{TEACHER_BYTES, TEACHER_NAME};
    use cmpaint::engine::model::spec::Parameterization;
    let fx =
        candle_core::safetensors::load(fixture("teacher_ref.safetensors"), &Device::Cpu).unwrap();
    let ck = Checkpoint::embedded(TEACHER_NAME, TEACHER_BYTES, None).unwrap();
    assert_eq!(ck.config.sampling.parameterization, Parameterization::Edm);
    let unet = ck.load(&Device::Cpu).unwrap();
    let labels: Vec<u32> = fx["labels"]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut noise = ReplayNoise::from_tensor(fx["noise"].clone()).unwrap();
    let req = GenerateRequest {
        shape: [4, 3, 32, 32],
        class_labels: Some(&labels),
        ts: None,
        steps: 6,
        ode: None,
    };
    let x = generate(
        &unet,
        &ck.config.sampling,
        &req,
        &mut noise,
        &Device::Cpu,
        &mut run_to_end,
    )
    .unwrap()
    .unwrap();
    let err = max_abs_diff(&x, &fx["heun6"]);
    assert!(err <= 1e-4, "max abs error {err:e}");
}

#[test]
fn the_teacher_is_built_in_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.safetensors");
    let (ok, stdout, err) = cmpaint(&["info", "--model", "builtin:teacher"]);
    assert!(ok, "{err}");
    assert!(
        stdout.contains("parameterization: edm (read from the model's config)"),
        "{stdout}"
    );
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        "builtin:teacher",
        "--class",
        "7",
        "--steps",
        "4",
        "--device",
        "cpu",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("7 network calls"), "{err}");
    assert_eq!(read_image(&out).dims(), [1, 3, 32, 32]);
}
