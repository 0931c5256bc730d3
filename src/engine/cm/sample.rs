//! Sampling: one step (paper §3) and multistep (paper Algorithm 1), in the reference's `ts` convention
//! (cm_reference §c.1, §c.2). Algorithm 4 (editing) is the same loop with a replacement step; see
//! `edit.rs`.

use super::noise::NoiseSource;
use super::param::{Denoiser, Network};
use candle_core::{Result, Tensor};
use std::ops::ControlFlow;

/// What a sampler reports after each step: how far it is, and its current clean estimate (x₀ = f(x, σ)
/// of a consistency model, D(x, σ) of an EDM teacher; `[B, 3, H, W]` in [−1, 1]) for live previews.
#[derive(Clone, Copy)]
pub struct Step<'a> {
    pub done: usize,
    pub total: usize,
    /// None where the step's estimate is the result itself (one-step sampling).
    pub estimate: Option<&'a Tensor>,
}

impl Step<'_> {
    /// A step with no estimate to show.
    pub fn progress(done: usize, total: usize) -> Self {
        Self {
            done,
            total,
            estimate: None,
        }
    }
}

/// Called after each step; `Break` cancels the run.
pub type OnStep<'a> = &'a mut dyn FnMut(Step) -> ControlFlow<()>;

/// An `on_step` for callers that neither report progress nor cancel: `&mut run_to_end`.
pub fn run_to_end(_step: Step) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// One-step generation: x = clamp(f(σmax·z, σmax)). `z` is a standard-normal draw.
pub fn sample_onestep<N: Network + ?Sized>(
    f: &Denoiser<N>,
    z: &Tensor,
    sigma_max: f64,
) -> Result<Tensor> {
    f.denoise(&(z * sigma_max)?, sigma_max)
}

/// The loop shared by Algorithms 1 and 4, from an already-noised `x` at `sigmas[0]`: denoise (clamped),
/// apply `replace` to the estimate, then re-noise to the next σ with `sqrt(σ_next² − σmin²)·z`. One
/// network call per σ except the last; the last step's draw is still taken (×0 when the list ends at
/// σmin), as the reference does, so replayed noise files line up. Returns None when cancelled.
pub fn iterate<N: Network + ?Sized>(
    f: &Denoiser<N>,
    x: Tensor,
    sigmas: &[f64],
    sigma_max: f64,
    noise: &mut dyn NoiseSource,
    replace: &dyn Fn(Tensor) -> Result<Tensor>,
    on_step: OnStep,
) -> Result<Option<Tensor>> {
    let mut x = x;
    let steps = sigmas.len().saturating_sub(1);
    for i in 0..steps {
        let x0 = replace(f.denoise(&x, sigmas[i])?)?;
        let next = sigmas[i + 1].clamp(f.sigma_min, sigma_max);
        let z = noise.next(x.dims())?.to_device(x.device())?;
        x = ((&x0) + (z * (next * next - f.sigma_min * f.sigma_min).sqrt())?)?;
        let step = Step {
            done: i + 1,
            total: steps,
            estimate: Some(&x0),
        };
        if on_step(step).is_break() {
            return Ok(None);
        }
    }
    Ok(Some(x))
}

/// Multistep consistency sampling (Algorithm 1) from `x` already noised to `sigmas[0]`; the result is
/// clamped to [−1, 1] like the reference's. Returns None when cancelled.
pub fn sample_multistep<N: Network + ?Sized>(
    f: &Denoiser<N>,
    x: Tensor,
    sigmas: &[f64],
    sigma_max: f64,
    noise: &mut dyn NoiseSource,
    on_step: OnStep,
) -> Result<Option<Tensor>> {
    let x = iterate(f, x, sigmas, sigma_max, noise, &Ok, on_step)?;
    x.map(|x| x.clamp(-1f32, 1f32)).transpose()
}
