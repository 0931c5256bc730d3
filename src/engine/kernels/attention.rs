//! The UNet's multi-head self-attention on the CPU, a block of queries at a time.
//!
//! Computed whole, the attention weights of ImageNet-64 at 32² and batch 8 are 48 matrices of
//! 1024 × 1024: 200 MB, written by a matmul, rescaled, soft-maxed and transposed, each pass a fresh
//! allocation. That took 1.1 s per attention block, half of the model's time. Here each task takes
//! 64 queries of one head: their scores against every key (64 × T, a few hundred KB that stay in
//! cache), the softmax in place, and their output columns — three passes over a small buffer, tasks
//! spread over threads. The two products are register-tiled loops of their own (see [`attend`]):
//! through the gemm crate, Stable Diffusion's heads of 40 channels ran at 63 GFLOP/s, here at 150
//! (`benches/attention.rs`).

use super::{f32_slice, simd};
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
///
/// Both products are register-tiled loops over rows that are already contiguous, so nothing is
/// packed: scores[r, s..] = Σ_i q[i, r]·k[i, s..] broadcasts a query value against a row of keys, and
/// out[i, r] = Σ_s v[i, s]·p[r, s] is a tile of dot products along the keys. Through the gemm crate,
/// heads of 40 channels spent 56 % of the attention's time packing and driving tiles for that inner
/// dimension of 40 (perf, Zen 4); these loops read L1 and L2 as the data lies.
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
    let head = Head {
        q: &q[start..],
        k,
        t,
        d,
        queries,
    };
    match simd::level() {
        // SAFETY: the CPU has the features (`simd::level`).
        #[cfg(target_arch = "x86_64")]
        simd::Level::Avx512 => unsafe { x86::scores_avx512(&head, scale, scores) },
        #[cfg(target_arch = "x86_64")]
        simd::Level::Avx2 => unsafe { x86::scores_avx2(&head, scale, scores) },
        _ => scores_tiled::<f32, 4, 4>(&head, scale, scores),
    }
    // Each row becomes exp(x − max); its sum divides the output column at the end, a d-long
    // column instead of a t-long row.
    let mut inverse_sums = [0f32; QUERY_BLOCK];
    for (row, inverse) in scores.chunks_exact_mut(t).zip(&mut inverse_sums) {
        *inverse = 1.0 / exp_shifted_in_place(row);
    }
    let inverse_sums = &inverse_sums[..queries];
    // SAFETY: out addresses d rows t apart with `queries` columns from it (the caller's promise).
    unsafe {
        match simd::level() {
            #[cfg(target_arch = "x86_64")]
            simd::Level::Avx512 => x86::values_avx512(v, scores, t, d, inverse_sums, out),
            #[cfg(target_arch = "x86_64")]
            simd::Level::Avx2 => x86::values_avx2(v, scores, t, d, inverse_sums, out),
            _ => weighted_values::<f32, 2, 2>(v, scores, t, d, inverse_sums, out),
        }
    }
}

/// One head's queries (from the block's first) and keys, [d, t] rows each.
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    t: usize,
    d: usize,
    queries: usize,
}

/// A vector register of f32 lanes, or one f32 for the plain path.
trait Lanes: Copy {
    const N: usize;
    /// # Safety
    /// `N` floats readable from `p`, and the CPU has the instructions (the callers' dispatch).
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `N` floats writable at `p`.
    unsafe fn store(self, p: *mut f32);
    fn splat(x: f32) -> Self;
    /// self · b + c
    fn mul_add(self, b: Self, c: Self) -> Self;
    fn sum(self) -> f32;
}

impl Lanes for f32 {
    const N: usize = 1;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { *p = self }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        self * b + c
    }
    #[inline(always)]
    fn sum(self) -> f32 {
        self
    }
}

/// scores[r, s] = scale · Σ_i q[i, r] · k[i, s] for every query r of the block, in tiles of R queries
/// × K vectors of keys held in registers. Key chunks go outermost, so a chunk of k's rows (d × K·N
/// floats) stays in L1 for all the block's tiles. Rows past the block repeat its last query; their
/// results are not stored.
#[inline(always)]
fn scores_tiled<V: Lanes, const R: usize, const K: usize>(
    h: &Head,
    scale: f32,
    scores: &mut [f32],
) {
    let &Head {
        q,
        k,
        t,
        d,
        queries,
    } = h;
    let width = K * V::N;
    let whole = t - t % width;
    assert!(q.len() >= (d - 1) * t + queries && k.len() >= d * t && scores.len() >= queries * t);
    let (q, k) = (q.as_ptr(), k.as_ptr());
    for s0 in (0..whole).step_by(width) {
        for r0 in (0..queries).step_by(R) {
            let rows: [usize; R] = simd::array(|r| (r0 + r).min(queries - 1));
            let mut acc = [[V::splat(0.0); K]; R];
            for i in 0..d {
                // SAFETY: i < d, s0 + width ≤ t and rows < queries, within the asserted lengths.
                let keys: [V; K] =
                    unsafe { std::array::from_fn(|j| V::load(k.add(i * t + s0 + j * V::N))) };
                for r in 0..R {
                    let query = V::splat(unsafe { *q.add(i * t + rows[r]) });
                    for j in 0..K {
                        acc[r][j] = query.mul_add(keys[j], acc[r][j]);
                    }
                }
            }
            let scale = V::splat(scale);
            for r in 0..R.min(queries - r0) {
                for j in 0..K {
                    let dst = &mut scores[(r0 + r) * t + s0 + j * V::N..][..V::N];
                    // SAFETY: dst holds N floats.
                    unsafe {
                        acc[r][j]
                            .mul_add(scale, V::splat(0.0))
                            .store(dst.as_mut_ptr())
                    };
                }
            }
        }
    }
    for r in 0..queries {
        for s in whole..t {
            // SAFETY: as above, for the last keys one at a time.
            let dot: f32 = (0..d)
                .map(|i| unsafe { *q.add(i * t + r) * *k.add(i * t + s) })
                .sum();
            scores[r * t + s] = dot * scale;
        }
    }
}

/// out[i, r] = inverse_sums[r] · Σ_s v[i, s] · p[r, s] for the block's queries (out's rows t apart),
/// in tiles of C channels × R queries, each dot product summed in one register along the keys and
/// across its lanes at the end.
///
/// # Safety
/// `out` addresses d rows t apart with `inverse_sums.len()` columns from it.
#[inline(always)]
unsafe fn weighted_values<V: Lanes, const C: usize, const R: usize>(
    v: &[f32],
    p: &[f32],
    t: usize,
    d: usize,
    inverse_sums: &[f32],
    out: *mut f32,
) {
    let queries = inverse_sums.len();
    let whole = t - t % V::N;
    assert!(v.len() >= d * t && p.len() >= queries * t);
    let (vp, pp) = (v.as_ptr(), p.as_ptr());
    for i0 in (0..d).step_by(C) {
        let channels: [usize; C] = simd::array(|c| (i0 + c).min(d - 1));
        for r0 in (0..queries).step_by(R) {
            let rows: [usize; R] = simd::array(|r| (r0 + r).min(queries - 1));
            let mut acc = [[V::splat(0.0); R]; C];
            for s in (0..whole).step_by(V::N) {
                // SAFETY: channels < d, rows < queries and s + N ≤ t: within the asserted lengths.
                let values: [V; C] =
                    std::array::from_fn(|c| unsafe { V::load(vp.add(channels[c] * t + s)) });
                let weights: [V; R] =
                    std::array::from_fn(|r| unsafe { V::load(pp.add(rows[r] * t + s)) });
                for c in 0..C {
                    for r in 0..R {
                        acc[c][r] = values[c].mul_add(weights[r], acc[c][r]);
                    }
                }
            }
            for (i, sums) in (i0..d).zip(&acc) {
                for (row, lanes) in (r0..queries).zip(sums) {
                    let tail: f32 = (whole..t).map(|s| v[i * t + s] * p[row * t + s]).sum();
                    let sum = lanes.sum() + tail;
                    // SAFETY: i < d, row < queries (the caller's promise).
                    unsafe { *out.add(i * t + row) = sum * inverse_sums[row] };
                }
            }
        }
    }
}

/// The tile loops compiled for AVX-512 and AVX2 + FMA, with tile shapes that fill their registers
/// (32 zmm: 16 accumulators; 16 ymm: 8 to 12).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Head, Lanes, scores_tiled, weighted_values};
    use std::arch::x86_64::*;

    impl Lanes for __m512 {
        const N: usize = 16;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm512_storeu_ps(p, self) }
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            unsafe { _mm512_fmadd_ps(self, b, c) }
        }
        #[inline(always)]
        fn sum(self) -> f32 {
            unsafe { _mm512_reduce_add_ps(self) }
        }
    }

    impl Lanes for __m256 {
        const N: usize = 8;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm256_storeu_ps(p, self) }
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            unsafe { _mm256_fmadd_ps(self, b, c) }
        }
        #[inline(always)]
        fn sum(self) -> f32 {
            unsafe {
                let half = _mm_add_ps(_mm256_castps256_ps128(self), _mm256_extractf128_ps(self, 1));
                let pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
                _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)))
            }
        }
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn scores_avx512(h: &Head, scale: f32, scores: &mut [f32]) {
        scores_tiled::<__m512, 8, 2>(h, scale, scores)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scores_avx2(h: &Head, scale: f32, scores: &mut [f32]) {
        scores_tiled::<__m256, 6, 2>(h, scale, scores)
    }

    /// # Safety
    /// As [`weighted_values`], on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn values_avx512(
        v: &[f32],
        p: &[f32],
        t: usize,
        d: usize,
        inv: &[f32],
        out: *mut f32,
    ) {
        unsafe { weighted_values::<__m512, 4, 4>(v, p, t, d, inv, out) }
    }

    /// # Safety
    /// As [`weighted_values`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn values_avx2(
        v: &[f32],
        p: &[f32],
        t: usize,
        d: usize,
        inv: &[f32],
        out: *mut f32,
    ) {
        unsafe { weighted_values::<__m256, 2, 4>(v, p, t, d, inv, out) }
    }
}

/// x ← exp(x − max x) over a row; returns the new sum.
fn exp_shifted_in_place(row: &mut [f32]) -> f32 {
    simd::dispatch(
        #[inline(always)]
        || {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            // 16 lanes: one zmm register with AVX-512, two ymm with AVX2
            let mut lanes = [0f32; 16];
            let mut chunks = row.chunks_exact_mut(16);
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
        // t below, at and across the query block (35, 64, 150), one head and several, batch 1 and 2;
        // heads of 5 and 40 channels (not whole tiles of channels), keys not whole vectors (35, 70)
        for &(batch, c, heads, t) in &[
            (1, 8, 1, 35),
            (1, 10, 2, 70),
            (1, 80, 2, 96),
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
