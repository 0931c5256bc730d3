//! Algorithm 4 edits, denoising and interpolation against the PyTorch reference written from the paper
//! and the OpenAI editing functions (tests/fixtures/make_edit_fixtures.py), plus the invariants each
//! edit promises. Tolerance: max |Δ| ≤ 1e-4 (f32, CPU), outputs unclamped as the reference returns them.

mod common;

use candle_core::{DType, Device, Tensor};
use cmpaint::engine::cm::edit::{estimate_sigma, luminance_coordinate, patch_mean};
use cmpaint::engine::cm::noise::{ReplayNoise, SeededNoise};
use cmpaint::engine::cm::sample::run_to_end;
use cmpaint::engine::model::load::Checkpoint;
use cmpaint::engine::model::spec::SamplingConfig;
use cmpaint::engine::model::unet::UNet;
use cmpaint::engine::pipeline::{
    EditRequest, EditTask, GenerateRequest, default_edit_ts, denoise, edit, generate, interpolate,
    sdedit_ts, strength_to_index,
};
use common::{fixture, max_abs, max_abs_diff, model_path};
use std::collections::HashMap;

const TS: [usize; 9] = [0, 5, 10, 15, 20, 25, 30, 35, 39];

struct Case {
    fx: HashMap<String, Tensor>,
    unet: UNet,
    sampling: SamplingConfig,
    labels: Option<Vec<u32>>,
}

fn case(model: char) -> Case {
    let fx =
        candle_core::safetensors::load(fixture(&format!("edit_{model}.safetensors")), &Device::Cpu)
            .unwrap();
    let ck = Checkpoint::open(&model_path(model), None).unwrap();
    let labels = fx
        .get("labels")
        .map(|l| l.to_dtype(DType::U32).unwrap().to_vec1().unwrap());
    Case {
        unet: ck.load(&Device::Cpu).unwrap(),
        sampling: ck.config.sampling,
        fx,
        labels,
    }
}

impl Case {
    fn run(&self, task: &EditTask, images: &Tensor, ts: &[usize], noise: Tensor) -> Tensor {
        let mut noise = ReplayNoise::from_tensor(noise).unwrap();
        let req = EditRequest {
            images,
            task,
            class_labels: self.labels.as_deref(),
            ts,
            steps: 40,
            ode: None,
        };
        edit(
            &self.unet,
            &self.sampling,
            &req,
            &mut noise,
            &mut run_to_end,
        )
        .unwrap()
        .unwrap()
    }

    fn check(&self, name: &str, task: &EditTask, ts: &[usize]) -> Tensor {
        let out = self.run(
            task,
            &self.fx["images"],
            ts,
            self.fx[&format!("{name}_noise")].clone(),
        );
        let err = max_abs_diff(&out, &self.fx[&format!("{name}_out")]);
        eprintln!("{name}: max abs error {err:e}");
        assert!(err <= 1e-4, "{name}: max abs error {err:e} > 1e-4");
        out
    }
}

fn inpaint_task(c: &Case) -> EditTask {
    EditTask::Inpaint {
        regenerate: c.fx["inpaint_regenerate"].clone(),
    }
}

#[test]
fn inpaint_matches_reference_and_keeps_unmasked_pixels_exactly() {
    for m in ['a', 'b'] {
        let c = case(m);
        let out = c.check("inpaint", &inpaint_task(&c), &TS);
        let kept = c.fx["inpaint_regenerate"]
            .eq(0f32)
            .unwrap()
            .broadcast_as(out.shape())
            .unwrap();
        let images = &c.fx["images"];
        let zero = out.zeros_like().unwrap();
        let diff = kept.where_cond(&(&out - images).unwrap(), &zero).unwrap();
        assert_eq!(
            max_abs(&diff),
            0.0,
            "pixels with mask 0 are the input's, bit for bit"
        );
        let changed = kept.where_cond(&zero, &(&out - images).unwrap()).unwrap();
        assert!(
            max_abs(&changed) > 0.05,
            "the masked region was regenerated"
        );
    }
}

#[test]
fn colorize_matches_reference_and_keeps_luminance() {
    for m in ['a', 'b'] {
        let c = case(m);
        let out = c.check("colorize", &EditTask::Colorize, &TS);
        let lum = |x: &Tensor| luminance_coordinate(x).unwrap();
        let err = max_abs_diff(&lum(&out), &lum(&c.fx["images"]));
        assert!(err <= 1e-5, "luminance changed by {err:e}");
    }
}

#[test]
fn superres_matches_reference_and_keeps_patch_means() {
    for m in ['a', 'b'] {
        let c = case(m);
        let out = c.check("superres", &EditTask::SuperRes { factor: 4 }, &TS);
        let err = max_abs_diff(
            &patch_mean(&out, 4).unwrap(),
            &patch_mean(&c.fx["images"], 4).unwrap(),
        );
        assert!(err <= 1e-5, "patch means changed by {err:e}");
    }
}

#[test]
fn sdedit_matches_reference() {
    for m in ['a', 'b'] {
        case(m).check("sdedit", &EditTask::SdEdit, &[16, 20, 39]);
    }
}

#[test]
fn denoise_matches_reference() {
    for m in ['a', 'b'] {
        let c = case(m);
        let out = denoise(
            &c.unet,
            &c.sampling,
            &c.fx["denoise_in"],
            0.5,
            c.labels.as_deref(),
        )
        .unwrap();
        assert!(max_abs_diff(&out, &c.fx["denoise_out"]) <= 1e-4);
    }
}

#[test]
fn interpolation_matches_reference_and_ends_at_plain_generation() {
    for m in ['a', 'b'] {
        let c = case(m);
        let z = &c.fx["interp_noise"];
        let alphas: Vec<f64> = c.fx["interp_alphas"].to_vec1().unwrap();
        let frames = interpolate(
            &c.unet,
            &c.sampling,
            &z.get(0).unwrap(),
            &z.get(1).unwrap(),
            &alphas,
            c.labels.as_deref(),
        )
        .unwrap();
        let frames = Tensor::stack(&frames, 0).unwrap();
        assert!(max_abs_diff(&frames, &c.fx["interp_out"]) <= 1e-4);
        for (k, end) in [(0, 0), (3, 1)] {
            let mut noise = ReplayNoise::from_tensor(z.narrow(0, end, 1).unwrap()).unwrap();
            let req = GenerateRequest {
                shape: [2, 3, 16, 16],
                class_labels: c.labels.as_deref(),
                ts: None,
                steps: 40,
                ode: None,
            };
            let plain = generate(
                &c.unet,
                &c.sampling,
                &req,
                &mut noise,
                &Device::Cpu,
                &mut run_to_end,
            )
            .unwrap()
            .unwrap();
            assert_eq!(
                max_abs_diff(&frames.get(k).unwrap(), &plain),
                0.0,
                "α = {} is one-step from its noise",
                alphas[k]
            );
        }
    }
}

#[test]
fn defaults_follow_the_paper() {
    let s = SamplingConfig::default();
    assert_eq!(
        default_edit_ts(&EditTask::Colorize),
        (0..40).collect::<Vec<_>>()
    );
    assert_eq!(default_edit_ts(&EditTask::SdEdit), vec![16, 20, 39]);
    assert_eq!(sdedit_ts(16, 40, &s), vec![16, 20, 39]);
    assert_eq!(strength_to_index(0.59, 40).unwrap(), 16);
    assert_eq!(strength_to_index(1.0, 40).unwrap(), 0);
    assert_eq!(strength_to_index(0.0, 40).unwrap(), 39);
    assert!(strength_to_index(1.5, 40).is_err());
    // stronger edits start earlier on the grid, and every list is valid
    let starts: Vec<usize> = (0..=10)
        .map(|k| strength_to_index(k as f64 / 10.0, 40).unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]));
    for start in starts {
        let ts = sdedit_ts(start, 40, &s);
        assert!(
            cmpaint::engine::cm::schedule::validate_ts(&ts, 40).is_ok(),
            "{ts:?}"
        );
    }
}

#[test]
fn bad_edit_inputs_get_clear_errors() {
    let c = case('b');
    let images = &c.fx["images"];
    let run = |task: EditTask| {
        let mut noise = SeededNoise::new(0, 2);
        let req = EditRequest {
            images,
            task: &task,
            class_labels: None,
            ts: &TS,
            steps: 40,
            ode: None,
        };
        edit(&c.unet, &c.sampling, &req, &mut noise, &mut run_to_end)
            .unwrap_err()
            .to_string()
    };
    let small = Tensor::ones((1, 1, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert!(
        run(EditTask::Inpaint { regenerate: small }).contains("the mask is 8×8, the image 16×16")
    );
    let black = Tensor::zeros((1, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
    assert!(run(EditTask::Inpaint { regenerate: black }).contains("all black"));
    assert!(
        run(EditTask::SuperRes { factor: 3 }).contains("factor 3 must be at least 2 and divide")
    );
}

#[test]
fn an_all_white_mask_regenerates_everything() {
    let c = case('b');
    let white = Tensor::ones((1, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
    let out = c.run(
        &EditTask::Inpaint { regenerate: white },
        &c.fx["images"],
        &TS,
        c.fx["inpaint_noise"].clone(),
    );
    assert!(max_abs_diff(&out, &c.fx["images"]) > 0.1);
}

#[test]
fn noise_level_is_estimated_from_the_image() {
    let c = case('b');
    let images = &c.fx["images"];
    let mut noise = SeededNoise::new(7, 2);
    for sigma in [0.1, 0.3, 0.6] {
        use cmpaint::engine::cm::noise::NoiseSource;
        let z = noise.next(&[2, 3, 64, 64]).unwrap();
        let smooth = images.upsample_nearest2d(64, 64).unwrap();
        let est = estimate_sigma(&(smooth + (z * sigma).unwrap()).unwrap()).unwrap();
        assert!(
            (est - sigma).abs() / sigma < 0.15,
            "σ = {sigma}, estimated {est}"
        );
    }
}

/// A soft mask (0 < keep < 1, a feathered or partly painted edge) blends the picture itself at every
/// step: the run equals Algorithm 4 written out with the known part taken from the picture. Taking
/// it from the start image y = keep·picture − (1 − keep), as the reference's code does (the same for
/// its hard masks), added keep·(1 − keep)·(picture + 1) of darkness at every step: the dark pixels
/// down a painted mask's edges in issue 28.
#[test]
fn a_soft_mask_blends_the_picture_itself_not_its_darkened_start() {
    use cmpaint::engine::cm::schedule::sigmas_from_ts;
    let c = case('b');
    let images = &c.fx["images"];
    let (b, _, h, w) = images.dims4().unwrap();
    let keep = 0.7f64;
    let regenerate = Tensor::full((1.0 - keep) as f32, (1, 1, h, w), &Device::Cpu).unwrap();
    let ts = [0, 20, 39];
    let noise = Tensor::randn(0f32, 1.0, (ts.len(), b, 3, h, w), &Device::Cpu).unwrap();
    let out = c.run(
        &EditTask::Inpaint { regenerate },
        images,
        &ts,
        noise.clone(),
    );
    let s = &c.sampling;
    let sigmas = sigmas_from_ts(&ts, 40, s);
    let y = ((images * keep).unwrap() - (1.0 - keep)).unwrap();
    let mut x = (y + (noise.get(0).unwrap() * sigmas[0]).unwrap()).unwrap();
    for i in 0..ts.len() - 1 {
        let f = denoise(&c.unet, s, &x, sigmas[i], c.labels.as_deref()).unwrap();
        let x0 = ((images * keep).unwrap() + (f * (1.0 - keep)).unwrap()).unwrap();
        let next = sigmas[i + 1].clamp(s.sigma_min, s.sigma_max);
        let spread = (next * next - s.sigma_min * s.sigma_min).sqrt();
        x = (x0 + (noise.get(i + 1).unwrap() * spread).unwrap()).unwrap();
    }
    let err = max_abs_diff(&out, &x);
    assert!(err <= 1e-5, "max abs error {err:e}");
}
