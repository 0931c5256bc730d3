//! Layers the latent pipeline's networks share: a linear layer that also reads 1×1-convolution
//! weights, multi-head attention (the engine's blockwise CPU kernel for self-attention, candle's
//! operations for the rest), and reading a diffusers/transformers `config.json`.

use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::attention::Attention;
use crate::engine::kernels::{Precision, bf16, residual};
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

/// y = x·Wᵀ + b over the last axis, any leading axes.
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

enum Weight {
    /// Wᵀ [in, out], contiguous: the gemm crate reads a row-major right-hand side as it is, where a
    /// transposed view is gathered into its packed layout on every call.
    F32(Tensor),
    /// W [out, in] rounded to bf16 in the packed layout of the bf16 products (`--precision bf16`).
    Bf16 {
        packed: Tensor,
        cin: usize,
        cout: usize,
    },
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
        weight: Weight::F32(crate::engine::kernels::transpose_matrices(&weight)?),
        bias,
    })
}

impl Linear {
    /// This layer with its product in bf16 where `precision` asks for it, the CPU has the bf16
    /// products and the shape packs (whole blocks of 32 outputs, an even number of inputs); as it is
    /// otherwise.
    pub fn in_precision(self, precision: Precision) -> Result<Linear> {
        let Weight::F32(weight_t) = &self.weight else {
            return Ok(self);
        };
        let (cin, cout) = weight_t.dims2()?;
        if precision != Precision::Bf16
            || !weight_t.device().is_cpu()
            || !bf16::supported()
            || !bf16::fits(cout, cin)
        {
            return Ok(self);
        }
        let rows = crate::engine::kernels::transpose_matrices(weight_t)?;
        let packed = bf16::pack(&rows.flatten_all()?.to_vec1::<f32>()?, cout, cin);
        Ok(Linear {
            weight: Weight::Bf16 {
                packed: Tensor::from_vec(packed, (cout, cin), weight_t.device())?,
                cin,
                cout,
            },
            bias: self.bias,
        })
    }

    /// One projection computing several side by side (their outputs concatenated), e.g. Q, K and V
    /// of the same tokens in one product instead of three. (Before [`Linear::in_precision`].)
    pub fn concat(parts: &[Linear]) -> Result<Linear> {
        let weights = parts
            .iter()
            .map(|p| match &p.weight {
                Weight::F32(weight_t) => Ok(weight_t),
                Weight::Bf16 { .. } => Err(EngineError::InvalidInput(
                    "bf16 projections cannot be joined".into(),
                )),
            })
            .collect::<Result<Vec<&Tensor>>>()?;
        let biases: Option<Vec<&Tensor>> = parts.iter().map(|p| p.bias.as_ref()).collect();
        if biases.is_none() && parts.iter().any(|p| p.bias.is_some()) {
            return Err(EngineError::InvalidInput(
                "projections with and without a bias cannot be joined".into(),
            ));
        }
        Ok(Linear {
            weight: Weight::F32(Tensor::cat(&weights, 1)?),
            bias: biases.map(|b| Tensor::cat(&b, 0)).transpose()?,
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        let cin = dims[dims.len() - 1];
        let rows = x.elem_count() / cin;
        let x = x.reshape((rows, cin))?;
        let (y, cout) = match &self.weight {
            Weight::F32(weight_t) => (x.matmul(weight_t)?, weight_t.dim(1)?),
            Weight::Bf16 { packed, cin, cout } => {
                let product = bf16::LinearProduct { m: *cout, k: *cin };
                (x.contiguous()?.apply_op2_no_bwd(packed, &product)?, *cout)
            }
        };
        let y = match &self.bias {
            Some(b) => residual::add_to_rows(y, b)?,
            None => y,
        };
        let mut out = dims.to_vec();
        *out.last_mut().expect("rank ≥ 1") = cout;
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    #[test]
    fn a_bf16_linear_layer_is_the_f32_one_to_bf16_precision() {
        if !bf16::supported() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let dev = Device::Cpu;
        let (cin, cout, rows) = (64, 96, 150); // rows: two whole bands of 64 and a short one
        let weights = HashMap::from([
            (
                "weight".to_string(),
                Tensor::randn(0f32, 0.2, (cout, cin), &dev).unwrap(),
            ),
            (
                "bias".to_string(),
                Tensor::randn(0f32, 1.0, cout, &dev).unwrap(),
            ),
        ]);
        let vb = VarBuilder::from_tensors(weights, DType::F32, &dev);
        let f32_layer = linear(cin, cout, true, vb.clone()).unwrap();
        let bf16_layer = linear(cin, cout, true, vb)
            .unwrap()
            .in_precision(Precision::Bf16)
            .unwrap();
        assert!(matches!(bf16_layer.weight, Weight::Bf16 { .. }));
        let x = Tensor::randn(0f32, 1.0, (2, rows / 2, cin), &dev).unwrap();
        let (want, got) = (
            f32_layer.forward(&x).unwrap(),
            bf16_layer.forward(&x).unwrap(),
        );
        assert_eq!(got.dims(), &[2, rows / 2, cout]);
        let err = (got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // sums of 64 products of values ~1 and ~0.2, each operand rounded to 8 bits of mantissa
        assert!(err > 0.0 && err < 0.05, "max error {err}");
    }
}
