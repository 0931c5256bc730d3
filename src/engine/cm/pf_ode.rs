//! The EDM teachers' samplers: the probability-flow ODE integrated with Heun's method (EDM Algorithm
//! 2, the reference's `sample_heun`) or Euler's (`sample_euler`), with the optional stochastic churn
//! (cm_reference §c.5). The baseline a consistency model's one step is set against: `--steps 40`
//! Heun is 79 network calls.

use super::noise::NoiseSource;
use super::param::{Denoiser, Network};
use super::sample::{OnStep, Step};
use super::sampling::SamplingConfig;
use super::schedule::karras_sigma;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// Second order: a correction call at σ_{i+1} after each Euler step, except the last (to σ = 0).
    #[default]
    Heun,
    /// First order: one call per step.
    Euler,
}

/// EDM's stochastic churn (the reference's `s_churn`, `s_tmin`, `s_tmax`, `s_noise`): before a step
/// at σ_i in [s_tmin, s_tmax], noise is added to raise σ_i to σ̂ = σ_i(1 + γ), γ = min(s_churn / steps,
/// √2 − 1), with draws scaled by s_noise. The default (s_churn = 0) is the deterministic ODE.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Churn {
    pub s_churn: f64,
    pub s_tmin: f64,
    pub s_tmax: f64,
    pub s_noise: f64,
}

impl Default for Churn {
    fn default() -> Self {
        Self {
            s_churn: 0.0,
            s_tmin: 0.0,
            s_tmax: f64::INFINITY,
            s_noise: 1.0,
        }
    }
}

impl Churn {
    /// Whether the sampler draws noise at each step (one draw per step, γ > 0 or not, as the
    /// reference does, so replayed draws line up with its steps).
    pub fn draws(&self) -> bool {
        self.s_churn > 0.0
    }

    fn gamma(&self, sigma: f64, steps: usize) -> f64 {
        if (self.s_tmin..=self.s_tmax).contains(&sigma) {
            (self.s_churn / steps as f64).min(2f64.sqrt() - 1.0)
        } else {
            0.0
        }
    }
}

/// How an EDM teacher integrates the PF-ODE: solver and churn (the default: Heun, deterministic).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OdeOptions {
    pub solver: Solver,
    pub churn: Churn,
}

/// The reference's σ list for `steps` steps: the Karras grid from σ_max to σ_min, rounded to f32 as
/// torch computes it, then 0.
pub fn pf_ode_sigmas(steps: usize, cfg: &SamplingConfig) -> Vec<f64> {
    pf_ode_sigmas_from(0, steps, cfg)
}

/// The σ list of `steps` grid points starting at grid index `start` (SDEdit on a teacher): the tail of
/// the same grid, then 0.
pub fn pf_ode_sigmas_from(start: usize, steps: usize, cfg: &SamplingConfig) -> Vec<f64> {
    (start..steps)
        .map(|i| karras_sigma(i, steps, cfg) as f32 as f64)
        .chain([0.0])
        .collect()
}

/// Network calls a run over `sigmas` takes.
pub fn network_calls(solver: Solver, sigmas: &[f64]) -> usize {
    let steps = sigmas.len().saturating_sub(1);
    match solver {
        Solver::Euler => steps,
        // no correction on the step that ends at σ = 0
        Solver::Heun => steps + sigmas[1..].iter().filter(|&&s| s > 0.0).count(),
    }
}

/// Integrates the PF-ODE from `x` (already at `sigmas[0]`) along `sigmas` (descending, ending 0).
/// The denoiser's output is clamped to [−1, 1] and passed through `replace` (identity for sampling;
/// an Algorithm-4 projection for edits) before it is used; the result is clamped too. With churn,
/// one draw of `noise` per step. None when `on_step` cancelled.
pub fn sample_pf_ode<N: Network + ?Sized>(
    d: &Denoiser<N>,
    ode: &OdeOptions,
    x: Tensor,
    sigmas: &[f64],
    noise: &mut dyn NoiseSource,
    replace: &dyn Fn(Tensor) -> Result<Tensor>,
    on_step: OnStep,
) -> Result<Option<Tensor>> {
    let (solver, churn) = (ode.solver, &ode.churn);
    let denoise = |x: &Tensor, sigma: f64| replace(d.denoise(x, sigma)?);
    let steps = sigmas.len().saturating_sub(1);
    let mut x = x;
    for i in 0..steps {
        let (sigma, next) = (sigmas[i], sigmas[i + 1]);
        let mut sigma_hat = sigma;
        if churn.draws() {
            let eps = (noise.next(x.dims())?.to_device(x.device())? * churn.s_noise)?;
            let gamma = churn.gamma(sigma, steps);
            sigma_hat = sigma * (gamma + 1.0);
            if gamma > 0.0 {
                x = (x + (eps * (sigma_hat * sigma_hat - sigma * sigma).sqrt())?)?;
            }
        }
        let estimate = denoise(&x, sigma_hat)?;
        let slope = ((&x - &estimate)? / sigma_hat)?;
        let dt = next - sigma_hat;
        let euler = (&x + (&slope * dt)?)?;
        x = if solver == Solver::Euler || next == 0.0 {
            euler
        } else {
            let slope_next = ((&euler - denoise(&euler, next)?)? / next)?;
            (x + (((slope + slope_next)? / 2.0)? * dt)?)?
        };
        let step = Step {
            done: i + 1,
            total: steps,
            estimate: Some(&estimate),
        };
        if on_step(step).is_break() {
            return Ok(None);
        }
    }
    Ok(Some(x.clamp(-1f32, 1f32)?))
}
