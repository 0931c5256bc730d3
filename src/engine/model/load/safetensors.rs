//! Safetensors: the project's own format (config in the metadata) and openai-named weights. A file
//! on disk is mapped, not read.

use super::{CONFIG_METADATA_KEY, Opened, Reader, StoredTensor, WeightFormat, not_a_checkpoint};
use crate::engine::error::{EngineError, Result};
use crate::engine::model::spec::ModelConfig;
use ::safetensors::SafeTensors;
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::Path;

/// The bytes of a safetensors file. A file on disk is mapped, not read: loading copies each tensor
/// straight from the page cache into its f32 tensor, so the weights are never held twice.
pub(super) enum WeightBytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
    Static(&'static [u8]),
}

impl WeightBytes {
    pub(super) fn map(path: &Path) -> Result<Self> {
        let (file, _) = crate::file_io::open(path).map_err(|e| not_a_checkpoint(path, e.reason))?;
        // SAFETY: the map is read-only and only read while loading. Like every mapped-file reader
        // (candle's and safetensors' own), a file truncated by another program during the load would
        // fault; the length is checked against the header first.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| not_a_checkpoint(path, e.to_string()))?;
        Ok(Self::Mapped(map))
    }
}

impl std::ops::Deref for WeightBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(map) => map,
            Self::Owned(bytes) => bytes,
            Self::Static(bytes) => bytes,
        }
    }
}

/// Reads a safetensors header (whole file in `bytes`): the project format when its metadata holds a
/// config, else openai names.
pub(super) fn parse_safetensors(path: &Path, bytes: WeightBytes) -> Result<Opened> {
    if let Some(needed) = safetensors_extent(&bytes)
        && needed > bytes.len()
    {
        return Err(not_a_checkpoint(
            path,
            format!(
                "truncated safetensors file: its header describes {needed} bytes, the file has {}",
                bytes.len()
            ),
        ));
    }
    // read_metadata validates the header against the buffer (offsets, coverage, length), as
    // deserialize would; the header is parsed once here and once more when the data is read.
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| {
        not_a_checkpoint(
            path,
            format!("neither a PyTorch checkpoint nor a valid safetensors file ({e})"),
        )
    })?;
    let config = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CONFIG_METADATA_KEY).cloned());
    let stored = meta
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let tensor = StoredTensor {
                shape: info.shape.clone(),
                dtype: format!("{:?}", info.dtype).to_lowercase(),
            };
            (name, tensor)
        })
        .collect();
    let data = meta.data_len();
    Ok(Opened {
        format: if config.is_some() {
            WeightFormat::Project
        } else {
            WeightFormat::OpenAiSafetensors
        },
        reader: Reader::Safetensors(bytes),
        stored,
        metadata_config: config,
        diffusers_config: None,
        stored_bytes: data,
    })
}

/// The file length a safetensors header describes (8 + header + the furthest data offset), when the
/// header itself is readable; tells a cut-off download apart from a file of another kind.
pub(super) fn safetensors_extent(bytes: &[u8]) -> Option<usize> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    let end = header
        .as_object()?
        .values()
        .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    Some(8 + n + end as usize)
}

/// Writes weights in the project's format: safetensors with openai names and the config as metadata.
pub fn save_project(
    path: &Path,
    config: &ModelConfig,
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    let json =
        serde_json::to_string(config).map_err(|e| EngineError::InvalidInput(e.to_string()))?;
    let metadata = HashMap::from([(CONFIG_METADATA_KEY.to_string(), json)]);
    crate::engine::image::write_safetensors(path, tensors.clone(), Some(metadata))
}
