//! Pictures ⇄ tensors: the only place in the engine that knows pixel layout. Tensors are
//! `[B, 3, H, W]` f32 in [−1, 1]; pictures are [`Rgb8`] from the `picture` module, which does all
//! decoding, resizing and file writing. Pixels round `(x+1)·127.5` to the nearest integer.

use crate::engine::error::{EngineError, Result};
use crate::picture::Rgb8;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// One `[3, H, W]` tensor in [−1, 1] to RGB8 (values outside are clamped).
pub fn tensor_to_rgb8(x: &Tensor) -> Result<Rgb8> {
    let (c, h, w) = x.dims3()?;
    if c != 3 {
        return Err(EngineError::InvalidInput(format!(
            "expected 3 channels, got {c}"
        )));
    }
    let x = ((x
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .clamp(-1f32, 1f32)?
        + 1.0)?
        * 127.5)?;
    let chw: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let mut pixels = vec![0u8; h * w * 3];
    for ch in 0..3 {
        for i in 0..h * w {
            pixels[i * 3 + ch] = chw[ch * h * w + i].round() as u8;
        }
    }
    Ok(Rgb8 {
        width: w,
        height: h,
        pixels,
    })
}

/// RGB8 to a `[3, H, W]` tensor in [−1, 1].
pub fn rgb8_to_tensor(img: &Rgb8, device: &Device) -> Result<Tensor> {
    let (h, w) = (img.height, img.width);
    let mut chw = vec![0f32; 3 * h * w];
    for i in 0..h * w {
        for ch in 0..3 {
            chw[ch * h * w + i] = img.pixels[i * 3 + ch] as f32 / 127.5 - 1.0;
        }
    }
    Ok(Tensor::from_vec(chw, (3, h, w), device)?)
}

/// Reads the tensor-image format: safetensors with one f32 tensor `image` `[B, 3, H, W]`.
pub fn read_tensor_image(path: &Path, device: &Device) -> Result<Tensor> {
    let bytes = crate::file_io::read(path, crate::file_io::limit::TENSORS)
        .map_err(|e| EngineError::InvalidInput(e.to_string()))?;
    let mut t = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| {
        EngineError::InvalidInput(format!("{}: not a tensor image: {e}", path.display()))
    })?;
    let image = t.remove("image").ok_or_else(|| {
        EngineError::InvalidInput(format!("{}: no tensor named `image`", path.display()))
    })?;
    if image.rank() != 4 || image.dim(1)? != 3 {
        return Err(EngineError::InvalidInput(format!(
            "{}: `image` must be [B, 3, H, W], got {:?}",
            path.display(),
            image.dims()
        )));
    }
    Ok(image.to_dtype(DType::F32)?)
}

/// Writes the tensor-image format (atomically, see `file_io`).
pub fn write_tensor_image(path: &Path, image: &Tensor) -> Result<()> {
    let image = image.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
    write_safetensors(path, HashMap::from([("image".to_string(), image)]), None)
}

/// Writes tensors as safetensors, sorted by name, with optional metadata (atomically).
pub fn write_safetensors(
    path: &Path,
    tensors: HashMap<String, Tensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let mut sorted: Vec<(String, Tensor)> = tensors.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let bytes = safetensors::serialize(sorted, metadata)
        .map_err(|e| EngineError::InvalidInput(format!("{}: cannot write: {e}", path.display())))?;
    crate::file_io::write_bytes(path, &bytes)
        .map_err(|e| EngineError::InvalidInput(format!("cannot write: {e}")))
}

/// A picture as a `[1, 3, H, W]` tensor in [−1, 1].
pub fn picture_to_tensor(img: &Rgb8, device: &Device) -> Result<Tensor> {
    Ok(rgb8_to_tensor(img, device)?.unsqueeze(0)?)
}

/// An inpainting mask as `[1, 1, H, W]` in [0, 1] from 8-bit grey, row-major: white (255) =
/// regenerate, black (0) = keep, grey = partial.
pub fn mask_to_tensor(width: usize, height: usize, grey: &[u8], device: &Device) -> Result<Tensor> {
    let data: Vec<f32> = grey.iter().map(|&v| v as f32 / 255.0).collect();
    Ok(Tensor::from_vec(data, (1, 1, height, width), device)?)
}
