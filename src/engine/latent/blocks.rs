//! The diffusers building blocks the conditional UNet and the VAE share: `ResnetBlock2D`, the
//! resamplers, `Transformer2DModel` (self- and cross-attention, GEGLU) and the VAE's one-head
//! spatial attention. Weight names are diffusers'.

use super::nn::{Linear, attention, linear, self_attention};
use crate::engine::error::Result;
use crate::engine::kernels::conv::Conv2dParams;
use crate::engine::kernels::geglu::Geglu;
use crate::engine::kernels::{Precision, residual};
use crate::engine::model::blocks::{conv1x1, conv3x3};
use crate::engine::model::layers::{Conv2d, GroupNorm};
use candle_core::{Module, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

/// GroupNorm → SiLU → conv, (+ time embedding), GroupNorm → SiLU → conv, plus the input (through
/// a 1×1 convolution where the channels change).
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    /// `temb`: the time embedding's width (the UNet's), or None (the VAE's blocks have none).
    pub fn new(
        cin: usize,
        cout: usize,
        temb: Option<usize>,
        eps: f64,
        precision: Precision,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            norm1: GroupNorm::with_eps(cin, eps, vb.pp("norm1"))?,
            conv1: conv3x3(cin, cout, 1, precision, vb.pp("conv1"))?,
            time_emb_proj: temb
                .map(|t| linear(t, cout, true, vb.pp("time_emb_proj")))
                .transpose()?,
            norm2: GroupNorm::with_eps(cout, eps, vb.pp("norm2"))?,
            conv2: conv3x3(cout, cout, 1, precision, vb.pp("conv2"))?,
            shortcut: (cin != cout)
                .then(|| conv1x1(cin, cout, precision, vb.pp("conv_shortcut")))
                .transpose()?,
        })
    }

    /// `temb_act`: SiLU(time embedding) [B, T], shared by every block of a UNet call.
    pub fn forward(&self, x: &Tensor, temb_act: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.conv1.forward(&self.norm1.forward_silu(x)?)?;
        if let (Some(proj), Some(t)) = (&self.time_emb_proj, temb_act) {
            h = h.broadcast_add(&proj.forward(t)?.unsqueeze(2)?.unsqueeze(3)?)?;
        }
        let h = self.conv2.forward(&self.norm2.forward_silu(&h)?)?;
        let skip = match &self.shortcut {
            Some(conv) => conv.forward(x)?,
            None => x.clone(),
        };
        Ok(residual::add(h, &skip)?)
    }
}

/// A 3×3 convolution of stride 2. `padding` 1 as the UNet has it; 0 in the VAE, which pads only
/// the right and bottom edge by one.
pub struct Downsample {
    conv: Conv2d,
    asymmetric: bool,
}

impl Downsample {
    pub fn new(
        channels: usize,
        padding: usize,
        precision: Precision,
        vb: VarBuilder,
    ) -> Result<Self> {
        let params = Conv2dParams { stride: 2, padding };
        Ok(Self {
            conv: Conv2d::new(channels, channels, 3, params, precision, vb.pp("conv"))?,
            asymmetric: padding == 0,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.asymmetric {
            let x = x.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
            return Ok(self.conv.forward(&x)?);
        }
        Ok(self.conv.forward(x)?)
    }
}

/// Nearest-neighbour ×2, then a 3×3 convolution.
pub struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    pub fn new(channels: usize, precision: Precision, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv3x3(channels, channels, 1, precision, vb.pp("conv"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        Ok(self.conv.forward(&x.upsample_nearest2d(2 * h, 2 * w)?)?)
    }
}

/// The image → tokens → image projection around the transformer blocks: a 1×1 convolution (SD 1.x)
/// or a linear layer on the tokens (SD 2.x, `use_linear_projection`).
enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

/// `Transformer2DModel`: GroupNorm, project in, transformer blocks over the H·W tokens, project out,
/// plus the input.
pub struct Transformer2D {
    norm: GroupNorm,
    proj_in: Projection,
    blocks: Vec<TransformerBlock>,
    proj_out: Projection,
}

pub struct TransformerShape {
    pub channels: usize,
    pub heads: usize,
    pub context: usize,
    pub layers: usize,
    pub linear_projection: bool,
}

impl Transformer2D {
    pub fn new(shape: &TransformerShape, precision: Precision, vb: VarBuilder) -> Result<Self> {
        let c = shape.channels;
        let projection = |vb: VarBuilder| -> Result<Projection> {
            Ok(if shape.linear_projection {
                Projection::Linear(linear(c, c, true, vb)?.in_precision(precision)?)
            } else {
                Projection::Conv(conv1x1(c, c, precision, vb)?)
            })
        };
        Ok(Self {
            norm: GroupNorm::with_eps(c, 1e-6, vb.pp("norm"))?,
            proj_in: projection(vb.pp("proj_in"))?,
            blocks: (0..shape.layers)
                .map(|i| {
                    TransformerBlock::new(
                        shape,
                        precision,
                        vb.pp(format!("transformer_blocks.{i}")),
                    )
                })
                .collect::<Result<_>>()?,
            proj_out: projection(vb.pp("proj_out"))?,
        })
    }

    /// x [B, C, H, W], context [B, S, D] (the text encoder's states).
    pub fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let to_tokens = |t: &Tensor| t.permute((0, 2, 3, 1))?.reshape((b, h * w, c));
        let to_image = |t: &Tensor| t.reshape((b, h, w, c))?.permute((0, 3, 1, 2))?.contiguous();
        let normed = self.norm.forward(x)?;
        let mut tokens = match &self.proj_in {
            Projection::Conv(conv) => to_tokens(&conv.forward(&normed)?)?,
            Projection::Linear(lin) => lin.forward(&to_tokens(&normed)?)?,
        };
        for block in &self.blocks {
            tokens = block.forward(&tokens, context)?;
        }
        let out = match &self.proj_out {
            Projection::Conv(conv) => conv.forward(&to_image(&tokens)?)?,
            Projection::Linear(lin) => to_image(&lin.forward(&tokens)?)?,
        };
        Ok(residual::add(out, x)?)
    }
}

/// Multi-head attention: Q, K, V projections (no bias but in the VAE) and a biased output.
struct MultiHead {
    projections: Projections,
    out: Linear,
    heads: usize,
}

enum Projections {
    /// Self-attention: Q, K and V of the same tokens, one product [C → 3C] whose result is already
    /// the kernel's input.
    Fused(Linear),
    /// Cross-attention: Q of the tokens, K and V of the text.
    Separate { q: Linear, k: Linear, v: Linear },
}

impl MultiHead {
    /// `context`: the width of the states cross-attention reads (None: self-attention).
    fn new(
        c: usize,
        context: Option<usize>,
        heads: usize,
        bias: bool,
        precision: Precision,
        vb: VarBuilder,
    ) -> Result<Self> {
        // Older VAE files name them query/key/value/proj_attn.
        let old = !vb.contains_tensor("to_q.weight") && vb.contains_tensor("query.weight");
        let name = |new: &str, old_name: &str| {
            if old {
                old_name.to_owned()
            } else {
                new.to_owned()
            }
        };
        let kv = context.unwrap_or(c);
        let q = linear(c, c, bias, vb.pp(name("to_q", "query")))?;
        let k = linear(kv, c, bias, vb.pp(name("to_k", "key")))?;
        let v = linear(kv, c, bias, vb.pp(name("to_v", "value")))?;
        Ok(Self {
            projections: match context {
                None => Projections::Fused(Linear::concat(&[q, k, v])?.in_precision(precision)?),
                // K and V read 77 text states: too few rows for bf16 to pay
                Some(_) => Projections::Separate {
                    q: q.in_precision(precision)?,
                    k,
                    v,
                },
            },
            out: linear(c, c, true, vb.pp(name("to_out.0", "proj_attn")))?
                .in_precision(precision)?,
            heads,
        })
    }

    /// x [B, T, C]; `context` [B, S, D] for cross-attention (ignored by self-attention).
    fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let attended = match &self.projections {
            Projections::Fused(qkv) => self_attention(&qkv.forward(x)?, self.heads)?,
            Projections::Separate { q, k, v } => attention(
                &q.forward(x)?,
                &k.forward(context)?,
                &v.forward(context)?,
                self.heads,
                None,
            )?,
        };
        Ok(self.out.forward(&attended)?)
    }
}

/// LayerNorm → self-attention, LayerNorm → cross-attention on the text, LayerNorm → GEGLU
/// feed-forward; each added to the tokens.
struct TransformerBlock {
    norm1: LayerNorm,
    attn1: MultiHead,
    norm2: LayerNorm,
    attn2: MultiHead,
    norm3: LayerNorm,
    geglu: Linear,
    ff_out: Linear,
}

impl TransformerBlock {
    fn new(shape: &TransformerShape, precision: Precision, vb: VarBuilder) -> Result<Self> {
        let c = shape.channels;
        let norm = |name: &str| candle_nn::layer_norm(c, 1e-5, vb.pp(name));
        Ok(Self {
            norm1: norm("norm1")?,
            attn1: MultiHead::new(c, None, shape.heads, false, precision, vb.pp("attn1"))?,
            norm2: norm("norm2")?,
            attn2: MultiHead::new(
                c,
                Some(shape.context),
                shape.heads,
                false,
                precision,
                vb.pp("attn2"),
            )?,
            norm3: norm("norm3")?,
            geglu: linear(c, 8 * c, true, vb.pp("ff.net.0.proj"))?.in_precision(precision)?,
            ff_out: linear(4 * c, c, true, vb.pp("ff.net.2"))?.in_precision(precision)?,
        })
    }

    fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let h = self.norm1.forward(x)?;
        let x = residual::add(self.attn1.forward(&h, &h)?, x)?;
        let x = residual::add(self.attn2.forward(&self.norm2.forward(&x)?, context)?, &x)?;
        // GEGLU: the projection's first half gated by GELU (erf) of its second half.
        let p = self.geglu.forward(&self.norm3.forward(&x)?)?;
        let gated = if p.device().is_cpu() {
            p.apply_op1_no_bwd(&Geglu)?
        } else {
            let half = p.dim(2)? / 2;
            (p.narrow(2, 0, half)? * p.narrow(2, half, half)?.gelu_erf()?)?
        };
        Ok(residual::add(self.ff_out.forward(&gated)?, &x)?)
    }
}

/// The VAE's mid-block attention: GroupNorm, one head over every pixel (biased Q, K, V), plus the
/// input.
pub struct SpatialAttention {
    norm: GroupNorm,
    attn: MultiHead,
}

impl SpatialAttention {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: GroupNorm::with_eps(channels, 1e-6, vb.pp("group_norm"))?,
            attn: MultiHead::new(channels, None, 1, true, Precision::F32, vb)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let tokens = self
            .norm
            .forward(x)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let out = self.attn.forward(&tokens, &tokens)?;
        let out = out.transpose(1, 2)?.reshape((b, c, h, w))?;
        Ok(residual::add(out, x)?)
    }
}
