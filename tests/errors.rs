//! Bad input gets a one-line error naming the problem and a non-zero exit, never a panic.

mod common;

use candle_core::{DType, Device, Tensor};
use cmpaint::engine::model::load::{Checkpoint, save_project};
use common::{cmpaint, cmpaint_with_env, fixture, flat_png, model_path, parity, s, write_noise};
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

/// The CLI items of the painter's report (issue 28, item 15): negative numbers reach the range check,
/// classes go by name too, an edit's default class is the app's, a .gif picture output is refused
/// before any work.
#[test]
fn cli_arguments_as_a_painter_types_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    let picture = flat_png(dir.path(), "p.png", 32, 90);
    let sdedit = |extra: &[&str]| {
        let mut args = vec!["edit", "sdedit", "--image", s(&picture), "-o", s(&out)];
        args.extend(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let a = sdedit(&["--strength", "-0.1"]);
    fails_with(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        "strength -0.1 is outside [0, 1]",
    );
    let a = sdedit(&[]);
    let (ok, _, err) = cmpaint(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    assert!(
        err.contains("class: 7 Smileys & Emotion (the default"),
        "{err}"
    );
    let (ok, _, err) = cmpaint(&["generate", "--class", "smileys", "-o", s(&out)]);
    assert!(ok, "{err}");
    let a = cmpaint(&[
        "generate",
        "--class",
        "7",
        "-o",
        s(&dir.path().join("seven.png")),
    ]);
    assert!(a.0);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(dir.path().join("seven.png")).unwrap(),
        "a class by name is that class"
    );
    fails_with(
        &["generate", "--class", "unicorns", "-o", s(&out)],
        "no class is called `unicorns`",
    );
    let gif = dir.path().join("x.gif");
    fails_with(
        &["generate", "-o", s(&gif)],
        "a .gif output is for animations",
    );
    let (_, _, err) = cmpaint(&["generate", "-o", s(&gif)]);
    assert!(
        !err.contains("device:"),
        "refused before the model loads: {err}"
    );
}

/// `--scale N` enlarges PNG and GIF outputs by whole pixels (issue 28, item 14); a tensor output
/// refuses it before any work.
#[test]
fn scale_enlarges_png_outputs_by_whole_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let (one, four) = (dir.path().join("one.png"), dir.path().join("four.png"));
    assert!(cmpaint(&["generate", "-o", s(&one)]).0);
    assert!(cmpaint(&["generate", "--scale", "4", "-o", s(&four)]).0);
    let one = image::open(&one).unwrap().to_rgb8();
    let four = image::open(&four).unwrap().to_rgb8();
    assert_eq!(four.dimensions(), (128, 128));
    for (x, y, p) in four.enumerate_pixels() {
        assert_eq!(p, one.get_pixel(x / 4, y / 4));
    }
    let gif = dir.path().join("strip.gif");
    let (ok, _, err) = cmpaint(&[
        "interpolate",
        "--frames",
        "3",
        "--scale",
        "2",
        "-o",
        s(&gif),
    ]);
    assert!(ok, "{err}");
    assert_eq!(image::image_dimensions(&gif).unwrap(), (64, 64));
    fails_with(
        &[
            "generate",
            "--scale",
            "2",
            "-o",
            s(&dir.path().join("x.safetensors")),
        ],
        "--scale is for .png and .gif outputs",
    );
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--scale",
        "17",
        "-o",
        s(&dir.path().join("x.png")),
    ]);
    assert!(!ok && err.contains("17 is not in 1..=16"), "{err}");
}
