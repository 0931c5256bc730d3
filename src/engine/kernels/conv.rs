//! 2-D convolution with bias on the CPU as im2col + one gemm per image.
//!
//! The gemm crate runs at its best when the output's channels and the patch's taps are the
//! contiguous axes (measured on the 2-core bench machine: 95 against 46 GFLOP/s per thread for a
//! 32-channel 32² layer), so a k×k convolution goes through channels-last: the image is transposed
//! to [H·W, C_in], unrolled into patches [H_out·W_out, k·k·C_in] (each tap a contiguous copy of C_in
//! values; a 1×1 stride-1 convolution uses the transposed image as is), multiplied by the weight
//! packed once as [C_out, k·k·C_in] (see [`pack_weight`]) into [H_out·W_out, C_out] rows that start
//! as the bias, and transposed back to NCHW. Each phase splits across threads without sharing memory:
//! a batch by images, a single image by pixel bands (no gemm-internal synchronisation).

use super::bf16::{self, Product};
use super::winograd::{self, Tiles};
use super::{Packed, Precision, Strided, f32_slice, gemm_on_this_thread, simd};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use half::bf16 as Bf16;
use rayon::prelude::*;

/// Square kernel, same stride and zero padding on both axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dParams {
    pub stride: usize,
    pub padding: usize,
}

impl Conv2dParams {
    /// Whether a [C_out, C_in, k, k] weight runs as Winograd F(2×2, 3×3): 3×3, stride 1, padding 1,
    /// and channel counts the gemms and 8-wide transforms suit.
    pub fn winograd(&self, c_out: usize, c_in: usize, k: usize) -> bool {
        k == 3
            && (self.stride, self.padding) == (1, 1)
            && c_in >= WINOGRAD_MIN_CHANNELS
            && c_in.is_multiple_of(8)
            && c_out.is_multiple_of(8)
    }
}

/// Floats in the larger of Winograd's two working buffers per chunk of tile rows (32 MB): enough for
/// every product to stay long (a 512² layer of 256 channels: 8 tile rows, 2048 tiles per chunk).
#[cfg(not(test))]
const WINOGRAD_CHUNK_FLOATS: usize = 1 << 23;
/// The unit tests' small images then run in several chunks too.
#[cfg(test)]
const WINOGRAD_CHUNK_FLOATS: usize = 1 << 12;

/// Below this many input channels the 16 small gemms of Winograd lose to one im2col gemm.
const WINOGRAD_MIN_CHANNELS: usize = 32;

/// A weight [C_out, C_in, k, k] in the form the CPU kernel reads: Winograd's 16 transformed matrices
/// where [`Conv2dParams::winograd`] says so, else one matrix of C_out × k·k·C_in taps for im2col (tap
/// order ky, kx, C_in, as the patches are unrolled).
///
/// In f32 each matrix is stored with C_out contiguous, [16, C_in, C_out] or [k, k, C_in, C_out]: the
/// gemm crate reads such a weight as it is, where a [C_out, taps] one was gathered element by element
/// into its packed layout on every call (15 % of cm25m at batch 8, and more than the product itself
/// at 8², where an image has 16 tiles). With `Precision::Bf16`, where the shape fits [`bf16::pack`]
/// (whole blocks of 32 output channels, an even number of taps; the others stay f32), [16, C_out,
/// C_in] or [C_out, k, k, C_in] in bf16, each [C_out, taps] matrix in that kernel's packed layout.
pub fn pack_weight(weight: &Tensor, params: &Conv2dParams, precision: Precision) -> Result<Tensor> {
    let (c_out, c_in, k, _) = weight.dims4()?;
    let winograd = params.winograd(c_out, c_in, k);
    // [parts, C_out, taps]
    let rows = if winograd {
        winograd::transform_weight(weight)?
    } else {
        weight.permute((0, 2, 3, 1))?.contiguous()?
    };
    if precision == Precision::F32 || !bf16::fits(c_out, c_in * k * k) {
        return if winograd {
            super::transpose_matrices(&rows)
        } else {
            let taps = super::transpose_matrices(&rows.reshape((c_out, k * k * c_in))?)?;
            taps.reshape((k, k, c_in, c_out))
        };
    }
    let f32s = rows.flatten_all()?.to_vec1::<f32>()?;
    let parts = if winograd { 16 } else { 1 };
    let per_part = f32s.len() / parts;
    let rounded: Vec<Bf16> = f32s
        .chunks_exact(per_part)
        .flat_map(|part| bf16::pack(part, c_out, per_part / c_out))
        .collect();
    Tensor::from_vec(rounded, rows.shape(), rows.device())
}

/// The geometry of one call.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    out_h: usize,
    out_w: usize,
    winograd: bool,
}

impl Geometry {
    fn out_pixels(&self) -> usize {
        self.out_h * self.out_w
    }
    fn taps(&self) -> usize {
        self.c_in * self.k * self.k
    }
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }
    fn flops(&self) -> usize {
        2 * self.c_out * self.out_pixels() * self.taps()
    }
}

impl CustomOp3 for Conv2dParams {
    fn name(&self) -> &'static str {
        "cmpaint-conv2d"
    }

    /// (input [B, C_in, H, W], weight from [`pack_weight`], bias `[C_out]`) → `[B, C_out, H_out, W_out]`.
    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        w_layout: &Layout,
        bias: &CpuStorage,
        b_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (batch, c_in, h, w) = x_layout.shape().dims4()?;
        // the layouts of `pack_weight`
        let f32 = matches!(weight, CpuStorage::F32(_));
        let (c_out, k, k2, w_in, winograd) = match (f32, w_layout.shape().dims()) {
            (true, &[16, w_in, c_out]) | (false, &[16, c_out, w_in]) => (c_out, 3, 3, w_in, true),
            (true, &[k, k2, w_in, c_out]) | (false, &[c_out, k, k2, w_in]) => {
                (c_out, k, k2, w_in, false)
            }
            _ => candle_core::bail!("conv2d: {:?} is no packed weight", w_layout.shape()),
        };
        if w_in != c_in
            || k != k2
            || b_layout.shape().elem_count() != c_out
            || winograd != self.winograd(c_out, c_in, k)
        {
            candle_core::bail!(
                "conv2d: input {:?}, packed weight {:?}, bias {:?} do not fit",
                x_layout.shape(),
                w_layout.shape(),
                b_layout.shape()
            )
        }
        let (stride, pad) = (self.stride, self.padding);
        if h + 2 * pad < k || w + 2 * pad < k || stride == 0 {
            candle_core::bail!("conv2d: a {h}×{w} input is smaller than the {k}×{k} kernel")
        }
        let g = Geometry {
            batch,
            c_in,
            h,
            w,
            c_out,
            k,
            stride,
            pad,
            out_h: (h + 2 * pad - k) / stride + 1,
            out_w: (w + 2 * pad - k) / stride + 1,
            winograd,
        };
        let weight = Packed::of(weight, w_layout, "conv2d weight")?;
        if matches!(weight, Packed::Bf16(_)) && !bf16::supported() {
            candle_core::bail!("conv2d: a bf16 weight on a CPU without AVX512-BF16")
        }
        let out = conv2d(
            &g,
            f32_slice(x, x_layout, "conv2d input")?,
            weight,
            f32_slice(bias, b_layout, "conv2d bias")?,
        );
        Ok((
            CpuStorage::F32(out),
            Shape::from((batch, c_out, g.out_h, g.out_w)),
        ))
    }
}

/// Per-thread working memory, kept from call to call: a fresh multi-megabyte buffer per call costs
/// its page faults every time.
#[derive(Default)]
struct Scratch {
    channels_last: Vec<f32>,
    /// im2col's patches, or Winograd's transformed input
    patches: Vec<f32>,
    /// Winograd's products before the output transform
    tiles: Vec<f32>,
    product: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = Default::default();
}

/// Runs `f` with this thread's scratch (a fresh one if it is in use further up this thread's stack,
/// as when rayon lets a waiting thread pick up another convolution).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

fn conv2d(g: &Geometry, x: &[f32], weight: Packed, bias: &[f32]) -> Vec<f32> {
    let n = g.out_pixels();
    let mut out = vec![0f32; g.batch * g.c_out * n];
    let images = x
        .par_chunks_exact(g.c_in * g.h * g.w)
        .zip(out.par_chunks_exact_mut(g.c_out * n));
    let threads = rayon::current_num_threads();
    if g.batch >= threads {
        // whole images per thread: each thread's patches stay in its own cache
        images.for_each(|(image, dst)| {
            with_scratch(|scratch| convolve_image(g, image, weight, bias, dst, scratch, 1))
        });
    } else {
        // one image at a time, every phase split across the threads
        let tasks = if g.flops() >= 1 << 25 { threads } else { 1 };
        images.with_max_len(1).for_each(|(image, dst)| {
            with_scratch(|scratch| convolve_image(g, image, weight, bias, dst, scratch, tasks))
        });
    }
    out
}

/// One image: dst [C_out, n] = weight · unrolled image + bias, in three phases of `tasks` pieces
/// each (1: all on this thread): the image to channels last by pixel ranges, then unroll and gemm
/// by bands of output pixels, then back to NCHW by channel ranges.
fn convolve_image(
    g: &Geometry,
    image: &[f32],
    weight: Packed,
    bias: &[f32],
    dst: &mut [f32],
    scratch: &mut Scratch,
    tasks: usize,
) {
    let (n, taps, pixels) = (g.out_pixels(), g.taps(), g.h * g.w);
    let Scratch {
        channels_last,
        patches,
        tiles,
        product,
    } = scratch;
    channels_last.resize(pixels * g.c_in, 0.0);
    let span = pixels.div_ceil(tasks);
    channels_last
        .par_chunks_mut(span * g.c_in)
        .enumerate()
        .for_each(|(i, out)| transpose(&image[i * span..], pixels, g.c_in, out));

    product.resize(n * g.c_out, 0.0);
    let band = n.div_ceil(tasks);
    if g.winograd {
        let t = Tiles {
            h: g.h,
            w: g.w,
            c_in: g.c_in,
            c_out: g.c_out,
        };
        // Chunks of whole tile rows, one after the other, each split in bands across the threads
        // (each tile row is two output rows). Whole-image buffers at 512² and 256 channels were
        // 1 GB each, kept per thread: 3 GB of a Stable Diffusion VAE decode's peak.
        let widest = 16 * t.cols() * g.c_in.max(g.c_out);
        let chunk_rows = (WINOGRAD_CHUNK_FLOATS / widest).max(tasks).min(t.rows());
        patches.resize(chunk_rows * t.cols() * 16 * g.c_in, 0.0);
        tiles.resize(chunk_rows * t.cols() * 16 * g.c_out, 0.0);
        for first in (0..t.rows()).step_by(chunk_rows) {
            let rows = chunk_rows.min(t.rows() - first);
            let band_rows = rows.div_ceil(tasks);
            let per_band = band_rows * t.cols() * 16;
            let out_rows = (2 * first)..(2 * (first + rows)).min(g.h);
            product[out_rows.start * g.w * g.c_out..out_rows.end * g.w * g.c_out]
                .par_chunks_mut(2 * band_rows * g.w * g.c_out)
                .zip(patches[..rows * t.cols() * 16 * g.c_in].par_chunks_mut(per_band * g.c_in))
                .zip(tiles[..rows * t.cols() * 16 * g.c_out].par_chunks_mut(per_band * g.c_out))
                .enumerate()
                .for_each(|(i, ((out, v), m))| {
                    let cl = &channels_last[..];
                    winograd::convolve_band(&t, cl, weight, bias, first + i * band_rows, v, m, out)
                });
        }
    } else if g.pointwise() {
        // a 1×1 stride-1 convolution's patches are the channels-last image itself
        product
            .par_chunks_mut(band * g.c_out)
            .zip(channels_last.par_chunks(band * taps))
            .for_each(|(out, patches)| gemm_band(g, weight, bias, patches, out));
    } else {
        let products = product.par_chunks_mut(band * g.c_out).enumerate();
        patches.resize(n * taps, 0.0);
        products
            .zip(patches.par_chunks_mut(band * taps))
            .for_each(|((i, out), band_patches)| {
                unroll(g, channels_last, i * band, band_patches);
                gemm_band(g, weight, bias, band_patches, out)
            });
    }

    let span = g.c_out.div_ceil(tasks);
    dst.par_chunks_mut(span * n)
        .enumerate()
        .for_each(|(i, out)| transpose(&product[i * span..], g.c_out, n, out));
}

/// out [pixels, C_out] = bias + patches [pixels, taps] · weightᵀ, on this thread.
fn gemm_band(g: &Geometry, weight: Packed, bias: &[f32], patches: &[f32], out: &mut [f32]) {
    let (taps, pixels) = (g.taps(), out.len() / g.c_out);
    assert!(patches.len() >= pixels * taps);
    for row in out.chunks_exact_mut(g.c_out) {
        row.copy_from_slice(bias);
    }
    let weight = match weight {
        Packed::F32(weight) => weight,
        Packed::Bf16(weight) => {
            let p = Product {
                m: g.c_out,
                n: pixels,
                k: taps,
                b_offset: 0,
                ldb: taps,
                c_offset: 0,
                ldc: g.c_out,
                accumulate: true,
            };
            let patches = &patches[..pixels * taps];
            return bf16::with_rounded(patches, |rounded| bf16::gemm(&p, weight, rounded, out));
        }
    };
    assert_eq!(weight.len(), g.c_out * taps);
    // The gemm crate is column-major: out is [C_out, pixels] with C_out contiguous, the weight
    // [C_out, taps] with C_out contiguous, the patches [taps, pixels] with taps contiguous.
    // SAFETY: the lengths are checked above; out aliases neither input.
    unsafe {
        gemm_on_this_thread(
            (g.c_out, pixels, taps),
            Strided {
                ptr: out.as_mut_ptr(),
                row_stride: 1,
                col_stride: g.c_out as isize,
            },
            true,
            Strided {
                ptr: weight.as_ptr(),
                row_stride: 1,
                col_stride: g.c_out as isize,
            },
            Strided {
                ptr: patches.as_ptr(),
                row_stride: 1,
                col_stride: taps as isize,
            },
            1.0,
        )
    }
}

/// out [cols, rows] = the transpose of `rows` rows of `src` (each `stride` apart, `cols` = out.len() /
/// rows of them read), in 8×8 blocks: with AVX2, eight registers shuffled in 24 instructions (twice the
/// speed of what LLVM makes of the plain loop, measured on Zen 4); else arrays LLVM transposes itself.
pub(super) fn transpose(src: &[f32], stride: usize, rows: usize, out: &mut [f32]) {
    const B: usize = 8;
    let cols = out.len() / rows;
    let (full_rows, full_cols) = (rows / B * B, cols / B * B);
    if full_rows > 0 && full_cols > 0 {
        assert!(src.len() >= (full_rows - 1) * stride + full_cols);
    }
    let shuffled = cfg!(target_arch = "x86_64") && simd::level() >= simd::Level::Avx2;
    #[cfg(target_arch = "x86_64")]
    if shuffled {
        // SAFETY: the CPU has AVX2 (`simd::level`); the blocks lie inside `src` (asserted) and `out`
        // (its rows·cols elements).
        unsafe { transpose_blocks_avx2(src, stride, rows, (full_rows, full_cols), out) };
    }
    simd::dispatch(
        #[inline(always)]
        || {
            let blocks = if shuffled { 0 } else { full_rows };
            for r0 in (0..blocks).step_by(B) {
                for c0 in (0..full_cols).step_by(B) {
                    let block: [[f32; B]; B] =
                        simd::array(|i| simd::load(src, (r0 + i) * stride + c0));
                    for j in 0..B {
                        let column: [f32; B] = simd::array(|i| block[i][j]);
                        out[(c0 + j) * rows + r0..][..B].copy_from_slice(&column);
                    }
                }
            }
            // the ragged right and bottom edges
            for r in 0..rows {
                let cs = if r < full_rows {
                    full_cols..cols
                } else {
                    0..cols
                };
                for c in cs {
                    out[c * rows + r] = src[r * stride + c];
                }
            }
        },
    )
}

/// The whole 8×8 blocks of [`transpose`] with AVX2 shuffles.
///
/// # Safety
/// The CPU has AVX2; `src` holds `full_rows` rows of `full_cols` values `stride` apart and `out` holds
/// `full_cols` rows of `rows` ≥ `full_rows` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_blocks_avx2(
    src: &[f32],
    stride: usize,
    rows: usize,
    (full_rows, full_cols): (usize, usize),
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    for r0 in (0..full_rows).step_by(8) {
        for c0 in (0..full_cols).step_by(8) {
            // SAFETY: as the caller promises.
            unsafe {
                let p = src.as_ptr().add(r0 * stride + c0);
                let r = |i: usize| _mm256_loadu_ps(p.add(i * stride));
                // pairs of rows interleaved, then pairs of pairs, then the 128-bit halves
                let (t0, t1) = (
                    _mm256_unpacklo_ps(r(0), r(1)),
                    _mm256_unpackhi_ps(r(0), r(1)),
                );
                let (t2, t3) = (
                    _mm256_unpacklo_ps(r(2), r(3)),
                    _mm256_unpackhi_ps(r(2), r(3)),
                );
                let (t4, t5) = (
                    _mm256_unpacklo_ps(r(4), r(5)),
                    _mm256_unpackhi_ps(r(4), r(5)),
                );
                let (t6, t7) = (
                    _mm256_unpacklo_ps(r(6), r(7)),
                    _mm256_unpackhi_ps(r(6), r(7)),
                );
                let (u0, u1) = (
                    _mm256_shuffle_ps::<0x44>(t0, t2),
                    _mm256_shuffle_ps::<0xEE>(t0, t2),
                );
                let (u2, u3) = (
                    _mm256_shuffle_ps::<0x44>(t1, t3),
                    _mm256_shuffle_ps::<0xEE>(t1, t3),
                );
                let (u4, u5) = (
                    _mm256_shuffle_ps::<0x44>(t4, t6),
                    _mm256_shuffle_ps::<0xEE>(t4, t6),
                );
                let (u6, u7) = (
                    _mm256_shuffle_ps::<0x44>(t5, t7),
                    _mm256_shuffle_ps::<0xEE>(t5, t7),
                );
                let columns = [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                let q = out.as_mut_ptr().add(c0 * rows + r0);
                for (j, column) in columns.into_iter().enumerate() {
                    _mm256_storeu_ps(q.add(j * rows), column);
                }
            }
        }
    }
}

/// im2col, channels last, for the output pixels from `first` on: each row of `patches` holds, tap by
/// tap in (ky, kx) order, the C_in values at input pixel (oy·stride + ky − pad, ox·stride + kx − pad),
/// zeros outside the image.
fn unroll(g: &Geometry, channels_last: &[f32], first: usize, patches: &mut [f32]) {
    let c = g.c_in;
    for (j, patch) in patches.chunks_exact_mut(g.taps()).enumerate() {
        let (oy, ox) = ((first + j) / g.out_w, (first + j) % g.out_w);
        for ky in 0..g.k {
            let iy = (oy * g.stride + ky) as isize - g.pad as isize;
            let row = &mut patch[ky * g.k * c..][..g.k * c];
            if iy < 0 || iy >= g.h as isize {
                row.fill(0.0);
                continue;
            }
            for kx in 0..g.k {
                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                let tap = &mut row[kx * c..][..c];
                if ix < 0 || ix >= g.w as isize {
                    tap.fill(0.0);
                } else {
                    let at = (iy as usize * g.w + ix as usize) * c;
                    tap.copy_from_slice(&channels_last[at..][..c]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Against candle's conv2d (+ bias) computed in f64, on odd sizes, strides and paddings: relative
    /// error (max |Δ| / max |reference|) ≤ 2e-6; measured: ≤ 1e-7 for the small im2col cases, 2–4e-7
    /// for 32–64 channels, Winograd and im2col alike. (The UNet parity bound is 1e-5.)
    #[test]
    fn matches_candle_conv2d_at_every_level() {
        crate::engine::kernels::simd::at_every_level(|_| matches_candle_conv2d().unwrap());
    }

    fn matches_candle_conv2d() -> Result<()> {
        let dev = Device::Cpu;
        for &(b, c_in, c_out, h, w, k, stride, padding) in &[
            (1, 3, 5, 7, 9, 3, 1, 1),
            (2, 4, 6, 8, 8, 3, 2, 1),
            (2, 6, 4, 5, 3, 1, 1, 0),
            (1, 2, 3, 6, 7, 3, 1, 0),
            (3, 1, 2, 4, 4, 1, 2, 0),
            (1, 2, 2, 9, 5, 3, 2, 2),
            // im2col (< 32 channels, stride 2) and 1×1: one image split in pixel bands (≥ 2^25 flops),
            // images per thread
            (1, 24, 64, 48, 48, 3, 1, 1),
            (4, 16, 32, 8, 8, 3, 1, 1),
            (2, 32, 32, 16, 16, 3, 2, 1),
            (4, 64, 32, 8, 8, 1, 1, 0),
            // Winograd: even and odd sizes, one image split in tile-row bands, images per thread
            (1, 32, 40, 16, 16, 3, 1, 1),
            (1, 64, 32, 15, 9, 3, 1, 1),
            (1, 64, 64, 32, 33, 3, 1, 1),
            (3, 32, 32, 7, 6, 3, 1, 1),
        ] {
            let x = Tensor::randn(0f32, 1.0, (b, c_in, h, w), &dev)?;
            let wt = Tensor::randn(0f32, 1.0, (c_out, c_in, k, k), &dev)?;
            let bias = Tensor::randn(0f32, 1.0, c_out, &dev)?;
            let f64 = |t: &Tensor| t.to_dtype(candle_core::DType::F64);
            let want = f64(&x)?
                .conv2d(&f64(&wt)?, padding, stride, 1, 1)?
                .broadcast_add(&f64(&bias)?.reshape((1, c_out, 1, 1))?)?;
            let packed = pack_weight(&wt, &Conv2dParams { stride, padding }, Precision::F32)?;
            let got = x.apply_op3_no_bwd(&packed, &bias, &Conv2dParams { stride, padding })?;
            assert_eq!(got.dims(), want.dims());
            let err = (f64(&got)? - &want)?.abs()?.max_all()?.to_scalar::<f64>()?;
            let rel = err / want.abs()?.max_all()?.to_scalar::<f64>()?;
            assert!(
                rel < 2e-6,
                "{:?}: relative error {rel:e}",
                (b, c_in, c_out, h, w, k)
            );
        }
        Ok(())
    }

    /// bf16 weights: against an f64 convolution of the same operands rounded to bf16 where the gemm
    /// sees them unchanged (im2col, 1×1: relative error ≤ 2e-6, f32 accumulation only), and against the
    /// unrounded f64 convolution everywhere (Winograd rounds its transformed operands): ≤ 1e-2, the
    /// bf16 rounding of 8-bit mantissas. Measured: 1–3e-3.
    #[test]
    fn bf16_weights_match_the_reference() -> Result<()> {
        use crate::engine::kernels::bf16::tests::{say_whether_checked, values};
        if !say_whether_checked() {
            return Ok(());
        }
        let dev = Device::Cpu;
        let round = |v: Vec<f32>| -> Vec<f32> {
            v.iter()
                .map(|&x| half::bf16::from_f32(x).to_f32())
                .collect()
        };
        for &(b, c_in, c_out, h, w, k, stride, padding) in &[
            (1, 24, 64, 48, 48, 3, 1, 1),
            (2, 32, 32, 16, 16, 3, 2, 1),
            (4, 64, 32, 8, 8, 1, 1, 0),
            (1, 64, 96, 15, 9, 3, 1, 1),
            (3, 32, 64, 7, 6, 3, 1, 1),
        ] {
            let params = Conv2dParams { stride, padding };
            let winograd = params.winograd(c_out, c_in, k);
            let x = round(values(b * c_in * h * w, 5));
            let wt = round(values(c_out * c_in * k * k, 6));
            let x = Tensor::from_vec(x, (b, c_in, h, w), &dev)?;
            let wt = Tensor::from_vec(wt, (c_out, c_in, k, k), &dev)?;
            let bias = Tensor::randn(0f32, 1.0, c_out, &dev)?;
            let f64 = |t: &Tensor| t.to_dtype(candle_core::DType::F64);
            let want = f64(&x)?
                .conv2d(&f64(&wt)?, padding, stride, 1, 1)?
                .broadcast_add(&f64(&bias)?.reshape((1, c_out, 1, 1))?)?;
            let packed = pack_weight(&wt, &params, Precision::Bf16)?;
            assert_eq!(packed.dtype(), candle_core::DType::BF16);
            let got = x.apply_op3_no_bwd(&packed, &bias, &params)?;
            let err = (f64(&got)? - &want)?.abs()?.max_all()?.to_scalar::<f64>()?;
            let rel = err / want.abs()?.max_all()?.to_scalar::<f64>()?;
            let bound = if winograd { 1e-2 } else { 2e-6 };
            assert!(
                rel < bound,
                "{:?}: relative error {rel:e}",
                (b, c_in, c_out, h, w, k)
            );
        }
        // a shape the packing does not fit (3 output channels) stays f32
        let wt = Tensor::randn(0f32, 1.0, (3, 32, 3, 3), &dev)?;
        let params = Conv2dParams {
            stride: 1,
            padding: 1,
        };
        let packed = pack_weight(&wt, &params, Precision::Bf16)?;
        assert_eq!(packed.dtype(), candle_core::DType::F32);
        Ok(())
    }

    #[test]
    fn refuses_mismatched_weights() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 3, 4, 4), candle_core::DType::F32, &dev).unwrap();
        let wt = Tensor::zeros((2, 3, 3, 4), candle_core::DType::F32, &dev).unwrap();
        let bias = Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap();
        let p = Conv2dParams {
            stride: 1,
            padding: 1,
        };
        assert!(x.apply_op3_no_bwd(&wt, &bias, &p).is_err());
    }
}
