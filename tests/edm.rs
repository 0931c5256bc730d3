//! EDM teachers: the Heun and Euler PF-ODE samplers (with and without churn) and SDEdit on a teacher,
//! against the independent PyTorch implementation of the reference's karras_sample
//! (tests/fixtures/make_edm_fixtures.py) on the tiny models A and B run as EDM teachers. Tolerance:
//! max |Δ| ≤ 1e-4 (f32, CPU). Also: presets and file names pick the parameterization, and the
//! parameterization changes the output (a teacher is never silently run as a consistency model).

mod common;

use candle_core::{DType, Device, Tensor};
use cmpaint::engine::cm::noise::ReplayNoise;
use cmpaint::engine::cm::pf_ode::{Churn, Solver, network_calls, pf_ode_sigmas};
use cmpaint::engine::cm::sample::{Step, run_to_end};
use cmpaint::engine::model::load::{Checkpoint, ParameterizationSource};
use cmpaint::engine::model::spec::{Parameterization, SamplingConfig, guess_preset, preset};
use cmpaint::engine::model::unet::UNet;
use cmpaint::engine::pipeline::{
    EditRequest, EditTask, GenerateRequest, OdeOptions, edit, generate,
};
use common::{cmpaint, fixture, max_abs_diff, model_path};
use std::collections::HashMap;
use std::ops::ControlFlow;

struct Teacher {
    fx: HashMap<String, Tensor>,
    unet: UNet,
    sampling: SamplingConfig,
    labels: Option<Vec<u32>>,
}

fn teacher(model: char) -> Teacher {
    let fx =
        candle_core::safetensors::load(fixture(&format!("edm_{model}.safetensors")), &Device::Cpu)
            .unwrap();
    let ck = Checkpoint::open(&model_path(model), None).unwrap();
    let labels = fx
        .get("labels")
        .map(|l| l.to_dtype(DType::U32).unwrap().to_vec1().unwrap());
    Teacher {
        unet: ck.load(&Device::Cpu).unwrap(),
        sampling: SamplingConfig {
            parameterization: Parameterization::Edm,
            ..ck.config.sampling
        },
        fx,
        labels,
    }
}

impl Teacher {
    fn generate(&self, noise: &str, steps: usize, ode: OdeOptions) -> Tensor {
        let mut noise = ReplayNoise::from_tensor(self.fx[noise].clone()).unwrap();
        let req = GenerateRequest {
            shape: [2, 3, 16, 16],
            class_labels: self.labels.as_deref(),
            ts: None,
            steps,
            ode: Some(ode),
        };
        generate(
            &self.unet,
            &self.sampling,
            &req,
            &mut noise,
            &Device::Cpu,
            &mut run_to_end,
        )
        .unwrap()
        .unwrap()
    }

    fn check(&self, name: &str, out: &Tensor) {
        let err = max_abs_diff(out, &self.fx[&format!("{name}_out")]);
        eprintln!("{name}: max abs error {err:e}");
        assert!(err <= 1e-4, "{name}: max abs error {err:e} > 1e-4");
    }
}

#[test]
fn heun_matches_the_reference() {
    for m in ['a', 'b'] {
        let t = teacher(m);
        let out = t.generate("heun_noise", 10, OdeOptions::default());
        t.check("heun", &out);
    }
}

#[test]
fn heun_with_churn_matches_the_reference() {
    let churn = Churn {
        s_churn: 6.0,
        s_tmin: 0.05,
        s_tmax: 30.0,
        s_noise: 1.003,
    };
    for m in ['a', 'b'] {
        let t = teacher(m);
        let ode = OdeOptions {
            solver: Solver::Heun,
            churn,
        };
        let out = t.generate("churn_noise", 8, ode);
        t.check("churn", &out);
    }
}

#[test]
fn euler_matches_the_reference() {
    for m in ['a', 'b'] {
        let t = teacher(m);
        let ode = OdeOptions {
            solver: Solver::Euler,
            churn: Churn::default(),
        };
        let out = t.generate("euler_noise", 12, ode);
        t.check("euler", &out);
    }
}

#[test]
fn sdedit_on_a_teacher_matches_the_reference_and_reports_estimates() {
    for m in ['a', 'b'] {
        let t = teacher(m);
        let mut noise = ReplayNoise::from_tensor(t.fx["sdedit_noise"].clone()).unwrap();
        let req = EditRequest {
            images: &t.fx["sdedit_images"],
            task: &EditTask::SdEdit,
            class_labels: t.labels.as_deref(),
            ts: &[4],
            steps: 10,
            ode: None,
        };
        let mut steps = Vec::new();
        let mut on_step = |s: Step| {
            let e = s.estimate.expect("every PF-ODE step has an estimate");
            assert_eq!(e.dims(), [2, 3, 16, 16]);
            steps.push((s.done, s.total));
            ControlFlow::Continue(())
        };
        let out = edit(&t.unet, &t.sampling, &req, &mut noise, &mut on_step)
            .unwrap()
            .unwrap();
        t.check("sdedit", &out);
        // 6 grid points (4…9) then σ = 0: six steps
        assert_eq!(steps, (1..=6).map(|i| (i, 6)).collect::<Vec<_>>());
    }
}

#[test]
fn a_cancelled_pf_ode_run_returns_none() {
    let t = teacher('b');
    let mut noise = ReplayNoise::from_tensor(t.fx["heun_noise"].clone()).unwrap();
    let req = GenerateRequest {
        shape: [2, 3, 16, 16],
        class_labels: None,
        ts: None,
        steps: 10,
        ode: None,
    };
    let mut calls = 0;
    let mut stop_at_3 = |s: Step| {
        calls += 1;
        if s.done == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let out = generate(
        &t.unet,
        &t.sampling,
        &req,
        &mut noise,
        &Device::Cpu,
        &mut stop_at_3,
    )
    .unwrap();
    assert!(out.is_none());
    assert_eq!(calls, 3);
}

#[test]
fn the_parameterization_changes_the_result() {
    // the same network and noise through the consistency scalings gives another image: a teacher
    // run as a consistency model would be silently wrong, which presets and file names prevent
    let t = teacher('b');
    let mut noise = ReplayNoise::from_tensor(t.fx["heun_noise"].clone()).unwrap();
    let cm = SamplingConfig {
        parameterization: Parameterization::Consistency,
        ..t.sampling.clone()
    };
    let req = GenerateRequest {
        shape: [2, 3, 16, 16],
        class_labels: None,
        ts: None,
        steps: 40,
        ode: None,
    };
    let one_step = generate(
        &t.unet,
        &cm,
        &req,
        &mut noise,
        &Device::Cpu,
        &mut run_to_end,
    )
    .unwrap()
    .unwrap();
    assert!(max_abs_diff(&one_step, &t.fx["heun_out"]) > 0.05);
}

#[test]
fn samplers_refuse_options_of_the_other_kind() {
    let t = teacher('b');
    let cm = SamplingConfig {
        parameterization: Parameterization::Consistency,
        ..t.sampling.clone()
    };
    let run = |sampling: &SamplingConfig, ts: Option<&[usize]>, ode: Option<OdeOptions>| {
        let mut noise = ReplayNoise::from_tensor(t.fx["heun_noise"].clone()).unwrap();
        let req = GenerateRequest {
            shape: [2, 3, 16, 16],
            class_labels: None,
            ts,
            steps: 10,
            ode,
        };
        generate(
            &t.unet,
            sampling,
            &req,
            &mut noise,
            &Device::Cpu,
            &mut run_to_end,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    assert!(run(&cm, None, Some(OdeOptions::default())).contains("for EDM teachers"));
    assert!(run(&t.sampling, Some(&[0, 9]), None).contains("not --ts"));
}

#[test]
fn heun_grid_and_call_count_follow_the_reference() {
    let cfg = SamplingConfig::default();
    let sigmas = pf_ode_sigmas(40, &cfg);
    assert_eq!(sigmas.len(), 41);
    assert_eq!((sigmas[0], sigmas[40]), (80.0, 0.0));
    assert!((sigmas[39] - 0.002).abs() < 1e-9);
    assert_eq!(network_calls(Solver::Heun, &sigmas), 79);
    assert_eq!(network_calls(Solver::Euler, &sigmas), 40);
}

#[test]
fn released_teachers_are_matched_by_file_name() {
    let imagenet = preset("cd_imagenet64_l2").unwrap().unet;
    let lsun = preset("cd_bedroom256_lpips").unwrap().unet;
    for (file, unet, name) in [
        ("edm_imagenet64_ema.pt", &imagenet, "edm_imagenet64_ema"),
        ("edm_bedroom256_ema.pt", &lsun, "edm_bedroom256_ema"),
        ("edm_cat256_ema.pt", &lsun, "edm_cat256_ema"),
        // an unknown teacher of a known network still gets a teacher's scalings
        ("edm_my_finetune.pt", &imagenet, "edm_imagenet64_ema"),
    ] {
        let p = guess_preset(file, unet).unwrap();
        assert_eq!(p.name, name, "{file}");
        assert_eq!(p.sampling.parameterization, Parameterization::Edm, "{file}");
    }
    let p = guess_preset("cd_imagenet64_l2.pt", &imagenet).unwrap();
    assert_eq!(p.sampling.parameterization, Parameterization::Consistency);
    let p = guess_preset("some_model.pt", &imagenet).unwrap();
    assert_eq!(p.sampling.parameterization, Parameterization::Consistency);
}

#[test]
fn an_edm_file_name_makes_a_bare_checkpoint_a_teacher() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edm_tiny.pt");
    std::fs::copy(model_path('a'), &path).unwrap();
    let ck = Checkpoint::open(&path, None).unwrap();
    assert_eq!(ck.config.sampling.parameterization, Parameterization::Edm);
    assert_eq!(ck.parameterization_source, ParameterizationSource::FileName);
    let plain = Checkpoint::open(&model_path('a'), None).unwrap();
    assert_eq!(
        plain.config.sampling.parameterization,
        Parameterization::Consistency
    );
    assert_eq!(
        plain.parameterization_source,
        ParameterizationSource::Assumed
    );
}

#[test]
fn cli_generates_with_a_teacher_and_info_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("edm_tiny.pt");
    std::fs::copy(model_path('a'), &model).unwrap();
    let model = model.to_str().unwrap();
    let (ok, out, err) = cmpaint(&["info", "--model", model]);
    assert!(ok, "{err}");
    assert!(
        out.contains("parameterization: edm (from the file name"),
        "{out}"
    );

    // the reference invocation, replaying the fixture's draw: the output is the reference's
    let fx = candle_core::safetensors::load(fixture("edm_a.safetensors"), &Device::Cpu).unwrap();
    let noise = dir.path().join("noise.safetensors");
    candle_core::safetensors::save(
        &HashMap::from([("noise".to_string(), fx["heun_noise"].clone())]),
        &noise,
    )
    .unwrap();
    let out_path = dir.path().join("x.safetensors");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        model,
        "--sampler",
        "heun",
        "--steps",
        "10",
        "--class",
        "3,7",
        "--noise",
        noise.to_str().unwrap(),
        "--device",
        "cpu",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("19 network calls"), "{err}");
    let x = candle_core::safetensors::load(&out_path, &Device::Cpu).unwrap()["image"].clone();
    assert!(max_abs_diff(&x, &fx["heun_out"]) <= 1e-4);

    // a consistency model refuses the teacher's options; --parameterization overrides the name
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        model_path('a').to_str().unwrap(),
        "--sampler",
        "heun",
        "--class",
        "1",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("consistency model"), "{err}");
    let (ok, out, _) = cmpaint(&[
        "info",
        "--model",
        model,
        "--parameterization",
        "consistency",
    ]);
    assert!(ok && out.contains("parameterization: consistency (set by --parameterization)"));
}
