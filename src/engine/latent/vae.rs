//! diffusers' `AutoencoderKL`, Stable Diffusion's VAE: pictures [B, 3, H, W] in [−1, 1] ⇄ latents
//! [B, 4, H/8, W/8]. The encoder gives the latent distribution's mean and standard deviation; the
//! pipeline multiplies latents by `scaling_factor` (0.18215 for SD) on the way in and divides on the
//! way out.

use super::blocks::{Downsample, ResnetBlock, SpatialAttention, Upsample};
use super::nn;
use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::Precision;
use crate::engine::model::blocks::{conv1x1, conv3x3};
use crate::engine::model::layers::{Conv2d, GroupNorm};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::path::Path;

const EPS: f64 = 1e-6;

#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfig {
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    #[serde(default = "four")]
    pub latent_channels: usize,
    pub block_out_channels: Vec<usize>,
    #[serde(default = "one")]
    pub layers_per_block: usize,
    #[serde(default = "sd_scaling")]
    pub scaling_factor: f64,
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
}

fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn one() -> usize {
    1
}
fn sd_scaling() -> f64 {
    0.18215
}
fn yes() -> bool {
    true
}

impl VaeConfig {
    pub fn read(path: &Path) -> Result<Self> {
        Self::checked(nn::read_json(path)?, &path.display().to_string())
    }

    /// `cfg` if it can exist (`origin` names where it came from in the error).
    pub fn checked(cfg: Self, origin: &str) -> Result<Self> {
        if cfg.block_out_channels.is_empty()
            || cfg.layers_per_block == 0
            || cfg.latent_channels == 0
            || cfg.in_channels == 0
            || cfg.out_channels == 0
        {
            return Err(EngineError::InvalidInput(format!(
                "{origin}: a VAE needs blocks, a layer per block and channels in, out and between"
            )));
        }
        Ok(cfg)
    }

    /// Pixels per latent pixel along a side (8 for SD).
    pub fn factor(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

struct MidBlock {
    resnet1: ResnetBlock,
    attention: Option<SpatialAttention>,
    resnet2: ResnetBlock,
}

impl MidBlock {
    fn new(c: usize, attention: bool, precision: Precision, vb: VarBuilder) -> Result<Self> {
        let resnet = |name: &str| ResnetBlock::new(c, c, None, EPS, precision, vb.pp(name));
        Ok(Self {
            resnet1: resnet("resnets.0")?,
            attention: attention
                .then(|| SpatialAttention::new(c, vb.pp("attentions.0")))
                .transpose()?,
            resnet2: resnet("resnets.1")?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.resnet1.forward(x, None)?;
        if let Some(a) = &self.attention {
            x = a.forward(&x)?;
        }
        self.resnet2.forward(&x, None)
    }
}

struct Stage {
    resnets: Vec<ResnetBlock>,
    down: Option<Downsample>,
    up: Option<Upsample>,
}

pub struct Encoder {
    conv_in: Conv2d,
    stages: Vec<Stage>,
    mid: MidBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    quant_conv: Option<Conv2d>,
}

pub struct Decoder {
    post_quant_conv: Option<Conv2d>,
    conv_in: Conv2d,
    mid: MidBlock,
    stages: Vec<Stage>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

pub struct AutoencoderKL {
    pub config: VaeConfig,
    encoder: Encoder,
    decoder: Decoder,
}

impl AutoencoderKL {
    pub fn new(config: VaeConfig, precision: Precision, vb: VarBuilder) -> Result<Self> {
        let ch = &config.block_out_channels;
        let (n, last, latent) = (ch.len(), ch[ch.len() - 1], config.latent_channels);
        let resnet = |cin, cout, vb| ResnetBlock::new(cin, cout, None, EPS, precision, vb);

        let enc = vb.pp("encoder");
        let mut stages = Vec::with_capacity(n);
        let mut cin = ch[0];
        for (i, &c) in ch.iter().enumerate() {
            let vb = enc.pp(format!("down_blocks.{i}"));
            let resnets = (0..config.layers_per_block)
                .map(|j| {
                    resnet(
                        if j == 0 { cin } else { c },
                        c,
                        vb.pp(format!("resnets.{j}")),
                    )
                })
                .collect::<Result<_>>()?;
            let down = (i + 1 < n)
                .then(|| Downsample::new(c, 0, precision, vb.pp("downsamplers.0")))
                .transpose()?;
            stages.push(Stage {
                resnets,
                down,
                up: None,
            });
            cin = c;
        }
        let encoder = Encoder {
            conv_in: conv3x3(config.in_channels, ch[0], 1, precision, enc.pp("conv_in"))?,
            stages,
            mid: MidBlock::new(
                last,
                config.mid_block_add_attention,
                precision,
                enc.pp("mid_block"),
            )?,
            norm_out: GroupNorm::with_eps(last, EPS, enc.pp("conv_norm_out"))?,
            conv_out: conv3x3(last, 2 * latent, 1, precision, enc.pp("conv_out"))?,
            quant_conv: config
                .use_quant_conv
                .then(|| conv1x1(2 * latent, 2 * latent, precision, vb.pp("quant_conv")))
                .transpose()?,
        };

        let dec = vb.pp("decoder");
        let mut stages = Vec::with_capacity(n);
        let mut prev = last;
        for i in 0..n {
            let vb = dec.pp(format!("up_blocks.{i}"));
            let c = ch[n - 1 - i];
            let resnets = (0..=config.layers_per_block)
                .map(|j| {
                    resnet(
                        if j == 0 { prev } else { c },
                        c,
                        vb.pp(format!("resnets.{j}")),
                    )
                })
                .collect::<Result<_>>()?;
            let up = (i + 1 < n)
                .then(|| Upsample::new(c, precision, vb.pp("upsamplers.0")))
                .transpose()?;
            stages.push(Stage {
                resnets,
                down: None,
                up,
            });
            prev = c;
        }
        let decoder = Decoder {
            post_quant_conv: config
                .use_post_quant_conv
                .then(|| conv1x1(latent, latent, precision, vb.pp("post_quant_conv")))
                .transpose()?,
            conv_in: conv3x3(latent, last, 1, precision, dec.pp("conv_in"))?,
            mid: MidBlock::new(
                last,
                config.mid_block_add_attention,
                precision,
                dec.pp("mid_block"),
            )?,
            stages,
            norm_out: GroupNorm::with_eps(ch[0], EPS, dec.pp("conv_norm_out"))?,
            conv_out: conv3x3(ch[0], config.out_channels, 1, precision, dec.pp("conv_out"))?,
        };
        Ok(Self {
            config,
            encoder,
            decoder,
        })
    }

    /// Pictures [B, 3, H, W] in [−1, 1] → the latent distribution's (mean, std), each [B, 4, H/8, W/8]
    /// (unscaled).
    pub fn encode(&self, image: &Tensor) -> Result<(Tensor, Tensor)> {
        let e = &self.encoder;
        let mut x = e.conv_in.forward(image)?;
        for stage in &e.stages {
            for r in &stage.resnets {
                x = r.forward(&x, None)?;
            }
            if let Some(d) = &stage.down {
                x = d.forward(&x)?;
            }
        }
        x = e.mid.forward(&x)?;
        x = e.conv_out.forward(&e.norm_out.forward_silu(&x)?)?;
        if let Some(q) = &e.quant_conv {
            x = q.forward(&x)?;
        }
        let latent = self.config.latent_channels;
        let mean = x.narrow(1, 0, latent)?;
        let logvar = x.narrow(1, latent, latent)?.clamp(-30f32, 20f32)?;
        Ok((mean, (logvar * 0.5)?.exp()?))
    }

    /// Latents [B, 4, h, w] (unscaled) → pictures [B, 3, 8h, 8w], not clamped.
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let d = &self.decoder;
        let mut x = match &d.post_quant_conv {
            Some(q) => q.forward(latents)?,
            None => latents.clone(),
        };
        x = d.conv_in.forward(&x)?;
        x = d.mid.forward(&x)?;
        for stage in &d.stages {
            for r in &stage.resnets {
                x = r.forward(&x, None)?;
            }
            if let Some(u) = &stage.up {
                x = u.forward(&x)?;
            }
        }
        Ok(d.conv_out.forward(&d.norm_out.forward_silu(&x)?)?)
    }
}
