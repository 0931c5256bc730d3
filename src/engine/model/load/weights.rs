//! Reading a checked checkpoint's weights one at a time, in f32, under openai names.

use super::pt::guarded;
use super::safetensors::WeightBytes;
use super::{Checkpoint, Reader, not_a_checkpoint};
use crate::engine::error::Result;
use ::safetensors::SafeTensors;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;

/// Reads one weight at a time from a checked checkpoint: under its openai name, in f32, its parts
/// joined (diffusers' separate q, k, v). Mapped file pages a weight was read from are handed back at
/// once, so the resident memory never holds the file beside the loaded model.
pub(super) struct Weights<'a> {
    checkpoint: &'a Checkpoint,
    safetensors: Option<SafeTensors<'a>>,
    shapes: HashMap<String, Vec<usize>>,
}

impl<'a> Weights<'a> {
    pub(super) fn new(checkpoint: &'a Checkpoint) -> Result<Self> {
        let safetensors = match &checkpoint.reader {
            Reader::Safetensors(bytes) => Some(
                SafeTensors::deserialize(bytes)
                    .map_err(|e| not_a_checkpoint(&checkpoint.path, e.to_string()))?,
            ),
            Reader::Pt(_) => None,
        };
        let shapes = checkpoint
            .config
            .unet
            .expected_weights()
            .into_iter()
            .collect();
        Ok(Self {
            checkpoint,
            safetensors,
            shapes,
        })
    }

    pub(super) fn read(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let parts = self.checkpoint.sources[name]
            .iter()
            .map(|source| self.read_part(source))
            .collect::<Result<Vec<_>>>()?;
        let t = if parts.len() == 1 {
            parts.into_iter().next().expect("one part")
        } else {
            Tensor::cat(&parts, 0)?
        };
        let t = t.reshape(shape)?.to_dtype(DType::F32)?;
        // NaN or ±inf anywhere makes the sum so: such a weight would turn every picture black
        if !t.sum_all()?.to_scalar::<f32>()?.is_finite() {
            return Err(not_a_checkpoint(
                &self.checkpoint.path,
                format!(
                    "`{name}` holds NaN or infinite values (a damaged or badly converted file)"
                ),
            ));
        }
        Ok(t)
    }

    fn read_part(&self, name: &str) -> Result<Tensor> {
        let path = &self.checkpoint.path;
        match (&self.checkpoint.reader, &self.safetensors) {
            (Reader::Safetensors(bytes), Some(st)) => {
                use candle_core::safetensors::Load;
                let view = st
                    .tensor(name)
                    .map_err(|e| not_a_checkpoint(path, e.to_string()))?;
                let t = view.load(&Device::Cpu)?;
                if let WeightBytes::Mapped(map) = bytes {
                    let offset = view.data().as_ptr() as usize - map.as_ptr() as usize;
                    // SAFETY: a read-only file mapping: dropped pages are read again from the file
                    // if ever touched. Failure only means the pages stay resident.
                    let _ = unsafe {
                        map.unchecked_advise_range(
                            memmap2::UncheckedAdvice::DontNeed,
                            offset,
                            view.data().len(),
                        )
                    };
                }
                Ok(t)
            }
            (Reader::Pt(pth), _) => guarded(path, || {
                pth.get(name)
                    .map_err(|e| not_a_checkpoint(path, format!("cannot read `{name}`: {e}")))
            })?
            .ok_or_else(|| not_a_checkpoint(path, format!("`{name}` vanished while reading"))),
            (Reader::Safetensors(_), None) => unreachable!("safetensors are deserialised in new"),
        }
    }
}

impl candle_nn::var_builder::SimpleBackend for Weights<'_> {
    fn get(
        &self,
        shape: candle_core::Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        match self.shapes.get(name) {
            Some(expected) if expected[..] == *shape.dims() => self
                .read(name, expected)
                .and_then(|t| Ok(t.to_dtype(dtype)?.to_device(device)?))
                .map_err(candle_core::Error::wrap),
            Some(expected) => {
                candle_core::bail!("`{name}`: shape {expected:?}, asked for {shape:?}")
            }
            None => candle_core::bail!("`{name}` is not a weight of this network"),
        }
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let expected = self.shapes.get(name).ok_or_else(|| {
            candle_core::Error::Msg(format!("`{name}` is not a weight of this network"))
        })?;
        self.get(
            expected[..].into(),
            name,
            candle_nn::Init::Const(0.0),
            dtype,
            device,
        )
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }
}
