//! A model as the sampler sees it: the network's configuration plus the noise schedule it was trained
//! with, and one preset per released checkpoint (scripts/launch.sh via cm_reference §c.2, §f.1).

use super::config::UNetConfig;
pub use crate::engine::cm::sampling::{
    MAX_STEPS, PAPER_SKETCH_STRENGTH, Parameterization, SamplingConfig,
};
use serde::{Deserialize, Serialize};

/// Everything needed to build and sample a model. Stored as JSON in the metadata of the project's own
/// safetensors files (key `cmpaint.config`) and accepted as a `--config` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub name: String,
    pub unet: UNetConfig,
    #[serde(default)]
    pub sampling: SamplingConfig,
    /// A second label beside the class: the styles the model was trained on (the built-in emoji
    /// models' emoji sets). The network's label is then class·S + style (S styles), so
    /// `unet.num_classes` is the classes times S. Empty: no styles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub styles: Vec<String>,
}

/// The most styles a model may name.
pub const MAX_STYLES: usize = 256;

impl ModelConfig {
    /// Checks the network's and the sampler's settings (a file's metadata or a config file is not
    /// trusted): one line saying which value is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.unet.validate()?;
        self.sampling.validate()?;
        let styles = self.styles.len();
        if styles > MAX_STYLES || self.styles.iter().any(|s| s.trim().is_empty()) {
            return Err(format!(
                "styles must be 1…{MAX_STYLES} names, none empty; got {styles}"
            ));
        }
        match self.unet.num_classes {
            _ if styles == 0 => Ok(()),
            Some(n) if n % styles == 0 => Ok(()),
            n => Err(format!(
                "{styles} styles need a label table of classes × {styles} entries; num_classes is {n:?}"
            )),
        }
    }

    /// The classes a user picks from: the network's labels over the styles.
    pub fn classes(&self) -> Option<usize> {
        self.unet.num_classes.map(|n| n / self.styles.len().max(1))
    }

    /// The network's label for `class` in `style` (class alone where the model has no styles).
    pub fn network_label(&self, class: u32, style: Option<u32>) -> u32 {
        match self.styles.len() as u32 {
            0 => class,
            s => class * s + style.unwrap_or(0),
        }
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
        styles: Vec::new(),
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
