//! A latent consistency model as users have it — a diffusers folder — and its runs: prompt → CLIP
//! states; initial latents (noise, or the encoded picture noised to the first timestep); each LCM
//! step one UNet call (two with classifier-free guidance) whose x₀ estimate keeps the picture's
//! latents outside an inpainting mask (the paper's Algorithm 4, in latent space) and is noised again
//! for the next step; the VAE decodes the last estimate, and unmasked pixels are the picture's.

use super::clip::{ClipConfig, ClipTextEncoder};
use super::lcm::{LcmScheduler, guidance_embedding};
use super::lora::Merged;
use super::taesd::TinyDecoder;
use super::tokenizer::ClipTokenizer;
use super::unet::{UNet2DCondition, UNetConfig};
use super::vae::{AutoencoderKL, VaeConfig};
use crate::engine::cm::sample::{OnStep, Step};
use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::Precision;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
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
    /// Loads the folder `dir`, with an LCM-LoRA (or any UNet LoRA) merged into its UNet.
    pub fn load(
        dir: &Path,
        lora: Option<&Path>,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        if !is_pipeline_dir(dir) {
            return Err(EngineError::InvalidInput(format!(
                "{}: not a diffusers folder (no model_index.json)",
                dir.display()
            )));
        }
        let mut parts = Vec::new();
        let mut weights = |name: &'static str| -> Result<VarBuilder<'static>> {
            let file = weights_file(&dir.join(name))?;
            let vb = match lora.filter(|_| name == "unet") {
                Some(lora_file) => {
                    let merged = Merged::new(&file, lora_file, 1.0)?;
                    parts.push(Part::of("lora", lora_file.to_owned()));
                    VarBuilder::from_backend(Box::new(merged), DType::F32, device.clone())
                }
                // SAFETY: the file is mapped read-only; cmpaint never writes model files while
                // they are loaded.
                None => {
                    unsafe { VarBuilder::from_mmaped_safetensors(&[&file], DType::F32, device) }
                        .map_err(|e| part_error(name, &file, e))?
                }
            };
            parts.push(Part::of(name, file));
            Ok(vb)
        };
        let config = |name: &str, file: &str| {
            let path = dir.join(name).join(file);
            if path.is_file() {
                Ok(path)
            } else {
                Err(EngineError::InvalidInput(format!(
                    "{}: the {name} part is missing ({file} not found)",
                    dir.display()
                )))
            }
        };
        let tokenizer = ClipTokenizer::from_dir(&dir.join("tokenizer"))?;
        let text_config = ClipConfig::read(&config("text_encoder", "config.json")?)?;
        let unet_config = UNetConfig::read(&config("unet", "config.json")?)?;
        let vae_config = VaeConfig::read(&config("vae", "config.json")?)?;
        parts_agree(&text_config, &unet_config, &vae_config)?;
        let (text_weights, unet_weights, vae_weights) =
            (weights("text_encoder")?, weights("unet")?, weights("vae")?);
        // The UNet on one thread, the text encoder and the VAE on the other: converting and laying
        // out weights is most of a load, and one part at a time left a core idle.
        let (unet, (text_encoder, vae)) = rayon::join(
            || {
                UNet2DCondition::new(unet_config, precision, unet_weights)
                    .map_err(|e| in_part("unet", e))
            },
            || {
                let text = ClipTextEncoder::new(&text_config, text_weights)
                    .map_err(|e| in_part("text_encoder", e));
                let vae = AutoencoderKL::new(vae_config, precision, vae_weights)
                    .map_err(|e| in_part("vae", e));
                (text, vae)
            },
        );
        let (text_encoder, unet, vae) = (text_encoder?, unet?, vae?);
        let scheduler = LcmScheduler::read(&config("scheduler", "scheduler_config.json")?)?;
        let taesd = dir.join("taesd");
        let preview = match taesd.join("config.json").is_file() {
            true => {
                let file = taesd.join("diffusion_pytorch_model.safetensors");
                parts.push(Part::of("taesd", file));
                Some(
                    TinyDecoder::load(&taesd, device, precision)
                        .map_err(|e| in_part("taesd", e))?,
                )
            }
            false => None,
        };
        Ok(Self {
            dir: dir.to_owned(),
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

/// What a folder holds, read from its configs and weight-file headers without loading a weight:
/// what `cmpaint info` prints. Every part is checked to be there and to parse.
pub struct FolderSummary {
    pub parts: Vec<Part>,
    pub text_encoder: ClipConfig,
    pub unet: UNetConfig,
    pub vae: VaeConfig,
    pub scheduler: super::lcm::LcmConfig,
    pub vocabulary: usize,
    /// The UNet layers a LoRA changes.
    pub lora_layers: Option<usize>,
}

pub fn inspect(dir: &Path, lora: Option<&Path>) -> Result<FolderSummary> {
    if !is_pipeline_dir(dir) {
        return Err(EngineError::InvalidInput(format!(
            "{}: not a diffusers folder (no model_index.json)",
            dir.display()
        )));
    }
    let config = |name: &str, file: &str| -> Result<PathBuf> {
        let path = dir.join(name).join(file);
        match path.is_file() {
            true => Ok(path),
            false => Err(EngineError::InvalidInput(format!(
                "{}: the {name} part is missing ({file} not found)",
                dir.display()
            ))),
        }
    };
    let mut parts = Vec::new();
    for name in ["text_encoder", "unet", "vae"] {
        parts.push(Part::of(name, weights_file(&dir.join(name))?));
    }
    let lora_layers = match lora {
        Some(l) => {
            let layers = Merged::new(&parts[1].file, l, 1.0)?.layers();
            parts.push(Part::of("lora", l.to_owned()));
            Some(layers)
        }
        None => None,
    };
    let taesd = dir.join("taesd/diffusion_pytorch_model.safetensors");
    if taesd.is_file() {
        parts.push(Part::of("taesd", taesd));
    }
    let vocabulary: std::collections::HashMap<String, u32> =
        super::nn::read_json(&config("tokenizer", "vocab.json")?)?;
    config("tokenizer", "merges.txt")?;
    let text_encoder = ClipConfig::read(&config("text_encoder", "config.json")?)?;
    let unet = UNetConfig::read(&config("unet", "config.json")?)?;
    let vae = VaeConfig::read(&config("vae", "config.json")?)?;
    parts_agree(&text_encoder, &unet, &vae)?;
    Ok(FolderSummary {
        parts,
        text_encoder,
        unet,
        vae,
        scheduler: LcmScheduler::read(&config("scheduler", "scheduler_config.json")?)?.config,
        vocabulary: vocabulary.len(),
        lora_layers,
    })
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
