//! The one place that knows weight-file formats: OpenAI `.pt` (PyTorch zip pickles), the same weights as
//! safetensors under openai names, diffusers `UNet2DModel` folders, and the project's own safetensors
//! with its config in the metadata. Everything is checked against the expected weight list (names,
//! shapes, dtypes) before any tensor data is read, so a wrong file fails with one line naming the problem.
//!
//! `.pt` files are read by candle's pickle interpreter, which only builds plain values and tensors from
//! opcodes: it never imports modules or calls code named in the file.

use super::config::{BlockKind, UNetConfig};
use super::spec::{ModelConfig, Parameterization, SamplingConfig, guess_preset};
use super::unet::UNet;
use crate::engine::error::{EngineError, Result, WeightReport};
use crate::engine::kernels::Precision;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use safetensors::SafeTensors;
use std::collections::{BTreeSet, HashMap};
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

/// The bytes of a safetensors file. A file on disk is mapped, not read: loading copies each tensor
/// straight from the page cache into its f32 tensor, so the weights are never held twice.
enum WeightBytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
    Static(&'static [u8]),
}

impl WeightBytes {
    fn map(path: &Path) -> Result<Self> {
        let (file, _) = crate::file_io::open(path).map_err(|e| not_a_checkpoint(path, e.reason))?;
        // SAFETY: the map is read-only and only read while loading. Like every mapped-file reader
        // (candle's and safetensors' own), a file truncated by another program during the load would
        // fault; the length is checked against the header first.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| not_a_checkpoint(path, e.to_string()))?;
        Ok(Self::Mapped(map))
    }
}

/// Reads one weight at a time from a checked checkpoint: under its openai name, in f32, its parts
/// joined (diffusers' separate q, k, v). Mapped file pages a weight was read from are handed back at
/// once, so the resident memory never holds the file beside the loaded model.
struct Weights<'a> {
    checkpoint: &'a Checkpoint,
    safetensors: Option<SafeTensors<'a>>,
    shapes: HashMap<String, Vec<usize>>,
}

impl<'a> Weights<'a> {
    fn new(checkpoint: &'a Checkpoint) -> Result<Self> {
        let safetensors = match &checkpoint.reader {
            Reader::Safetensors(bytes) => Some(
                SafeTensors::deserialize(bytes)
                    .map_err(|e| not_a_checkpoint(&checkpoint.path, e.to_string()))?,
            ),
            Reader::Pt(_) => None,
        };
        let shapes = checkpoint
            .config
            .unet
            .expected_weights()
            .into_iter()
            .collect();
        Ok(Self {
            checkpoint,
            safetensors,
            shapes,
        })
    }

    fn read(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let parts = self.checkpoint.sources[name]
            .iter()
            .map(|source| self.read_part(source))
            .collect::<Result<Vec<_>>>()?;
        let t = if parts.len() == 1 {
            parts.into_iter().next().expect("one part")
        } else {
            Tensor::cat(&parts, 0)?
        };
        let t = t.reshape(shape)?.to_dtype(DType::F32)?;
        // NaN or ±inf anywhere makes the sum so: such a weight would turn every picture black
        if !t.sum_all()?.to_scalar::<f32>()?.is_finite() {
            return Err(not_a_checkpoint(
                &self.checkpoint.path,
                format!(
                    "`{name}` holds NaN or infinite values (a damaged or badly converted file)"
                ),
            ));
        }
        Ok(t)
    }

    fn read_part(&self, name: &str) -> Result<Tensor> {
        let path = &self.checkpoint.path;
        match (&self.checkpoint.reader, &self.safetensors) {
            (Reader::Safetensors(bytes), Some(st)) => {
                use candle_core::safetensors::Load;
                let view = st
                    .tensor(name)
                    .map_err(|e| not_a_checkpoint(path, e.to_string()))?;
                let t = view.load(&Device::Cpu)?;
                if let WeightBytes::Mapped(map) = bytes {
                    let offset = view.data().as_ptr() as usize - map.as_ptr() as usize;
                    // SAFETY: a read-only file mapping: dropped pages are read again from the file
                    // if ever touched. Failure only means the pages stay resident.
                    let _ = unsafe {
                        map.unchecked_advise_range(
                            memmap2::UncheckedAdvice::DontNeed,
                            offset,
                            view.data().len(),
                        )
                    };
                }
                Ok(t)
            }
            (Reader::Pt(pth), _) => guarded(path, || {
                pth.get(name)
                    .map_err(|e| not_a_checkpoint(path, format!("cannot read `{name}`: {e}")))
            })?
            .ok_or_else(|| not_a_checkpoint(path, format!("`{name}` vanished while reading"))),
            (Reader::Safetensors(_), None) => unreachable!("safetensors are deserialised in new"),
        }
    }
}

impl candle_nn::var_builder::SimpleBackend for Weights<'_> {
    fn get(
        &self,
        shape: candle_core::Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        match self.shapes.get(name) {
            Some(expected) if expected[..] == *shape.dims() => self
                .read(name, expected)
                .and_then(|t| Ok(t.to_dtype(dtype)?.to_device(device)?))
                .map_err(candle_core::Error::wrap),
            Some(expected) => {
                candle_core::bail!("`{name}`: shape {expected:?}, asked for {shape:?}")
            }
            None => candle_core::bail!("`{name}` is not a weight of this network"),
        }
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let expected = self.shapes.get(name).ok_or_else(|| {
            candle_core::Error::Msg(format!("`{name}` is not a weight of this network"))
        })?;
        self.get(
            expected[..].into(),
            name,
            candle_nn::Init::Const(0.0),
            dtype,
            device,
        )
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }
}

impl std::ops::Deref for WeightBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(map) => map,
            Self::Owned(bytes) => bytes,
            Self::Static(bytes) => bytes,
        }
    }
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
        Self::settle(path, opened, config)
    }

    /// A safetensors file already in memory (`name` stands for its path in messages).
    pub fn from_safetensors_bytes(name: &Path, bytes: Vec<u8>) -> Result<Self> {
        let opened = parse_safetensors(name, WeightBytes::Owned(bytes))?;
        Self::settle(name, opened, None)
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
        Self::settle(path, opened, config)
    }

    /// A weight file, diffusers folder, or a built-in model named as `builtin:teacher` etc.
    pub fn open_any(path: &Path, config: Option<(ModelConfig, PathBuf)>) -> Result<Self> {
        match super::default_model::named(path) {
            Some(b) => Self::embedded(b.name, b.bytes, config),
            None => Self::open(path, config),
        }
    }

    fn settle(path: &Path, opened: Opened, config: Option<(ModelConfig, PathBuf)>) -> Result<Self> {
        let Opened {
            format,
            reader,
            stored,
            metadata_config,
            diffusers_config,
            stored_bytes,
        } = opened;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let by_name = Parameterization::from_file_name(&file_name);
        let mut parameterization_source = match by_name {
            Some(_) => ParameterizationSource::FileName,
            None => ParameterizationSource::Assumed,
        };
        let (config, config_source) = if let Some((cfg, cfg_path)) = config {
            parameterization_source = ParameterizationSource::Read;
            (cfg, ConfigSource::ConfigFile(cfg_path))
        } else if let Some(text) = metadata_config {
            let cfg: ModelConfig =
                serde_json::from_str(&text).map_err(|e| bad_config(path, e.to_string()))?;
            // Files written before EDM models existed say nothing: they are consistency models.
            let stated = serde_json::from_str::<serde_json::Value>(&text)
                .is_ok_and(|v| v["sampling"].get("parameterization").is_some());
            if stated {
                parameterization_source = ParameterizationSource::Read;
            }
            (cfg, ConfigSource::FileMetadata)
        } else if let Some((unet, scheduler)) = diffusers_config {
            let preset = guess_preset(&file_name, &unet);
            let parameterization = match (by_name, &preset) {
                (Some(p), _) => p,
                (None, Some(p)) if file_name.contains(&p.name) => {
                    parameterization_source = ParameterizationSource::Preset(p.name.clone());
                    p.sampling.parameterization
                }
                _ => Parameterization::Consistency,
            };
            let name = preset
                .as_ref()
                .map(|p| p.name.clone())
                .unwrap_or_else(|| file_name.clone());
            // The scheduler's grid wins; a preset's tuned ts list only applies to the same grid.
            let sampling = match (scheduler, preset) {
                (Some(mut s), Some(p)) => {
                    if s.steps == p.sampling.steps {
                        s.ts = p.sampling.ts;
                    }
                    s
                }
                (Some(s), None) => s,
                (None, p) => p.map(|p| p.sampling).unwrap_or_default(),
            };
            (
                ModelConfig {
                    name,
                    unet,
                    sampling: SamplingConfig {
                        parameterization,
                        ..sampling
                    },
                },
                ConfigSource::DiffusersConfig,
            )
        } else {
            let shapes: HashMap<String, Vec<usize>> = stored
                .iter()
                .map(|(k, v)| (k.clone(), v.shape.clone()))
                .collect();
            let unet = UNetConfig::infer(&normalise_attention_shapes(shapes)).map_err(|e| {
                not_a_checkpoint(path, format!("not a consistency-model UNet: {e}"))
            })?;
            match guess_preset(&file_name, &unet) {
                Some(p) => {
                    let source = ConfigSource::InferredWithPreset(p.name.clone());
                    if file_name.contains(&p.name) || by_name.is_none() {
                        parameterization_source = ParameterizationSource::Preset(p.name.clone());
                    }
                    (p, source)
                }
                _ => {
                    let name = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().to_string())
                        .unwrap_or_default();
                    (
                        ModelConfig {
                            name,
                            unet,
                            sampling: SamplingConfig {
                                parameterization: by_name.unwrap_or_default(),
                                ..SamplingConfig::default()
                            },
                        },
                        ConfigSource::Inferred,
                    )
                }
            }
        };
        config.validate().map_err(|e| bad_config(path, e))?;

        let sources = match format {
            WeightFormat::Diffusers => diffusers_sources(&config.unet),
            _ => config
                .unet
                .expected_weights()
                .into_iter()
                .map(|(n, _)| (n.clone(), vec![n]))
                .collect(),
        };
        check_weights(&config.unet, &sources, &stored)?;
        Ok(Self {
            path: path.to_path_buf(),
            format,
            config,
            config_source,
            parameterization_source,
            stored_bytes,
            reader,
            sources,
        })
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

/// Memory a forward pass at `batch` needs beyond the weights, roughly: the skip activations kept for
/// the decoder, a few working copies of the largest feature map, and the attention matrices.
pub fn activation_bytes(cfg: &UNetConfig, batch: usize) -> usize {
    activation_bytes_at(cfg, batch, cfg.image_size)
}

/// [`activation_bytes`] for images of `side`×`side` (a run at another size than the model's).
/// Saturating: the sizes may come from a hostile file.
pub fn activation_bytes_at(cfg: &UNetConfig, batch: usize, side: usize) -> usize {
    let layout = cfg.layout();
    let mut res = side;
    let area = |c: usize, r: usize| c.saturating_mul(r).saturating_mul(r);
    let mut skips = area(cfg.model_channels * cfg.channel_mult[0], res);
    let mut largest = skips;
    let mut attention = 0usize;
    for block in &layout.input {
        for spec in block {
            match spec.kind {
                BlockKind::Res {
                    cout,
                    resample: super::config::Resample::Down,
                    ..
                } => {
                    res /= 2;
                    largest = largest.max(area(cout, res));
                }
                BlockKind::DownConv { .. } => res /= 2,
                BlockKind::Res { cout, .. } => largest = largest.max(area(cout, res)),
                BlockKind::Attn { channels } => {
                    let heads = channels / cfg.num_head_channels.max(1);
                    let tokens = res.saturating_mul(res);
                    attention = attention.max(heads.saturating_mul(tokens.saturating_mul(tokens)))
                }
                BlockKind::UpConv { .. } => {}
            }
        }
        if let Some(BlockKind::Res { cout, .. } | BlockKind::Attn { channels: cout }) =
            block.last().map(|b| b.kind)
        {
            skips = skips.saturating_add(area(cout, res));
        } else if let Some(BlockKind::DownConv { channels }) = block.last().map(|b| b.kind) {
            skips = skips.saturating_add(area(channels, res));
        }
    }
    let per_image = skips
        .saturating_add(largest.saturating_mul(6))
        .saturating_add(attention.saturating_mul(2));
    batch.saturating_mul(4).saturating_mul(per_image)
}

/// Refuses, before anything is allocated, a run of `batch` images of `side`² whose activations would
/// not fit in the memory the system has free (see [`crate::engine::available_memory`]).
pub fn check_run_memory(cfg: &UNetConfig, batch: usize, side: usize) -> Result<()> {
    let need = activation_bytes_at(cfg, batch, side);
    match crate::engine::available_memory() {
        Some(free) if need > free => {
            let per_image = activation_bytes_at(cfg, 1, side).max(1);
            let fits = free / per_image;
            let advice = if batch > 1 && fits >= 1 {
                format!("a batch of at most {fits} fits")
            } else {
                "not even one image of this size fits".into()
            };
            Err(EngineError::InvalidInput(format!(
                "a batch of {batch} at {side}×{side} needs about {} of memory and {} is free: {advice}",
                gigabytes(need),
                gigabytes(free)
            )))
        }
        _ => Ok(()),
    }
}

fn gigabytes(bytes: usize) -> String {
    if bytes >= 1 << 60 {
        return "more than an exabyte".into();
    }
    format!("{:.1} GB", bytes as f64 / 1e9)
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

/// Runs a third-party parser on untrusted bytes: a panic inside it (fuzzing found one in candle's
/// pickle reader) becomes an error naming the file instead of taking the program down.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(not_a_checkpoint(
            path,
            "corrupt PyTorch checkpoint (its reader failed on it)",
        ))
    })
}

fn read_pt(path: &Path) -> Result<Opened> {
    // candle's pickle reader has no bound on nesting or size: refuse what would overflow the stack
    // or exhaust memory before it builds anything (see `pickle_guard`)
    let (file, _) = crate::file_io::open(path).map_err(|e| not_a_checkpoint(path, e.reason))?;
    super::pickle_guard::check_checkpoint(file).map_err(|e| not_a_checkpoint(path, e))?;
    let pth = guarded(path, || {
        candle_core::pickle::PthTensors::new(path, None).map_err(|e| {
            not_a_checkpoint(
                path,
                format!("truncated or corrupt PyTorch checkpoint ({e})"),
            )
        })
    })?;
    let mut stored = HashMap::new();
    let mut bytes = 0usize;
    for (name, info) in pth.tensor_infos() {
        let shape = info.layout.dims().to_vec();
        let elements = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| {
                not_a_checkpoint(path, format!("`{name}` has an impossible shape {shape:?}"))
            })?;
        bytes = bytes.saturating_add(elements.saturating_mul(info.dtype.size_in_bytes()));
        stored.insert(
            name.clone(),
            StoredTensor {
                shape,
                dtype: dtype_name(info.dtype),
            },
        );
    }
    if stored.is_empty() {
        return Err(not_a_checkpoint(
            path,
            "a PyTorch file without a state dict of tensors",
        ));
    }
    Ok(Opened {
        format: WeightFormat::OpenAiPt,
        reader: Reader::Pt(pth),
        stored,
        metadata_config: None,
        diffusers_config: None,
        stored_bytes: bytes,
    })
}

/// Reads a safetensors header (whole file in `bytes`): the project format when its metadata holds a
/// config, else openai names.
fn parse_safetensors(path: &Path, bytes: WeightBytes) -> Result<Opened> {
    if let Some(needed) = safetensors_extent(&bytes)
        && needed > bytes.len()
    {
        return Err(not_a_checkpoint(
            path,
            format!(
                "truncated safetensors file: its header describes {needed} bytes, the file has {}",
                bytes.len()
            ),
        ));
    }
    // read_metadata validates the header against the buffer (offsets, coverage, length), as
    // deserialize would; the header is parsed once here and once more when the data is read.
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| {
        not_a_checkpoint(
            path,
            format!("neither a PyTorch checkpoint nor a valid safetensors file ({e})"),
        )
    })?;
    let config = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CONFIG_METADATA_KEY).cloned());
    let stored = meta
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let tensor = StoredTensor {
                shape: info.shape.clone(),
                dtype: format!("{:?}", info.dtype).to_lowercase(),
            };
            (name, tensor)
        })
        .collect();
    let data = meta.data_len();
    Ok(Opened {
        format: if config.is_some() {
            WeightFormat::Project
        } else {
            WeightFormat::OpenAiSafetensors
        },
        reader: Reader::Safetensors(bytes),
        stored,
        metadata_config: config,
        diffusers_config: None,
        stored_bytes: data,
    })
}

/// The file length a safetensors header describes (8 + header + the furthest data offset), when the
/// header itself is readable; tells a cut-off download apart from a file of another kind.
fn safetensors_extent(bytes: &[u8]) -> Option<usize> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    let end = header
        .as_object()?
        .values()
        .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    Some(8 + n + end as usize)
}

/// Older guided-diffusion code saved attention 1×1 convs as 3-D `[O, I, 1]`; treat them as 4-D.
fn normalise_attention_shapes(
    mut shapes: HashMap<String, Vec<usize>>,
) -> HashMap<String, Vec<usize>> {
    for (name, shape) in shapes.iter_mut() {
        if (name.ends_with("qkv.weight") || name.ends_with("proj_out.weight"))
            && shape.len() == 3
            && shape[2] == 1
        {
            shape.push(1);
        }
    }
    shapes
}

/// Compares what the file holds with what the model needs: names, shapes (element counts for the
/// re-shaped attention weights) and dtypes.
fn check_weights(
    cfg: &UNetConfig,
    sources: &HashMap<String, Vec<String>>,
    stored: &HashMap<String, StoredTensor>,
) -> Result<()> {
    let mut report = WeightReport::default();
    let mut used = BTreeSet::new();
    for (name, shape) in cfg.expected_weights() {
        let parts = &sources[&name];
        let elems: usize = shape.iter().product::<usize>() / parts.len();
        for part in parts {
            used.insert(part.clone());
            match stored.get(part) {
                None => report.missing.push(part.clone()),
                Some(t) => {
                    let same = if parts.len() == 1 && part == &name {
                        t.shape == shape
                            || (t.shape.len() == 3 && [t.shape.clone(), vec![1]].concat() == shape)
                    } else {
                        t.shape.iter().product::<usize>() == elems
                    };
                    if !same {
                        let mut expected = shape.clone();
                        expected[0] /= parts.len();
                        report
                            .mismatched
                            .push((part.clone(), expected, t.shape.clone()));
                    }
                }
            }
        }
    }
    report.unexpected = stored
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    report.missing.sort();
    report.unexpected.sort();
    if !report.is_empty() {
        return Err(EngineError::WeightMismatch(report));
    }
    for name in &used {
        let dtype = &stored[name].dtype;
        if !matches!(dtype.as_str(), "f32" | "f16" | "bf16" | "f64") {
            return Err(EngineError::UnsupportedDtype {
                name: name.clone(),
                dtype: dtype.clone(),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// diffusers

fn diffusers_paths(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    for base in [dir.join("unet"), dir.to_path_buf()] {
        let weights = base.join("diffusion_pytorch_model.safetensors");
        let config = base.join("config.json");
        if weights.is_file() && config.is_file() {
            return Ok((weights, config));
        }
    }
    Err(not_a_checkpoint(
        dir,
        "a folder, but not a diffusers model: expected config.json and diffusion_pytorch_model.safetensors (here or in unet/)",
    ))
}

#[derive(serde::Deserialize)]
struct DiffusersUNetConfig {
    sample_size: usize,
    #[serde(default = "three")]
    in_channels: usize,
    #[serde(default = "three")]
    out_channels: usize,
    layers_per_block: usize,
    block_out_channels: Vec<usize>,
    down_block_types: Vec<String>,
    up_block_types: Vec<String>,
    attention_head_dim: Option<usize>,
    num_class_embeds: Option<usize>,
    #[serde(default)]
    resnet_time_scale_shift: Option<String>,
    #[serde(default)]
    norm_num_groups: Option<usize>,
    #[serde(default)]
    time_embedding_type: Option<String>,
    #[serde(default)]
    flip_sin_to_cos: Option<bool>,
    #[serde(default)]
    freq_shift: Option<f64>,
    #[serde(default)]
    downsample_type: Option<String>,
    #[serde(default)]
    upsample_type: Option<String>,
    #[serde(default)]
    attn_norm_num_groups: Option<usize>,
    #[serde(default)]
    mid_block_scale_factor: Option<f64>,
    #[serde(default)]
    add_attention: Option<bool>,
}

fn three() -> usize {
    3
}

/// A JSON configuration's text, read under `file_io`'s limit for configurations.
fn read_config_text(path: &Path) -> Result<String> {
    crate::file_io::read_text(path, crate::file_io::limit::CONFIG)
        .map_err(|e| bad_config(path, e.reason))
}

fn read_diffusers_config(path: &Path) -> Result<UNetConfig> {
    let text = read_config_text(path)?;
    let c: DiffusersUNetConfig =
        serde_json::from_str(&text).map_err(|e| bad_config(path, e.to_string()))?;
    let unsupported =
        |what: String| bad_config(path, format!("unsupported UNet2DModel setting: {what}"));
    if c.norm_num_groups.unwrap_or(32) != 32 {
        return Err(unsupported(format!(
            "norm_num_groups {}",
            c.norm_num_groups.unwrap_or(0)
        )));
    }
    if c.time_embedding_type.as_deref().unwrap_or("positional") != "positional"
        || !c.flip_sin_to_cos.unwrap_or(true)
        || c.freq_shift.unwrap_or(0.0) != 0.0
    {
        return Err(unsupported(
            "a time embedding other than positional, cos-first, shift 0".into(),
        ));
    }
    let mc = *c
        .block_out_channels
        .first()
        .ok_or_else(|| bad_config(path, "empty block_out_channels"))?;
    if c.block_out_channels.iter().any(|&b| mc == 0 || b % mc != 0) {
        return Err(unsupported(format!(
            "block_out_channels {:?} (not multiples of the first)",
            c.block_out_channels
        )));
    }
    let levels = c.block_out_channels.len();
    if c.down_block_types.len() != levels || c.up_block_types.len() != levels {
        return Err(bad_config(
            path,
            "down/up block type lists must have one entry per level",
        ));
    }
    // Residual (BigGAN) resamplers: the Resnet*sample blocks, and the Attn blocks with a "resnet"
    // down/upsample_type (what diffusers' consistency-model converter writes).
    let residual = |t: &str| match t {
        "ResnetDownsampleBlock2D" | "ResnetUpsampleBlock2D" => Ok(true),
        "DownBlock2D" | "UpBlock2D" => Ok(false),
        "AttnDownBlock2D" => Ok(c.downsample_type.as_deref().unwrap_or("conv") == "resnet"),
        "AttnUpBlock2D" => Ok(c.upsample_type.as_deref().unwrap_or("conv") == "resnet"),
        other => Err(unsupported(format!("block type {other}"))),
    };
    // The last level has no downsampler and the first no upsampler: they say nothing.
    let kinds = c.down_block_types[..levels - 1]
        .iter()
        .chain(&c.up_block_types[..levels - 1])
        .map(|t| residual(t))
        .collect::<Result<Vec<_>>>()?;
    if kinds
        .iter()
        .any(|&k| k != kinds.first().copied().unwrap_or(true))
    {
        return Err(unsupported("a mix of residual and conv resamplers".into()));
    }
    let shift = c.resnet_time_scale_shift.as_deref().unwrap_or("default");
    if shift != "default" && shift != "scale_shift" {
        return Err(unsupported(format!("resnet_time_scale_shift {shift}")));
    }
    // diffusers drops the mid-block attention's GroupNorm for scale-shift models unless
    // attn_norm_num_groups is set; the openai network always has it.
    if c.add_attention == Some(false)
        || (shift == "scale_shift" && c.attn_norm_num_groups.is_none())
    {
        return Err(unsupported(
            "a mid block without its normalised attention (set attn_norm_num_groups: 32)".into(),
        ));
    }
    if c.mid_block_scale_factor.unwrap_or(1.0) != 1.0 {
        return Err(unsupported("mid_block_scale_factor other than 1".into()));
    }
    let attention_ds: Vec<usize> = (0..levels)
        .filter(|&i| c.down_block_types[i].starts_with("Attn"))
        .map(|i| 1 << i)
        .collect();
    let mirrored = (0..levels).all(|i| {
        c.up_block_types[levels - 1 - i].starts_with("Attn") == attention_ds.contains(&(1 << i))
    });
    if !mirrored {
        return Err(unsupported(
            "attention in up blocks that does not mirror the down blocks".into(),
        ));
    }
    Ok(UNetConfig {
        image_size: c.sample_size,
        in_channels: c.in_channels,
        out_channels: c.out_channels,
        model_channels: mc,
        channel_mult: c.block_out_channels.iter().map(|b| b / mc).collect(),
        num_res_blocks: c.layers_per_block,
        attention_ds,
        num_head_channels: c.attention_head_dim.unwrap_or(64),
        use_scale_shift_norm: shift == "scale_shift",
        resblock_updown: kinds.first().copied().unwrap_or(true),
        num_classes: c.num_class_embeds,
    })
}

/// The scheduler's grid, when the folder is a whole pipeline with `scheduler/scheduler_config.json`.
fn read_diffusers_schedule(dir: &Path) -> Option<SamplingConfig> {
    #[derive(serde::Deserialize)]
    struct Sched {
        num_train_timesteps: usize,
        sigma_min: Option<f64>,
        sigma_max: Option<f64>,
        sigma_data: Option<f64>,
        rho: Option<f64>,
    }
    let candidates = [
        dir.join("scheduler/scheduler_config.json"),
        dir.join("../scheduler/scheduler_config.json"),
    ];
    let text = candidates.iter().find_map(|p| read_config_text(p).ok())?;
    let s: Sched = serde_json::from_str(&text).ok()?;
    let mut cfg = SamplingConfig::with_grid(s.num_train_timesteps, None);
    cfg.sigma_min = s.sigma_min.unwrap_or(cfg.sigma_min);
    cfg.sigma_max = s.sigma_max.unwrap_or(cfg.sigma_max);
    cfg.sigma_data = s.sigma_data.unwrap_or(cfg.sigma_data);
    cfg.rho = s.rho.unwrap_or(cfg.rho);
    Some(cfg)
}

/// For every openai weight, the diffusers tensor(s) it comes from (cm_reference §f.5 mapping rules).
pub fn diffusers_sources(cfg: &UNetConfig) -> HashMap<String, Vec<String>> {
    let mut prefixes: Vec<(String, String, Option<BlockKind>)> = vec![
        (
            "time_embed.0".into(),
            "time_embedding.linear_1".into(),
            None,
        ),
        (
            "time_embed.2".into(),
            "time_embedding.linear_2".into(),
            None,
        ),
        ("label_emb".into(), "class_embedding".into(), None),
        ("input_blocks.0.0".into(), "conv_in".into(), None),
        ("out.0".into(), "conv_norm_out".into(), None),
        ("out.2".into(), "conv_out".into(), None),
    ];
    for spec in cfg.layout().all_blocks() {
        prefixes.push((spec.openai.clone(), spec.diffusers.clone(), Some(spec.kind)));
    }
    let mut map = HashMap::new();
    for (name, _) in cfg.expected_weights() {
        let (op, dp, kind) = prefixes
            .iter()
            .filter(|(op, _, _)| name.starts_with(&format!("{op}.")))
            .max_by_key(|(op, _, _)| op.len())
            .expect("every weight belongs to a block");
        let sub = &name[op.len() + 1..];
        let (module, param) = sub.rsplit_once('.').unwrap_or(("", sub));
        let targets: Vec<String> = match kind {
            None => vec![dp.clone()],
            Some(BlockKind::Res { .. }) => vec![format!(
                "{dp}.{}",
                match module {
                    "in_layers.0" => "norm1",
                    "in_layers.2" => "conv1",
                    "emb_layers.1" => "time_emb_proj",
                    "out_layers.0" => "norm2",
                    "out_layers.3" => "conv2",
                    "skip_connection" => "conv_shortcut",
                    other => other,
                }
            )],
            Some(BlockKind::Attn { .. }) => match module {
                "norm" => vec![format!("{dp}.group_norm")],
                "qkv" => ["to_q", "to_k", "to_v"]
                    .iter()
                    .map(|m| format!("{dp}.{m}"))
                    .collect(),
                "proj_out" => vec![format!("{dp}.to_out.0")],
                other => vec![format!("{dp}.{other}")],
            },
            Some(BlockKind::DownConv { .. } | BlockKind::UpConv { .. }) => {
                vec![format!("{dp}.conv")]
            }
        };
        map.insert(
            name.clone(),
            targets
                .into_iter()
                .map(|t| format!("{t}.{param}"))
                .collect(),
        );
    }
    map
}

/// Writes weights in the project's format: safetensors with openai names and the config as metadata.
pub fn save_project(
    path: &Path,
    config: &ModelConfig,
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    let json =
        serde_json::to_string(config).map_err(|e| EngineError::InvalidInput(e.to_string()))?;
    let metadata = HashMap::from([(CONFIG_METADATA_KEY.to_string(), json)]);
    crate::engine::image::write_safetensors(path, tensors.clone(), Some(metadata))
}
