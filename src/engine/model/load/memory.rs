//! What a run needs in memory, and the refusal before anything is allocated when it will not fit.

use crate::engine::error::{EngineError, Result};
use crate::engine::model::config::{BlockKind, UNetConfig};

/// Memory a forward pass at `batch` needs beyond the weights, roughly: the skip activations kept for
/// the decoder, a few working copies of the largest feature map, and the attention matrices.
pub fn activation_bytes(cfg: &UNetConfig, batch: usize) -> usize {
    activation_bytes_at(cfg, batch, cfg.image_size)
}

/// [`activation_bytes`] for images of `side`×`side` (a run at another size than the model's).
/// Saturating: the sizes may come from a hostile file.
pub fn activation_bytes_at(cfg: &UNetConfig, batch: usize, side: usize) -> usize {
    let layout = cfg.layout();
    let mut res = side;
    let area = |c: usize, r: usize| c.saturating_mul(r).saturating_mul(r);
    let mut skips = area(cfg.model_channels * cfg.channel_mult[0], res);
    let mut largest = skips;
    let mut attention = 0usize;
    for block in &layout.input {
        for spec in block {
            match spec.kind {
                BlockKind::Res {
                    cout,
                    resample: crate::engine::model::config::Resample::Down,
                    ..
                } => {
                    res /= 2;
                    largest = largest.max(area(cout, res));
                }
                BlockKind::DownConv { .. } => res /= 2,
                BlockKind::Res { cout, .. } => largest = largest.max(area(cout, res)),
                BlockKind::Attn { channels } => {
                    let heads = channels / cfg.num_head_channels.max(1);
                    let tokens = res.saturating_mul(res);
                    attention = attention.max(heads.saturating_mul(tokens.saturating_mul(tokens)))
                }
                BlockKind::UpConv { .. } => {}
            }
        }
        if let Some(BlockKind::Res { cout, .. } | BlockKind::Attn { channels: cout }) =
            block.last().map(|b| b.kind)
        {
            skips = skips.saturating_add(area(cout, res));
        } else if let Some(BlockKind::DownConv { channels }) = block.last().map(|b| b.kind) {
            skips = skips.saturating_add(area(channels, res));
        }
    }
    let per_image = skips
        .saturating_add(largest.saturating_mul(6))
        .saturating_add(attention.saturating_mul(2));
    batch.saturating_mul(4).saturating_mul(per_image)
}

/// Refuses, before anything is allocated, a run of `batch` images of `side`² whose activations would
/// not fit in the memory the system has free (see [`crate::engine::available_memory`]).
pub fn check_run_memory(cfg: &UNetConfig, batch: usize, side: usize) -> Result<()> {
    let need = activation_bytes_at(cfg, batch, side);
    match crate::engine::available_memory() {
        Some(free) if need > free => {
            let per_image = activation_bytes_at(cfg, 1, side).max(1);
            let fits = free / per_image;
            let advice = if batch > 1 && fits >= 1 {
                format!("a batch of at most {fits} fits")
            } else {
                "not even one image of this size fits".into()
            };
            Err(EngineError::InvalidInput(format!(
                "a batch of {batch} at {side}×{side} needs about {} of memory and {} is free: {advice}",
                gigabytes(need),
                gigabytes(free)
            )))
        }
        _ => Ok(()),
    }
}

fn gigabytes(bytes: usize) -> String {
    if bytes >= 1 << 60 {
        return "more than an exabyte".into();
    }
    format!("{:.1} GB", bytes as f64 / 1e9)
}
