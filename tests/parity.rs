//! Parity with the PyTorch reference (diffusers UNet2DModel + CMStochasticIterativeScheduler) on three
//! tiny random-weight models, one per weight format. Fixtures: tests/fixtures/make_fixtures.py.
//! Tolerances (f32, CPU): UNet forward relative error ≤ 1e-5 (max |Δ| / max |ref|); sampled images
//! max |Δ| ≤ 1e-4 in [−1, 1]; time embedding max |Δ| ≤ 1e-5.

mod common;

use candle_core::{DType, Device, Tensor};
use cmpaint::engine::cm::noise::ReplayNoise;
use cmpaint::engine::cm::param::{Network, c_noise};
use cmpaint::engine::cm::sample::run_to_end;
use cmpaint::engine::model::load::Checkpoint;
use cmpaint::engine::pipeline::{GenerateRequest, generate};
use common::{max_abs, max_abs_diff, model_path, parity};

fn labels(fx: &std::collections::HashMap<String, Tensor>) -> Option<Vec<u32>> {
    fx.get("labels")
        .map(|l| l.to_dtype(DType::U32).unwrap().to_vec1::<u32>().unwrap())
}

fn check_unet(model: char) {
    let fx = parity(model);
    let ck = Checkpoint::open(&model_path(model), None).unwrap();
    let unet = ck.load(&Device::Cpu).unwrap();
    let sigmas: Vec<f64> = fx["unet_sigma"].to_vec1().unwrap();
    let t: Vec<f64> = sigmas.iter().map(|&s| c_noise(s)).collect();
    let labels = labels(&fx).map(|l| Tensor::new(l, &Device::Cpu).unwrap());
    let out = unet.forward(&fx["unet_x"], &t, labels.as_ref()).unwrap();
    let reference = &fx["unet_out"];
    let rel = max_abs_diff(&out, reference) / max_abs(reference);
    assert!(
        max_abs(reference) > 0.1,
        "the reference output should not be trivial"
    );
    eprintln!("model {model}: UNet relative error {rel:e}");
    assert!(
        rel <= 1e-5,
        "model {model}: UNet relative error {rel:e} > 1e-5"
    );
}

#[test]
fn unet_forward_openai_pt() {
    check_unet('a');
}

#[test]
fn unet_forward_diffusers() {
    check_unet('b');
}

#[test]
fn unet_forward_project_safetensors_with_conv_resamplers() {
    check_unet('c');
}

fn check_sampler(model: char, run: &str, ts: Option<&[usize]>) {
    let fx = parity(model);
    let ck = Checkpoint::open(&model_path(model), None).unwrap();
    let unet = ck.load(&Device::Cpu).unwrap();
    let mut noise = ReplayNoise::from_tensor(fx[&format!("{run}_noise")].clone()).unwrap();
    let shape: [usize; 4] = noise.draw_shape().try_into().unwrap();
    let labels = labels(&fx);
    let req = GenerateRequest {
        shape,
        class_labels: labels.as_deref(),
        ts,
        steps: 40,
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
    let reference = &fx[&format!("{run}_out")];
    let err = max_abs_diff(&out, reference);
    eprintln!("model {model} {run}: max abs error {err:e}");
    assert!(
        err <= 1e-4,
        "model {model} {run}: max abs error {err:e} > 1e-4"
    );
}

#[test]
fn onestep_matches_reference() {
    for m in ['a', 'b', 'c'] {
        check_sampler(m, "onestep", None);
    }
}

#[test]
fn twostep_matches_reference() {
    for m in ['a', 'b', 'c'] {
        check_sampler(m, "twostep", Some(&[0, 22, 39]));
    }
}

#[test]
fn threestep_matches_reference() {
    for m in ['a', 'b', 'c'] {
        check_sampler(m, "threestep", Some(&[0, 12, 22, 39]));
    }
}

#[test]
fn timestep_embedding_is_cos_then_sin_like_the_reference() {
    let fx = parity('a');
    let unet = Checkpoint::open(&model_path('a'), None)
        .unwrap()
        .load(&Device::Cpu)
        .unwrap();
    let t: Vec<f64> = fx["temb_c_noise"].to_vec1().unwrap();
    let emb = unet.timestep_embedding(&t, &Device::Cpu).unwrap();
    let err = max_abs_diff(&emb, &fx["temb_out"].to_dtype(DType::F32).unwrap());
    assert!(err <= 1e-5, "time embedding max abs error {err:e}");
}
