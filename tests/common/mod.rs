//! Shared helpers for the integration tests: fixture paths and tensor comparisons.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Tensors of a parity fixture written by tests/fixtures/make_fixtures.py.
pub fn parity(model: char) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixture(&format!("parity_{model}.safetensors")),
        &Device::Cpu,
    )
    .unwrap()
}

/// The weights of tiny model A, B or C in their three formats.
pub fn model_path(model: char) -> PathBuf {
    match model {
        'a' => fixture("tiny_openai.pt"),
        'b' => fixture("tiny_diffusers"),
        'c' => fixture("tiny_convres.safetensors"),
        _ => unreachable!(),
    }
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    max_abs(&(a - b).unwrap())
}

pub fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Runs the cmpaint binary; returns (success, stdout, stderr).
pub fn cmpaint(args: &[&str]) -> (bool, String, String) {
    cmpaint_with_env(args, &[])
}

/// [`cmpaint`] with environment variables set.
pub fn cmpaint_with_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cmpaint"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes a replay-noise file (`noise` [S, B, 3, H, W]).
pub fn write_noise(path: &std::path::Path, noise: &Tensor) {
    candle_core::safetensors::save(&HashMap::from([("noise", noise.clone())]), path).unwrap();
}

pub fn read_image(path: &std::path::Path) -> Tensor {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap()
        .remove("image")
        .unwrap()
}

pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// A flat grey picture, `side`×`side`, written as `dir/name` (PNG).
pub fn flat_png(dir: &std::path::Path, name: &str, side: usize, grey: u8) -> std::path::PathBuf {
    let path = dir.join(name);
    cmpaint::picture::write_png(
        &path,
        &cmpaint::picture::Rgb8 {
            width: side,
            height: side,
            pixels: vec![grey; side * side * 3],
        },
    )
    .unwrap();
    path
}

/// The built-in model saved as `dir/name` (project format) with its config changed by `edit`
/// (another σ range, styles…): the same weights, read another way.
pub fn builtin_with(
    dir: &std::path::Path,
    name: &str,
    edit: impl FnOnce(&mut cmpaint::engine::model::spec::ModelConfig),
) -> PathBuf {
    use cmpaint::engine::model::load::{Checkpoint, save_project};
    let ck = Checkpoint::embedded_default(None).unwrap();
    let mut config = ck.config.clone();
    edit(&mut config);
    let path = dir.join(name);
    save_project(&path, &config, &ck.load_tensors(&Device::Cpu).unwrap()).unwrap();
    path
}
