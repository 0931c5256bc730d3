//! The engine's tasks wired to a model's schedule: generation from noise, Algorithm-4 edits, denoising
//! and seed interpolation. Shapes and arguments are checked here, so the maths below can assume them.

use super::cm::edit::{Colorize, Inpaint, KeepNothing, Replacement, SuperRes, algorithm4, slerp};
use super::cm::noise::NoiseSource;
use super::cm::param::{Denoiser, Network};
pub use super::cm::pf_ode::OdeOptions;
use super::cm::pf_ode::{pf_ode_sigmas, pf_ode_sigmas_from, sample_pf_ode};
use super::cm::sample::{OnStep, Step, sample_multistep, sample_onestep};
use super::cm::schedule::{karras_sigma, sigmas_from_ts, validate_ts};
use super::error::{EngineError, Result};
use super::model::spec::{Parameterization, SamplingConfig};
use candle_core::{Device, Tensor};

/// What to generate: the draw shape `[B, C, H, W]`, optional labels, and how to sample.
pub struct GenerateRequest<'a> {
    pub shape: [usize; 4],
    pub class_labels: Option<&'a [u32]>,
    /// Consistency models — None: one step; Some(ts): multistep over `ts` on a grid of `steps`
    /// points. EDM teachers take no `ts`: they integrate over all `steps` grid points.
    pub ts: Option<&'a [usize]>,
    pub steps: usize,
    /// EDM teachers only (None there = Heun without churn).
    pub ode: Option<OdeOptions>,
}

/// Checks that the sampler options fit the model's parameterization.
fn check_sampler(sampling: &SamplingConfig, ts: bool, ode: bool) -> Result<()> {
    let invalid = |m: &str| Err(EngineError::InvalidInput(m.into()));
    match sampling.parameterization {
        Parameterization::Consistency if ode => invalid(
            "the Heun and Euler samplers are for EDM teachers; this is a consistency model (one step, or --ts)",
        ),
        Parameterization::Edm if ts => invalid(
            "an EDM teacher integrates over every grid point: give --steps N (and --sampler), not --ts",
        ),
        _ => Ok(()),
    }
}

/// Draws the initial noise (first draw of `noise`), then samples. Returns None if cancelled.
pub fn generate<N: Network + ?Sized>(
    net: &N,
    sampling: &SamplingConfig,
    req: &GenerateRequest,
    noise: &mut dyn NoiseSource,
    device: &Device,
    on_step: OnStep,
) -> Result<Option<Tensor>> {
    check_sampler(sampling, req.ts.is_some(), req.ode.is_some())?;
    let class_labels = labels_tensor(req.class_labels, req.shape[0], device)?;
    let f = denoiser(net, sampling, class_labels);
    let z = noise.next(&req.shape)?.to_device(device)?;
    if sampling.parameterization == Parameterization::Edm {
        if req.steps < 2 {
            return Err(EngineError::InvalidInput(format!(
                "an EDM teacher needs at least 2 steps, got {}",
                req.steps
            )));
        }
        let ode = req.ode.unwrap_or_default();
        let sigmas = pf_ode_sigmas(req.steps, sampling);
        let x = (z * sigmas[0])?;
        return Ok(sample_pf_ode(&f, &ode, x, &sigmas, noise, &Ok, on_step)?);
    }
    match req.ts {
        None => {
            let x = sample_onestep(&f, &z, sampling.sigma_max)?;
            let _ = on_step(Step::progress(1, 1));
            Ok(Some(x))
        }
        Some(ts) => {
            validate_ts(ts, req.steps).map_err(EngineError::InvalidInput)?;
            let sigmas = sigmas_from_ts(ts, req.steps, sampling);
            let x = (z * sigmas[0])?;
            Ok(sample_multistep(
                &f,
                x,
                &sigmas,
                sampling.sigma_max,
                noise,
                on_step,
            )?)
        }
    }
}

fn labels_tensor(labels: Option<&[u32]>, batch: usize, device: &Device) -> Result<Option<Tensor>> {
    match labels {
        Some(labels) if labels.len() != batch => Err(EngineError::InvalidInput(format!(
            "{} class label(s) for a batch of {batch}",
            labels.len()
        ))),
        Some(labels) => Ok(Some(Tensor::new(labels, device)?)),
        None => Ok(None),
    }
}

fn denoiser<'a, N: Network + ?Sized>(
    net: &'a N,
    s: &SamplingConfig,
    class_labels: Option<Tensor>,
) -> Denoiser<'a, N> {
    Denoiser {
        net,
        parameterization: s.parameterization,
        sigma_data: s.sigma_data,
        sigma_min: s.sigma_min,
        class_labels,
    }
}

/// A zero-shot edit (paper Algorithm 4).
pub enum EditTask {
    /// `regenerate`: `[B or 1, 1, H, W]` in [0, 1]; 1 = regenerate, 0 = keep, between = soft edge.
    Inpaint {
        regenerate: Tensor,
    },
    Colorize,
    SuperRes {
        factor: usize,
    },
    /// Stroke-guided editing: the painting noised to the first σ of `ts`, then the multistep sampler.
    SdEdit,
}

/// The paper's editing grid (Appendix D): N = 40, every index 0…39 (39 network calls); SDEdit starts
/// at index 16 and evaluates at 16 and 20 (σ = 5.38, 2.24).
pub const EDIT_STEPS: usize = 40;
pub const SDEDIT_START: usize = 16;

/// Default `ts` of a task on the N = 40 grid, as the reference runs it.
pub fn default_edit_ts(task: &EditTask) -> Vec<usize> {
    match task {
        EditTask::SdEdit => vec![SDEDIT_START, 20, EDIT_STEPS - 1],
        _ => (0..EDIT_STEPS).collect(),
    }
}

/// SDEdit time indices starting at grid index `start` of N: evaluate at `start`, then at the index
/// whose σ is nearest σ_start·(σ₂₀/σ₁₆) of the N = 40 grid (the paper's ratio 2.24/5.38), and end at
/// N−1. `start` = 16 of N = 40 gives the paper's (16, 20, 39); near the end of the grid, one call.
pub fn sdedit_ts(start: usize, steps: usize, s: &SamplingConfig) -> Vec<usize> {
    let last = steps - 1;
    let start = start.min(last - 1);
    let ratio = karras_sigma(20, EDIT_STEPS, s) / karras_sigma(SDEDIT_START, EDIT_STEPS, s);
    let target = karras_sigma(start, steps, s) * ratio;
    let distance = |i: usize| (karras_sigma(i, steps, s) - target).abs();
    match (start + 1..last).min_by(|&a, &b| distance(a).total_cmp(&distance(b))) {
        Some(second) => vec![start, second, last],
        None => vec![start, last],
    }
}

/// `--strength s` in [0, 1] → start index round((1 − s)·(N − 1)): 1 starts from pure noise (index 0),
/// 0 from the painting itself (index N−1). On N = 40, s = 0.59 is the paper's index 16.
pub fn strength_to_index(strength: f64, steps: usize) -> Result<usize> {
    if !(0.0..=1.0).contains(&strength) {
        return Err(EngineError::InvalidInput(format!(
            "strength {strength} is outside [0, 1]"
        )));
    }
    Ok(((1.0 - strength) * (steps - 1) as f64).round() as usize)
}

pub struct EditRequest<'a> {
    /// `[B, 3, H, W]` in [−1, 1]: the picture (for superres, already at full size).
    pub images: &'a Tensor,
    pub task: &'a EditTask,
    pub class_labels: Option<&'a [u32]>,
    /// Consistency models: the Algorithm-4 time indices. EDM teachers: only `ts[0]`, the grid index
    /// the PF-ODE starts from (every later grid point is a step).
    pub ts: &'a [usize],
    pub steps: usize,
    /// EDM teachers only (None there = Heun without churn).
    pub ode: Option<OdeOptions>,
}

/// Runs an edit. The result is not clamped (see `algorithm4`), except that inpainting composites the
/// kept pixels (mask 0) from the input at the end, so they stay exactly as they were. None when
/// cancelled. Noise: draw 0 is the initial one (×σ of `ts[0]`), then one per step.
///
/// On an EDM teacher the same replacement is applied to every denoised estimate D(x, σ) of the
/// PF-ODE sampler, from σ of grid index `ts[0]` down to 0 (for SDEdit: noise the picture to `σ_{ts[0]}`,
/// then Heun). Draws: the initial one, plus one per step with churn.
pub fn edit<N: Network + ?Sized>(
    net: &N,
    sampling: &SamplingConfig,
    req: &EditRequest,
    noise: &mut dyn NoiseSource,
    on_step: OnStep,
) -> Result<Option<Tensor>> {
    let images = req.images;
    let (batch, channels, h, w) = images.dims4()?;
    if channels != 3 {
        return Err(EngineError::InvalidInput(format!(
            "expected an RGB image, got {channels} channels"
        )));
    }
    let edm = sampling.parameterization == Parameterization::Edm;
    check_sampler(sampling, false, req.ode.is_some())?;
    if edm {
        // only the start matters: a one-entry list is enough, a longer one must still be a list
        if req.ts.len() != 1 {
            validate_ts(req.ts, req.steps).map_err(EngineError::InvalidInput)?;
        }
        match req.ts.first() {
            Some(&t) if t + 1 < req.steps => {}
            first => {
                return Err(EngineError::InvalidInput(format!(
                    "an EDM edit starts at a grid index below N−1 = {}, got {}",
                    req.steps.saturating_sub(1),
                    first.map_or("none".into(), |t| t.to_string())
                )));
            }
        }
    } else {
        validate_ts(req.ts, req.steps).map_err(EngineError::InvalidInput)?;
    }
    let op: Box<dyn Replacement> = match req.task {
        EditTask::Inpaint { regenerate } => {
            let (mb, mc, mh, mw) = regenerate.dims4()?;
            if (mh, mw) != (h, w) || mc != 1 || (mb != 1 && mb != batch) {
                return Err(EngineError::InvalidInput(format!(
                    "the mask is {mw}×{mh}, the image {w}×{h}: they must be the same size"
                )));
            }
            if regenerate.max_all()?.to_scalar::<f32>()? <= 0.0 {
                return Err(EngineError::InvalidInput(
                    "the mask is all black: nothing to regenerate".into(),
                ));
            }
            Box::new(Inpaint {
                keep: regenerate.affine(-1.0, 1.0)?,
            })
        }
        EditTask::Colorize => Box::new(Colorize),
        EditTask::SuperRes { factor } => {
            if *factor < 2 || h % factor != 0 || w % factor != 0 {
                return Err(EngineError::InvalidInput(format!(
                    "super-resolution factor {factor} must be at least 2 and divide the {w}×{h} image"
                )));
            }
            Box::new(SuperRes { factor: *factor })
        }
        EditTask::SdEdit => Box::new(KeepNothing),
    };
    let labels = labels_tensor(req.class_labels, batch, images.device())?;
    let f = denoiser(net, sampling, labels);
    let result = if edm {
        let ode = req.ode.unwrap_or_default();
        let sigmas = pf_ode_sigmas_from(req.ts[0], req.steps, sampling);
        let y = op.reference(images)?;
        let z = noise.next(y.dims())?.to_device(y.device())?;
        let x = (&y + (z * sigmas[0])?)?;
        // the known part from the picture itself (see `algorithm4`)
        let replace = |x0: Tensor| op.replace(images, &x0);
        sample_pf_ode(&f, &ode, x, &sigmas, noise, &replace, on_step)?
    } else {
        let sigmas = sigmas_from_ts(req.ts, req.steps, sampling);
        algorithm4(
            &f,
            images,
            op.as_ref(),
            &sigmas,
            sampling.sigma_max,
            noise,
            on_step,
        )?
    };
    let Some(x) = result else {
        return Ok(None);
    };
    Ok(Some(match req.task {
        EditTask::Inpaint { regenerate } => {
            let kept = regenerate.eq(0f32)?.broadcast_as(x.shape())?;
            kept.where_cond(images, &x)?
        }
        _ => x,
    }))
}

/// Denoising: the consistency function itself, clamp(f(x, σ)), one network call.
pub fn denoise<N: Network + ?Sized>(
    net: &N,
    sampling: &SamplingConfig,
    x: &Tensor,
    sigma: f64,
    class_labels: Option<&[u32]>,
) -> Result<Tensor> {
    if !(sampling.sigma_min..=sampling.sigma_max).contains(&sigma) {
        return Err(EngineError::InvalidInput(format!(
            "σ = {sigma} is outside the model's range [{}, {}]",
            sampling.sigma_min, sampling.sigma_max
        )));
    }
    let labels = labels_tensor(class_labels, x.dim(0)?, x.device())?;
    Ok(denoiser(net, sampling, labels).denoise(x, sigma)?)
}

/// Images along the great circle between the noises `z_a` and `z_b` (`[B, 3, H, W]` standard
/// normals), one per α: one step of a consistency model, or an EDM teacher's deterministic Heun run
/// over its `steps` grid points.
pub fn interpolate<N: Network + ?Sized>(
    net: &N,
    sampling: &SamplingConfig,
    z_a: &Tensor,
    z_b: &Tensor,
    alphas: &[f64],
    class_labels: Option<&[u32]>,
) -> Result<Vec<Tensor>> {
    if z_a.dims() != z_b.dims() {
        return Err(EngineError::InvalidInput(format!(
            "noises of shapes {:?} and {:?}",
            z_a.dims(),
            z_b.dims()
        )));
    }
    if let Some(a) = alphas.iter().find(|a| !(0.0..=1.0).contains(*a)) {
        return Err(EngineError::InvalidInput(format!(
            "α = {a} is outside [0, 1]"
        )));
    }
    let labels = labels_tensor(class_labels, z_a.dim(0)?, z_a.device())?;
    let f = denoiser(net, sampling, labels);
    alphas
        .iter()
        .map(|&alpha| {
            let z = slerp(z_a, z_b, alpha)?;
            if sampling.parameterization == Parameterization::Consistency {
                return Ok(sample_onestep(&f, &z, sampling.sigma_max)?);
            }
            // a teacher's frame is its deterministic Heun trajectory from the interpolated noise
            let sigmas = pf_ode_sigmas(sampling.steps, sampling);
            let x = sample_pf_ode(
                &f,
                &OdeOptions::default(),
                (z * sigmas[0])?,
                &sigmas,
                &mut NoDraws,
                &Ok,
                &mut super::cm::sample::run_to_end,
            )?;
            Ok(x.expect("run_to_end never cancels"))
        })
        .collect()
}

/// The noise source of a run that draws nothing after its start (the deterministic PF-ODE).
struct NoDraws;

impl NoiseSource for NoDraws {
    fn next(&mut self, _shape: &[usize]) -> candle_core::Result<Tensor> {
        candle_core::bail!("the deterministic sampler draws no noise")
    }
}
