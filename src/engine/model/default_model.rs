//! The built-in models shipped in `assets/` and compiled into the binary, so the first run works
//! offline: a consistency model of the emoji (the default) and the EDM diffusion teacher it is
//! distilled from, both trained by this project (training/, model card in assets/MODEL_CARD.md).

use std::path::Path;

/// Shown where a file path would be.
pub const NAME: &str = "emoji32 (built in)";

pub const BYTES: &[u8] = include_bytes!("../../../assets/emoji32.safetensors");

/// What `--model` (and a recipe's model file) says to mean the teacher.
pub const TEACHER_SPEC: &str = "builtin:teacher";

pub const TEACHER_NAME: &str = "emoji32 teacher (built in)";

pub const TEACHER_BYTES: &[u8] = include_bytes!("../../../assets/emoji32_teacher.safetensors");

/// A built-in model: its display name and bytes.
pub struct Builtin {
    pub name: &'static str,
    pub bytes: &'static [u8],
}

/// The built-in model a `--model` value names: `builtin` (or `builtin:student`) is the default
/// consistency model, `builtin:teacher` its EDM teacher. None for anything else (a path).
pub fn named(spec: &Path) -> Option<Builtin> {
    match spec.to_str()? {
        "builtin" | "builtin:student" => Some(Builtin {
            name: NAME,
            bytes: BYTES,
        }),
        TEACHER_SPEC => Some(Builtin {
            name: TEACHER_NAME,
            bytes: TEACHER_BYTES,
        }),
        _ => None,
    }
}
