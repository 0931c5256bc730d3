//! A model as jobs know it: loaded on a device, hashed for recipes, and described for the UI.

use crate::engine::model::default_model;
use crate::engine::model::load::{Checkpoint, ConfigSource, ParameterizationSource};
use crate::engine::model::spec::{ModelConfig, Parameterization, SamplingConfig};
use crate::engine::model::unet::UNet;
use crate::engine::{EngineError, Precision, Result};
use crate::recipe::{ModelRef, sha256_file, sha256_hex};
use candle_core::Device;
use std::path::{Path, PathBuf};

/// What the UI knows about the loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    /// None: the built-in model.
    pub file: Option<PathBuf>,
    pub sha256: String,
    pub image_size: usize,
    /// The classes a user picks from (for a model with styles: the label table over the styles).
    pub num_classes: Option<usize>,
    /// The model's styles, a second label beside the class (empty: none).
    pub styles: Vec<String>,
    pub parameters: usize,
    /// Its σ range, grid N and tuned multistep indices, its parameterization (a consistency model
    /// samples in one step, an EDM teacher with Heun over N grid points) and sketch strength.
    pub sampling: SamplingConfig,
}

impl ModelInfo {
    /// The model's default sketch → image strength (else the paper's).
    pub fn sketch_strength(&self) -> f64 {
        self.sampling.default_sketch_strength()
    }

    pub fn parameterization(&self) -> Parameterization {
        self.sampling.parameterization
    }

    pub fn model_ref(&self) -> ModelRef {
        ModelRef {
            name: self.name.clone(),
            file: self.file.as_ref().map(|f| f.display().to_string()),
            sha256: self.sha256.clone(),
        }
    }
}

pub struct LoadedModel {
    pub info: ModelInfo,
    pub config: ModelConfig,
    pub unet: UNet,
    /// The image size is a guess (a bare checkpoint of no known preset): inputs may set it.
    pub size_guessed: bool,
}

/// Where a model comes from: a file (None: the built-in one), and what replaces the file's own
/// settings (the CLI's `--config` and `--parameterization`).
#[derive(Debug, Clone, Default)]
pub struct ModelSource {
    pub file: Option<PathBuf>,
    /// A preset or config file's settings, and where they came from.
    pub config: Option<(ModelConfig, PathBuf)>,
    pub parameterization: Option<Parameterization>,
}

impl ModelSource {
    pub fn file(file: Option<&Path>) -> Self {
        Self {
            file: file.map(Path::to_path_buf),
            ..Self::default()
        }
    }

    /// Opens the weights (nothing is loaded yet) with the overrides applied.
    pub fn open(&self) -> Result<Checkpoint> {
        let config = self.config.clone();
        let mut ck = match &self.file {
            Some(path) => Checkpoint::open_any(path, config)?,
            None => Checkpoint::embedded_default(config)?,
        };
        if let Some(p) = self.parameterization {
            ck.config.sampling.parameterization = p;
            ck.parameterization_source = ParameterizationSource::Override;
        }
        Ok(ck)
    }
}

/// Opens and loads a model and hashes its weights for recipes.
pub fn load_model(
    source: &ModelSource,
    device: &Device,
    precision: Precision,
) -> Result<LoadedModel> {
    let file = source.file.as_deref();
    let ck = source.open()?;
    let sha256 = weights_sha256(file)?;
    let unet = ck.load_with(device, precision)?;
    let cfg = &ck.config;
    let info = ModelInfo {
        name: cfg.name.clone(),
        file: file.map(Path::to_path_buf),
        sha256,
        image_size: cfg.unet.image_size,
        num_classes: cfg.classes(),
        styles: cfg.styles.clone(),
        parameters: cfg.unet.parameter_count(),
        sampling: cfg.sampling.clone(),
    };
    Ok(LoadedModel {
        info,
        size_guessed: ck.config_source == ConfigSource::Inferred,
        config: ck.config,
        unet,
    })
}

/// The SHA-256 recipes name a model by: of a weight file (or a built-in model's bytes; None: the
/// built-in default), without loading it.
pub fn weights_sha256(file: Option<&Path>) -> Result<String> {
    Ok(match file {
        Some(path) if let Some(b) = default_model::named(path) => sha256_hex(b.bytes),
        Some(path) => hash_weights(path).map_err(|e| {
            EngineError::InvalidInput(format!("{}: cannot read: {e}", path.display()))
        })?,
        None => sha256_hex(default_model::BYTES),
    })
}

/// A weight file's SHA-256; for a diffusers folder, of its files in name order (config included).
pub fn hash_weights(path: &Path) -> std::io::Result<String> {
    if !path.is_dir() {
        return sha256_file(path);
    }
    let mut files = Vec::new();
    for dir in [path.to_path_buf(), path.join("unet")] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type()?.is_file() {
                    files.push(e.path());
                }
            }
        }
    }
    files.sort();
    let hashes: Vec<String> = files
        .iter()
        .map(|f| sha256_file(f))
        .collect::<std::io::Result<_>>()?;
    Ok(sha256_hex(hashes.join("\n").as_bytes()))
}

/// Whether a model path is a built-in model's name (`builtin:teacher`) rather than a file.
pub fn is_builtin_name(path: &Path) -> bool {
    default_model::named(path).is_some()
}
