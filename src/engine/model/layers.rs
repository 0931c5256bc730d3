//! Convolution and GroupNorm layers that run on the engine's own CPU kernels (`engine::kernels`) and
//! on candle's operations elsewhere (CUDA). Weights under the usual `weight`/`bias` names.

use crate::engine::kernels::Precision;
use crate::engine::kernels::conv::{Conv2dParams, pack_weight};
use crate::engine::kernels::group_norm::GroupNormAffine;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Every GroupNorm of the ADM UNet has 32 groups and ε = 1e-5.
const GROUPS: usize = 32;
const GN_EPS: f64 = 1e-5;

pub struct Conv2d {
    /// [C_out, C_in, k, k]; on the CPU packed for the kernel (`pack_weight`), so it is held once.
    weight: Tensor,
    bias: Tensor,
    params: Conv2dParams,
}

impl Conv2d {
    pub fn new(
        cin: usize,
        cout: usize,
        kernel: usize,
        params: Conv2dParams,
        precision: Precision,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get((cout, cin, kernel, kernel), "weight")?;
        Self::from_parts(weight, vb.get(cout, "bias")?, params, precision)
    }

    /// A convolution stored without a bias (TAESD's): the kernel adds a zero one.
    pub fn without_bias(
        cin: usize,
        cout: usize,
        kernel: usize,
        params: Conv2dParams,
        precision: Precision,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get((cout, cin, kernel, kernel), "weight")?;
        let bias = Tensor::zeros(cout, weight.dtype(), weight.device())?;
        Self::from_parts(weight, bias, params, precision)
    }

    fn from_parts(
        weight: Tensor,
        bias: Tensor,
        params: Conv2dParams,
        precision: Precision,
    ) -> Result<Self> {
        Ok(Self {
            weight: if weight.device().is_cpu() {
                pack_weight(&weight, &params, precision)?
            } else {
                weight
            },
            bias,
            params,
        })
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() {
            return x
                .contiguous()?
                .apply_op3_no_bwd(&self.weight, &self.bias, &self.params);
        }
        let y = x.conv2d(&self.weight, self.params.padding, self.params.stride, 1, 1)?;
        y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)
    }
}

pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl GroupNorm {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Self::with_eps(channels, GN_EPS, vb)
    }

    /// 32 groups and another ε (diffusers' VAE and transformer blocks use 1e-6).
    pub fn with_eps(channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        if !channels.is_multiple_of(GROUPS) {
            candle_core::bail!("GroupNorm({GROUPS}) over {channels} channels")
        }
        Ok(Self {
            weight: vb.get(channels, "weight")?,
            bias: vb.get(channels, "bias")?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.normalize(x, &self.weight, &self.bias, false)
    }

    /// SiLU(GroupNorm(x)).
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        self.normalize(x, &self.weight, &self.bias, true)
    }

    /// SiLU(GroupNorm(x)·(1 + scale) + shift), with scale and shift [B, C] (the ResBlock's
    /// time-conditioned norm). Folded into one per-image affine: a = γ(1 + scale), d = β(1 + scale) + shift.
    pub fn forward_scale_shift_silu(
        &self,
        x: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
    ) -> Result<Tensor> {
        let factor = (scale + 1.0)?;
        let a = factor.broadcast_mul(&self.weight)?;
        let d = (factor.broadcast_mul(&self.bias)? + shift)?;
        self.normalize(x, &a.contiguous()?, &d.contiguous()?, true)
    }

    /// act((x − μ)·rstd·a + d) with a, d of shape [C] or [B, C].
    fn normalize(&self, x: &Tensor, a: &Tensor, d: &Tensor, silu: bool) -> Result<Tensor> {
        if x.device().is_cpu() {
            let op = GroupNormAffine {
                groups: GROUPS,
                eps: self.eps,
                silu,
            };
            return x.contiguous()?.apply_op3_no_bwd(a, d, &op);
        }
        normalize_with_candle_ops(x, a, d, silu, self.eps)
    }
}

/// The same as the CPU kernel, from candle's operations (any device).
fn normalize_with_candle_ops(
    x: &Tensor,
    a: &Tensor,
    d: &Tensor,
    silu: bool,
    eps: f64,
) -> Result<Tensor> {
    let (b, c) = (x.dim(0)?, x.dim(1)?);
    let grouped = x.reshape((b, GROUPS, ()))?;
    let mean = grouped.mean_keepdim(2)?;
    let centred = grouped.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(2)?;
    let normed = centred
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .reshape(x.shape())?;
    let per_channel = |t: &Tensor| -> Result<Tensor> {
        let mut dims = vec![if t.rank() == 2 { b } else { 1 }, c];
        dims.resize(x.rank(), 1);
        t.reshape(dims)
    };
    let y = normed
        .broadcast_mul(&per_channel(a)?)?
        .broadcast_add(&per_channel(d)?)?;
    if silu { y.silu() } else { Ok(y) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    /// The CPU kernels and the candle fallback (what CUDA runs) compute the same layer.
    #[test]
    fn cpu_kernels_agree_with_the_candle_fallback() -> Result<()> {
        let dev = Device::Cpu;
        let c = 64;
        let mut t = HashMap::new();
        t.insert("weight".to_string(), Tensor::randn(1f32, 0.3, c, &dev)?);
        t.insert("bias".to_string(), Tensor::randn(0f32, 0.3, c, &dev)?);
        let gn = GroupNorm::new(c, VarBuilder::from_tensors(t, DType::F32, &dev))?;
        let x = Tensor::randn(0.5f32, 2.0, (2, c, 6, 5), &dev)?;
        let (scale, shift) = (
            Tensor::randn(0f32, 0.3, (2, c), &dev)?,
            Tensor::randn(0f32, 0.3, (2, c), &dev)?,
        );
        let factor = (&scale + 1.0)?;
        let a = factor.broadcast_mul(&gn.weight)?;
        let d = (factor.broadcast_mul(&gn.bias)? + &shift)?;
        for (a, d, silu) in [(&gn.weight, &gn.bias, false), (&a, &d, true)] {
            let kernel = gn.normalize(&x, a, d, silu)?;
            let fallback = normalize_with_candle_ops(&x, a, d, silu, GN_EPS)?;
            let err = (kernel - fallback)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(err < 1e-5, "silu {silu}: max error {err}");
        }
        Ok(())
    }
}
