//! The UNet's multi-head self-attention on the CPU, a block of queries at a time.
//!
//! Computed whole, the attention weights of ImageNet-64 at 32² and batch 8 are 48 matrices of
//! 1024 × 1024: 200 MB, written by a matmul, rescaled, soft-maxed and transposed, each pass a fresh
//! allocation. That took 1.1 s per attention block, half of the model's time. Here each task takes
//! 64 queries of one head: their scores against every key (64 × T, a few hundred KB that stay in
//! cache), the softmax in place, and their output columns — three passes over a small buffer and two
//! gemms, tasks spread over threads.

use super::{Strided, f32_slice, gemm_on_this_thread, simd};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use rayon::prelude::*;

/// Queries per task: their scores (QUERY_BLOCK × T floats) stay in L2 for T up to a few thousand.
const QUERY_BLOCK: usize = 64;

/// (qkv [B, 3·C, T]) → [B, C, T]: for each head h of d = C/heads channels, with Q, K, V its d-slices
/// of channels [0, C), [C, 2C), [2C, 3C), out[:, t] = Σ_s softmax_s(q_t · k_s / √d) v_s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attention {
    pub heads: usize,
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "cmpaint-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (batch, c3, t) = layout.shape().dims3()?;
        if self.heads == 0 || !c3.is_multiple_of(3 * self.heads) {
            candle_core::bail!(
                "attention: {c3} qkv channels cannot split into 3 × {} heads",
                self.heads
            )
        }
        let qkv = f32_slice(storage, layout, "attention qkv")?;
        let (c, heads) = (c3 / 3, self.heads);
        let d = c / heads;
        let mut out = vec![0f32; batch * c * t];
        if t == 0 || d == 0 {
            return Ok((CpuStorage::F32(out), Shape::from((batch, c, t))));
        }
        let blocks = t.div_ceil(QUERY_BLOCK);
        let out_ptr = SharedOut(out.as_mut_ptr());
        (0..batch * heads * blocks)
            .into_par_iter()
            .for_each(|task| {
                let (plane, block) = (task / blocks, task % blocks);
                let (image, head) = (plane / heads, plane % heads);
                let at = |part: usize| (image * c3 + part * c + head * d) * t;
                let (q, k, v) = (&qkv[at(0)..], &qkv[at(1)..], &qkv[at(2)..]);
                let start = block * QUERY_BLOCK;
                let queries = QUERY_BLOCK.min(t - start);
                // SAFETY: this task alone writes columns [start, start + queries) of rows
                // [0, d) of plane `plane`, an [d, t] block of `out` at (image·C + head·d)·t.
                let out = unsafe { out_ptr.at((image * c + head * d) * t + start) };
                with_scores(queries * t, |scores| {
                    let geometry = Geometry {
                        t,
                        d,
                        start,
                        queries,
                    };
                    // SAFETY: q, k, v hold d rows of t values from their offsets (checked by the slice
                    // bounds: qkv is [batch, 3C, t]), scores holds queries × t, out as above.
                    unsafe { attend(&geometry, q, k, v, scores, out) }
                });
            });
        Ok((CpuStorage::F32(out), Shape::from((batch, c, t))))
    }
}

/// The output pointer shared by the tasks, each writing its own columns.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: tasks write disjoint elements (see `cpu_fwd`), and the buffer outlives the parallel loop.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `offset` must lie inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: as the caller promises.
        unsafe { self.0.add(offset) }
    }
}

struct Geometry {
    t: usize,
    d: usize,
    start: usize,
    queries: usize,
}

/// One block of queries of one head. `q`, `k`, `v` are that head's [d, t] rows; `out` points at the
/// block's first output column in a [d, t] plane.
unsafe fn attend(g: &Geometry, q: &[f32], k: &[f32], v: &[f32], scores: &mut [f32], out: *mut f32) {
    let &Geometry {
        t,
        d,
        start,
        queries,
    } = g;
    assert!(
        q.len() >= d * t && k.len() >= d * t && v.len() >= d * t && scores.len() >= queries * t
    );
    let scale = 1.0 / (d as f32).sqrt();
    // scores[r, s] = scale · Σ_i q[i, start + r] · k[i, s]
    // SAFETY: the strides address q's d × queries block, k's d × t and scores' queries × t, all in
    // bounds (asserted above).
    unsafe {
        gemm_on_this_thread(
            (queries, t, d),
            Strided {
                ptr: scores.as_mut_ptr(),
                row_stride: t as isize,
                col_stride: 1,
            },
            false,
            Strided {
                ptr: q.as_ptr().add(start),
                row_stride: 1,
                col_stride: t as isize,
            },
            Strided {
                ptr: k.as_ptr(),
                row_stride: t as isize,
                col_stride: 1,
            },
            scale,
        );
    }
    // Each row becomes exp(x − max); its sum divides the output column at the end, a d-long
    // column instead of a t-long row.
    let mut inverse_sums = [0f32; QUERY_BLOCK];
    for (row, inverse) in scores.chunks_exact_mut(t).zip(&mut inverse_sums) {
        *inverse = 1.0 / exp_shifted_in_place(row);
    }
    // out[i, r] = Σ_s v[i, s] · scores[r, s]
    // SAFETY: v's d × t, scores' queries × t read transposed, and out's d × queries block with
    // row stride t, all in bounds.
    unsafe {
        gemm_on_this_thread(
            (d, queries, t),
            Strided {
                ptr: out,
                row_stride: t as isize,
                col_stride: 1,
            },
            false,
            Strided {
                ptr: v.as_ptr(),
                row_stride: t as isize,
                col_stride: 1,
            },
            Strided {
                ptr: scores.as_ptr(),
                row_stride: 1,
                col_stride: t as isize,
            },
            1.0,
        );
        for i in 0..d {
            for (r, inverse) in inverse_sums[..queries].iter().enumerate() {
                *out.add(i * t + r) *= inverse;
            }
        }
    }
}

/// x ← exp(x − max x) over a row; returns the new sum.
fn exp_shifted_in_place(row: &mut [f32]) -> f32 {
    simd::dispatch(
        #[inline(always)]
        || {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let mut lanes = [0f32; 8];
            let mut chunks = row.chunks_exact_mut(8);
            for chunk in &mut chunks {
                for (x, lane) in chunk.iter_mut().zip(&mut lanes) {
                    *x = simd::exp(*x - max);
                    *lane += *x;
                }
            }
            let mut sum: f32 = chunks
                .into_remainder()
                .iter_mut()
                .map(|x| {
                    *x = simd::exp(*x - max);
                    *x
                })
                .sum();
            sum += lanes.iter().sum::<f32>();
            sum
        },
    )
}

/// Runs `f` with this thread's scores buffer of at least `len` floats, kept between calls.
fn with_scores<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    thread_local! {
        static SCORES: std::cell::RefCell<Vec<f32>> = Default::default();
    }
    SCORES.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scores) => {
            if scores.len() < len {
                scores.resize(len, 0.0);
            }
            f(&mut scores[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// The definition, in f64 loops.
    fn reference(qkv: &[f32], batch: usize, c: usize, heads: usize, t: usize) -> Vec<f64> {
        let d = c / heads;
        let mut out = vec![0f64; batch * c * t];
        for b in 0..batch {
            for h in 0..heads {
                let at = |part: usize, i: usize, s: usize| {
                    qkv[(b * 3 * c + part * c + h * d + i) * t + s] as f64
                };
                for r in 0..t {
                    let logits: Vec<f64> = (0..t)
                        .map(|s| {
                            (0..d).map(|i| at(0, i, r) * at(1, i, s)).sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let max = logits.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for i in 0..d {
                        out[(b * c + h * d + i) * t + r] =
                            (0..t).map(|s| e[s] * at(2, i, s)).sum::<f64>() / sum;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_in_f64_at_every_level() {
        crate::engine::kernels::simd::at_every_level(|_| matches_the_definition_in_f64().unwrap());
    }

    fn matches_the_definition_in_f64() -> Result<()> {
        // t below, at and across the query block (35, 64, 150), one head and several, batch 1 and 2
        for &(batch, c, heads, t) in &[
            (1, 8, 1, 35),
            (2, 12, 3, 64),
            (2, 32, 2, 150),
            (1, 64, 1, 4),
        ] {
            // values in ±2.5 from a fixed hash: logits of a few units, as in a trained UNet, so the
            // softmax is neither flat nor one-hot
            let n = batch * 3 * c * t;
            let values = (0..n).map(|i| 2.5 * ((i as f32 * 12.9898).sin() * 43_758.547).fract());
            let qkv = Tensor::from_iter(values, &Device::Cpu)?.reshape((batch, 3 * c, t))?;
            let got = qkv.apply_op1_no_bwd(&Attention { heads })?;
            let got = got.flatten_all()?.to_vec1::<f32>()?;
            let want = reference(&qkv.flatten_all()?.to_vec1()?, batch, c, heads, t);
            let max_error = |got: &[f32]| {
                got.iter()
                    .zip(&want)
                    .map(|(&g, &w)| (g as f64 - w).abs())
                    .fold(0.0, f64::max)
            };
            let err = max_error(&got);
            // candle's own operations (the whole weight matrix) on the same input, for scale
            let candle = crate::engine::model::blocks::attention_with_candle_ops(&qkv, heads)?;
            let candle_err = max_error(&candle.flatten_all()?.to_vec1::<f32>()?);
            // Measured: 3e-7…1.5e-6, never above candle's own error by more than 10 %.
            assert!(
                err < 2e-6 && err <= 1.5 * candle_err,
                "{batch}×{c}ch×{heads} heads×{t}: max error {err:e}, candle's {candle_err:e}"
            );
        }
        Ok(())
    }

    #[test]
    fn refuses_channels_that_do_not_split_into_heads() {
        let qkv = Tensor::zeros((1, 30, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let err = qkv.apply_op1_no_bwd(&Attention { heads: 4 }).unwrap_err();
        assert!(err.to_string().contains("cannot split"), "{err}");
    }
}
