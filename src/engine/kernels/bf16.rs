//! bf16 products with f32 accumulation, for CPUs with AVX512-BF16 (AMD Zen 4 and later, Intel Cooper
//! Lake and Sapphire Rapids and later): `vdpbf16ps` multiplies 32 pairs of bf16 and adds them into 16
//! f32 sums in one instruction, twice the multiply-adds of an f32 FMA of the same width. The opt-in
//! `--precision bf16` runs the convolutions' gemms here: weights rounded to bf16 once at load, the
//! activations rounded as they enter each gemm, every sum kept in f32. Normalisation, attention and
//! the sampler stay in f32.
//!
//! Layouts. A weight matrix [M, K] (M output channels, a multiple of [`BLOCK`]; K even) is packed by
//! [`pack`] into blocks of 32 rows, pair of columns by pair of columns: element (i, k) at
//! `((i / 32 · K/2 + k / 2) · 32 + i % 32) · 2 + k % 2`, so one 64-byte load holds the pairs of 16 rows.
//! The other operand is rows of bf16 (one per output pixel) whose pairs are contiguous, and the output
//! rows of f32 with the channels contiguous: the same orientation as the f32 kernels.

use half::bf16;

/// Output channels per packed block: two 16-lane vectors.
pub const BLOCK: usize = 32;

/// Whether this CPU runs the bf16 products, and `CMPAINT_SIMD` does not cap the run below AVX-512.
/// (Not the tests' per-level cap: the bf16 tests run beside tests that move it.)
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bf16")
            && super::simd::env_cap() == super::simd::Level::Avx512
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether an [M, K] weight can be packed: whole blocks of output channels, whole pairs of taps.
pub fn fits(m: usize, k: usize) -> bool {
    m > 0 && m.is_multiple_of(BLOCK) && k > 0 && k.is_multiple_of(2)
}

/// `a` ([M, K], row-major) rounded to bf16 (to nearest, ties to even) in the packed layout.
pub fn pack(a: &[f32], m: usize, k: usize) -> Vec<bf16> {
    assert!(fits(m, k) && a.len() == m * k, "pack: {m}×{k} does not fit");
    let pairs = k / 2;
    let mut out = vec![bf16::ZERO; m * k];
    for (i, row) in a.chunks_exact(k).enumerate() {
        let (block, r) = (i / BLOCK, i % BLOCK);
        for (q, pair) in row.chunks_exact(2).enumerate() {
            let at = ((block * pairs + q) * BLOCK + r) * 2;
            out[at] = bf16::from_f32(pair[0]);
            out[at + 1] = bf16::from_f32(pair[1]);
        }
    }
    out
}

/// `dst` = `src` rounded to bf16 (to nearest, ties to even; the vector path flushes subnormals to
/// zero, as `vcvtneps2bf16` does).
pub fn convert(src: &[f32], dst: &mut [bf16]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if supported() {
        // SAFETY: the CPU has the instructions (`supported`); the lengths match.
        unsafe { x86::convert(src, dst) };
        return;
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = bf16::from_f32(s);
    }
}

/// Runs `f` on `src` rounded to bf16, in this thread's buffer (kept from call to call).
pub fn with_rounded<R>(src: &[f32], f: impl FnOnce(&[bf16]) -> R) -> R {
    thread_local! {
        static ROUNDED: std::cell::RefCell<Vec<bf16>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    ROUNDED.with(|cell| {
        let mut fresh = Vec::new();
        let mut held = cell.try_borrow_mut();
        let buffer = match held.as_deref_mut() {
            Ok(buffer) => buffer,
            Err(_) => &mut fresh,
        };
        buffer.resize(src.len(), bf16::ZERO);
        convert(src, buffer);
        f(buffer)
    })
}

/// The shape and strides of one product: C [n rows, m channels] (=, or += with `accumulate`)
/// B [n rows, k] · Aᵀ, with A packed [m, k]; row `j` of B starts at `b_offset + j·ldb` elements, row
/// `j` of C at `c_offset + j·ldc`.
#[derive(Debug, Clone, Copy)]
pub struct Product {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub b_offset: usize,
    pub ldb: usize,
    pub c_offset: usize,
    pub ldc: usize,
    pub accumulate: bool,
}

/// Runs one [`Product`] on this thread. Panics where the CPU lacks the instructions ([`supported`])
/// or a row would leave its buffer.
pub fn gemm(p: &Product, a: &[bf16], b: &[bf16], c: &mut [f32]) {
    assert!(supported(), "bf16 products need AVX512-BF16");
    assert!(
        fits(p.m, p.k) && a.len() == p.m * p.k,
        "gemm: packed A is not {}×{}",
        p.m,
        p.k
    );
    assert!(
        p.b_offset.is_multiple_of(2) && p.ldb.is_multiple_of(2),
        "gemm: B's pairs must be aligned"
    );
    if p.n == 0 {
        return;
    }
    assert!(
        p.b_offset + (p.n - 1) * p.ldb + p.k <= b.len(),
        "gemm: B is too short"
    );
    assert!(
        p.c_offset + (p.n - 1) * p.ldc + p.m <= c.len(),
        "gemm: C is too short"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the instructions are there (asserted) and every row addressed lies in its buffer.
    unsafe {
        x86::gemm(p, a.as_ptr(), b.as_ptr(), c.as_mut_ptr())
    }
}

/// A linear layer's product in bf16: (x [rows, K] f32, weight packed by [`pack`] from [M, K] bf16) →
/// [rows, M] f32, rows split in bands across the threads, each band's inputs rounded as they enter.
#[derive(Debug, Clone, Copy)]
pub struct LinearProduct {
    pub m: usize,
    pub k: usize,
}

/// Rows per task: enough for the packed weight's reuse to pay for the hand-off.
const ROWS_PER_TASK: usize = 64;

impl candle_core::CustomOp2 for LinearProduct {
    fn name(&self) -> &'static str {
        "cmpaint-bf16-linear"
    }

    fn cpu_fwd(
        &self,
        x: &candle_core::CpuStorage,
        x_layout: &candle_core::Layout,
        w: &candle_core::CpuStorage,
        w_layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let Self { m, k } = *self;
        let x = super::f32_slice(x, x_layout, "bf16 linear input")?;
        let w = match (w, w_layout.contiguous_offsets()) {
            (candle_core::CpuStorage::BF16(data), Some((start, end))) => &data[start..end],
            _ => candle_core::bail!("bf16 linear: the weight is not a packed bf16 tensor"),
        };
        if !supported() || !fits(m, k) || w.len() != m * k || !x.len().is_multiple_of(k) {
            candle_core::bail!(
                "bf16 linear: {}×{k} input, {m}×{k} weight do not fit",
                x.len() / k
            )
        }
        let rows = x.len() / k;
        let mut out = vec![0f32; rows * m];
        out.par_chunks_mut(ROWS_PER_TASK * m)
            .zip(x.par_chunks(ROWS_PER_TASK * k))
            .for_each(|(out, x)| {
                with_rounded(x, |b| {
                    let p = Product {
                        m,
                        n: x.len() / k,
                        k,
                        b_offset: 0,
                        ldb: k,
                        c_offset: 0,
                        ldc: m,
                        accumulate: false,
                    };
                    gemm(&p, w, b, out)
                })
            });
        Ok((
            candle_core::CpuStorage::F32(out),
            candle_core::Shape::from((rows, m)),
        ))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BLOCK, Product, bf16};
    use std::arch::x86_64::*;

    /// Rows of B per micro-kernel call: 12 rows × 2 vectors = 24 accumulators, two registers for A,
    /// the rest for the broadcast.
    const ROWS: usize = 12;
    /// Pairs of K per pass: a 12-row panel of B (12 KB) stays in L1 while the blocks of A stream from L2.
    const PAIRS_PER_PASS: usize = 256;

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn convert(src: &[f32], dst: &mut [bf16]) {
        let whole = src.len() / 16 * 16;
        for i in (0..whole).step_by(16) {
            // SAFETY: i + 16 ≤ len for both slices.
            unsafe {
                let v = _mm512_loadu_ps(src.as_ptr().add(i));
                let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), h);
            }
        }
        for i in whole..src.len() {
            dst[i] = bf16::from_f32(src[i]);
        }
    }

    /// # Safety
    /// As [`super::gemm`] checks: the CPU has AVX512-BF16, and every row addressed is in its buffer.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn gemm(p: &Product, a: *const bf16, b: *const bf16, c: *mut f32) {
        let pairs = p.k / 2;
        let mut q0 = 0;
        while q0 < pairs {
            let len = (pairs - q0).min(PAIRS_PER_PASS);
            let accumulate = p.accumulate || q0 > 0;
            let mut j = 0;
            while j < p.n {
                let rows = (p.n - j).min(ROWS);
                for block in 0..p.m / BLOCK {
                    // SAFETY: the offsets stay within the sizes the caller checked.
                    unsafe {
                        let tile = Tile {
                            a: a.add((block * pairs + q0) * BLOCK * 2),
                            b: b.add(p.b_offset + j * p.ldb + 2 * q0),
                            ldb: p.ldb,
                            c: c.add(p.c_offset + j * p.ldc + block * BLOCK),
                            ldc: p.ldc,
                            accumulate,
                        };
                        micro_any(rows, len, tile);
                    }
                }
                j += rows;
            }
            q0 += len;
        }
    }

    /// Where one micro-kernel call reads and writes: A's block, B's first row and row stride, C's first
    /// row and row stride, and whether C is added to.
    #[derive(Clone, Copy)]
    struct Tile {
        a: *const bf16,
        b: *const bf16,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    }

    /// [`micro`] for 1..=ROWS rows, each count compiled on its own so the accumulators stay in registers.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn micro_any(rows: usize, pairs: usize, tile: Tile) {
        macro_rules! by_rows {
            ($($r:literal)*) => {
                match rows {
                    // SAFETY: as the caller promises.
                    $($r => unsafe { micro::<$r>(pairs, tile) },)*
                    _ => unreachable!("1..=ROWS rows"),
                }
            };
        }
        by_rows!(1 2 3 4 5 6 7 8 9 10 11 12)
    }

    /// C[R rows, 32 channels] (+)= B[R rows, 2·pairs] · A-block: per pair, two loads of A (32 channels'
    /// pairs) and one broadcast pair of B per row.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn micro<const R: usize>(pairs: usize, tile: Tile) {
        let Tile {
            a,
            b,
            ldb,
            c,
            ldc,
            accumulate,
        } = tile;
        // SAFETY: the caller keeps every address below inside its buffer.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 2]; R];
            if accumulate {
                for (j, acc) in acc.iter_mut().enumerate() {
                    acc[0] = _mm512_loadu_ps(c.add(j * ldc));
                    acc[1] = _mm512_loadu_ps(c.add(j * ldc + 16));
                }
            }
            let a = a.cast::<u32>();
            let b = b.cast::<u32>();
            let ldb = ldb / 2;
            for q in 0..pairs {
                let a0: __m512bh = std::mem::transmute(_mm512_loadu_si512(a.add(q * BLOCK).cast()));
                let a1: __m512bh =
                    std::mem::transmute(_mm512_loadu_si512(a.add(q * BLOCK + 16).cast()));
                for (j, acc) in acc.iter_mut().enumerate() {
                    let pair = b.add(j * ldb + q).read_unaligned() as i32;
                    let bv: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                    acc[0] = _mm512_dpbf16_ps(acc[0], a0, bv);
                    acc[1] = _mm512_dpbf16_ps(acc[1], a1, bv);
                }
            }
            for (j, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(c.add(j * ldc), acc[0]);
                _mm512_storeu_ps(c.add(j * ldc + 16), acc[1]);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Whether this CPU runs the bf16 path, said in the test log (past the harness's capture).
    pub fn say_whether_checked() -> bool {
        use std::io::Write;
        let said = match supported() {
            true => "kernels: checking the bf16 (AVX512-BF16) path",
            false => "kernels: the bf16 path was not checked: this CPU has no AVX512-BF16",
        };
        let _ = writeln!(std::io::stderr(), "{said}");
        supported()
    }

    pub fn values(n: usize, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
    }

    #[test]
    fn rounding_is_to_nearest_even_and_the_vector_path_agrees() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1)
        assert_eq!(bf16::from_f32(1.0 + 2f32.powi(-8)).to_f32(), 1.0);
        assert_eq!(
            bf16::from_f32(1.0 + 3.0 * 2f32.powi(-8)).to_f32(),
            1.0 + 2f32.powi(-6)
        );
        let src = values(1000, 1);
        let mut vector = vec![bf16::ZERO; src.len()];
        convert(&src, &mut vector);
        for (s, v) in src.iter().zip(&vector) {
            assert_eq!(*v, bf16::from_f32(*s), "{s}");
        }
    }

    /// Against an f64 sum of the same bf16-rounded operands, on shapes with every row remainder, more
    /// than one pass over K, strided rows and accumulation: only the f32 accumulation's rounding is
    /// left (relative error ≤ 1e-6 of the largest |sum|).
    #[test]
    fn products_match_an_f64_reference_of_the_rounded_operands() {
        if !say_whether_checked() {
            return;
        }
        for &(m, n, k, ldb_pad, ldc_pad, accumulate) in &[
            (32, 1, 2, 0, 0, false),
            (32, 13, 64, 2, 3, true),
            (64, 25, 1152, 0, 0, false),
            (96, 7, 530, 4, 0, true),
            (128, 40, 576, 0, 32, false),
        ] {
            let a = values(m * k, 2);
            let (ldb, ldc) = (k + ldb_pad, m + ldc_pad);
            let b: Vec<bf16> = values(n * ldb + 2, 3)
                .iter()
                .map(|&x| bf16::from_f32(x))
                .collect();
            let start: Vec<f32> = values(n * ldc + 1, 4);
            let mut c = start.clone();
            let p = Product {
                m,
                n,
                k,
                b_offset: 2,
                ldb,
                c_offset: 1,
                ldc,
                accumulate,
            };
            gemm(&p, &pack(&a, m, k), &b, &mut c);
            let mut worst = (0f64, 0f64);
            for j in 0..n {
                for i in 0..m {
                    let mut want = if accumulate {
                        start[1 + j * ldc + i] as f64
                    } else {
                        0.0
                    };
                    for q in 0..k {
                        want += bf16::from_f32(a[i * k + q]).to_f64() * b[2 + j * ldb + q].to_f64();
                    }
                    let got = c[1 + j * ldc + i] as f64;
                    worst = (worst.0.max((got - want).abs()), worst.1.max(want.abs()));
                }
            }
            assert!(
                worst.0 <= 1e-6 * worst.1,
                "{m}×{n}×{k}: error {:e} of {:e}",
                worst.0,
                worst.1
            );
            // the padding between rows is never written
            for j in 0..n {
                for i in m..ldc {
                    assert_eq!(c[1 + j * ldc + i], start[1 + j * ldc + i]);
                }
            }
        }
    }
}
