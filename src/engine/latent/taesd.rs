//! TAESD's decoder (diffusers' `AutoencoderTiny`): a small all-convolution decoder from SD's latents
//! (the UNet's, already scaled) to a picture, a fraction of the VAE's cost. It decodes the step
//! previews of a latent run; the result itself always comes from the full VAE.
//!
//! tanh(x/3)·3, a 3×3 convolution and ReLU; then per stage its residual blocks (three 3×3
//! convolutions with ReLUs between, plus the input, then ReLU), a nearest ×2 upsampling and a 3×3
//! convolution without bias — the last stage's with a bias, to 3 channels; the output scaled from
//! [0, 1] to [−1, 1].

use super::nn;
use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::conv::Conv2dParams;
use crate::engine::kernels::{Precision, residual};
use crate::engine::model::blocks::conv3x3;
use crate::engine::model::layers::Conv2d;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct TinyConfig {
    pub decoder_block_out_channels: Vec<usize>,
    pub num_decoder_blocks: Vec<usize>,
    #[serde(default = "four")]
    pub latent_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    #[serde(default = "two")]
    pub upsampling_scaling_factor: usize,
}

fn four() -> usize {
    4
}
fn three() -> usize {
    3
}
fn two() -> usize {
    2
}

struct Block {
    convs: [Conv2d; 3],
}

impl Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.convs[0].forward(x)?.relu()?;
        let h = self.convs[1].forward(&h)?.relu()?;
        let h = self.convs[2].forward(&h)?;
        Ok(residual::add(h, x)?.relu()?)
    }
}

enum Layer {
    Blocks(Vec<Block>),
    Upsample(usize),
    Conv(Conv2d),
}

pub struct TinyDecoder {
    conv_in: Conv2d,
    layers: Vec<Layer>,
    pub factor: usize,
}

impl TinyDecoder {
    /// A TAESD folder (config.json + diffusion_pytorch_model.safetensors, as madebyollin/taesd ships).
    pub fn load(dir: &Path, device: &Device, precision: Precision) -> Result<Self> {
        let cfg: TinyConfig = nn::read_json(&dir.join("config.json"))?;
        let file = dir.join("diffusion_pytorch_model.safetensors");
        // SAFETY: mapped read-only, as every weight file.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&file], DType::F32, device) }
            .map_err(|e| EngineError::InvalidInput(format!("{}: {e}", file.display())))?;
        Self::new(&cfg, precision, vb.pp("decoder"))
            .map_err(|e| EngineError::InvalidInput(format!("{}: {e}", dir.display())))
    }

    pub fn new(cfg: &TinyConfig, precision: Precision, vb: VarBuilder) -> Result<Self> {
        let ch = &cfg.decoder_block_out_channels;
        let n = ch.len();
        if n == 0 || cfg.num_decoder_blocks.len() != n || ch.contains(&0) {
            return Err(EngineError::InvalidInput(
                "a TAESD decoder needs as many block counts as channel counts".into(),
            ));
        }
        // layers.0 is the input convolution, layers.1 its ReLU; then the stages
        let conv_in = conv3x3(cfg.latent_channels, ch[0], 1, precision, vb.pp("layers.0"))?;
        let mut index = 2;
        let mut layers = Vec::new();
        for (i, (&c, &blocks)) in ch.iter().zip(&cfg.num_decoder_blocks).enumerate() {
            let last = i + 1 == n;
            let stage = (0..blocks)
                .map(|_| {
                    let vb = vb.pp(format!("layers.{index}.conv"));
                    index += 1;
                    let conv = |j: usize| conv3x3(c, c, 1, precision, vb.pp(j.to_string()));
                    Ok(Block {
                        convs: [conv(0)?, conv(2)?, conv(4)?],
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            layers.push(Layer::Blocks(stage));
            if !last {
                layers.push(Layer::Upsample(cfg.upsampling_scaling_factor));
                index += 1;
            }
            let vb = vb.pp(format!("layers.{index}"));
            index += 1;
            let params = Conv2dParams {
                stride: 1,
                padding: 1,
            };
            layers.push(Layer::Conv(if last {
                conv3x3(c, cfg.out_channels, 1, precision, vb)?
            } else {
                Conv2d::without_bias(c, c, 3, params, precision, vb)?
            }));
        }
        Ok(Self {
            conv_in,
            layers,
            factor: cfg.upsampling_scaling_factor.pow(n as u32 - 1),
        })
    }

    /// Scaled latents [B, 4, h, w] (the UNet's) → pictures [B, 3, 8h, 8w] in about [−1, 1].
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let x = ((latents / 3.0)?.tanh()? * 3.0)?;
        let mut x = self.conv_in.forward(&x)?.relu()?;
        for layer in &self.layers {
            x = match layer {
                Layer::Blocks(blocks) => {
                    for b in blocks {
                        x = b.forward(&x)?;
                    }
                    x
                }
                Layer::Upsample(f) => {
                    let (_, _, h, w) = x.dims4()?;
                    x.upsample_nearest2d(f * h, f * w)?
                }
                Layer::Conv(conv) => conv.forward(&x)?,
            };
        }
        Ok(((x * 2.0)? - 1.0)?)
    }
}
