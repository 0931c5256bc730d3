//! diffusers' `UNet2DConditionModel` as Stable Diffusion 1.x/2.x and their LCMs use it: sinusoidal
//! time embedding (plus the w-embedding, `time_cond_proj_dim`, of guidance-distilled LCMs), ResNet
//! blocks, transformer blocks that read the prompt by cross-attention, skips from the down path to
//! the up path.

use super::blocks::{Downsample, ResnetBlock, Transformer2D, TransformerShape, Upsample};
use super::nn::{self, Linear, linear};
use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::Precision;
use crate::engine::model::blocks::conv3x3;
use crate::engine::model::layers::{Conv2d, GroupNorm};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::path::Path;

/// A number for every block, or one list (diffusers accepts both).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    One(usize),
    Each(Vec<usize>),
}

impl PerBlock {
    fn at(&self, i: usize) -> usize {
        match self {
            PerBlock::One(n) => *n,
            PerBlock::Each(v) => v[i.min(v.len() - 1)],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct UNetConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    pub cross_attention_dim: usize,
    pub attention_head_dim: PerBlock,
    #[serde(default)]
    pub num_attention_heads: Option<PerBlock>,
    #[serde(default = "default_eps")]
    pub norm_eps: f64,
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: usize,
    #[serde(default)]
    pub time_cond_proj_dim: Option<usize>,
    #[serde(default)]
    pub use_linear_projection: bool,
    #[serde(default = "one")]
    pub transformer_layers_per_block: PerBlock,
    #[serde(default)]
    pub sample_size: Option<usize>,
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    #[serde(default)]
    pub class_embed_type: Option<String>,
    #[serde(default)]
    pub num_class_embeds: Option<usize>,
}

fn default_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}
fn one() -> PerBlock {
    PerBlock::One(1)
}

impl UNetConfig {
    pub fn read(path: &Path) -> Result<Self> {
        Self::checked(nn::read_json(path)?, &path.display().to_string())
    }

    /// `cfg` if cmpaint runs it (`origin` names where it came from in the error).
    pub fn checked(cfg: Self, origin: &str) -> Result<Self> {
        let unsupported = |what: &str| {
            Err(EngineError::InvalidInput(format!(
                "{origin}: {what} is not supported (Stable Diffusion 1.x/2.x UNets are)"
            )))
        };
        if cfg.addition_embed_type.is_some() {
            return unsupported("addition_embed_type (SDXL's extra conditioning)");
        }
        if cfg.class_embed_type.is_some() || cfg.num_class_embeds.is_some() {
            return unsupported("a class embedding");
        }
        let kinds = [
            "CrossAttnDownBlock2D",
            "DownBlock2D",
            "CrossAttnUpBlock2D",
            "UpBlock2D",
        ];
        if let Some(k) = cfg
            .down_block_types
            .iter()
            .chain(&cfg.up_block_types)
            .find(|k| !kinds.contains(&k.as_str()))
        {
            return unsupported(&format!("the block type {k}"));
        }
        let n = cfg.block_out_channels.len();
        if n == 0 || cfg.down_block_types.len() != n || cfg.up_block_types.len() != n {
            return unsupported("a block list whose lengths differ");
        }
        let bad = |why: String| Err(EngineError::InvalidInput(format!("{origin}: {why}")));
        if cfg.layers_per_block == 0 || cfg.cross_attention_dim == 0 || cfg.in_channels == 0 {
            return bad(
                "layers_per_block, cross_attention_dim and in_channels must be at least 1".into(),
            );
        }
        for (i, &c) in cfg.block_out_channels.iter().enumerate() {
            let heads = cfg.heads(i);
            if heads == 0 || !c.is_multiple_of(heads) {
                return bad(format!(
                    "block {i}: {heads} attention heads cannot split {c} channels"
                ));
            }
        }
        Ok(cfg)
    }

    /// Heads of block i (diffusers reads `attention_head_dim` as the number of heads where
    /// `num_attention_heads` is not given: a naming slip it keeps for the released checkpoints).
    fn heads(&self, i: usize) -> usize {
        self.num_attention_heads
            .as_ref()
            .unwrap_or(&self.attention_head_dim)
            .at(i)
    }

    /// Latent pixels per picture side halve this many times on the way down.
    pub fn downsamplings(&self) -> usize {
        self.block_out_channels.len() - 1
    }
}

#[derive(Default)]
struct Level {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<Transformer2D>,
    down: Option<Downsample>,
    up: Option<Upsample>,
}

pub struct UNet2DCondition {
    pub config: UNetConfig,
    time_linear_1: Linear,
    time_linear_2: Linear,
    cond_proj: Option<Linear>,
    conv_in: Conv2d,
    down: Vec<Level>,
    mid_resnets: [ResnetBlock; 2],
    mid_attention: Transformer2D,
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl UNet2DCondition {
    pub fn new(config: UNetConfig, precision: Precision, vb: VarBuilder) -> Result<Self> {
        let cfg = &config;
        let ch = &cfg.block_out_channels;
        let (n, temb) = (ch.len(), 4 * ch[0]);
        let eps = cfg.norm_eps;
        let resnet = |cin, cout, vb| ResnetBlock::new(cin, cout, Some(temb), eps, precision, vb);
        let transformer = |c, i: usize, vb| {
            let shape = TransformerShape {
                channels: c,
                heads: cfg.heads(i),
                context: cfg.cross_attention_dim,
                layers: cfg.transformer_layers_per_block.at(i),
                linear_projection: cfg.use_linear_projection,
            };
            Transformer2D::new(&shape, precision, vb)
        };
        // The encoder half (and the middle) on one thread, the decoder half on the other: laying out
        // weights is most of a load.
        let build_down = || -> Result<_> {
            let mut down = Vec::with_capacity(n);
            let mut cin = ch[0];
            for (i, kind) in cfg.down_block_types.iter().enumerate() {
                let vb = vb.pp(format!("down_blocks.{i}"));
                let cross = kind.starts_with("CrossAttn");
                let mut level = Level::default();
                for j in 0..cfg.layers_per_block {
                    let c = if j == 0 { cin } else { ch[i] };
                    level
                        .resnets
                        .push(resnet(c, ch[i], vb.pp(format!("resnets.{j}")))?);
                    if cross {
                        level.attentions.push(transformer(
                            ch[i],
                            i,
                            vb.pp(format!("attentions.{j}")),
                        )?);
                    }
                }
                if i + 1 < n {
                    level.down = Some(Downsample::new(
                        ch[i],
                        1,
                        precision,
                        vb.pp("downsamplers.0"),
                    )?);
                }
                down.push(level);
                cin = ch[i];
            }
            let mid = vb.pp("mid_block");
            let last = ch[n - 1];
            let mid_resnets = [
                resnet(last, last, mid.pp("resnets.0"))?,
                resnet(last, last, mid.pp("resnets.1"))?,
            ];
            let mid_attention = transformer(last, n - 1, mid.pp("attentions.0"))?;
            Ok((down, mid_resnets, mid_attention))
        };
        let build_up = || -> Result<_> {
            let last = ch[n - 1];
            let mut up = Vec::with_capacity(n);
            let mut prev = last;
            for (i, kind) in cfg.up_block_types.iter().enumerate() {
                let vb = vb.pp(format!("up_blocks.{i}"));
                let level_index = n - 1 - i;
                let out = ch[level_index];
                let skip_in = ch[level_index.saturating_sub(1)];
                let cross = kind.starts_with("CrossAttn");
                let mut level = Level::default();
                for j in 0..=cfg.layers_per_block {
                    let skip = if j == cfg.layers_per_block {
                        skip_in
                    } else {
                        out
                    };
                    let c = if j == 0 { prev } else { out };
                    level
                        .resnets
                        .push(resnet(c + skip, out, vb.pp(format!("resnets.{j}")))?);
                    if cross {
                        let attn = transformer(out, level_index, vb.pp(format!("attentions.{j}")))?;
                        level.attentions.push(attn);
                    }
                }
                if i + 1 < n {
                    level.up = Some(Upsample::new(out, precision, vb.pp("upsamplers.0"))?);
                }
                up.push(level);
                prev = out;
            }
            Ok(up)
        };
        let (down_half, up) = rayon::join(build_down, build_up);
        let ((down, mid_resnets, mid_attention), up) = (down_half?, up?);
        let te = vb.pp("time_embedding");
        Ok(Self {
            time_linear_1: linear(ch[0], temb, true, te.pp("linear_1"))?,
            time_linear_2: linear(temb, temb, true, te.pp("linear_2"))?,
            cond_proj: cfg
                .time_cond_proj_dim
                .map(|d| linear(d, ch[0], false, te.pp("cond_proj")))
                .transpose()?,
            conv_in: conv3x3(cfg.in_channels, ch[0], 1, precision, vb.pp("conv_in"))?,
            down,
            mid_resnets,
            mid_attention,
            up,
            norm_out: GroupNorm::with_eps(ch[0], eps, vb.pp("conv_norm_out"))?,
            conv_out: conv3x3(ch[0], cfg.out_channels, 1, precision, vb.pp("conv_out"))?,
            config,
        })
    }

    /// One call: latents [B, 4, h, w] at timestep `t`, the prompt's states [B, 77, D], and for a
    /// guidance-distilled LCM the w-embedding [B, time_cond_proj_dim] → the prediction [B, 4, h, w].
    pub fn forward(
        &self,
        sample: &Tensor,
        t: f64,
        context: &Tensor,
        timestep_cond: Option<&Tensor>,
    ) -> Result<Tensor> {
        let b = sample.dim(0)?;
        let c0 = self.config.block_out_channels[0];
        let freqs = timestep_embedding(t, c0, self.config.flip_sin_to_cos, self.config.freq_shift);
        let mut emb = Tensor::from_vec(freqs, (1, c0), sample.device())?.repeat((b, 1))?;
        match (&self.cond_proj, timestep_cond) {
            (Some(proj), Some(cond)) => emb = (emb + proj.forward(cond)?)?,
            (Some(_), None) => {
                return Err(EngineError::InvalidInput(
                    "this UNet takes a guidance embedding (time_cond_proj_dim)".into(),
                ));
            }
            _ => {}
        }
        let emb = self.time_linear_1.forward(&emb)?.silu()?;
        let temb_act = self.time_linear_2.forward(&emb)?.silu()?;
        let temb = Some(&temb_act);

        let mut x = self.conv_in.forward(sample)?;
        let mut skips = vec![x.clone()];
        for level in &self.down {
            for (j, resnet) in level.resnets.iter().enumerate() {
                x = resnet.forward(&x, temb)?;
                if let Some(attn) = level.attentions.get(j) {
                    x = attn.forward(&x, context)?;
                }
                skips.push(x.clone());
            }
            if let Some(down) = &level.down {
                x = down.forward(&x)?;
                skips.push(x.clone());
            }
        }
        x = self.mid_resnets[0].forward(&x, temb)?;
        x = self.mid_attention.forward(&x, context)?;
        x = self.mid_resnets[1].forward(&x, temb)?;
        for level in &self.up {
            for (j, resnet) in level.resnets.iter().enumerate() {
                let skip = skips.pop().expect("one skip per up-path resnet");
                x = resnet.forward(&Tensor::cat(&[&x, &skip], 1)?, temb)?;
                if let Some(attn) = level.attentions.get(j) {
                    x = attn.forward(&x, context)?;
                }
            }
            if let Some(up) = &level.up {
                x = up.forward(&x)?;
            }
        }
        Ok(self.conv_out.forward(&self.norm_out.forward_silu(&x)?)?)
    }
}

/// diffusers' `Timesteps`: sin and cos of t·e^(−ln(10⁴)·i/(half − shift)), cos first where `flip`.
/// In f32 step by step, as PyTorch computes it, so that t ≈ 1000 rounds the same way.
pub fn timestep_embedding(t: f64, dim: usize, flip: bool, shift: usize) -> Vec<f32> {
    let half = dim / 2;
    let t = t as f32;
    let scale = -(10000f64.ln() as f32);
    let args: Vec<f32> = (0..half)
        .map(|i| t * ((scale * i as f32) / (half - shift) as f32).exp())
        .collect();
    let (sin, cos) = (args.iter().map(|a| a.sin()), args.iter().map(|a| a.cos()));
    let mut out: Vec<f32> = if flip {
        cos.chain(sin).collect()
    } else {
        sin.chain(cos).collect()
    };
    out.resize(dim, 0.0);
    out
}
