//! The default model shipped in `assets/` and compiled into the binary, so the first run works offline:
//! a consistency model of 64×64 emoji trained by this project (training/, model card in
//! assets/MODEL_CARD.md).

/// Shown where a file path would be.
pub const NAME: &str = "emoji32 (built in)";

pub const BYTES: &[u8] = include_bytes!("../../../assets/emoji32.safetensors");
