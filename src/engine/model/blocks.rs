//! The UNet's building blocks (cm/unet.py; cm_reference §f.2): residual block with time conditioning,
//! multi-head self-attention, and the plain conv resamplers. Weight names are the openai ones.

use super::config::{BlockKind, Resample};
use super::layers::{Conv2d, GroupNorm};
use crate::engine::kernels::attention::Attention;
use crate::engine::kernels::conv::Conv2dParams;
use crate::engine::kernels::{Precision, residual};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

pub fn conv3x3(
    cin: usize,
    cout: usize,
    stride: usize,
    precision: Precision,
    vb: VarBuilder,
) -> Result<Conv2d> {
    Conv2d::new(
        cin,
        cout,
        3,
        Conv2dParams { stride, padding: 1 },
        precision,
        vb,
    )
}

pub fn conv1x1(cin: usize, cout: usize, precision: Precision, vb: VarBuilder) -> Result<Conv2d> {
    let params = Conv2dParams {
        stride: 1,
        padding: 0,
    };
    Conv2d::new(cin, cout, 1, params, precision, vb)
}

fn resample(x: &Tensor, how: Resample) -> Result<Tensor> {
    match how {
        Resample::None => Ok(x.clone()),
        Resample::Down => x.avg_pool2d(2),
        Resample::Up => {
            let (_, _, h, w) = x.dims4()?;
            x.upsample_nearest2d(2 * h, 2 * w)
        }
    }
}

/// ResBlock: GN → SiLU → (resample) → conv, time-conditioned GN → SiLU → conv, plus a skip.
pub struct ResBlock {
    in_norm: GroupNorm,
    in_conv: Conv2d,
    emb_proj: Linear,
    out_norm: GroupNorm,
    out_conv: Conv2d,
    skip: Option<Conv2d>,
    resample: Resample,
    scale_shift: bool,
}

impl ResBlock {
    pub fn new(
        cin: usize,
        cout: usize,
        resample: Resample,
        emb_dim: usize,
        scale_shift: bool,
        precision: Precision,
        vb: VarBuilder,
    ) -> Result<Self> {
        let emb_out = if scale_shift { 2 * cout } else { cout };
        Ok(Self {
            in_norm: GroupNorm::new(cin, vb.pp("in_layers.0"))?,
            in_conv: conv3x3(cin, cout, 1, precision, vb.pp("in_layers.2"))?,
            emb_proj: candle_nn::linear(emb_dim, emb_out, vb.pp("emb_layers.1"))?,
            out_norm: GroupNorm::new(cout, vb.pp("out_layers.0"))?,
            out_conv: conv3x3(cout, cout, 1, precision, vb.pp("out_layers.3"))?,
            skip: if cin != cout {
                Some(conv1x1(cin, cout, precision, vb.pp("skip_connection"))?)
            } else {
                None
            },
            resample,
            scale_shift,
        })
    }

    /// `emb_act` is SiLU(time embedding), shared by every block of one forward pass.
    pub fn forward(&self, x: &Tensor, emb_act: &Tensor) -> Result<Tensor> {
        let h = self.in_norm.forward_silu(x)?;
        let (x, h) = (resample(x, self.resample)?, resample(&h, self.resample)?);
        let h = self.in_conv.forward(&h)?;
        let p = self.emb_proj.forward(emb_act)?;
        let h = if self.scale_shift {
            let cout = h.dim(1)?;
            let (scale, shift) = (p.narrow(1, 0, cout)?, p.narrow(1, cout, cout)?);
            let h = self.out_norm.forward_scale_shift_silu(&h, &scale, &shift)?;
            self.out_conv.forward(&h)?
        } else {
            let h = h.broadcast_add(&p.unsqueeze(2)?.unsqueeze(3)?)?;
            self.out_conv.forward(&self.out_norm.forward_silu(&h)?)?
        };
        let skip = match &self.skip {
            Some(conv) => conv.forward(&x)?,
            None => x,
        };
        residual::add(h, &skip)
    }
}

/// Self-attention over the H·W positions with heads of `head_channels`. The qkv channels are laid out
/// (three, heads, d): Q is channels [0, C), K [C, 2C), V [2C, 3C), head h of each its h-th d-slice.
pub struct AttentionBlock {
    norm: GroupNorm,
    qkv: Conv2d,
    proj_out: Conv2d,
    heads: usize,
}

impl AttentionBlock {
    pub fn new(
        channels: usize,
        head_channels: usize,
        precision: Precision,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            norm: GroupNorm::new(channels, vb.pp("norm"))?,
            qkv: conv1x1(channels, 3 * channels, precision, vb.pp("qkv"))?,
            proj_out: conv1x1(channels, channels, precision, vb.pp("proj_out"))?,
            heads: channels / head_channels,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let qkv = self
            .qkv
            .forward(&self.norm.forward(x)?)?
            .reshape((b, 3 * c, h * w))?
            .contiguous()?;
        let a = if qkv.device().is_cpu() {
            qkv.apply_op1_no_bwd(&Attention { heads: self.heads })?
        } else {
            attention_with_candle_ops(&qkv, self.heads)?
        };
        residual::add(self.proj_out.forward(&a.reshape((b, c, h, w))?)?, x)
    }
}

/// The same as the CPU kernel ([`Attention`]), from candle's operations (any device): qkv [B, 3C, T]
/// → [B, C, T].
pub(crate) fn attention_with_candle_ops(qkv: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, c3, t) = qkv.dims3()?;
    let d = c3 / 3 / heads;
    let qkv = qkv.reshape((b, 3, heads, d, t))?;
    let part = |i: usize| qkv.narrow(1, i, 1)?.reshape((b * heads, d, t));
    let (q, k, v) = (part(0)?, part(1)?, part(2)?);
    // weights[t, s] = softmax_s(q_t · k_s / sqrt(d))
    let scale = 1.0 / (d as f64).sqrt();
    let weights = (q.transpose(1, 2)?.contiguous()?.matmul(&k.contiguous()?)? * scale)?;
    let weights = candle_nn::ops::softmax_last_dim(&weights)?;
    v.contiguous()?
        .matmul(&weights.transpose(1, 2)?.contiguous()?)?
        .reshape((b, c3 / 3, t))
}

/// One sub-module of an input, middle or output block.
pub enum Block {
    Res(ResBlock),
    Attn(AttentionBlock),
    DownConv(Conv2d),
    UpConv(Conv2d),
}

impl Block {
    pub fn new(
        kind: BlockKind,
        emb_dim: usize,
        scale_shift: bool,
        head_channels: usize,
        precision: Precision,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(match kind {
            BlockKind::Res {
                cin,
                cout,
                resample,
            } => Block::Res(ResBlock::new(
                cin,
                cout,
                resample,
                emb_dim,
                scale_shift,
                precision,
                vb,
            )?),
            BlockKind::Attn { channels } => {
                Block::Attn(AttentionBlock::new(channels, head_channels, precision, vb)?)
            }
            BlockKind::DownConv { channels } => {
                Block::DownConv(conv3x3(channels, channels, 2, precision, vb.pp("op"))?)
            }
            BlockKind::UpConv { channels } => {
                Block::UpConv(conv3x3(channels, channels, 1, precision, vb.pp("conv"))?)
            }
        })
    }

    pub fn forward(&self, x: &Tensor, emb_act: &Tensor) -> Result<Tensor> {
        match self {
            Block::Res(b) => b.forward(x, emb_act),
            Block::Attn(b) => b.forward(x),
            Block::DownConv(conv) => conv.forward(x),
            Block::UpConv(conv) => conv.forward(&resample(x, Resample::Up)?),
        }
    }
}
