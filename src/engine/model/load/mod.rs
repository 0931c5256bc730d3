//! The one place that knows weight-file formats: OpenAI `.pt` (PyTorch zip pickles), the same weights as
//! safetensors under openai names, diffusers `UNet2DModel` folders, and the project's own safetensors
//! with its config in the metadata. Everything is checked against the expected weight list (names,
//! shapes, dtypes) before any tensor data is read, so a wrong file fails with one line naming the problem.
//!
//! `.pt` files are read by candle's pickle interpreter, which only builds plain values and tensors from
//! opcodes: it never imports modules or calls code named in the file.
//!
//! Here: [`Checkpoint`] (open a source, load it). A module per format — `pt`, `safetensors` (the
//! project's own format too), `diffusers` — then `settle` (which configuration, names and sizes; the
//! check of every weight), `weights` (reading one weight at a time) and `memory` (what a run needs).

mod diffusers;
mod memory;
mod pt;
mod safetensors;
mod settle;
mod weights;

pub use diffusers::diffusers_sources;
pub use memory::{activation_bytes, activation_bytes_at, check_run_memory};
pub use safetensors::save_project;

use diffusers::{diffusers_paths, read_diffusers_config, read_diffusers_schedule};
use pt::read_pt;
use safetensors::{WeightBytes, parse_safetensors};
use settle::settle;
use weights::Weights;

use super::config::UNetConfig;
use super::spec::{ModelConfig, SamplingConfig};
use super::unet::UNet;
use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::Precision;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Metadata key under which the project's safetensors store their [`ModelConfig`] as JSON.
pub const CONFIG_METADATA_KEY: &str = "cmpaint.config";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// OpenAI `.pt` state dict (PyTorch zip pickle).
    OpenAiPt,
    /// Safetensors with openai tensor names and no project config.
    OpenAiSafetensors,
    /// diffusers `UNet2DModel` (`config.json` + `diffusion_pytorch_model.safetensors`).
    Diffusers,
    /// The project's own safetensors: openai names, config in the metadata.
    Project,
}

impl std::fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WeightFormat::OpenAiPt => "OpenAI .pt (PyTorch pickle)",
            WeightFormat::OpenAiSafetensors => "safetensors, openai names",
            WeightFormat::Diffusers => "diffusers UNet2DModel",
            WeightFormat::Project => "cmpaint safetensors",
        })
    }
}

/// Where the configuration came from, for `cmpaint info` and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    ConfigFile(PathBuf),
    FileMetadata,
    DiffusersConfig,
    /// Inferred from tensor shapes; the schedule (and image size) from this preset.
    InferredWithPreset(String),
    /// Inferred from tensor shapes with the default schedule.
    Inferred,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::ConfigFile(p) => write!(f, "config file {}", p.display()),
            ConfigSource::FileMetadata => write!(f, "the file's metadata"),
            ConfigSource::DiffusersConfig => write!(f, "diffusers config.json"),
            ConfigSource::InferredWithPreset(p) => {
                write!(f, "inferred from tensor shapes; schedule of preset {p}")
            }
            ConfigSource::Inferred => {
                write!(
                    f,
                    "inferred from tensor shapes (image size guessed, 64 channels per head, N=40 schedule)"
                )
            }
        }
    }
}

/// Where the parameterization (consistency or EDM scalings) came from, for `cmpaint info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterizationSource {
    /// Stated by the config file or the file's metadata.
    Read,
    /// From the preset the file was matched to.
    Preset(String),
    /// The file name starts with (or holds) `edm_`.
    FileName,
    /// Given on the command line (`--parameterization`).
    Override,
    /// Nothing said: the consistency scalings, as every CD/CT checkpoint.
    Assumed,
}

impl std::fmt::Display for ParameterizationSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read => write!(f, "read from the model's config"),
            Self::Preset(p) => write!(f, "matched from preset {p}"),
            Self::FileName => write!(f, "from the file name (edm_…)"),
            Self::Override => write!(f, "set by --parameterization"),
            Self::Assumed => write!(f, "assumed (nothing in the file says)"),
        }
    }
}

/// A weight file opened and checked, before any tensor data is read.
pub struct Checkpoint {
    pub path: PathBuf,
    pub format: WeightFormat,
    pub config: ModelConfig,
    pub config_source: ConfigSource,
    pub parameterization_source: ParameterizationSource,
    /// Bytes of tensor data in the file (stored dtype).
    pub stored_bytes: usize,
    reader: Reader,
    /// openai name → the stored tensor(s) it is made of (three for a diffusers qkv).
    sources: HashMap<String, Vec<String>>,
}

enum Reader {
    Pt(candle_core::pickle::PthTensors),
    Safetensors(WeightBytes),
}

struct StoredTensor {
    shape: Vec<usize>,
    dtype: String,
}

fn not_a_checkpoint(path: &Path, reason: impl Into<String>) -> EngineError {
    EngineError::NotACheckpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn bad_config(path: &Path, reason: impl Into<String>) -> EngineError {
    EngineError::BadConfig {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a `--config` JSON file ([`ModelConfig`]).
pub fn read_config_file(path: &Path) -> Result<ModelConfig> {
    let text = read_config_text(path)?;
    let cfg: ModelConfig =
        serde_json::from_str(&text).map_err(|e| bad_config(path, e.to_string()))?;
    cfg.validate().map_err(|e| bad_config(path, e))?;
    Ok(cfg)
}

/// What a weight source holds, before its configuration is settled.
struct Opened {
    format: WeightFormat,
    reader: Reader,
    stored: HashMap<String, StoredTensor>,
    /// The project format's config JSON.
    metadata_config: Option<String>,
    /// A diffusers folder's network and, for a whole pipeline, its scheduler's grid.
    diffusers_config: Option<(UNetConfig, Option<SamplingConfig>)>,
    stored_bytes: usize,
}

impl Checkpoint {
    /// Opens a weight file or diffusers folder, settles its configuration (an explicit `config`
    /// wins over anything the file says) and checks every weight's name, shape and dtype.
    pub fn open(path: &Path, config: Option<(ModelConfig, PathBuf)>) -> Result<Self> {
        let is_dir = crate::file_io::metadata(path)
            .map_err(|e| not_a_checkpoint(path, e.reason))?
            .is_dir();
        let opened = if is_dir {
            let (weights, cfg) = diffusers_paths(path)?;
            let mut opened = parse_safetensors(&weights, WeightBytes::map(&weights)?)?;
            opened.format = WeightFormat::Diffusers;
            opened.diffusers_config =
                Some((read_diffusers_config(&cfg)?, read_diffusers_schedule(path)));
            opened
        } else {
            let magic = read_magic(path)?;
            if magic.starts_with(b"PK\x03\x04") {
                read_pt(path)?
            } else if magic.first() == Some(&0x80) {
                return Err(not_a_checkpoint(
                    path,
                    "a legacy (pre-1.6) torch.save file: re-save it with torch.save(..., _use_new_zipfile_serialization=True)",
                ));
            } else {
                parse_safetensors(path, WeightBytes::map(path)?)?
            }
        };
        settle(path, opened, config)
    }

    /// A safetensors file already in memory (`name` stands for its path in messages).
    pub fn from_safetensors_bytes(name: &Path, bytes: Vec<u8>) -> Result<Self> {
        let opened = parse_safetensors(name, WeightBytes::Owned(bytes))?;
        settle(name, opened, None)
    }

    /// The default model compiled into the binary (`assets/`), in the project format.
    pub fn embedded_default(config: Option<(ModelConfig, PathBuf)>) -> Result<Self> {
        Self::embedded(
            super::default_model::NAME,
            super::default_model::BYTES,
            config,
        )
    }

    /// A model compiled into the binary (see `default_model`), in the project format.
    pub fn embedded(
        name: &str,
        bytes: &'static [u8],
        config: Option<(ModelConfig, PathBuf)>,
    ) -> Result<Self> {
        let path = Path::new(name);
        let opened = parse_safetensors(path, WeightBytes::Static(bytes))?;
        settle(path, opened, config)
    }

    /// A weight file, diffusers folder, or a built-in model named as `builtin:teacher` etc.
    pub fn open_any(path: &Path, config: Option<(ModelConfig, PathBuf)>) -> Result<Self> {
        match super::default_model::named(path) {
            Some(b) => Self::embedded(b.name, b.bytes, config),
            None => Self::open(path, config),
        }
    }

    /// Reads every weight, converts it to f32 on `device` and builds the network — after checking
    /// that the f32 weights fit in the memory the system has free.
    pub fn load(&self, device: &Device) -> Result<UNet> {
        self.load_with(device, Precision::F32)
    }

    /// [`Checkpoint::load`] with the convolutions' products in `precision` (CPU only; bf16 where the
    /// CPU has AVX512-BF16, refused with the reason elsewhere).
    pub fn load_with(&self, device: &Device, precision: Precision) -> Result<UNet> {
        if precision != Precision::F32 && !device.is_cpu() {
            return Err(EngineError::InvalidInput(
                "--precision bf16 is for the CPU; this device runs in f32".into(),
            ));
        }
        precision.check().map_err(EngineError::InvalidInput)?;
        let need = self.f32_bytes();
        if let Some(free) = crate::engine::available_memory().filter(|&free| need > free) {
            return Err(EngineError::InvalidInput(format!(
                "{}: the weights need {:.1} GB of memory and {:.1} GB is free",
                self.path.display(),
                need as f64 / 1e9,
                free as f64 / 1e9
            )));
        }
        // One weight at a time, as the network asks for it: a layer that re-packs its weight (the CPU
        // convolutions) drops the original at once, so no two copies of the model are ever held.
        let vb =
            VarBuilder::from_backend(Box::new(Weights::new(self)?), DType::F32, device.clone());
        let unet = UNet::new(&self.config.unet, precision, vb)?;
        if !device.is_cpu() {
            unet.warm_up(device)?;
        }
        Ok(unet)
    }

    /// Every weight under its openai name, in f32 on `device`.
    pub fn load_tensors(&self, device: &Device) -> Result<HashMap<String, Tensor>> {
        let weights = Weights::new(self)?;
        let mut tensors = HashMap::new();
        for (name, shape) in self.config.unet.expected_weights() {
            let t = weights.read(&name, &shape)?.to_device(device)?;
            tensors.insert(name, t);
        }
        Ok(tensors)
    }

    /// Bytes the weights take once loaded as f32.
    pub fn f32_bytes(&self) -> usize {
        self.config.unet.parameter_count().saturating_mul(4)
    }
}

fn read_magic(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let (mut f, _) = crate::file_io::open(path).map_err(|e| not_a_checkpoint(path, e.reason))?;
    let mut buf = vec![0u8; 8];
    let n = f
        .read(&mut buf)
        .map_err(|e| not_a_checkpoint(path, e.to_string()))?;
    buf.truncate(n);
    if n < 8 {
        return Err(not_a_checkpoint(
            path,
            format!("only {n} bytes: not a weight file"),
        ));
    }
    Ok(buf)
}

fn dtype_name(d: DType) -> String {
    format!("{d:?}").to_lowercase()
}

/// A JSON configuration's text, read under `file_io`'s limit for configurations.
fn read_config_text(path: &Path) -> Result<String> {
    crate::file_io::read_text(path, crate::file_io::limit::CONFIG)
        .map_err(|e| bad_config(path, e.reason))
}
