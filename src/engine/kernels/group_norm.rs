//! GroupNorm followed by a per-channel affine and optionally SiLU, in one pass per group:
//! `y = act((x − μ_g)·rstd_g·a_c + d_c)`.
//!
//! `a` and `d` are per channel ([C]: the plain GroupNorm's γ and β) or per image and channel
//! ([B, C]: γ(1 + scale) and β(1 + scale) + shift, the ResBlock's time-conditioned norm folded in).

use super::{f32_slice, simd};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupNormAffine {
    pub groups: usize,
    pub eps: f64,
    pub silu: bool,
}

impl CustomOp3 for GroupNormAffine {
    fn name(&self) -> &'static str {
        "cmpaint-group-norm-affine"
    }

    /// (x [B, C, …], a, d [C] or [B, C]) → y shaped like x.
    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        a: &CpuStorage,
        a_layout: &Layout,
        d: &CpuStorage,
        d_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = x_layout.shape().dims();
        if dims.len() < 2 || dims[1] % self.groups != 0 {
            candle_core::bail!(
                "group norm: {:?} cannot split into {} groups",
                dims,
                self.groups
            )
        }
        let (batch, channels) = (dims[0], dims[1]);
        let x = f32_slice(x, x_layout, "group norm input")?;
        let (a, d) = (
            f32_slice(a, a_layout, "group norm scale")?,
            f32_slice(d, d_layout, "group norm offset")?,
        );
        let per_image = a.len() == batch * channels && batch > 1;
        if !(a.len() == channels || a.len() == batch * channels) || d.len() != a.len() {
            candle_core::bail!(
                "group norm: affine of {} and {} values for {batch}×{channels} channels",
                a.len(),
                d.len()
            )
        }
        let pixels = x.len() / (batch * channels).max(1);
        let group_channels = channels / self.groups;
        let group_len = group_channels * pixels;
        let mut y = vec![0f32; x.len()];
        if group_len == 0 {
            return Ok((CpuStorage::F32(y), x_layout.shape().clone()));
        }
        y.par_chunks_exact_mut(group_len)
            .zip(x.par_chunks_exact(group_len))
            .enumerate()
            .for_each(|(i, (yg, xg))| {
                let (image, group) = (i / self.groups, i % self.groups);
                let (mean, rstd) = moments(xg, self.eps);
                for j in 0..group_channels {
                    let c = group * group_channels + j;
                    let at = if per_image { image * channels + c } else { c };
                    let range = j * pixels..(j + 1) * pixels;
                    normalize(
                        &xg[range.clone()],
                        &mut yg[range],
                        mean,
                        rstd * a[at],
                        d[at],
                        self.silu,
                    );
                }
            });
        Ok((CpuStorage::F32(y), x_layout.shape().clone()))
    }
}

/// Mean and 1/√(var + eps) (biased variance), accumulated in f64 over 8 lanes.
fn moments(x: &[f32], eps: f64) -> (f32, f32) {
    simd::dispatch(
        #[inline(always)]
        || {
            let (mut sum, mut squares) = ([0f64; 8], [0f64; 8]);
            let chunks = x.chunks_exact(8);
            let tail = chunks.remainder();
            for chunk in chunks {
                for l in 0..8 {
                    let v = chunk[l] as f64;
                    sum[l] += v;
                    squares[l] += v * v;
                }
            }
            let n = x.len() as f64;
            let s: f64 = sum.iter().sum::<f64>() + tail.iter().map(|&v| v as f64).sum::<f64>();
            let q: f64 = squares.iter().sum::<f64>()
                + tail.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
            let mean = s / n;
            let var = (q / n - mean * mean).max(0.0);
            (mean as f32, (1.0 / (var + eps).sqrt()) as f32)
        },
    )
}

fn normalize(x: &[f32], y: &mut [f32], mean: f32, scale: f32, offset: f32, silu: bool) {
    simd::dispatch(
        #[inline(always)]
        || {
            if silu {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = simd::silu((x - mean) * scale + offset);
                }
            } else {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = (x - mean) * scale + offset;
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module, Tensor};

    /// Against candle_nn's GroupNorm, then × (1 + scale) + shift, then SiLU.
    #[test]
    fn matches_group_norm_then_scale_shift_then_silu() -> Result<()> {
        let dev = Device::Cpu;
        for &(b, c, h, w, groups) in &[(1, 32, 5, 7, 32), (2, 64, 4, 4, 32), (3, 8, 3, 1, 4)] {
            // an offset mean and small spread: the case where E[x²] − μ² would lose digits in f32
            let x = (Tensor::randn(0f32, 0.05, (b, c, h, w), &dev)? + 3.0)?;
            let gamma = Tensor::randn(1f32, 0.2, c, &dev)?;
            let beta = Tensor::randn(0f32, 0.2, c, &dev)?;
            let gn = candle_nn::GroupNorm::new(gamma.clone(), beta.clone(), c, groups, 1e-5)?;
            let normed = gn.forward(&x)?;
            // plain, per channel
            let op = GroupNormAffine {
                groups,
                eps: 1e-5,
                silu: false,
            };
            let got = x.apply_op3_no_bwd(&gamma, &beta, &op)?;
            let err = (&got - &normed)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(err < 2e-5, "plain: max error {err}");
            // scale-shift per image, with SiLU
            let scale = Tensor::randn(0f32, 0.3, (b, c), &dev)?;
            let shift = Tensor::randn(0f32, 0.3, (b, c), &dev)?;
            let s4 = (scale.reshape((b, c, 1, 1))? + 1.0)?;
            let want = normed
                .broadcast_mul(&s4)?
                .broadcast_add(&shift.reshape((b, c, 1, 1))?)?
                .silu()?;
            let factor = (scale + 1.0)?;
            let a = factor.broadcast_mul(&gamma)?;
            let d = (factor.broadcast_mul(&beta)? + shift)?;
            let op = GroupNormAffine { silu: true, ..op };
            let got = x.apply_op3_no_bwd(&a.contiguous()?, &d.contiguous()?, &op)?;
            let err = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(err < 2e-5, "scale-shift + SiLU: max error {err}");
        }
        Ok(())
    }
}
