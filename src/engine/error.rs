//! Errors the engine reports to its callers (CLI, worker). Each variant renders as one line that names
//! the problem, so a user who fed the wrong file learns what to fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: {reason}")]
    NotACheckpoint { path: PathBuf, reason: String },

    #[error("{path}: cannot read the model configuration: {reason}")]
    BadConfig { path: PathBuf, reason: String },

    #[error("the weights do not match the model: {0}")]
    WeightMismatch(WeightReport),

    #[error("unsupported dtype {dtype} for weight `{name}` (supported: f32, f16, bf16, f64)")]
    UnsupportedDtype { name: String, dtype: String },

    #[error("unsupported model: {0}")]
    Unsupported(String),

    #[error("invalid input: {0}")]
    InvalidInput(String),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<crate::picture::PictureError> for EngineError {
    fn from(e: crate::picture::PictureError) -> Self {
        EngineError::InvalidInput(e.0)
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What differs between the weights a file holds and the weights the inferred model needs.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WeightReport {
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    /// (name, expected shape, found shape)
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl WeightReport {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl std::fmt::Display for WeightReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Long lists are cut: the first few names say enough, the count says the rest.
        fn list(names: &[String]) -> String {
            const SHOWN: usize = 8;
            let mut s = names
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if names.len() > SHOWN {
                s.push_str(&format!(", … ({} more)", names.len() - SHOWN));
            }
            s
        }
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "missing {} weight(s): {}",
                self.missing.len(),
                list(&self.missing)
            ));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!(
                "unexpected {} weight(s): {}",
                self.unexpected.len(),
                list(&self.unexpected)
            ));
        }
        if !self.mismatched.is_empty() {
            let shown: Vec<String> = self
                .mismatched
                .iter()
                .map(|(n, e, g)| format!("`{n}` expected {e:?}, found {g:?}"))
                .collect();
            parts.push(format!("shape mismatch: {}", list(&shown)));
        }
        write!(f, "{}", parts.join("; "))
    }
}
