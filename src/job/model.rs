//! A model as jobs know it: loaded on a device, hashed for recipes, and described for the UI.

use crate::engine::latent::{GuidanceKind, LatentModel, is_single_file};
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
    /// samples in one step, an EDM teacher with Heun over N grid points) and sketch strength. A
    /// latent model reads only the sketch strength.
    pub sampling: SamplingConfig,
    /// A latent consistency model's own facts (None: a pixel-space model).
    pub latent: Option<Box<LatentFacts>>,
}

/// What planning and the UI know of a latent consistency model.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentFacts {
    /// It runs classifier-free guidance (SD + LCM-LoRA; a negative prompt is read), rather than
    /// reading the guidance scale as an embedding (a distilled LCM).
    pub cfg: bool,
    /// The default guidance scale: 8 with the embedding, 1.5 with CFG.
    pub guidance: f64,
    /// The default number of LCM steps (4) and the most it takes (its distillation grid's, 50).
    pub steps: usize,
    pub max_steps: usize,
    /// Pixels per latent pixel (8), and the side picture sizes must be a multiple of (64 for SD).
    pub vae_factor: usize,
    pub size_multiple: usize,
    /// The folder's parts and their files' sizes: tokenizer, text encoder, UNet, VAE, (LoRA).
    pub parts: Vec<(String, u64)>,
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
    /// A LoRA to merge into a latent model's UNet (the CLI's `--lora`).
    pub lora: Option<PathBuf>,
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
        latent: None,
    };
    Ok(LoadedModel {
        info,
        size_guessed: ck.config_source == ConfigSource::Inferred,
        config: ck.config,
        unet,
    })
}

/// Any model a job runs: a pixel-space model (consistency model or EDM teacher), or a latent
/// consistency model (a diffusers Stable Diffusion folder: LCM, or SD with an LCM-LoRA).
pub enum AnyModel {
    Pixel(Box<LoadedModel>),
    Latent(Box<LatentLoaded>),
}

pub struct LatentLoaded {
    pub info: ModelInfo,
    pub pipeline: LatentModel,
}

impl AnyModel {
    pub fn info(&self) -> &ModelInfo {
        match self {
            AnyModel::Pixel(m) => &m.info,
            AnyModel::Latent(m) => &m.info,
        }
    }

    /// The pixel-space model, or why `what` needs one.
    pub fn pixel(&self, what: &str) -> Result<&LoadedModel> {
        match self {
            AnyModel::Pixel(m) => Ok(m),
            AnyModel::Latent(m) => Err(EngineError::InvalidInput(format!(
                "{what} needs a pixel-space model: {} works in a VAE's latent space",
                m.info.name
            ))),
        }
    }
}

/// Whether `path` is a latent model's folder: a diffusers pipeline with a text encoder and a VAE.
pub fn is_latent_folder(path: &Path) -> bool {
    path.join("model_index.json").is_file()
        && path.join("text_encoder").is_dir()
        && path.join("vae").is_dir()
}

/// Whether `path` is a latent model: such a folder, or a Stable Diffusion 1.x single-file checkpoint.
pub fn is_latent_model(path: &Path) -> bool {
    is_latent_folder(path) || is_single_file(path)
}

/// Opens and loads any model: a latent model's folder, else as [`load_model`].
pub fn load_any(source: &ModelSource, device: &Device, precision: Precision) -> Result<AnyModel> {
    let Some(dir) = source.file.as_deref().filter(|p| is_latent_model(p)) else {
        if let Some(lora) = &source.lora {
            return Err(EngineError::InvalidInput(format!(
                "{}: a LoRA goes with a Stable Diffusion folder, not this model",
                lora.display()
            )));
        }
        return Ok(AnyModel::Pixel(Box::new(load_model(
            source, device, precision,
        )?)));
    };
    if source.config.is_some() || source.parameterization.is_some() {
        return Err(EngineError::InvalidInput(format!(
            "{}: --config and --parameterization are for pixel-space models; a latent model says \
             its own",
            dir.display()
        )));
    }
    let folder_sha = hash_weights(dir)
        .map_err(|e| EngineError::InvalidInput(format!("{}: cannot read: {e}", dir.display())))?;
    let sha256 = with_lora_sha256(&folder_sha, source.lora.as_deref())?;
    let pipeline = LatentModel::load(dir, source.lora.as_deref(), device, precision)?;
    let name = match dir.is_file() {
        true => dir.file_stem(),
        false => dir.file_name(),
    }
    .map(|n| n.to_string_lossy().into_owned())
    .unwrap_or_else(|| dir.display().to_string());
    let cfg = pipeline.guidance_kind() == GuidanceKind::ClassifierFree;
    let unet = &pipeline.unet.config;
    let vae_factor = pipeline.vae_factor();
    let info = ModelInfo {
        name: match &source.lora {
            Some(l) => format!(
                "{name} + {}",
                l.file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            ),
            None => name,
        },
        file: Some(dir.to_path_buf()),
        sha256,
        image_size: pipeline.native_size(),
        num_classes: None,
        styles: Vec::new(),
        parameters: pipeline.parameters(),
        sampling: SamplingConfig {
            sketch_strength: Some(LATENT_SKETCH_STRENGTH),
            ..SamplingConfig::default()
        },
        latent: Some(Box::new(LatentFacts {
            cfg,
            guidance: pipeline.default_guidance(),
            steps: 4,
            max_steps: pipeline.scheduler.config.original_inference_steps,
            vae_factor,
            size_multiple: vae_factor << unet.downsamplings(),
            parts: pipeline
                .parts
                .iter()
                .map(|p| (p.name.to_string(), p.bytes))
                .collect(),
        })),
    };
    Ok(AnyModel::Latent(Box::new(LatentLoaded { info, pipeline })))
}

/// A latent model's default sketch → image strength: half-way up the LCM grid, where a painted
/// sketch keeps its layout and colours and gains the model's detail.
const LATENT_SKETCH_STRENGTH: f64 = 0.5;

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

/// A weight file's SHA-256; for a diffusers folder, of its files in name order (configs included):
/// the UNet's, and a latent model's every part.
pub fn hash_weights(path: &Path) -> std::io::Result<String> {
    if !path.is_dir() {
        return sha256_file(path);
    }
    let parts: &[&str] = if is_latent_folder(path) {
        &["", "unet", "text_encoder", "tokenizer", "vae", "scheduler"]
    } else {
        &["", "unet"]
    };
    let mut files = Vec::new();
    for dir in parts.iter().map(|p| path.join(p)) {
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

/// A model's SHA-256 with a LoRA merged into it: of the folder's hash and the LoRA file's, so a
/// recipe names the network that ran (unchanged without a LoRA).
pub fn with_lora_sha256(model_sha: &str, lora: Option<&Path>) -> Result<String> {
    let Some(lora) = lora else {
        return Ok(model_sha.to_string());
    };
    let lora_sha = sha256_file(lora)
        .map_err(|e| EngineError::InvalidInput(format!("{}: cannot read: {e}", lora.display())))?;
    Ok(sha256_hex(format!("{model_sha}\n{lora_sha}").as_bytes()))
}

/// Whether a model path is a built-in model's name (`builtin:teacher`) rather than a file.
pub fn is_builtin_name(path: &Path) -> bool {
    default_model::named(path).is_some()
}
