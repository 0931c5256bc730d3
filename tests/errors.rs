//! Bad input gets a one-line error naming the problem and a non-zero exit, never a panic.

mod common;

use candle_core::{DType, Device, Tensor};
use cmpaint::engine::model::load::{Checkpoint, save_project};
use common::{cmpaint, cmpaint_with_env, fixture, model_path, parity, s, write_noise};
use std::path::Path;

/// Runs cmpaint, expects failure with exactly one `error:` line containing `needle`.
fn fails_with(args: &[&str], needle: &str) {
    let (ok, _, err) = cmpaint(args);
    assert!(!ok, "expected failure for {args:?}");
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line for {args:?}: {err}");
    assert_eq!(
        err.lines().last(),
        errors.first().copied(),
        "the error is the last line: {err}"
    );
    assert!(
        errors[0].contains(needle),
        "`{needle}` not in: {}",
        errors[0]
    );
}

fn info_fails_with(model: &Path, needle: &str) {
    fails_with(&["info", "--model", s(model)], needle);
}

#[test]
fn a_missing_file() {
    info_fails_with(Path::new("/nonexistent/model.pt"), "no such file or folder");
}

#[test]
fn a_file_that_is_no_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.pt");
    std::fs::write(&text, "these are not weights, just some text to read").unwrap();
    info_fails_with(
        &text,
        "neither a PyTorch checkpoint nor a valid safetensors file",
    );
    let tiny = dir.path().join("tiny.pt");
    std::fs::write(&tiny, "abc").unwrap();
    info_fails_with(&tiny, "only 3 bytes");
    let legacy = dir.path().join("legacy.pt");
    std::fs::write(
        &legacy,
        [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9],
    )
    .unwrap();
    info_fails_with(&legacy, "legacy (pre-1.6) torch.save file");
}

#[test]
fn truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    for (src, name, needle) in [
        (
            model_path('a'),
            "cut.pt",
            "truncated or corrupt PyTorch checkpoint",
        ),
        (
            model_path('c'),
            "cut.safetensors",
            "truncated safetensors file",
        ),
    ] {
        let bytes = std::fs::read(&src).unwrap();
        let cut = dir.path().join(name);
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        info_fails_with(&cut, needle);
    }
}

#[test]
fn a_diffusers_folder_without_config() {
    let dir = tempfile::tempdir().unwrap();
    info_fails_with(dir.path(), "not a diffusers model");
}

/// The tiny project model's weights with `edit` applied, saved in the project format.
fn edited_project(
    dir: &Path,
    edit: impl FnOnce(&mut std::collections::HashMap<String, Tensor>),
) -> std::path::PathBuf {
    let ck = Checkpoint::open(&model_path('c'), None).unwrap();
    let mut tensors = ck.load_tensors(&Device::Cpu).unwrap();
    edit(&mut tensors);
    let path = dir.join("edited.safetensors");
    save_project(&path, &ck.config, &tensors).unwrap();
    path
}

#[test]
fn missing_and_unexpected_weights_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_project(dir.path(), |t| {
        t.remove("output_blocks.0.0.in_layers.0.weight");
        t.insert(
            "extra.weight".into(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    info_fails_with(
        &path,
        "missing 1 weight(s): output_blocks.0.0.in_layers.0.weight",
    );
    info_fails_with(&path, "unexpected 1 weight(s): extra.weight");
}

#[test]
fn a_shape_mismatch_names_the_weight_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_project(dir.path(), |t| {
        t.insert(
            "out.2.bias".into(),
            Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    info_fails_with(&path, "`out.2.bias` expected [3], found [4]");
}

#[test]
fn an_unsupported_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_project(dir.path(), |t| {
        t.insert(
            "out.2.bias".into(),
            Tensor::zeros(3, DType::I64, &Device::Cpu).unwrap(),
        );
    });
    info_fails_with(&path, "unsupported dtype i64 for weight `out.2.bias`");
}

#[test]
fn a_bad_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, "{\"name\": 3}").unwrap();
    fails_with(
        &["info", "--model", s(&model_path('a')), "--config", s(&cfg)],
        "cannot read the model configuration",
    );
    // a config that disagrees with the file: every weight is checked against it
    fails_with(
        &[
            "info",
            "--model",
            s(&model_path('a')),
            "--config",
            "cd_imagenet64_l2",
        ],
        "shape mismatch",
    );
}

#[test]
fn noise_files_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("tiny_convres.safetensors");
    let noise = dir.path().join("noise.safetensors");
    let out = dir.path().join("out.png");
    let run = |extra: &[&str], needle: &str| {
        let mut args = vec![
            "generate",
            "--model",
            s(&model),
            "--noise",
            s(&noise),
            "-o",
            s(&out),
        ];
        args.extend(extra);
        fails_with(&args, needle);
    };
    write_noise(
        &noise,
        &Tensor::zeros((1, 1, 3, 15, 15), DType::F32, &Device::Cpu).unwrap(),
    );
    run(&[], "H and W divisible by the model's 2× downsampling");
    write_noise(&noise, &parity('c')["onestep_noise"]);
    run(&["--ts", "0,22,39"], "holds 1 draw(s), this run needs 3");
    run(
        &["--batch", "3"],
        "--batch 3 disagrees with the noise file's batch of 2",
    );
    std::fs::write(&noise, "garbage").unwrap();
    run(&[], "not a noise file");
}

#[test]
fn bad_generate_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    let a = model_path('a');
    fails_with(
        &["generate", "--model", s(&a), "--class", "10", "-o", s(&out)],
        "class 10 is out of range",
    );
    fails_with(
        &[
            "generate",
            "--model",
            s(&a),
            "--class",
            "1,2,3",
            "--batch",
            "2",
            "-o",
            s(&out),
        ],
        "3 class labels for a batch of 2",
    );
    fails_with(
        &[
            "generate",
            "--model",
            s(&model_path('b')),
            "--class",
            "1",
            "-o",
            s(&out),
        ],
        "not class-conditional",
    );
    fails_with(
        &["generate", "--model", s(&a), "--ts", "0,50", "-o", s(&out)],
        "outside a grid of N=40",
    );
    fails_with(
        &[
            "generate",
            "--model",
            s(&a),
            "-o",
            s(&dir.path().join("out.jpg")),
        ],
        "must end in .png, .safetensors (or .gif for an animation)",
    );
    fails_with(
        &[
            "generate",
            "--model",
            s(&a),
            "-o",
            s(&dir.path().join("no/such/dir/x.png")),
        ],
        "cannot write PNG",
    );
}

#[test]
fn bf16_on_a_cpu_without_it_is_refused_with_the_reason() {
    // CMPAINT_SIMD=avx2 runs as a CPU without AVX-512 would, on any machine
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let args = ["generate", "--precision", "bf16", "-o", s(&out)];
    let (ok, _, err) = cmpaint_with_env(&args, &[("CMPAINT_SIMD", "avx2")]);
    assert!(!ok && !out.exists(), "{err}");
    assert!(
        err.lines().last().unwrap().starts_with("error:") && err.contains("AVX512-BF16"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    if cmpaint::engine::Precision::Bf16.check().is_err() {
        fails_with(&args, "AVX512-BF16");
    }
}
