//! diffusers' `LCMScheduler`: the discrete-time consistency sampler of latent consistency models.
//!
//! The noise schedule is DDPM's (ᾱ_t over 1000 steps, `scaled_linear` betas for SD). The LCM was
//! distilled on `original_inference_steps` (50) evenly spaced timesteps 19, 39, …, 999; a run of N
//! steps takes N of them, evenly spaced from the top. Each step predicts x₀ from the network's ε (or
//! v), applies the consistency boundary scalings c_skip, c_out at t·`timestep_scaling` with σ_data
//! 0.5, and — except after the last step — noises the result again to the next timestep:
//! x = √ᾱ_prev·x₀ + √(1 − ᾱ_prev)·z.

use super::nn;
use crate::engine::error::{EngineError, Result};
use candle_core::Tensor;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct LcmConfig {
    #[serde(default = "train_steps")]
    pub num_train_timesteps: usize,
    #[serde(default = "beta_start")]
    pub beta_start: f64,
    #[serde(default = "beta_end")]
    pub beta_end: f64,
    #[serde(default = "scaled_linear")]
    pub beta_schedule: String,
    #[serde(default = "original_steps")]
    pub original_inference_steps: usize,
    #[serde(default = "timestep_scaling")]
    pub timestep_scaling: f64,
    #[serde(default = "epsilon")]
    pub prediction_type: String,
    #[serde(default)]
    pub clip_sample: bool,
    #[serde(default = "one")]
    pub clip_sample_range: f64,
}

fn train_steps() -> usize {
    1000
}
fn beta_start() -> f64 {
    0.00085
}
fn beta_end() -> f64 {
    0.012
}
fn scaled_linear() -> String {
    "scaled_linear".into()
}
fn original_steps() -> usize {
    50
}
fn timestep_scaling() -> f64 {
    10.0
}
fn epsilon() -> String {
    "epsilon".into()
}
fn one() -> f64 {
    1.0
}

impl Default for LcmConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every field has a default")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prediction {
    Epsilon,
    VPrediction,
    Sample,
}

pub struct LcmScheduler {
    pub config: LcmConfig,
    pub prediction: Prediction,
    /// ᾱ_t for t = 0 … 999, in f32 as PyTorch's cumprod makes them.
    alphas_cumprod: Vec<f32>,
}

impl LcmScheduler {
    /// The scheduler of a `scheduler_config.json` — an LCM's own, or a plain SD model's DDPM/DDIM/PNDM
    /// one (its betas are what matters; an LCM-LoRA samples it with LCM's defaults for the rest).
    pub fn read(path: &Path) -> Result<Self> {
        Self::new(nn::read_json(path)?)
    }

    pub fn new(config: LcmConfig) -> Result<Self> {
        let prediction = match config.prediction_type.as_str() {
            "epsilon" => Prediction::Epsilon,
            "v_prediction" => Prediction::VPrediction,
            "sample" => Prediction::Sample,
            other => {
                return Err(EngineError::InvalidInput(format!(
                    "scheduler: prediction_type `{other}` (epsilon, v_prediction or sample)"
                )));
            }
        };
        let n = config.num_train_timesteps;
        if n < 2 || config.original_inference_steps == 0 || config.original_inference_steps > n {
            return Err(EngineError::InvalidInput(format!(
                "scheduler: {n} training steps and {} original inference steps",
                config.original_inference_steps
            )));
        }
        let betas: Vec<f32> = match config.beta_schedule.as_str() {
            "scaled_linear" => linspace(config.beta_start.sqrt(), config.beta_end.sqrt(), n)
                .into_iter()
                .map(|b| b * b)
                .collect(),
            "linear" => linspace(config.beta_start, config.beta_end, n),
            other => {
                return Err(EngineError::InvalidInput(format!(
                    "scheduler: beta_schedule `{other}` (scaled_linear or linear)"
                )));
            }
        };
        let mut product = 1f32;
        let alphas_cumprod = betas
            .iter()
            .map(|b| {
                product *= 1.0 - b;
                product
            })
            .collect();
        Ok(Self {
            config,
            prediction,
            alphas_cumprod,
        })
    }

    /// The timesteps of an `steps`-step run, from the top. `strength` < 1 (img2img) keeps the lower
    /// part of the distillation grid, as diffusers does.
    pub fn timesteps(&self, steps: usize, strength: f64) -> Result<Vec<usize>> {
        let original = self.config.original_inference_steps;
        let k = self.config.num_train_timesteps / original;
        let kept = (original as f64 * strength) as usize;
        let grid: Vec<usize> = (1..=kept).rev().map(|i| i * k - 1).collect();
        if steps == 0 || grid.len() / steps < 1 {
            return Err(EngineError::InvalidInput(format!(
                "{steps} steps: an LCM takes 1 to {} at strength {strength}",
                grid.len()
            )));
        }
        // np.floor(np.linspace(0, len, steps, endpoint=False))
        Ok((0..steps)
            .map(|i| grid[((i as f64) * (grid.len() as f64) / (steps as f64)).floor() as usize])
            .collect())
    }

    /// ᾱ_t.
    pub fn alpha(&self, t: usize) -> f64 {
        self.alphas_cumprod[t] as f64
    }

    /// One step at timestep `t`: the network's output at `sample` → the consistency model's x₀
    /// estimate ("denoised"). The next sample noises it to the next timestep ([`Self::add_noise`]).
    pub fn step(&self, model_output: &Tensor, t: usize, sample: &Tensor) -> Result<Tensor> {
        let alpha = self.alpha(t);
        let (a, s) = (alpha.sqrt(), (1.0 - alpha).sqrt());
        let x0 = match self.prediction {
            Prediction::Epsilon => ((sample - (model_output * s)?)? / a)?,
            Prediction::VPrediction => ((sample * a)? - (model_output * s)?)?,
            Prediction::Sample => model_output.clone(),
        };
        let x0 = if self.config.clip_sample {
            let r = self.config.clip_sample_range as f32;
            x0.clamp(-r, r)?
        } else {
            x0
        };
        let (c_skip, c_out) = self.boundary_scalings(t);
        Ok(((x0 * c_out)? + (sample * c_skip)?)?)
    }

    /// c_skip = σ_d²/((t·s)² + σ_d²), c_out = t·s/√((t·s)² + σ_d²), σ_d = 0.5, s = timestep_scaling.
    pub fn boundary_scalings(&self, t: usize) -> (f64, f64) {
        let sigma_data = 0.5f64;
        let scaled = t as f64 * self.config.timestep_scaling;
        let d = scaled * scaled + sigma_data * sigma_data;
        (sigma_data * sigma_data / d, scaled / d.sqrt())
    }

    /// Noises clean latents to timestep `t` (between steps, and img2img's start): √ᾱ_t·x₀ +
    /// √(1 − ᾱ_t)·z.
    pub fn add_noise(&self, x0: &Tensor, z: &Tensor, t: usize) -> Result<Tensor> {
        let alpha = self.alpha(t);
        Ok(((x0 * alpha.sqrt())? + (z * (1.0 - alpha).sqrt())?)?)
    }
}

/// torch.linspace(start, end, n, dtype=float32), in f32 as PyTorch computes it.
fn linspace(start: f64, end: f64, n: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    let step = (end - start) / (n - 1) as f32;
    (0..n)
        .map(|i| {
            // PyTorch fills the second half from the end, for symmetry.
            if i < n / 2 {
                start + step * i as f32
            } else {
                end - step * (n - 1 - i) as f32
            }
        })
        .collect()
}

/// The w-embedding of guidance-distilled LCMs (`get_guidance_scale_embedding`): sin and cos of
/// 1000·w·e^(−ln(10⁴)·i/(half − 1)), in f32 as PyTorch computes it. `w` is the guidance scale − 1.
pub fn guidance_embedding(w: f64, dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let w = w as f32 * 1000.0;
    let step = (10000f32).ln() / (half as f32 - 1.0);
    let args: Vec<f32> = (0..half).map(|i| w * (i as f32 * -step).exp()).collect();
    let mut out: Vec<f32> = args
        .iter()
        .map(|a| a.sin())
        .chain(args.iter().map(|a| a.cos()))
        .collect();
    out.resize(dim, 0.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timesteps_are_diffusers() {
        let s = LcmScheduler::new(LcmConfig::default()).unwrap();
        assert_eq!(s.timesteps(1, 1.0).unwrap(), [999]);
        assert_eq!(s.timesteps(2, 1.0).unwrap(), [999, 499]);
        assert_eq!(s.timesteps(4, 1.0).unwrap(), [999, 759, 499, 259]);
        assert_eq!(
            s.timesteps(8, 1.0).unwrap(),
            [999, 879, 759, 639, 499, 379, 259, 139]
        );
        // img2img at strength 0.5: the grid's lower half
        assert_eq!(s.timesteps(4, 0.5).unwrap(), [499, 379, 259, 139]);
        assert!(s.timesteps(0, 1.0).is_err());
        assert!(s.timesteps(51, 1.0).is_err());
    }
}
