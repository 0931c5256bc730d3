//! A latent consistency model as users have it — a diffusers folder — and its runs: prompt → CLIP
//! states; initial latents (noise, or the encoded picture noised to the first timestep); each LCM
//! step one UNet call (two with classifier-free guidance) whose x₀ estimate keeps the picture's
//! latents outside an inpainting mask (the paper's Algorithm 4, in latent space) and is noised again
//! for the next step; the VAE decodes the last estimate, and unmasked pixels are the picture's.

use super::clip::{ClipConfig, ClipTextEncoder};
use super::lcm::{LcmScheduler, guidance_embedding};
use super::lora::Merged;
use super::single_file::{SingleFile, is_single_file};
use super::taesd::TinyDecoder;
use super::tokenizer::ClipTokenizer;
use super::unet::{UNet2DCondition, UNetConfig};
use super::vae::{AutoencoderKL, VaeConfig};
use crate::engine::cm::sample::{OnStep, Step};
use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::Precision;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// One part of the folder and the weights file it was read from.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: &'static str,
    pub file: PathBuf,
    pub bytes: u64,
    pub parameters: usize,
}

impl Part {
    /// A part read from `file`: its size and parameter count from the file itself.
    fn of(name: &'static str, file: PathBuf) -> Self {
        Self {
            name,
            bytes: std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0),
            parameters: parameter_count(&file),
            file,
        }
    }
}

/// The number of values a safetensors file holds (its header's shapes).
fn parameter_count(file: &Path) -> usize {
    // SAFETY: mapped read-only, only the header is read.
    unsafe { candle_core::safetensors::MmapedSafetensors::new(file) }
        .map(|st| {
            st.tensors()
                .iter()
                .map(|(_, t)| t.shape().iter().product::<usize>())
                .sum()
        })
        .unwrap_or(0)
}

/// How the model follows the prompt: an LCM distilled with guidance reads w as an embedding (one
/// call per step); any other UNet (SD + LCM-LoRA) runs classifier-free guidance (two calls, or one
/// where the scale is ≤ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuidanceKind {
    Embedded,
    ClassifierFree,
}

pub struct LatentModel {
    pub dir: PathBuf,
    pub parts: Vec<Part>,
    pub tokenizer: ClipTokenizer,
    pub text_encoder: ClipTextEncoder,
    pub unet: UNet2DCondition,
    pub vae: AutoencoderKL,
    pub scheduler: LcmScheduler,
    /// TAESD for the step previews: the folder's `taesd/` (madebyollin/taesd), where there is one.
    pub preview: Option<TinyDecoder>,
    device: Device,
}

/// What one run asks for.
#[derive(Debug, Clone)]
pub struct LatentRequest<'a> {
    pub prompt: &'a str,
    pub negative_prompt: &'a str,
    pub steps: usize,
    /// The pipeline's `guidance_scale` (8 for a w-embedding LCM; 1–2 for CFG).
    pub guidance: f64,
}

/// Image to image (sketch → picture) and inpainting: the picture [1 or B, 3, H, W] in [−1, 1], the
/// mask [1 or B, 1, H, W] (1 = paint anew, soft edges allowed; None = the whole picture) and the
/// strength (how far up the timestep grid the picture is noised: 1 = all the way).
#[derive(Debug, Clone, Copy)]
pub struct LatentEdit<'a> {
    pub picture: &'a Tensor,
    pub mask: Option<&'a Tensor>,
    pub strength: f64,
}

/// Whether `dir` looks like a diffusers pipeline folder.
pub fn is_pipeline_dir(dir: &Path) -> bool {
    dir.join("model_index.json").is_file()
}

impl LatentModel {
    /// Loads a diffusers folder or an SD 1.x single-file checkpoint, with an LCM-LoRA (or any UNet
    /// LoRA) merged into its UNet.
    pub fn load(
        path: &Path,
        lora: Option<&Path>,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        let Opened {
            parts,
            tokenizer,
            text,
            unet,
            vae,
            scheduler,
            taesd,
            ..
        } = Opened::new(path, lora)?;
        let weights = |b| VarBuilder::from_backend(b, DType::F32, device.clone());
        let (text_weights, unet_weights, vae_weights) =
            (weights(text.1), weights(unet.1), weights(vae.1));
        // The UNet on one thread, the text encoder and the VAE on the other: converting and laying
        // out weights is most of a load, and one part at a time left a core idle.
        let (unet, (text_encoder, vae)) = rayon::join(
            || {
                UNet2DCondition::new(unet.0, precision, unet_weights)
                    .map_err(|e| in_part("unet", e))
            },
            || {
                let text_encoder = ClipTextEncoder::new(&text.0, text_weights)
                    .map_err(|e| in_part("text_encoder", e));
                let vae = AutoencoderKL::new(vae.0, precision, vae_weights)
                    .map_err(|e| in_part("vae", e));
                (text_encoder, vae)
            },
        );
        let (text_encoder, unet, vae) = (text_encoder?, unet?, vae?);
        let preview = taesd
            .map(|dir| TinyDecoder::load(&dir, device, precision).map_err(|e| in_part("taesd", e)))
            .transpose()?;
        Ok(Self {
            dir: path.to_owned(),
            parts,
            tokenizer,
            text_encoder,
            unet,
            vae,
            scheduler,
            preview,
            device: device.clone(),
        })
    }

    /// Parameters of the text encoder, UNet and VAE (a LoRA's are merged into the UNet's; TAESD only
    /// draws previews).
    pub fn parameters(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| p.name != "lora" && p.name != "taesd")
            .map(|p| p.parameters)
            .sum()
    }

    pub fn guidance_kind(&self) -> GuidanceKind {
        if self.unet.config.time_cond_proj_dim.is_some() {
            GuidanceKind::Embedded
        } else {
            GuidanceKind::ClassifierFree
        }
    }

    /// The model's default guidance scale: 8 for a w-embedding LCM (as its pipeline), 1.5 with CFG
    /// (LCM-LoRA's recommended 1–2).
    pub fn default_guidance(&self) -> f64 {
        match self.guidance_kind() {
            GuidanceKind::Embedded => 8.0,
            GuidanceKind::ClassifierFree => 1.5,
        }
    }

    /// Memory a run of `batch` pictures of `h`×`w` needs beyond the weights, roughly: measured on an
    /// SD 1.5-sized model (benches/latent.rs: a 4-step 512² picture peaks 2.0 GB above the loaded
    /// model, most of it the VAE's decode at full size, 61 bytes per pixel and channel), per pixel and
    /// per channel of the VAE's widest full-size layer, with a fifth more for safety.
    pub fn activation_bytes(&self, batch: usize, h: usize, w: usize) -> usize {
        const BYTES_PER_PIXEL_CHANNEL: usize = 75;
        let channels = self.vae.config.block_out_channels[0];
        batch
            .saturating_mul(h)
            .saturating_mul(w)
            .saturating_mul(channels)
            .saturating_mul(BYTES_PER_PIXEL_CHANNEL)
    }

    /// Pixels per latent pixel along a side (8).
    pub fn vae_factor(&self) -> usize {
        self.vae.config.factor()
    }

    /// The model's native picture side (512 for SD 1.5).
    pub fn native_size(&self) -> usize {
        self.unet.config.sample_size.unwrap_or(64) * self.vae_factor()
    }

    /// The text encoder's last hidden state for a prompt, [1, 77, D].
    pub fn encode_prompt(&self, prompt: &str) -> Result<Tensor> {
        let ids = self.tokenizer.encode(prompt);
        let ids = Tensor::from_vec(ids, (1, self.tokenizer.context), &self.device)?;
        self.text_encoder.forward(&ids)
    }

    /// One run: text to image, or — with `edit` — image to image and inpainting. `noise` [N ≥ steps,
    /// B, 4, h, w]: entry 0 the initial latents (text to image) or the draw that noises the encoded
    /// picture to the first timestep (edits); entry i the draw that noises again after step i.
    /// `on_step` after each network call — the VAE's encode (edits), each step's UNet call, the
    /// VAE's decode — and `Break` cancels. → pictures [B, 3, 8h, 8w] in [−1, 1]; None if cancelled.
    pub fn run(
        &self,
        request: &LatentRequest,
        edit: Option<&LatentEdit>,
        noise: &Tensor,
        on_step: OnStep,
    ) -> Result<Option<Tensor>> {
        let strength = edit.map_or(1.0, |e| e.strength);
        let timesteps = self.scheduler.timesteps(request.steps, strength)?;
        let (n, batch) = (noise.dim(0)?, noise.dim(1)?);
        if n < timesteps.len() {
            return Err(EngineError::InvalidInput(format!(
                "the noise holds {n} entries; {} steps need {}",
                timesteps.len(),
                timesteps.len()
            )));
        }
        let total = timesteps.len() + 1 + usize::from(edit.is_some());
        let mut done = 0;
        // after each network call; a step's preview is its x₀ estimate through TAESD, where loaded
        let mut cancelled = |on_step: &mut dyn FnMut(Step) -> ControlFlow<()>,
                             estimate: Option<&Tensor>| {
            done += 1;
            on_step(Step {
                done,
                total,
                estimate,
            })
            .is_break()
        };
        let context = self.conditioning(request, batch)?;
        // The picture's latents (the distribution's mean: a sketch always starts from the same ones)
        // and, for inpainting, where they are kept: outside the mask max-pooled to the latents.
        let (mut latents, known, keep) = match edit {
            None => (noise.get(0)?, None, None),
            Some(e) => {
                let (mean, _) = self.vae.encode(e.picture)?;
                let known = (mean * self.vae.config.scaling_factor)?
                    .broadcast_as(noise.get(0)?.shape())?
                    .contiguous()?;
                if cancelled(on_step, None) {
                    return Ok(None);
                }
                let keep = e
                    .mask
                    .map(|m| {
                        (1.0 - m.max_pool2d(self.vae_factor())?)?
                            .broadcast_as(known.shape())?
                            .contiguous()
                    })
                    .transpose()?;
                let start = self
                    .scheduler
                    .add_noise(&known, &noise.get(0)?, timesteps[0])?;
                (start, Some(known), keep)
            }
        };
        let mut denoised = latents.clone();
        for (i, &t) in timesteps.iter().enumerate() {
            let out = self.predict(&latents, t, &context, request.guidance)?;
            denoised = self.scheduler.step(&out, t, &latents)?;
            if let (Some(known), Some(keep)) = (&known, &keep) {
                denoised = ((keep * known)? + ((1.0 - keep)? * &denoised)?)?;
            }
            if let Some(&next) = timesteps.get(i + 1) {
                latents = self
                    .scheduler
                    .add_noise(&denoised, &noise.get(i + 1)?, next)?;
            }
            // the last step's estimate is the result, which the VAE decodes next
            let preview = match (&self.preview, timesteps.get(i + 1)) {
                (Some(taesd), Some(_)) => Some(taesd.decode(&denoised)?.clamp(-1f32, 1f32)?),
                _ => None,
            };
            if cancelled(on_step, preview.as_ref()) {
                return Ok(None);
            }
        }
        let scaled = (denoised / self.vae.config.scaling_factor)?;
        let image = self.vae.decode(&scaled)?.clamp(-1f32, 1f32)?;
        if cancelled(on_step, None) {
            return Ok(None);
        }
        Ok(Some(
            match edit.and_then(|e| e.mask.map(|m| (e.picture, m))) {
                // Every pixel outside the mask is the picture's own.
                Some((picture, mask)) => image
                    .broadcast_mul(mask)?
                    .broadcast_add(&picture.broadcast_mul(&(1.0 - mask)?)?)?,
                None => image,
            },
        ))
    }

    /// The prompt's states for the batch, with the w-embedding or the negative prompt's states.
    fn conditioning(&self, request: &LatentRequest, batch: usize) -> Result<Conditioning> {
        let cond = self.encode_prompt(request.prompt)?.repeat((batch, 1, 1))?;
        Ok(match self.guidance_kind() {
            GuidanceKind::Embedded => {
                let dim = self.unet.config.time_cond_proj_dim.unwrap_or(256);
                let w = guidance_embedding(request.guidance - 1.0, dim);
                let w = Tensor::from_vec(w, (1, dim), &self.device)?.repeat((batch, 1))?;
                Conditioning::Embedded { states: cond, w }
            }
            GuidanceKind::ClassifierFree if request.guidance > 1.0 => {
                let uncond = self
                    .encode_prompt(request.negative_prompt)?
                    .repeat((batch, 1, 1))?;
                Conditioning::ClassifierFree {
                    both: Tensor::cat(&[&uncond, &cond], 0)?,
                }
            }
            GuidanceKind::ClassifierFree => Conditioning::Plain { states: cond },
        })
    }

    /// The UNet's prediction at `latents`, guided: one call, or with CFG two (batched as one),
    /// uncond + g·(cond − uncond).
    fn predict(
        &self,
        latents: &Tensor,
        t: usize,
        c: &Conditioning,
        guidance: f64,
    ) -> Result<Tensor> {
        let t = t as f64;
        match c {
            Conditioning::Embedded { states, w } => self.unet.forward(latents, t, states, Some(w)),
            Conditioning::Plain { states } => self.unet.forward(latents, t, states, None),
            Conditioning::ClassifierFree { both } => {
                let b = latents.dim(0)?;
                let out =
                    self.unet
                        .forward(&Tensor::cat(&[latents, latents], 0)?, t, both, None)?;
                let (u, c) = (out.narrow(0, 0, b)?, out.narrow(0, b, b)?);
                Ok((&u + ((c - &u)? * guidance)?)?)
            }
        }
    }
}

enum Conditioning {
    Embedded { states: Tensor, w: Tensor },
    ClassifierFree { both: Tensor },
    Plain { states: Tensor },
}

/// What a folder or single file holds, read from configs and weight-file headers without loading a
/// weight: what `cmpaint info` prints. Every part is checked to be there and to parse.
pub struct Summary {
    pub parts: Vec<Part>,
    pub text_encoder: ClipConfig,
    pub unet: UNetConfig,
    pub vae: VaeConfig,
    pub scheduler: super::lcm::LcmConfig,
    pub vocabulary: usize,
    /// The UNet layers a LoRA changes.
    pub lora_layers: Option<usize>,
    /// A single-file checkpoint (its tokenizer is the built-in CLIP one).
    pub single_file: bool,
}

pub fn inspect(path: &Path, lora: Option<&Path>) -> Result<Summary> {
    let o = Opened::new(path, lora)?;
    Ok(Summary {
        vocabulary: o.tokenizer.vocabulary(),
        text_encoder: o.text.0,
        unet: o.unet.0,
        vae: o.vae.0,
        scheduler: o.scheduler.config,
        lora_layers: o.lora_layers,
        single_file: o.single_file,
        parts: o.parts,
    })
}

/// A part's weights under diffusers' names.
type Weights = Box<dyn SimpleBackend>;

/// A latent model's parts opened, not built: configs checked to fit together, weights mapped.
struct Opened {
    parts: Vec<Part>,
    tokenizer: ClipTokenizer,
    text: (ClipConfig, Weights),
    unet: (UNetConfig, Weights),
    vae: (VaeConfig, Weights),
    scheduler: LcmScheduler,
    lora_layers: Option<usize>,
    /// TAESD's folder, for the step previews.
    taesd: Option<PathBuf>,
    single_file: bool,
}

impl Opened {
    fn new(path: &Path, lora: Option<&Path>) -> Result<Self> {
        let opened = match is_single_file(path) {
            true => Self::single_file(path, lora)?,
            false => Self::folder(path, lora)?,
        };
        parts_agree(&opened.text.0, &opened.unet.0, &opened.vae.0)?;
        Ok(opened)
    }

    fn folder(dir: &Path, lora: Option<&Path>) -> Result<Self> {
        if !is_pipeline_dir(dir) {
            return Err(EngineError::InvalidInput(format!(
                "{}: neither a diffusers folder (no model_index.json) nor a Stable Diffusion 1.x \
                 single-file checkpoint",
                dir.display()
            )));
        }
        let config = |name: &str, file: &str| {
            let path = dir.join(name).join(file);
            match path.is_file() {
                true => Ok(path),
                false => Err(EngineError::InvalidInput(format!(
                    "{}: the {name} part is missing ({file} not found)",
                    dir.display()
                ))),
            }
        };
        let tokenizer = ClipTokenizer::from_dir(&dir.join("tokenizer"))?;
        let text_config = ClipConfig::read(&config("text_encoder", "config.json")?)?;
        let unet_config = UNetConfig::read(&config("unet", "config.json")?)?;
        let vae_config = VaeConfig::read(&config("vae", "config.json")?)?;
        let scheduler = LcmScheduler::read(&config("scheduler", "scheduler_config.json")?)?;
        let mut parts = Vec::new();
        let mut weights = |name: &'static str| -> Result<Weights> {
            let file = weights_file(&dir.join(name))?;
            // SAFETY: the file is mapped read-only; cmpaint never writes model files while they
            // are loaded.
            let mapped =
                unsafe { MmapedSafetensors::new(&file) }.map_err(|e| part_error(name, &file, e))?;
            parts.push(Part::of(name, file));
            Ok(Box::new(mapped))
        };
        let (text, mut unet, vae) = (weights("text_encoder")?, weights("unet")?, weights("vae")?);
        let mut lora_layers = None;
        if let Some(lora_file) = lora {
            let merged = Merged::over_file(&parts[1].file, lora_file, 1.0)?;
            lora_layers = Some(merged.layers());
            unet = Box::new(merged);
            parts.push(Part::of("lora", lora_file.to_owned()));
        }
        let taesd = Some(dir.join("taesd")).filter(|t| t.join("config.json").is_file());
        if let Some(t) = &taesd {
            parts.push(Part::of(
                "taesd",
                t.join("diffusion_pytorch_model.safetensors"),
            ));
        }
        Ok(Self {
            parts,
            tokenizer,
            text: (text_config, text),
            unet: (unet_config, unet),
            vae: (vae_config, vae),
            scheduler,
            lora_layers,
            taesd,
            single_file: false,
        })
    }

    /// An SD 1.x checkpoint in one file: CLIP's own tokenizer and SD 1.5's noise schedule (LCM's
    /// defaults are SD 1.5's), since the file holds neither.
    fn single_file(file: &Path, lora: Option<&Path>) -> Result<Self> {
        let sf = SingleFile::open(file)?;
        let (text_config, unet_config, vae_config) =
            (sf.text_config()?, sf.unet_config()?, sf.vae_config()?);
        let tokenizer = ClipTokenizer::clip()?;
        if tokenizer.vocabulary() != text_config.vocab_size {
            return Err(EngineError::InvalidInput(format!(
                "{}: the text encoder knows {} tokens, CLIP's tokenizer has {}",
                file.display(),
                text_config.vocab_size,
                tokenizer.vocabulary()
            )));
        }
        let (text, unet, vae) = (
            sf.text_encoder(),
            sf.unet(unet_config.layers_per_block),
            sf.vae(vae_config.block_out_channels.len()),
        );
        let mut parts = vec![Part {
            name: "checkpoint",
            file: file.to_owned(),
            bytes: std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
            parameters: text.parameters() + unet.parameters() + vae.parameters(),
        }];
        let (unet, lora_layers): (Weights, _) = match lora {
            Some(lora_file) => {
                let names = unet.names().map(str::to_owned).collect();
                let merged = Merged::new(Box::new(unet), names, lora_file, 1.0)?;
                parts.push(Part::of("lora", lora_file.to_owned()));
                let layers = merged.layers();
                (Box::new(merged), Some(layers))
            }
            None => (Box::new(unet), None),
        };
        let defaults = serde_json::from_str("{}").expect("every LCM setting has a default");
        Ok(Self {
            parts,
            tokenizer,
            text: (text_config, Box::new(text)),
            unet: (unet_config, unet),
            vae: (vae_config, Box::new(vae)),
            scheduler: LcmScheduler::new(defaults)?,
            lora_layers,
            taesd: None,
            single_file: true,
        })
    }
}

/// A part's weights: `model.safetensors` (transformers) or `diffusion_pytorch_model.safetensors`
/// (diffusers), or their `.fp16` variants.
fn weights_file(part: &Path) -> Result<PathBuf> {
    let names = [
        "diffusion_pytorch_model.safetensors",
        "model.safetensors",
        "diffusion_pytorch_model.fp16.safetensors",
        "model.fp16.safetensors",
    ];
    names
        .iter()
        .map(|n| part.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let bin = part.join("diffusion_pytorch_model.bin").is_file()
                || part.join("pytorch_model.bin").is_file();
            EngineError::InvalidInput(format!(
                "{}: no safetensors weights{}",
                part.display(),
                if bin {
                    " (only a .bin pickle: convert it to .safetensors)"
                } else {
                    ""
                }
            ))
        })
}

/// The parts must fit together: the text encoder's width is what the UNet's cross-attention reads,
/// the VAE's latents are what the UNet denoises (a folder mixed from SD 1.x and 2.x fails here, in one
/// line, rather than in a matrix product).
fn parts_agree(text: &ClipConfig, unet: &UNetConfig, vae: &VaeConfig) -> Result<()> {
    if text.hidden_size != unet.cross_attention_dim {
        return Err(EngineError::InvalidInput(format!(
            "the text encoder's states are {} wide, the UNet's cross-attention reads {} (parts of different models?)",
            text.hidden_size, unet.cross_attention_dim
        )));
    }
    if vae.latent_channels != unet.in_channels || unet.in_channels != unet.out_channels {
        return Err(EngineError::InvalidInput(format!(
            "the VAE's latents have {} channels, the UNet takes {} and gives {} (an inpainting UNet, or parts of different models?)",
            vae.latent_channels, unet.in_channels, unet.out_channels
        )));
    }
    Ok(())
}

fn part_error(name: &str, file: &Path, e: candle_core::Error) -> EngineError {
    EngineError::InvalidInput(format!("{name}: cannot read {}: {e}", file.display()))
}

fn in_part(name: &str, e: EngineError) -> EngineError {
    EngineError::InvalidInput(format!("{name}: {e}"))
}
