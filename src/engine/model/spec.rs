//! A model as the sampler sees it: the network's configuration plus the noise schedule it was trained
//! with, and one preset per released checkpoint (scripts/launch.sh via cm_reference §c.2, §f.1).

use super::config::UNetConfig;
use serde::{Deserialize, Serialize};

/// The most grid points a model or a run may ask for (the released grids have 18–201).
pub const MAX_STEPS: usize = 10_000;

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
        self.sketch_strength
            .unwrap_or(crate::engine::pipeline::PAPER_SKETCH_STRENGTH)
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

/// Everything needed to build and sample a model. Stored as JSON in the metadata of the project's own
/// safetensors files (key `cmpaint.config`) and accepted as a `--config` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub name: String,
    pub unet: UNetConfig,
    #[serde(default)]
    pub sampling: SamplingConfig,
}

impl ModelConfig {
    /// Checks the network's and the sampler's settings (a file's metadata or a config file is not
    /// trusted): one line saying which value is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.unet.validate()?;
        self.sampling.validate()
    }
}

/// One preset per released checkpoint: name, network, N and the two-step `ts` of scripts/launch.sh.
/// The EDM teachers' N is the Heun steps of the reference's `--sampler heun --steps 40`.
pub fn presets() -> Vec<ModelConfig> {
    let imagenet = UNetConfig::imagenet64();
    let lsun = UNetConfig::lsun256();
    let p = |name: &str, unet: &UNetConfig, steps, ts: Option<&[usize]>| ModelConfig {
        name: name.to_string(),
        unet: unet.clone(),
        sampling: SamplingConfig {
            parameterization: Parameterization::from_file_name(name).unwrap_or_default(),
            ..SamplingConfig::with_grid(steps, ts.map(<[usize]>::to_vec))
        },
    };
    vec![
        p("cd_imagenet64_l2", &imagenet, 40, Some(&[0, 22, 39])),
        p("cd_imagenet64_lpips", &imagenet, 40, Some(&[0, 22, 39])),
        p("ct_imagenet64", &imagenet, 201, Some(&[0, 106, 200])),
        p("cd_bedroom256_lpips", &lsun, 40, Some(&[0, 17, 39])),
        p("cd_bedroom256_l2", &lsun, 40, Some(&[0, 18, 39])),
        p("ct_bedroom256", &lsun, 151, Some(&[0, 67, 150])),
        p("ct_cat256", &lsun, 151, Some(&[0, 62, 150])),
        // launch.sh gives no two-step list for the CD cat models.
        p("cd_cat256_l2", &lsun, 40, None),
        p("cd_cat256_lpips", &lsun, 40, None),
        // The EDM teachers the CD students were distilled from (same networks).
        p("edm_imagenet64_ema", &imagenet, 40, None),
        p("edm_bedroom256_ema", &lsun, 40, None),
        p("edm_cat256_ema", &lsun, 40, None),
    ]
}

pub fn preset(name: &str) -> Option<ModelConfig> {
    presets().into_iter().find(|p| p.name == name)
}

/// The preset a file most likely is: among the presets with this network (image size aside, which
/// shapes cannot tell), the one whose name occurs in the file name (longest match), else the first
/// of the parameterization the file name implies (an `edm_` file gets an EDM teacher's preset).
pub fn guess_preset(file_name: &str, unet: &UNetConfig) -> Option<ModelConfig> {
    let implied = Parameterization::from_file_name(file_name).unwrap_or_default();
    let same_net: Vec<ModelConfig> = presets()
        .into_iter()
        .filter(|p| {
            p.unet
                == UNetConfig {
                    image_size: p.unet.image_size,
                    ..unet.clone()
                }
        })
        .collect();
    let by_name = same_net
        .iter()
        .filter(|p| file_name.contains(&p.name))
        .max_by_key(|p| p.name.len())
        .cloned();
    by_name.or_else(|| {
        same_net
            .into_iter()
            .find(|p| p.sampling.parameterization == implied)
    })
}
