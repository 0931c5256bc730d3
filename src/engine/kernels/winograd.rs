//! 3×3 stride-1 convolution as Winograd F(2×2, 3×3) (Lavin & Gray, 2015): each 2×2 block of outputs
//! from its 4×4 input tile with 16 multiplies per channel pair instead of 36, so 2.25× fewer flops than
//! im2col. With the transforms' coefficients (0, ±½, ±1) the result stays within f32 rounding of the
//! direct sum (the parity tests hold it to the same bounds).
//!
//! Per image, channels last: V = Bᵀ d B for every tile and input channel, then for each of the 16
//! positions ξ one gemm M_ξ [tiles, C_out] = V_ξ [tiles, C_in] · U_ξᵀ, with U = G g Gᵀ transformed once
//! at load ([`transform_weight`]), then Y = Aᵀ M A + bias into the output pixels.

use super::bf16::{self, Product};
use super::{Packed, Strided, gemm_on_this_thread, simd};
use candle_core::{Result, Tensor};

/// U_ξ = (G g Gᵀ)_ξ of a weight [C_out, C_in, 3, 3], as [16, C_out, C_in].
pub fn transform_weight(weight: &Tensor) -> Result<Tensor> {
    let (c_out, c_in, kh, kw) = weight.dims4()?;
    if (kh, kw) != (3, 3) {
        candle_core::bail!("Winograd F(2×2, 3×3) needs a 3×3 kernel, not {kh}×{kw}")
    }
    let w: Vec<f32> = weight.flatten_all()?.to_vec1()?;
    let mut u = vec![0f32; 16 * c_out * c_in];
    let plane = c_out * c_in;
    // G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]; written out (no closures or arrays built
    // per element: those were not inlined, and made this 12 % of a Stable Diffusion's load time)
    #[inline(always)]
    fn g_times(a: f32, b: f32, c: f32) -> [f32; 4] {
        [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c]
    }
    for (at, k) in w.chunks_exact(9).enumerate() {
        let c0 = g_times(k[0], k[3], k[6]);
        let c1 = g_times(k[1], k[4], k[7]);
        let c2 = g_times(k[2], k[5], k[8]);
        for r in 0..4 {
            let row = g_times(c0[r], c1[r], c2[r]);
            for (c, value) in row.into_iter().enumerate() {
                u[(r * 4 + c) * plane + at] = value;
            }
        }
    }
    Tensor::from_vec(u, (16, c_out, c_in), weight.device())
}

/// The shape of one image's Winograd convolution (3×3, stride 1, padding 1).
#[derive(Debug, Clone, Copy)]
pub(super) struct Tiles {
    pub h: usize,
    pub w: usize,
    pub c_in: usize,
    pub c_out: usize,
}

impl Tiles {
    pub fn rows(&self) -> usize {
        self.h.div_ceil(2)
    }
    pub fn cols(&self) -> usize {
        self.w.div_ceil(2)
    }
}

/// Tile rows `first_row..` of one image: `channels_last` [H·W, C_in] in, `out` (the output pixel rows
/// these tiles cover, [rows·W, C_out], channels last) written. `v` and `m` are this band's working
/// memory, [tiles, 16, C_in] and [tiles, 16, C_out].
#[allow(clippy::too_many_arguments)] // the band's geometry, inputs, and its three buffers
pub(super) fn convolve_band(
    t: &Tiles,
    channels_last: &[f32],
    u: Packed,
    bias: &[f32],
    first_row: usize,
    v: &mut [f32],
    m: &mut [f32],
    out: &mut [f32],
) {
    let tiles = v.len() / (16 * t.c_in);
    input_transform(t, channels_last, first_row, v);
    match u {
        Packed::F32(u) => {
            for xi in 0..16 {
                // M_ξ [C_out, tiles] (C_out contiguous, tiles 16·C_out apart) = U_ξ [C_out, C_in]
                // (C_out contiguous) · V_ξ [C_in, tiles] (C_in contiguous, tiles 16·C_in apart).
                // SAFETY: the offsets and strides stay inside v ([tiles, 16, C_in]), m ([tiles, 16,
                // C_out]) and u ([16, C_in, C_out]); m aliases neither input.
                unsafe {
                    gemm_on_this_thread(
                        (t.c_out, tiles, t.c_in),
                        Strided {
                            ptr: m.as_mut_ptr().add(xi * t.c_out),
                            row_stride: 1,
                            col_stride: (16 * t.c_out) as isize,
                        },
                        false,
                        Strided {
                            ptr: u.as_ptr().add(xi * t.c_out * t.c_in),
                            row_stride: 1,
                            col_stride: t.c_out as isize,
                        },
                        Strided {
                            ptr: v.as_ptr().add(xi * t.c_in),
                            row_stride: 1,
                            col_stride: (16 * t.c_in) as isize,
                        },
                        1.0,
                    )
                }
            }
        }
        Packed::Bf16(u) => bf16::with_rounded(v, |v| {
            for (xi, u) in u.chunks_exact(t.c_out * t.c_in).enumerate() {
                // the same product, the rows of V_ξ and M_ξ 16 positions apart
                let p = Product {
                    m: t.c_out,
                    n: tiles,
                    k: t.c_in,
                    b_offset: xi * t.c_in,
                    ldb: 16 * t.c_in,
                    c_offset: xi * t.c_out,
                    ldc: 16 * t.c_out,
                    accumulate: false,
                };
                bf16::gemm(&p, u, v, m);
            }
        }),
    }
    output_transform(t, m, bias, first_row, out);
}

/// Channels are processed eight at a time as plain arrays, which LLVM turns into one vector each.
const LANES: usize = 8;
type Lanes = [f32; LANES];

use simd::{array, load};

#[inline(always)]
fn lanes(f: impl Fn(usize) -> f32) -> Lanes {
    array(f)
}

/// V = Bᵀ d B for each tile, with Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]] and
/// d the 4×4 input patch at (2·row − 1, 2·col − 1), zero outside the image.
fn input_transform(t: &Tiles, channels_last: &[f32], first_row: usize, v: &mut [f32]) {
    let c = t.c_in;
    let zeros = vec![0f32; c];
    simd::dispatch(
        #[inline(always)]
        || {
            for (index, tile) in v.chunks_exact_mut(16 * c).enumerate() {
                let (row, col) = (first_row + index / t.cols(), index % t.cols());
                let d: [&[f32]; 16] = array(|k| {
                    let (y, x) = (
                        (2 * row + k / 4) as isize - 1,
                        (2 * col + k % 4) as isize - 1,
                    );
                    if y < 0 || x < 0 || y >= t.h as isize || x >= t.w as isize {
                        &zeros[..]
                    } else {
                        &channels_last[(y as usize * t.w + x as usize) * c..][..c]
                    }
                });
                for ch in (0..c).step_by(LANES) {
                    let x: [Lanes; 16] = array(|k| load(d[k], ch));
                    // rows: Bᵀ d
                    let mut r = [[0f32; LANES]; 16];
                    for j in 0..4 {
                        r[j] = lanes(|l| x[j][l] - x[8 + j][l]);
                        r[4 + j] = lanes(|l| x[4 + j][l] + x[8 + j][l]);
                        r[8 + j] = lanes(|l| x[8 + j][l] - x[4 + j][l]);
                        r[12 + j] = lanes(|l| x[4 + j][l] - x[12 + j][l]);
                    }
                    // columns: (Bᵀ d) B
                    for i in 0..4 {
                        let e = &r[4 * i..4 * i + 4];
                        let out = [
                            lanes(|l| e[0][l] - e[2][l]),
                            lanes(|l| e[1][l] + e[2][l]),
                            lanes(|l| e[2][l] - e[1][l]),
                            lanes(|l| e[1][l] - e[3][l]),
                        ];
                        for (j, value) in out.iter().enumerate() {
                            tile[(4 * i + j) * c + ch..][..LANES].copy_from_slice(value);
                        }
                    }
                }
            }
        },
    )
}

/// Y = Aᵀ M A + bias for each tile, Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]], into the output pixels that
/// exist (an odd edge drops the tile's last row or column).
fn output_transform(t: &Tiles, m: &[f32], bias: &[f32], first_row: usize, out: &mut [f32]) {
    let c = t.c_out;
    simd::dispatch(
        #[inline(always)]
        || {
            for (index, tile) in m.chunks_exact(16 * c).enumerate() {
                let (y0, x0) = (2 * (index / t.cols()), 2 * (index % t.cols()));
                let rows = (t.h - 2 * first_row - y0).min(2);
                let cols = (t.w - x0).min(2);
                for ch in (0..c).step_by(LANES) {
                    let x: [Lanes; 16] = array(|k| load(tile, k * c + ch));
                    let b: Lanes = load(bias, ch);
                    // rows: Aᵀ M
                    let mut s = [[0f32; LANES]; 8];
                    for j in 0..4 {
                        s[j] = lanes(|l| x[j][l] + x[4 + j][l] + x[8 + j][l]);
                        s[4 + j] = lanes(|l| x[4 + j][l] - x[8 + j][l] - x[12 + j][l]);
                    }
                    // columns: (Aᵀ M) A + bias
                    for i in 0..rows {
                        let e = &s[4 * i..4 * i + 4];
                        let y = [
                            lanes(|l| e[0][l] + e[1][l] + e[2][l] + b[l]),
                            lanes(|l| e[1][l] - e[2][l] - e[3][l] + b[l]),
                        ];
                        for (j, value) in y.iter().enumerate().take(cols) {
                            out[((y0 + i) * t.w + x0 + j) * c + ch..][..LANES]
                                .copy_from_slice(value);
                        }
                    }
                }
            }
        },
    )
}
