//! The project file (`.cmpaint`): the document's layers, its recipe, the history of results and the
//! model in use, as versioned JSON with every picture embedded as a hashed PNG. The same format is the
//! autosave, so recovery and *Open Project* share one reader — which checks everything (version,
//! sizes, hashes) and never panics on a damaged file.

use super::document::Document;
use crate::picture::Rgb8;
use crate::recipe::{EmbeddedImage, Recipe};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const PROJECT_FORMAT: &str = "cmpaint-project";
pub const PROJECT_VERSION: u32 = 1;
/// Refuse larger files before reading them: far beyond any real project.
const MAX_PROJECT_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub format: String,
    pub version: u32,
    pub width: usize,
    pub height: usize,
    pub picture: EmbeddedImage,
    pub sketch: EmbeddedImage,
    pub mask: EmbeddedImage,
    pub recipe: Option<Recipe>,
    pub history: Vec<HistoryEntry>,
    /// The model file in use (None = the built-in model).
    pub model: Option<PathBuf>,
    /// Seconds since the Unix epoch.
    pub saved_at: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub image: EmbeddedImage,
    pub recipe: Recipe,
}

/// What a project restores into.
pub struct Restored {
    pub doc: Document,
    pub history: Vec<(Rgb8, Recipe)>,
    pub model: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{0}")]
    Io(String),
    #[error("not a cmpaint project: {0}")]
    Invalid(String),
}

impl Project {
    pub fn capture(
        doc: &Document,
        history: &[(&Rgb8, &Recipe)],
        model: Option<&Path>,
    ) -> Result<Self, ProjectError> {
        let bad = |e: crate::recipe::RecipeError| ProjectError::Invalid(e.to_string());
        let (w, h) = (doc.width, doc.height);
        let rgb: Vec<u8> = doc
            .picture
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        Ok(Self {
            format: PROJECT_FORMAT.into(),
            version: PROJECT_VERSION,
            width: w,
            height: h,
            picture: EmbeddedImage::from_rgb(&Rgb8 {
                width: w,
                height: h,
                pixels: rgb,
            })
            .map_err(bad)?,
            sketch: EmbeddedImage::from_rgba(w, h, &doc.sketch).map_err(bad)?,
            mask: EmbeddedImage::from_grey(w, h, &doc.mask).map_err(bad)?,
            recipe: doc.recipe.clone(),
            history: history
                .iter()
                .map(|(img, r)| {
                    Ok(HistoryEntry {
                        image: EmbeddedImage::from_rgb(img).map_err(bad)?,
                        recipe: (*r).clone(),
                    })
                })
                .collect::<Result<_, ProjectError>>()?,
            model: model.map(Path::to_path_buf),
            saved_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a project serialises")
    }

    /// Parses and checks a project: format, version, then every picture against its hash and size.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProjectError> {
        let invalid = |m: String| ProjectError::Invalid(m);
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(PROJECT_FORMAT) {
            return Err(invalid("no cmpaint-project format field".into()));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == PROJECT_VERSION as u64 => {}
            Some(v) => {
                return Err(invalid(format!(
                    "project version {v}; this cmpaint reads version {PROJECT_VERSION}"
                )));
            }
            None => return Err(invalid("no version field".into())),
        }
        let p: Project = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        if p.width == 0 || p.height == 0 || p.width > 8192 || p.height > 8192 {
            return Err(invalid(format!("a {}×{} canvas", p.width, p.height)));
        }
        Ok(p)
    }

    pub fn read(path: &Path) -> Result<Self, ProjectError> {
        let io = |e: std::io::Error| ProjectError::Io(format!("{}: {e}", path.display()));
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_PROJECT_BYTES {
            return Err(ProjectError::Invalid(format!(
                "{} is {len} bytes",
                path.display()
            )));
        }
        Self::from_bytes(&std::fs::read(path).map_err(io)?)
    }

    /// Decodes the pictures into a document (with an empty undo history) and the results list.
    pub fn restore(&self) -> Result<Restored, ProjectError> {
        let bad = |e: crate::recipe::RecipeError| ProjectError::Invalid(e.to_string());
        let (w, h) = (self.width, self.height);
        let size = |what: &str, (pw, ph): (usize, usize)| {
            if (pw, ph) == (w, h) {
                Ok(())
            } else {
                Err(ProjectError::Invalid(format!(
                    "the {what} is {pw}×{ph} in a {w}×{h} project"
                )))
            }
        };
        let picture = self.picture.to_rgb().map_err(bad)?;
        size("picture", (picture.width, picture.height))?;
        let (sw, sh, sketch) = self.sketch.to_rgba().map_err(bad)?;
        size("sketch", (sw, sh))?;
        let (mw, mh, mask) = self.mask.to_grey().map_err(bad)?;
        size("mask", (mw, mh))?;
        let mut doc = Document::blank(w, h);
        for (dst, src) in doc
            .picture
            .chunks_exact_mut(4)
            .zip(picture.pixels.chunks_exact(3))
        {
            dst[..3].copy_from_slice(src);
        }
        doc.sketch = sketch;
        doc.mask = mask;
        doc.recipe = self.recipe.clone();
        doc.touch();
        let history = self
            .history
            .iter()
            .map(|e| Ok((e.image.to_rgb().map_err(bad)?, e.recipe.clone())))
            .collect::<Result<_, ProjectError>>()?;
        Ok(Restored {
            doc,
            history,
            model: self.model.clone(),
        })
    }
}

/// Where autosaves live: `$CMPAINT_DATA_DIR`, else `$XDG_DATA_HOME/cmpaint`, else
/// `~/.local/share/cmpaint`.
pub fn data_dir() -> Option<PathBuf> {
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("CMPAINT_DATA_DIR")
        .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("cmpaint")))
        .or_else(|| env("HOME").map(|h| h.join(".local/share/cmpaint")))
}

pub const AUTOSAVE_FILE: &str = "autosave.cmpaint";

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Project {
        let mut d = Document::blank(4, 3);
        d.picture[0] = 7;
        d.sketch[5 * 4 + 3] = 128;
        d.mask[11] = 255;
        let img = Rgb8 {
            width: 4,
            height: 3,
            pixels: vec![9; 36],
        };
        let recipe: Recipe = serde_json::from_str(RECIPE).unwrap();
        Project::capture(&d, &[(&img, &recipe)], Some(Path::new("/models/m.pt"))).unwrap()
    }

    const RECIPE: &str = r#"{"version":1,"model":{"name":"m","file":null,"sha256":"00"},
        "operation":{"kind":"generate"},"seed":3,"class":null,"steps":40,"ts":null,"input":null,"mask":null}"#;

    #[test]
    fn a_project_round_trips_exactly() {
        let p = project();
        let back = Project::from_bytes(&p.to_bytes()).unwrap();
        assert_eq!(back, p);
        let r = back.restore().unwrap();
        assert_eq!(r.doc.picture[0], 7);
        assert_eq!(r.doc.sketch[5 * 4 + 3], 128);
        assert_eq!(r.doc.mask[11], 255);
        assert_eq!(r.model.as_deref(), Some(Path::new("/models/m.pt")));
        assert_eq!(r.history[0].0.pixels, vec![9; 36]);
        assert_eq!(r.history[0].1.seed, 3);
    }

    #[test]
    fn every_truncation_of_a_project_is_refused_cleanly() {
        let bytes = project().to_bytes();
        for n in 0..bytes.len() {
            assert!(
                Project::from_bytes(&bytes[..n])
                    .and_then(|p| p.restore())
                    .is_err(),
                "a project cut at byte {n} was accepted"
            );
        }
    }

    #[test]
    fn other_versions_are_refused_with_a_message() {
        let mut p = project();
        p.version = 2;
        let err = Project::from_bytes(&p.to_bytes()).unwrap_err().to_string();
        assert!(err.contains("version 2"), "{err}");
    }
}
