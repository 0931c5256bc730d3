//! Images ⇄ tensors: the only place that knows pixel layout. Tensors are `[B, 3, H, W]` f32 in [−1, 1];
//! pixels are RGB8. PNG output rounds `(x+1)·127.5` to the nearest integer.

use crate::engine::error::{EngineError, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// An RGB8 image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

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

pub fn read_png(path: &Path) -> Result<Rgb8> {
    let img = image::open(path)
        .map_err(|e| EngineError::InvalidInput(format!("{}: {e}", path.display())))?;
    let rgb = img.to_rgb8();
    Ok(Rgb8 {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        pixels: rgb.into_raw(),
    })
}

pub fn write_png(path: &Path, img: &Rgb8) -> Result<()> {
    image::save_buffer(
        path,
        &img.pixels,
        img.width as u32,
        img.height as u32,
        image::ColorType::Rgb8,
    )
    .map_err(|e| EngineError::InvalidInput(format!("{}: cannot write PNG: {e}", path.display())))
}

/// Lays a batch out as a near-square grid, row-major, with no gaps.
pub fn grid(images: &[Rgb8]) -> Rgb8 {
    let n = images.len().max(1);
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let (w, h) = (images[0].width, images[0].height);
    let mut out = Rgb8 {
        width: cols * w,
        height: rows * h,
        pixels: vec![0; cols * w * rows * h * 3],
    };
    for (k, img) in images.iter().enumerate() {
        let (gx, gy) = ((k % cols) * w, (k / cols) * h);
        for y in 0..h {
            let src = &img.pixels[y * w * 3..(y + 1) * w * 3];
            let dst = ((gy + y) * out.width + gx) * 3;
            out.pixels[dst..dst + w * 3].copy_from_slice(src);
        }
    }
    out
}

/// Reads the tensor-image format: safetensors with one f32 tensor `image` `[B, 3, H, W]`.
pub fn read_tensor_image(path: &Path, device: &Device) -> Result<Tensor> {
    let mut t = candle_core::safetensors::load(path, device).map_err(|e| {
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

pub fn write_tensor_image(path: &Path, image: &Tensor) -> Result<()> {
    let image = image.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
    candle_core::safetensors::save(&HashMap::from([("image", image)]), path)
        .map_err(|e| EngineError::InvalidInput(format!("{}: cannot write: {e}", path.display())))
}
