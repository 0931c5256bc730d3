//! GEGLU's gate, `a · GELU(b)` for the two halves of each row of the feed-forward projection, in
//! one pass. Through candle it was four: the strided half copied, GELU through the scalar `erff` of
//! libm, the product on candle's second thread pool, and their allocations (≈ 4 % of a 512² Stable
//! Diffusion UNet call).

use super::{f32_slice, simd};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use rayon::prelude::*;

/// (p [..., 2H]) → [..., H]: out[j] = p[j] · GELU(p[H + j]) with GELU(x) = x/2 · (1 + erf(x/√2)),
/// as diffusers' `GEGLU` (`approximate="none"`).
#[derive(Debug, Clone, Copy)]
pub struct Geglu;

/// Rows per task: about 64 K outputs at Stable Diffusion's widths.
const MIN_OUTPUTS_PER_TASK: usize = 1 << 16;

impl CustomOp1 for Geglu {
    fn name(&self) -> &'static str {
        "cmpaint-geglu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let p = f32_slice(storage, layout, "geglu")?;
        let dims = layout.shape().dims();
        let width = *dims.last().unwrap_or(&0);
        if !width.is_multiple_of(2) {
            candle_core::bail!("geglu: the last axis ({width}) does not split in two halves")
        }
        let half = width / 2;
        let mut out = vec![0f32; p.len() / 2];
        if let Some(rows_per_task) = MIN_OUTPUTS_PER_TASK.checked_div(half) {
            let rows_per_task = rows_per_task.max(1);
            out.par_chunks_mut(rows_per_task * half)
                .zip(p.par_chunks(rows_per_task * width))
                .for_each(|(out, p)| {
                    simd::dispatch(
                        #[inline(always)]
                        || {
                            for (out, row) in out.chunks_exact_mut(half).zip(p.chunks_exact(width))
                            {
                                let (a, b) = row.split_at(half);
                                for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                                    *o = a * gelu(b);
                                }
                            }
                        },
                    )
                });
        }
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = half;
        }
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

/// GELU with the exact erf form, to f32 precision.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf(x) to within 2e-7. Below |x| = 1 its Maclaurin series to x²¹ (each term under 1.3e-8 from
/// there on), so small values keep their relative precision; from 1 on Abramowitz & Stegun 7.1.26,
/// 1 − t·P(t)·e^(−x²) with t = 1/(1 + p|x|) (1.5e-7). Both are computed and one is chosen: no branch,
/// so the loops over it vectorise, where libm's erff does not.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    // 2/√π · Σ (−1)ⁿ x^(2n+1) / (n! (2n+1)), as x · Q(x²)
    const SERIES: [f32; 11] = [
        std::f32::consts::FRAC_2_SQRT_PI,
        -0.376_126_4,
        0.112_837_92,
        -0.026_866_17,
        0.005_223_977,
        -8.548_327e-4,
        1.205_533_7e-4,
        -1.492_565e-5,
        1.646_211_4e-6,
        -1.636_584e-7,
        1.480_719e-8,
    ];
    let x2 = x * x;
    let small = x * SERIES.iter().rev().fold(0.0, |acc, &c| acc * x2 + c);
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let large = (1.0 - poly * simd::exp(-x2)).copysign(x);
    if a < 1.0 { small } else { large }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// erf by its Maclaurin series in f64 (exact to ~1e-9 for |x| ≤ 4; erf is 1 − 2e-8 beyond).
    fn erf_f64(x: f64) -> f64 {
        if x.abs() > 4.0 {
            return x.signum();
        }
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_within_2e_7_everywhere() {
        let mut worst = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((erf(x) as f64 - erf_f64(x as f64)).abs());
        }
        assert!(worst < 2e-7, "max error {worst:e}");
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(f32::INFINITY), 1.0);
    }

    #[test]
    fn gates_the_first_half_by_the_gelu_of_the_second_at_every_level() {
        crate::engine::kernels::simd::at_every_level(|_| {
            // 3 rows of 2 × 5 (a row shorter than a vector) and 300 rows of 2 × 40
            for (rows, half) in [(3usize, 5usize), (300, 40)] {
                let n = rows * 2 * half;
                let values =
                    (0..n).map(|i| 6.0 * ((i as f32 * 12.9898).sin() * 43_758.547).fract());
                let p = Tensor::from_iter(values, &Device::Cpu)
                    .unwrap()
                    .reshape((1, rows, 2 * half))
                    .unwrap();
                let got = p.apply_op1_no_bwd(&Geglu).unwrap();
                assert_eq!(got.dims(), &[1, rows, half]);
                let p = p.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for (r, out) in got.chunks(half).enumerate() {
                    for (j, &o) in out.iter().enumerate() {
                        let (a, b) = (
                            p[r * 2 * half + j] as f64,
                            p[r * 2 * half + half + j] as f64,
                        );
                        let want = a * 0.5 * b * (1.0 + erf_f64(b / 2f64.sqrt()));
                        // erf's 2e-7 scaled by a·b/2, and f32's rounding of the result
                        let tolerance = 1e-7 * (a * b).abs() + 4e-7 * want.abs() + 1e-12;
                        assert!(
                            (o as f64 - want).abs() < tolerance,
                            "row {r} col {j}: {o} not {want}"
                        );
                    }
                }
            }
        });
    }

    #[test]
    fn refuses_an_odd_width() {
        let p = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let err = p.apply_op1_no_bwd(&Geglu).unwrap_err();
        assert!(err.to_string().contains("two halves"), "{err}");
    }
}
