//! The residual connections' `x + h`, added into `h` where it lies. candle's own addition allocates a
//! third tensor and, from 64 K elements on, splits the work over a second pool of threads that spin
//! while the kernels' rayon threads want the same cores (≈ 10 % of a 64² network's time at batch 1).

use candle_core::{CpuStorage, InplaceOp2, Layout, Result, Tensor};
use rayon::prelude::*;

/// `h + skip`, reusing `h`'s memory on the CPU when both are contiguous and the same shape (`h` must
/// be a fresh result nobody else holds: a layer's output). Other cases use candle's addition.
pub fn add(h: Tensor, skip: &Tensor) -> Result<Tensor> {
    let fits = h.device().is_cpu()
        && h.shape() == skip.shape()
        && h.is_contiguous()
        && skip.is_contiguous()
        && h.dtype() == candle_core::DType::F32
        && skip.dtype() == candle_core::DType::F32;
    if !fits {
        return h + skip;
    }
    h.inplace_op2(skip, &AddInto)?;
    Ok(h)
}

/// `h + bias` for h [rows, n] and bias [n] (a linear layer's bias on its product), in `h`'s memory on
/// the CPU as [`add`]; candle's broadcast addition otherwise.
pub fn add_to_rows(h: Tensor, bias: &Tensor) -> Result<Tensor> {
    let n = bias.elem_count();
    let fits = h.device().is_cpu()
        && h.is_contiguous()
        && bias.is_contiguous()
        && h.dims().last() == Some(&n)
        && bias.rank() == 1
        && h.dtype() == candle_core::DType::F32
        && bias.dtype() == candle_core::DType::F32;
    if !fits {
        return h.broadcast_add(bias);
    }
    h.inplace_op2(bias, &AddToRows)?;
    Ok(h)
}

struct AddInto;
struct AddToRows;

/// The f32 elements an in-place operation writes.
fn target<'a>(storage: &'a mut CpuStorage, layout: &Layout, what: &str) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{what}: expected f32")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{what}: expected a contiguous tensor")
    };
    Ok(&mut data[start..end])
}

impl InplaceOp2 for AddToRows {
    fn name(&self) -> &'static str {
        "cmpaint-bias-add"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let bias = super::f32_slice(s2, l2, "bias")?;
        let h = target(s1, l1, "bias")?;
        if bias.is_empty() || !h.len().is_multiple_of(bias.len()) {
            candle_core::bail!("bias: {} values are no rows of {}", h.len(), bias.len())
        }
        let rows_per_task = (MIN_PER_TASK / bias.len()).max(1);
        h.par_chunks_mut(rows_per_task * bias.len())
            .for_each(|rows| {
                super::simd::dispatch(
                    #[inline(always)]
                    || {
                        for row in rows.chunks_exact_mut(bias.len()) {
                            row.iter_mut().zip(bias).for_each(|(h, b)| *h += b);
                        }
                    },
                )
            });
        Ok(())
    }
}

/// Below this many elements per task the hand-off costs more than the additions.
const MIN_PER_TASK: usize = 1 << 15;

impl InplaceOp2 for AddInto {
    fn name(&self) -> &'static str {
        "cmpaint-residual-add"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let skip = super::f32_slice(s2, l2, "residual")?;
        let h = target(s1, l1, "residual")?;
        if h.len() != skip.len() {
            candle_core::bail!("residual: {} and {} elements", h.len(), skip.len())
        }
        h.par_chunks_mut(MIN_PER_TASK)
            .zip(skip.par_chunks(MIN_PER_TASK))
            .for_each(|(h, skip)| {
                super::simd::dispatch(
                    #[inline(always)]
                    || h.iter_mut().zip(skip).for_each(|(h, s)| *h += s),
                )
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn adds_in_place_and_falls_back_elsewhere() -> Result<()> {
        let dev = Device::Cpu;
        for shape in [(1, 3, 5, 7), (2, 64, 32, 32)] {
            let h = Tensor::randn(0f32, 1.0, shape, &dev)?;
            let skip = Tensor::randn(0f32, 1.0, shape, &dev)?;
            let want = (&h + &skip)?;
            let got = add(h.copy()?, &skip)?;
            assert_eq!((got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
        }
        // a broadcast or a strided view goes through candle
        let h = Tensor::randn(0f32, 1.0, (2, 4, 3, 3), &dev)?;
        let view = Tensor::randn(0f32, 1.0, (2, 4, 3, 3), &dev)?.transpose(2, 3)?;
        let want = (&h + &view)?;
        let got = add(h, &view)?;
        assert_eq!((got - want)?.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }

    #[test]
    fn adds_a_bias_to_every_row_in_place() -> Result<()> {
        let dev = Device::Cpu;
        // fewer rows than a task, and many tasks' worth
        for (rows, n) in [(3, 5), (4096, 320)] {
            let h = Tensor::randn(0f32, 1.0, (rows, n), &dev)?;
            let bias = Tensor::randn(0f32, 1.0, n, &dev)?;
            let want = h.broadcast_add(&bias)?;
            let got = add_to_rows(h.copy()?, &bias)?;
            assert_eq!((got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
        }
        Ok(())
    }
}
