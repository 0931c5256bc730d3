//! Layers the latent pipeline's networks share: a linear layer that also reads 1×1-convolution
//! weights, multi-head attention (the engine's blockwise CPU kernel for self-attention, candle's
//! operations for the rest), and reading a diffusers/transformers `config.json`.

use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::attention::Attention;
use crate::engine::kernels::residual;
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;
use std::path::Path;

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EngineError::InvalidInput(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| EngineError::InvalidInput(format!("{}: {e}", path.display())))
}

/// y = x·Wᵀ + b over the last axis, any leading axes. Wᵀ is stored [in, out], contiguous: the gemm
/// crate reads a row-major right-hand side as it is, where a transposed view is gathered into its
/// packed layout on every call.
pub struct Linear {
    weight_t: Tensor,
    bias: Option<Tensor>,
}

/// `weight` [out, in] — or [out, in, 1, 1], as older checkpoints store some projections.
pub fn linear(cin: usize, cout: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    // read once (a converted f16 weight is a copy), then checked: [out, in] or [out, in, 1, 1]
    let weight = vb.get_unchecked("weight")?;
    let weight = match weight.dims() {
        [o, i] | [o, i, 1, 1] if (*o, *i) == (cout, cin) => weight.reshape((cout, cin))?,
        dims => {
            return Err(EngineError::InvalidInput(format!(
                "{}.weight is {dims:?}, expected [{cout}, {cin}]",
                vb.prefix()
            )));
        }
    };
    let bias = if bias {
        Some(vb.get(cout, "bias")?)
    } else {
        None
    };
    Ok(Linear {
        weight_t: crate::engine::kernels::transpose_matrices(&weight)?,
        bias,
    })
}

impl Linear {
    /// One projection computing several side by side (their outputs concatenated), e.g. Q, K and V
    /// of the same tokens in one product instead of three.
    pub fn concat(parts: &[Linear]) -> Result<Linear> {
        let weights: Vec<&Tensor> = parts.iter().map(|p| &p.weight_t).collect();
        let biases: Option<Vec<&Tensor>> = parts.iter().map(|p| p.bias.as_ref()).collect();
        if biases.is_none() && parts.iter().any(|p| p.bias.is_some()) {
            return Err(EngineError::InvalidInput(
                "projections with and without a bias cannot be joined".into(),
            ));
        }
        Ok(Linear {
            weight_t: Tensor::cat(&weights, 1)?,
            bias: biases.map(|b| Tensor::cat(&b, 0)).transpose()?,
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        let cin = dims[dims.len() - 1];
        let rows = x.elem_count() / cin;
        let y = x.reshape((rows, cin))?.matmul(&self.weight_t)?;
        let y = match &self.bias {
            Some(b) => residual::add_to_rows(y, b)?,
            None => y,
        };
        let mut out = dims.to_vec();
        *out.last_mut().expect("rank ≥ 1") = self.weight_t.dim(1)?;
        y.reshape(out)
    }
}

/// Self-attention of the tokens whose Q, K and V are the three thirds of `qkv` [B, T, 3C] → [B, T, C],
/// on the CPU in the engine's blockwise kernel (which reads them as channel rows, [B, 3C, T]).
pub fn self_attention(qkv: &Tensor, heads: usize) -> Result<Tensor> {
    if qkv.device().is_cpu() {
        let rows = qkv.transpose(1, 2)?.contiguous()?;
        let out = rows.apply_op1_no_bwd(&Attention { heads })?;
        return Ok(out.transpose(1, 2)?.contiguous()?);
    }
    let c = qkv.dim(2)? / 3;
    let third = |i: usize| qkv.narrow(2, i * c, c);
    attention(&third(0)?, &third(1)?, &third(2)?, heads, None)
}

/// Scaled dot-product attention of q [B, T, C] over k, v [B, S, C] in `heads` heads of C/heads
/// channels (head h is channels [h·d, (h+1)·d)), with an additive mask [T, S] → [B, T, C].
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, t, c) = q.dims3()?;
    let s = k.dim(1)?;
    let d = c / heads;
    let split = |x: &Tensor, n: usize| -> candle_core::Result<Tensor> {
        x.reshape((b, n, heads, d))?.transpose(1, 2)?.contiguous()
    };
    let (q, k, v) = (split(q, t)?, split(k, s)?, split(v, s)?);
    let scores = (q.matmul(&k.transpose(2, 3)?.contiguous()?)? * (1.0 / (d as f64).sqrt()))?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    let weights = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(weights
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, t, c))?)
}
