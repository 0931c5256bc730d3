//! GroupNorm followed by a per-channel affine and optionally SiLU, in one pass per group:
//! `y = act((x − μ_g)·rstd_g·a_c + d_c)`.
//!
//! `a` and `d` are per channel (`[C]`: the plain GroupNorm's γ and β) or per image and channel
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

    /// (x `[B, C, …]`, a, d `[C]` or `[B, C]`) → y shaped like x.
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
        if dims.len() < 2 || !dims[1].is_multiple_of(self.groups) {
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
                let (origin, offset, rstd) = moments(xg, self.eps);
                for j in 0..group_channels {
                    let c = group * group_channels + j;
                    let at = if per_image { image * channels + c } else { c };
                    let range = j * pixels..(j + 1) * pixels;
                    normalize(
                        &xg[range.clone()],
                        &mut yg[range],
                        (origin, offset),
                        rstd * a[at],
                        d[at],
                        self.silu,
                    );
                }
            });
        Ok((CpuStorage::F32(y), x_layout.shape().clone()))
    }
}

/// The group's statistics as (origin, mean − origin, 1/√(var + eps)) with the biased variance. Sums
/// run over deviations from an origin inside the data (its first value), so a mean far from zero
/// costs no digits in f32, and (x − origin) − (mean − origin) keeps the same precision when applied.
fn moments(x: &[f32], eps: f64) -> (f32, f32, f32) {
    simd::dispatch(
        #[inline(always)]
        || {
            let n = x.len() as f64;
            let origin = x[0];
            let offset = (blocked_sum(x, |v| v - origin) / n) as f32;
            let var = blocked_sum(x, |v| {
                let d = (v - origin) - offset;
                d * d
            }) / n;
            (origin, offset, (1.0 / (var + eps).sqrt()) as f32)
        },
    )
}

/// Σ f(x) in 8 f32 lanes over blocks of 2048 values, f64 across blocks: vectorised, and as accurate
/// as the values' own spread allows (they are deviations, not raw values).
#[inline(always)]
fn blocked_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut total = 0f64;
    for block in x.chunks(2048) {
        let mut lanes = [0f32; 8];
        let chunks = block.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
        for chunk in chunks {
            for l in 0..8 {
                lanes[l] += f(chunk[l]);
            }
        }
        total += lanes.iter().map(|&v| v as f64).sum::<f64>() + tail as f64;
    }
    total
}

/// y = act((x − μ)·scale + shift), with μ given as (origin, μ − origin) from [`moments`].
fn normalize(x: &[f32], y: &mut [f32], mean: (f32, f32), scale: f32, shift: f32, silu: bool) {
    let (origin, offset) = mean;
    simd::dispatch(
        #[inline(always)]
        || {
            if silu {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = simd::silu(((x - origin) - offset) * scale + shift);
                }
            } else {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = ((x - origin) - offset) * scale + shift;
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module, Tensor};

    /// Against candle_nn's GroupNorm, then × (1 + scale) + shift, then SiLU, all computed in f64.
    #[test]
    fn matches_group_norm_then_scale_shift_then_silu_at_every_level() {
        crate::engine::kernels::simd::at_every_level(|_| {
            matches_group_norm_then_scale_shift_then_silu().unwrap()
        });
    }

    fn matches_group_norm_then_scale_shift_then_silu() -> Result<()> {
        let dev = Device::Cpu;
        let f64 = |t: &Tensor| t.to_dtype(candle_core::DType::F64);
        let max_err = |got: &Tensor, want: &Tensor| -> Result<f64> {
            (f64(got)? - want)?.abs()?.max_all()?.to_scalar::<f64>()
        };
        for &(b, c, h, w, groups) in &[(1, 32, 5, 7, 32), (2, 64, 4, 4, 32), (3, 8, 3, 1, 4)] {
            // an offset mean and small spread (60σ): E[x²] − μ² would lose every digit in f32
            let x = (Tensor::randn(0f32, 0.05, (b, c, h, w), &dev)? + 3.0)?;
            let gamma = Tensor::randn(1f32, 0.2, c, &dev)?;
            let beta = Tensor::randn(0f32, 0.2, c, &dev)?;
            let gn = candle_nn::GroupNorm::new(f64(&gamma)?, f64(&beta)?, c, groups, 1e-5)?;
            let normed = gn.forward(&f64(&x)?)?;
            // plain, per channel
            let op = GroupNormAffine {
                groups,
                eps: 1e-5,
                silu: false,
            };
            let got = x.apply_op3_no_bwd(&gamma, &beta, &op)?;
            let err = max_err(&got, &normed)?;
            assert!(err < 2e-6, "plain: max error {err}");
            // scale-shift per image, with SiLU
            let scale = Tensor::randn(0f32, 0.3, (b, c), &dev)?;
            let shift = Tensor::randn(0f32, 0.3, (b, c), &dev)?;
            let s4 = (scale.reshape((b, c, 1, 1))? + 1.0)?;
            let want = normed
                .broadcast_mul(&f64(&s4)?)?
                .broadcast_add(&f64(&shift.reshape((b, c, 1, 1))?)?)?
                .silu()?;
            let factor = (scale + 1.0)?;
            let a = factor.broadcast_mul(&gamma)?;
            let d = (factor.broadcast_mul(&beta)? + shift)?;
            let op = GroupNormAffine { silu: true, ..op };
            let got = x.apply_op3_no_bwd(&a.contiguous()?, &d.contiguous()?, &op)?;
            let err = max_err(&got, &want)?;
            assert!(err < 2e-6, "scale-shift + SiLU: max error {err}");
        }
        Ok(())
    }
}
