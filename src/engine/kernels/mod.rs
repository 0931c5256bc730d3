//! CPU kernels for the operations that take a UNet's time: convolution, GroupNorm(+SiLU) and
//! self-attention.
//!
//! candle's generic CPU convolution re-packs the kernel and transposes the input to NHWC on every
//! call, and its GroupNorm, affine, scale-shift and SiLU are six separate passes over memory, each
//! with its own allocation. These replace them with one im2col + gemm per image (the weights are
//! already in gemm's layout, the bias is folded into the output) and one fused pass per group;
//! attention goes a block of queries at a time instead of through its whole weight matrix; residual
//! additions go into the layer's output in place. With `--precision bf16` the convolutions' products
//! run in `bf16` (AVX512-BF16). Other devices (CUDA) keep candle's own operations; the layers in
//! `model/layers.rs` choose.
//! BENCHMARKS.md has the numbers.

pub mod attention;
pub mod bf16;
pub mod conv;
pub mod geglu;
pub mod group_norm;
pub mod memory;
pub mod residual;
mod simd;
pub mod winograd;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result};

/// The number format of the convolutions' products on the CPU. `Bf16` (opt-in, AVX512-BF16 only)
/// rounds their weights and inputs to bf16 and keeps every sum in f32 (see [`bf16`]); everything else
/// stays in f32 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!("{s:?} is no precision: f32 or bf16")),
        }
    }
}

impl Precision {
    /// Refuses what this machine cannot run, saying why.
    pub fn check(self) -> std::result::Result<(), String> {
        match self {
            Precision::Bf16 if !bf16::supported() => Err(
                "--precision bf16 needs a CPU with AVX512-BF16 (AMD Zen 4 or later, Intel Cooper Lake / \
                 Sapphire Rapids or later); this one has none (or CMPAINT_SIMD caps the kernels below \
                 AVX-512): run in f32"
                    .into(),
            ),
            _ => Ok(()),
        }
    }
}

/// A convolution's packed weight as the kernels read it.
#[derive(Clone, Copy)]
enum Packed<'a> {
    F32(&'a [f32]),
    Bf16(&'a [half::bf16]),
}

impl<'a> Packed<'a> {
    fn of(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<Self> {
        match storage {
            CpuStorage::BF16(data) => match layout.contiguous_offsets() {
                Some((start, end)) => Ok(Packed::Bf16(&data[start..end])),
                None => candle_core::bail!("{what}: expected a contiguous tensor"),
            },
            _ => Ok(Packed::F32(f32_slice(storage, layout, what)?)),
        }
    }
}

/// The f32 data of a contiguous CPU tensor, from its start offset.
fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{what}: expected f32, got {:?}", storage.dtype())
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{what}: expected a contiguous tensor"),
    }
}

/// x [..., R, C] → [..., C, R], contiguous: every matrix transposed. On the CPU in f32 through the
/// 8×8-block transpose, threads taking bands of columns — candle's strided copy gathers element by
/// element, and laying out a Stable Diffusion's linear and convolution weights that way was 21 % of its
/// load time. Elsewhere candle's `transpose` + `contiguous`.
pub fn transpose_matrices(x: &candle_core::Tensor) -> Result<candle_core::Tensor> {
    use candle_core::{Device, Tensor};
    use rayon::prelude::*;
    let rank = x.rank();
    if rank < 2 || !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 {
        return x
            .transpose(rank.saturating_sub(2), rank.saturating_sub(1))?
            .contiguous();
    }
    let dims = x.dims();
    let (rows, cols) = (dims[rank - 2], dims[rank - 1]);
    let src = x.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; src.len()];
    // bands of this many output rows (input columns) per task
    const BAND: usize = 64;
    if rows > 0 && cols > 0 {
        for (matrix, out) in src
            .chunks_exact(rows * cols)
            .zip(out.chunks_exact_mut(rows * cols))
        {
            out.par_chunks_mut(BAND * rows)
                .enumerate()
                .for_each(|(band, out)| conv::transpose(&matrix[band * BAND..], cols, rows, out));
        }
    }
    let mut shape = dims.to_vec();
    shape.swap(rank - 2, rank - 1);
    Tensor::from_vec(out, shape, &Device::Cpu)
}

/// A strided f32 matrix for [`gemm_on_this_thread`]: element (i, j) at `ptr + i·row_stride +
/// j·col_stride`.
#[derive(Clone, Copy)]
struct Strided<P> {
    ptr: P,
    row_stride: isize,
    col_stride: isize,
}

/// dst (m × n) = [dst +] scale · lhs (m × k) · rhs (k × n) with the gemm crate, single-threaded: the
/// kernels split work across threads themselves.
///
/// # Safety
/// Every element the sizes and strides address must lie in its buffer, and dst must alias neither
/// input.
unsafe fn gemm_on_this_thread(
    (m, n, k): (usize, usize, usize),
    dst: Strided<*mut f32>,
    accumulate: bool,
    lhs: Strided<*const f32>,
    rhs: Strided<*const f32>,
    scale: f32,
) {
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            dst.col_stride,
            dst.row_stride,
            accumulate,
            lhs.ptr,
            lhs.col_stride,
            lhs.row_stride,
            rhs.ptr,
            rhs.col_stride,
            rhs.row_stride,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    #[test]
    fn transposes_every_matrix_as_candle_does_at_every_level() {
        super::simd::at_every_level(|_| transposes_every_matrix_as_candle_does());
    }

    fn transposes_every_matrix_as_candle_does() {
        // ragged edges (not multiples of 8), one band and many, one matrix and several
        for dims in [
            vec![3usize, 5],
            vec![9, 130],
            vec![130, 9],
            vec![2, 3, 17, 70],
        ] {
            let n: usize = dims.iter().product();
            let x = Tensor::arange(0f32, n as f32, &Device::Cpu)
                .unwrap()
                .reshape(dims.clone())
                .unwrap();
            let r = dims.len();
            let want = x.transpose(r - 2, r - 1).unwrap().contiguous().unwrap();
            let got = super::transpose_matrices(&x).unwrap();
            assert_eq!(got.dims(), want.dims());
            let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{dims:?}");
        }
    }
}
