//! How a model samples: its parameterization (how the network's output becomes a denoised image)
//! and its noise schedule — σ range, σ_data, ρ, the grid N and tuned time indices — and sketch
//! strength. The consistency maths reads these; the model's config (`model::spec`) holds them.

use serde::{Deserialize, Serialize};

/// The most grid points a model or a run may ask for (the released grids have 18–201).
pub const MAX_STEPS: usize = 10_000;
/// The paper's SDEdit start as a strength: index 16 of the N = 40 editing grid. A model without a
/// `sketch_strength` of its own uses it.
pub const PAPER_SKETCH_STRENGTH: f64 = 0.59;

/// The Karras schedule and consistency-model constants a checkpoint was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    pub sigma_min: f64,
    pub sigma_max: f64,
    pub sigma_data: f64,
    pub rho: f64,
    /// N: number of points of the Karras grid the `ts` indices refer to.
    pub steps: usize,
    /// The tuned multistep time indices (index 0 = σ_max), ending with N−1; None where the reference
    /// gives none.
    pub ts: Option<Vec<usize>>,
    /// Consistency model or EDM teacher. Absent in files written before EDM models existed: those
    /// are all consistency models.
    #[serde(default)]
    pub parameterization: Parameterization,
    /// The model's own default SDEdit strength for sketch → image (None: the paper's 0.59, chosen for
    /// 256² photographs; the built-in models store what their sketch test chose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sketch_strength: Option<f64>,
}

impl SamplingConfig {
    /// The sketch → image strength to use when none is given.
    pub fn default_sketch_strength(&self) -> f64 {
        self.sketch_strength.unwrap_or(PAPER_SKETCH_STRENGTH)
    }

    /// Checks what the samplers rely on: σ range positive, finite and ordered, a grid of at least two
    /// points, ts indices on it in increasing order, a strength in [0, 1].
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} is {v}; it must be a positive number"))
            }
        };
        positive("sigma_min", self.sigma_min)?;
        positive("sigma_max", self.sigma_max)?;
        positive("sigma_data", self.sigma_data)?;
        positive("rho", self.rho)?;
        if self.sigma_min >= self.sigma_max {
            return Err(format!(
                "sigma_min {} is not below sigma_max {}",
                self.sigma_min, self.sigma_max
            ));
        }
        if !(2..=MAX_STEPS).contains(&self.steps) {
            return Err(format!(
                "steps is {}; the grid needs 2…{MAX_STEPS} points",
                self.steps
            ));
        }
        if let Some(ts) = &self.ts {
            let increasing = ts.windows(2).all(|w| w[0] < w[1]);
            if ts.is_empty() || !increasing || ts.iter().any(|&t| t >= self.steps) {
                return Err(format!(
                    "ts {ts:?} must be increasing indices of the {}-point grid",
                    self.steps
                ));
            }
        }
        if let Some(s) = self.sketch_strength
            && !(0.0..=1.0).contains(&s)
        {
            return Err(format!("sketch_strength is {s}; it must lie in [0, 1]"));
        }
        Ok(())
    }

    pub fn with_grid(steps: usize, ts: Option<Vec<usize>>) -> Self {
        Self {
            sigma_min: 0.002,
            sigma_max: 80.0,
            sigma_data: 0.5,
            rho: 7.0,
            steps,
            ts,
            parameterization: Parameterization::Consistency,
            sketch_strength: None,
        }
    }
}

impl Default for SamplingConfig {
    /// The consistency-distillation grid (N = 40) and no tuned multistep list: a model that is none of
    /// the presets has none.
    fn default() -> Self {
        Self::with_grid(40, None)
    }
}

/// How the network's output becomes a denoised image (cm_reference §a).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parameterization {
    /// The boundary-condition scalings of every CD/CT checkpoint: f(x, σmin) = x. Sampled in one
    /// step or a few (Algorithm 1).
    #[default]
    Consistency,
    /// The EDM scalings of a diffusion teacher (`get_scalings`): a denoiser D(x, σ) that the PF-ODE
    /// samplers (Heun, Euler) integrate in tens of calls.
    Edm,
}

impl Parameterization {
    /// What a file name says: the released teachers are `edm_*.pt`, and a file whose name holds `edm_` is never run
    /// with consistency scalings by accident.
    pub fn from_file_name(file_name: &str) -> Option<Self> {
        file_name.contains("edm_").then_some(Parameterization::Edm)
    }
}

impl std::fmt::Display for Parameterization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Parameterization::Consistency => "consistency",
            Parameterization::Edm => "edm",
        })
    }
}
