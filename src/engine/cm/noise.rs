//! Where the samplers' random draws come from. A seed gives the same image on every machine and device
//! because noise is always drawn on the CPU and then moved; a replay file substitutes every draw.
//!
//! Seeded noise: sample `i` of a batch has its own generator, `ChaCha20Rng::seed_from_u64(seed + i)`
//! (rand_chacha 0.9), and each draw fills that sample's `[C, H, W]` block in row-major order with
//! `rand_distr::StandardNormal` (rand_distr 0.5) f64 values rounded to f32. So seed S with batch B
//! holds the images of seeds S, S+1, … S+B−1, and a sample does not change with the batch size.

use candle_core::{Device, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};
use std::path::Path;

/// A sequence of standard-normal tensors: the first is the initial draw, then one per sampler step.
pub trait NoiseSource {
    /// The next draw, shape `[B, C, H, W]`, on the CPU.
    fn next(&mut self, shape: &[usize]) -> Result<Tensor>;
}

/// Standard normals from one ChaCha20 generator per sample (see the module docs).
pub struct SeededNoise {
    rngs: Vec<ChaCha20Rng>,
}

impl SeededNoise {
    pub fn new(seed: u64, batch: usize) -> Self {
        let rngs = (0..batch as u64)
            .map(|i| ChaCha20Rng::seed_from_u64(seed.wrapping_add(i)))
            .collect();
        Self { rngs }
    }
}

impl NoiseSource for SeededNoise {
    fn next(&mut self, shape: &[usize]) -> Result<Tensor> {
        if shape.first() != Some(&self.rngs.len()) {
            candle_core::bail!(
                "noise for a batch of {} asked for shape {shape:?}",
                self.rngs.len()
            );
        }
        let per_sample: usize = shape[1..].iter().product();
        let mut data = Vec::with_capacity(per_sample * self.rngs.len());
        for rng in &mut self.rngs {
            data.extend((0..per_sample).map(|_| {
                let v: f64 = StandardNormal.sample(rng);
                v as f32
            }));
        }
        Tensor::from_vec(data, shape, &Device::Cpu)
    }
}

/// Replays the draws of a noise file: safetensors with one f32 tensor `noise` of shape
/// `[S, B, C, H, W]`; entry 0 is the initial draw, entry i ≥ 1 the draw before step i.
pub struct ReplayNoise {
    draws: Tensor,
    next: usize,
}

impl ReplayNoise {
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::file_io::read(path, crate::file_io::limit::TENSORS)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut tensors =
            candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
                candle_core::Error::Msg(format!("{}: not a noise file: {e}", path.display()))
            })?;
        let draws = tensors.remove("noise").ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "{}: no tensor named `noise` (expected f32 [S, B, 3, H, W])",
                path.display()
            ))
        })?;
        Self::from_tensor(draws)
    }

    pub fn from_tensor(draws: Tensor) -> Result<Self> {
        if draws.rank() != 5 {
            candle_core::bail!(
                "replay noise must have shape [S, B, C, H, W], got {:?}",
                draws.dims()
            );
        }
        Ok(Self {
            draws: draws.to_dtype(candle_core::DType::F32)?,
            next: 0,
        })
    }

    /// Number of draws the file holds (S).
    pub fn len(&self) -> usize {
        self.draws.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `[B, C, H, W]` shape of each draw.
    pub fn draw_shape(&self) -> &[usize] {
        &self.draws.dims()[1..]
    }
}

impl NoiseSource for ReplayNoise {
    fn next(&mut self, shape: &[usize]) -> Result<Tensor> {
        if self.next >= self.len() {
            candle_core::bail!(
                "the noise file holds {} draw(s) but the sampler needs draw {} (one initial draw plus one per step)",
                self.len(),
                self.next + 1
            );
        }
        if self.draw_shape() != shape {
            candle_core::bail!(
                "the noise file's draws are {:?}, the sampler needs {shape:?}",
                self.draw_shape()
            );
        }
        let draw = self.draws.get(self.next)?;
        self.next += 1;
        Ok(draw)
    }
}
