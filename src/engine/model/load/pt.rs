//! OpenAI `.pt` checkpoints (PyTorch zip pickles), read by candle's pickle interpreter — which only
//! builds plain values and tensors — after `pickle_guard` has bounded them.

use super::{Opened, Reader, StoredTensor, WeightFormat, dtype_name, not_a_checkpoint};
use crate::engine::error::Result;
use std::collections::HashMap;
use std::path::Path;

/// Runs a third-party parser on untrusted bytes: a panic inside it (fuzzing found one in candle's
/// pickle reader) becomes an error naming the file instead of taking the program down.
pub(super) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(not_a_checkpoint(
            path,
            "corrupt PyTorch checkpoint (its reader failed on it)",
        ))
    })
}

pub(super) fn read_pt(path: &Path) -> Result<Opened> {
    // candle's pickle reader has no bound on nesting or size: refuse what would overflow the stack
    // or exhaust memory before it builds anything (see `pickle_guard`)
    let (file, _) = crate::file_io::open(path).map_err(|e| not_a_checkpoint(path, e.reason))?;
    crate::engine::model::pickle_guard::check_checkpoint(file)
        .map_err(|e| not_a_checkpoint(path, e))?;
    let pth = guarded(path, || {
        candle_core::pickle::PthTensors::new(path, None).map_err(|e| {
            not_a_checkpoint(
                path,
                format!("truncated or corrupt PyTorch checkpoint ({e})"),
            )
        })
    })?;
    let mut stored = HashMap::new();
    let mut bytes = 0usize;
    for (name, info) in pth.tensor_infos() {
        let shape = info.layout.dims().to_vec();
        let elements = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| {
                not_a_checkpoint(path, format!("`{name}` has an impossible shape {shape:?}"))
            })?;
        bytes = bytes.saturating_add(elements.saturating_mul(info.dtype.size_in_bytes()));
        stored.insert(
            name.clone(),
            StoredTensor {
                shape,
                dtype: dtype_name(info.dtype),
            },
        );
    }
    if stored.is_empty() {
        return Err(not_a_checkpoint(
            path,
            "a PyTorch file without a state dict of tensors",
        ));
    }
    Ok(Opened {
        format: WeightFormat::OpenAiPt,
        reader: Reader::Pt(pth),
        stored,
        metadata_config: None,
        diffusers_config: None,
        stored_bytes: bytes,
    })
}
