//! LoRA files merged into the UNet's weights as they load: W + scale·(up · down), for linear and
//! convolution weights alike (down [r, in, …], up [out, r, …]).
//!
//! Two layouts are in use and both are read:
//! - diffusers/peft: `unet.<module>.lora_A.weight` (down), `unet.<module>.lora_B.weight` (up), no
//!   alpha (scale 1);
//! - kohya (LCM-LoRA's own file among them): `lora_unet_<module with _ for .>.lora_down.weight`,
//!   `.lora_up.weight` and `.alpha` (scale alpha/r).
//!
//! Text-encoder layers are refused rather than silently left out.

use crate::engine::error::{EngineError, Result};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use std::collections::HashMap;
use std::path::Path;

/// One layer's low-rank update.
struct Update {
    down: Tensor,
    up: Tensor,
    scale: f64,
}

/// The UNet's weights with a LoRA merged in: a VarBuilder backend over the UNet's own (the mapped
/// folder file, or a single-file checkpoint's UNet under diffusers' names).
pub struct Merged {
    base: Box<dyn SimpleBackend>,
    /// weight name (`<module>.weight`) → its update
    updates: HashMap<String, Update>,
}

impl Merged {
    /// `unet_file`: the UNet's weights; `lora_file`: the LoRA; `strength` multiplies every update.
    pub fn over_file(unet_file: &Path, lora_file: &Path, strength: f64) -> Result<Self> {
        // SAFETY: mapped read-only.
        let base = unsafe { MmapedSafetensors::new(unet_file) }?;
        let names = base.tensors().into_iter().map(|(name, _)| name).collect();
        Self::new(Box::new(base), names, lora_file, strength)
    }

    /// `base`: the UNet's weights, `names` their names.
    pub fn new(
        base: Box<dyn SimpleBackend>,
        names: Vec<String>,
        lora_file: &Path,
        strength: f64,
    ) -> Result<Self> {
        // SAFETY: mapped read-only.
        let lora = unsafe { MmapedSafetensors::new(lora_file) }
            .map_err(|e| EngineError::InvalidInput(format!("LoRA {}: {e}", lora_file.display())))?;
        let bad =
            |why: String| EngineError::InvalidInput(format!("LoRA {}: {why}", lora_file.display()));
        // kohya names a module by its path with every `.` made `_`: look names up from the UNet's own.
        let kohya_names: HashMap<String, String> = names
            .iter()
            .filter_map(|name| name.strip_suffix(".weight").map(str::to_owned))
            .map(|module| (format!("lora_unet_{}", module.replace('.', "_")), module))
            .collect();
        let lora_names: Vec<String> = lora.tensors().into_iter().map(|(n, _)| n).collect();
        let mut updates = HashMap::new();
        for name in &lora_names {
            let (module, down_name, up_name, alpha_name) = if let Some(m) =
                name.strip_suffix(".lora_A.weight")
            {
                let module = m.strip_prefix("unet.").unwrap_or(m);
                (
                    module.to_owned(),
                    name.clone(),
                    format!("{m}.lora_B.weight"),
                    format!("{m}.alpha"),
                )
            } else if let Some(k) = name.strip_suffix(".lora_down.weight") {
                let Some(module) = kohya_names.get(k) else {
                    return Err(bad(if k.starts_with("lora_te") {
                        format!("`{k}` is a text-encoder layer; only UNet LoRAs are merged")
                    } else {
                        format!("`{k}` names no layer of this UNet")
                    }));
                };
                (
                    module.clone(),
                    name.clone(),
                    format!("{k}.lora_up.weight"),
                    format!("{k}.alpha"),
                )
            } else if name.ends_with(".lora_B.weight")
                || name.ends_with(".lora_up.weight")
                || name.ends_with(".alpha")
            {
                continue;
            } else {
                return Err(bad(format!(
                    "`{name}` is neither a peft (lora_A/lora_B) nor a kohya (lora_down/lora_up) weight"
                )));
            };
            if module.starts_with("text_encoder") {
                return Err(bad(format!(
                    "`{name}` is a text-encoder layer; only UNet LoRAs are merged"
                )));
            }
            let get = |n: &str| lora.load(n, &Device::Cpu)?.to_dtype(DType::F32);
            let down = get(&down_name)?;
            let up = get(&up_name).map_err(|_| bad(format!("`{down_name}` has no `{up_name}`")))?;
            let rank = down.dim(0)?;
            let scale = match lora_names.contains(&alpha_name) {
                true => get(&alpha_name)?.to_vec0::<f32>()? as f64 / rank as f64,
                false => 1.0,
            };
            let weight = format!("{module}.weight");
            if !base.contains_tensor(&weight) {
                return Err(bad(format!("`{module}` is not a layer of this UNet")));
            }
            updates.insert(
                weight,
                Update {
                    down,
                    up,
                    scale: scale * strength,
                },
            );
        }
        if updates.is_empty() {
            return Err(bad("no LoRA layers in it".into()));
        }
        Ok(Self { base, updates })
    }

    /// How many of the UNet's weights the LoRA changes.
    pub fn layers(&self) -> usize {
        self.updates.len()
    }

    fn merge(&self, name: &str, weight: Tensor) -> candle_core::Result<Tensor> {
        let Some(u) = self.updates.get(name) else {
            return Ok(weight);
        };
        let rank = u.down.dim(0)?;
        let out = u.up.dim(0)?;
        let delta =
            u.up.reshape((out, rank))?
                .matmul(&u.down.reshape((rank, ()))?)?;
        let delta = (delta * u.scale)?.reshape(weight.shape())?;
        (weight.to_dtype(DType::F32)? + delta.to_device(weight.device())?)?.to_dtype(weight.dtype())
    }
}

impl SimpleBackend for Merged {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let w = self.base.get(s, name, h, dtype, dev)?;
        self.merge(name, w)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let w = self.base.get_unchecked(name, dtype, dev)?;
        self.merge(name, w)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.base.contains_tensor(name)
    }
}
