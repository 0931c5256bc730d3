//! A latent consistency model as users have it — a diffusers folder — and its text-to-image run:
//! prompt → CLIP states; initial latents; each LCM step one UNet call (two with classifier-free
//! guidance); the VAE decodes the last estimate.

use super::clip::{ClipConfig, ClipTextEncoder};
use super::lcm::{LcmScheduler, guidance_embedding};
use super::lora::Merged;
use super::tokenizer::ClipTokenizer;
use super::unet::{UNet2DCondition, UNetConfig};
use super::vae::{AutoencoderKL, VaeConfig};
use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::Precision;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::path::{Path, PathBuf};

/// One part of the folder and the weights file it was read from.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: &'static str,
    pub file: PathBuf,
    pub bytes: u64,
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
    device: Device,
}

/// What one text-to-image run asks for.
#[derive(Debug, Clone)]
pub struct TextToImage<'a> {
    pub prompt: &'a str,
    pub negative_prompt: &'a str,
    pub steps: usize,
    /// The pipeline's `guidance_scale` (8 for a w-embedding LCM; 1–2 for CFG).
    pub guidance: f64,
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
            let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            let vb = match lora.filter(|_| name == "unet") {
                Some(lora_file) => {
                    let merged = Merged::new(&file, lora_file, 1.0)?;
                    let bytes = std::fs::metadata(lora_file).map(|m| m.len()).unwrap_or(0);
                    parts.push(Part {
                        name: "lora",
                        file: lora_file.to_owned(),
                        bytes,
                    });
                    VarBuilder::from_backend(Box::new(merged), DType::F32, device.clone())
                }
                // SAFETY: the file is mapped read-only; cmpaint never writes model files while
                // they are loaded.
                None => {
                    unsafe { VarBuilder::from_mmaped_safetensors(&[&file], DType::F32, device) }
                        .map_err(|e| part_error(name, &file, e))?
                }
            };
            parts.push(Part { name, file, bytes });
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
        let text_encoder = ClipTextEncoder::new(
            &ClipConfig::read(&config("text_encoder", "config.json")?)?,
            weights("text_encoder")?,
        )
        .map_err(|e| in_part("text_encoder", e))?;
        let unet = UNet2DCondition::new(
            UNetConfig::read(&config("unet", "config.json")?)?,
            precision,
            weights("unet")?,
        )
        .map_err(|e| in_part("unet", e))?;
        let vae = AutoencoderKL::new(
            VaeConfig::read(&config("vae", "config.json")?)?,
            precision,
            weights("vae")?,
        )
        .map_err(|e| in_part("vae", e))?;
        let scheduler = LcmScheduler::read(&config("scheduler", "scheduler_config.json")?)?;
        Ok(Self {
            dir: dir.to_owned(),
            parts,
            tokenizer,
            text_encoder,
            unet,
            vae,
            scheduler,
            device: device.clone(),
        })
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

    /// Text to image. `noise` [N ≥ steps, B, 4, h, w]: entry 0 the initial latents, entry i the draw
    /// that re-noises after step i. `on_call(done, total)` after each network call (the VAE last).
    /// → pictures [B, 3, 8h, 8w] in [−1, 1].
    pub fn text_to_image(
        &self,
        request: &TextToImage,
        noise: &Tensor,
        on_call: &mut dyn FnMut(usize, usize),
    ) -> Result<Tensor> {
        let timesteps = self.scheduler.timesteps(request.steps, 1.0)?;
        let (n, b) = (noise.dim(0)?, noise.dim(1)?);
        if n < timesteps.len() {
            return Err(EngineError::InvalidInput(format!(
                "the noise holds {n} entries; {} steps need {}",
                timesteps.len(),
                timesteps.len()
            )));
        }
        let latents = noise.get(0)?;
        let final_latents = self.sample(request, latents, &timesteps, noise, b, on_call)?;
        self.decode(&final_latents, on_call, timesteps.len())
    }

    /// The LCM loop from `latents` at timesteps[0]: → the last step's x₀ estimate (scaled latents).
    fn sample(
        &self,
        request: &TextToImage,
        mut latents: Tensor,
        timesteps: &[usize],
        noise: &Tensor,
        batch: usize,
        on_call: &mut dyn FnMut(usize, usize),
    ) -> Result<Tensor> {
        let cond = self.encode_prompt(request.prompt)?.repeat((batch, 1, 1))?;
        let (context, w_embedding, cfg) = match self.guidance_kind() {
            GuidanceKind::Embedded => {
                let dim = self.unet.config.time_cond_proj_dim.unwrap_or(256);
                let w = guidance_embedding(request.guidance - 1.0, dim);
                let w = Tensor::from_vec(w, (1, dim), &self.device)?.repeat((batch, 1))?;
                (cond, Some(w), false)
            }
            GuidanceKind::ClassifierFree if request.guidance > 1.0 => {
                let uncond = self
                    .encode_prompt(request.negative_prompt)?
                    .repeat((batch, 1, 1))?;
                (Tensor::cat(&[&uncond, &cond], 0)?, None, true)
            }
            GuidanceKind::ClassifierFree => (cond, None, false),
        };
        let total = timesteps.len() + 1;
        let mut denoised = latents.clone();
        for (i, &t) in timesteps.iter().enumerate() {
            let input = if cfg {
                Tensor::cat(&[&latents, &latents], 0)?
            } else {
                latents.clone()
            };
            let out = self
                .unet
                .forward(&input, t as f64, &context, w_embedding.as_ref())?;
            let out = if cfg {
                let (u, c) = (out.narrow(0, 0, batch)?, out.narrow(0, batch, batch)?);
                (&u + ((c - &u)? * request.guidance)?)?
            } else {
                out
            };
            let next = timesteps.get(i + 1).map(|&t| (t, i + 1));
            let draw = next.map(|(_, k)| noise.get(k)).transpose()?;
            let next = next.zip(draw.as_ref()).map(|((t, _), z)| (t, z));
            (denoised, latents) = self.scheduler.step(&out, t, &latents, next)?;
            on_call(i + 1, total);
        }
        Ok(denoised)
    }

    /// Scaled latents → pictures in [−1, 1] (the VAE's output clamped).
    fn decode(
        &self,
        latents: &Tensor,
        on_call: &mut dyn FnMut(usize, usize),
        done: usize,
    ) -> Result<Tensor> {
        let scaled = (latents / self.vae.config.scaling_factor)?;
        let image = self.vae.decode(&scaled)?.clamp(-1f32, 1f32)?;
        on_call(done + 1, done + 1);
        Ok(image)
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

fn part_error(name: &str, file: &Path, e: candle_core::Error) -> EngineError {
    EngineError::InvalidInput(format!("{name}: cannot read {}: {e}", file.display()))
}

fn in_part(name: &str, e: EngineError) -> EngineError {
    EngineError::InvalidInput(format!("{name}: {e}"))
}
