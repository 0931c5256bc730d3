//! The project file (`.cmpaint`): the document's layers, its recipe, the history of results and the
//! model in use, as versioned JSON with every picture embedded as a hashed PNG. The same format is the
//! autosave, so recovery and *Open Project* share one reader — which checks everything (version,
//! sizes, hashes) and never panics on a damaged file.

use super::document::{Document, MAX_SIDE};
use super::frame::{Frame, Placement};
use crate::picture::Rgb8;
use crate::recipe::{EmbeddedImage, Recipe};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const PROJECT_FORMAT: &str = "cmpaint-project";
pub const PROJECT_VERSION: u32 = 1;

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
    /// The document's origin (see `Document::origin`; absent in older projects: 0, 0).
    #[serde(default)]
    pub origin: (i64, i64),
    /// The generation frame (absent in older projects: the app centres one).
    #[serde(default)]
    pub frame: Option<Frame>,
    /// The autosave keeps its results in files of their own beside it, in `AUTOSAVE_RESULTS`, each
    /// written once: these are their names, in History's order (`history` itself is empty then).
    /// `read` brings them in; saved projects hold their results inline and never set this.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result_files: Vec<String>,
    /// The Generate settings in use when it was saved (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<SessionSettings>,
    /// Seconds since the Unix epoch.
    pub saved_at: u64,
}

/// The Generate panel's settings a project keeps, so a restored session goes on where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSettings {
    pub seed: u64,
    /// "fixed", "random" or "increment".
    pub seed_mode: String,
    pub batch: usize,
    /// A latent model's prompts (absent in older files).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prompt: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub negative_prompt: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub image: EmbeddedImage,
    pub recipe: Recipe,
    /// Where in the document it was made (absent: the whole canvas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// What it cost to make, as History shows it ("35 calls · 2.94 s"; absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<String>,
}

impl HistoryEntry {
    pub fn new(result: &SavedResult) -> Result<Self, ProjectError> {
        let &(image, recipe, placement, cost) = result;
        Ok(HistoryEntry {
            image: EmbeddedImage::from_rgb(image)
                .map_err(|e| ProjectError::Invalid(e.to_string()))?,
            recipe: recipe.clone(),
            placement: placement.cloned(),
            cost: cost.map(str::to_string),
        })
    }

    /// The entry as a file of its own, and its name: the SHA-256 of its bytes, so an unchanged
    /// result keeps its file and a damaged file is recognised.
    pub fn to_file(&self) -> (String, Vec<u8>) {
        let bytes = serde_json::to_vec(self).expect("an entry serialises");
        (format!("{}.json", crate::recipe::sha256_hex(&bytes)), bytes)
    }

    /// Reads a result file of at most `*allowance` bytes, and takes its size off the allowance.
    fn from_file(dir: &Path, name: &str, allowance: &mut u64) -> Result<Self, ProjectError> {
        let invalid = |m: String| ProjectError::Invalid(format!("autosave result {name}: {m}"));
        let hash = name.strip_suffix(".json").unwrap_or_default();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("not a result file name".into()));
        }
        let bytes = crate::file_io::read(&dir.join(name), *allowance).map_err(|e| {
            invalid(format!(
                "{} (an autosave's results are {} MiB at most in all)",
                e.reason,
                crate::file_io::limit::PROJECT >> 20
            ))
        })?;
        *allowance -= bytes.len() as u64;
        if crate::recipe::sha256_hex(&bytes) != hash {
            return Err(invalid("its content does not match its name".into()));
        }
        serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))
    }
}

/// The folder beside the autosave that holds its results, one file each.
pub const AUTOSAVE_RESULTS: &str = "autosave-results";

/// A result as a project saves it: picture, recipe, where it was made, what it cost.
pub type SavedResult<'a> = (&'a Rgb8, &'a Recipe, Option<&'a Placement>, Option<&'a str>);

/// A result as a project restores it (see [`SavedResult`]).
pub type RestoredResult = (Rgb8, Recipe, Option<Placement>, Option<String>);

/// What a project restores into.
pub struct Restored {
    pub doc: Document,
    pub frame: Option<Frame>,
    /// The results decoded, oldest first: the newest ones that fit the memory budget.
    pub history: Vec<RestoredResult>,
    /// The older results beyond the budget, still as PNG (nothing decoded), oldest first: they come
    /// before `history`, and go to disk rather than into memory.
    pub encoded: Vec<(EncodedResult, Recipe, Option<Placement>, Option<String>)>,
    pub model: Option<PathBuf>,
}

/// A result's 8-bit RGB PNG, not decoded, with its size from the header.
pub struct EncodedResult {
    pub png: Vec<u8>,
    pub width: usize,
    pub height: usize,
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
        frame: Option<Frame>,
        history: &[SavedResult],
        model: Option<&Path>,
    ) -> Result<Self, ProjectError> {
        let bad = |e: crate::recipe::RecipeError| ProjectError::Invalid(e.to_string());
        let (w, h) = (doc.width, doc.height);
        // RGB while the picture is opaque (readable by older versions), RGBA once it has empty pixels
        let picture = if doc.has_empty() {
            EmbeddedImage::from_rgba(w, h, &doc.picture)
        } else {
            let rgb: Vec<u8> = doc
                .picture
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            EmbeddedImage::from_rgb(&Rgb8 {
                width: w,
                height: h,
                pixels: rgb,
            })
        };
        Ok(Self {
            format: PROJECT_FORMAT.into(),
            version: PROJECT_VERSION,
            width: w,
            height: h,
            picture: picture.map_err(bad)?,
            sketch: EmbeddedImage::from_rgba(w, h, &doc.sketch).map_err(bad)?,
            mask: EmbeddedImage::from_grey(w, h, &doc.mask).map_err(bad)?,
            recipe: doc.recipe.clone(),
            history: history
                .iter()
                .map(HistoryEntry::new)
                .collect::<Result<_, ProjectError>>()?,
            model: model.map(Path::to_path_buf),
            origin: doc.origin,
            frame,
            result_files: Vec::new(),
            settings: None,
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
        if p.width == 0 || p.height == 0 || p.width > MAX_SIDE || p.height > MAX_SIDE {
            return Err(invalid(format!("a {}×{} canvas", p.width, p.height)));
        }
        Ok(p)
    }

    pub fn read(path: &Path) -> Result<Self, ProjectError> {
        let bytes = crate::file_io::read(path, crate::file_io::limit::PROJECT)
            .map_err(|e| ProjectError::Io(e.to_string()))?;
        let mut project = Self::from_bytes(&bytes)?;
        let dir = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(AUTOSAVE_RESULTS);
        // the autosave and its result files together are bounded as one project is
        let mut allowance = crate::file_io::limit::PROJECT - bytes.len() as u64;
        for name in std::mem::take(&mut project.result_files) {
            let entry = HistoryEntry::from_file(&dir, &name, &mut allowance)?;
            project.history.push(entry);
        }
        Ok(project)
    }

    /// Decodes the pictures into a document (with an empty undo history) and the results list.
    pub fn restore(&self) -> Result<Restored, ProjectError> {
        self.restore_within(usize::MAX)
    }

    /// [`Project::restore`] decoding at most `budget` bytes of result pixels (RGB), newest first,
    /// weighed from the PNG headers before anything is decoded; older results stay encoded.
    pub fn restore_within(&self, budget: usize) -> Result<Restored, ProjectError> {
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
        // RGBA where the picture has empty pixels, RGB otherwise
        let (pw, ph, picture) = match self.picture.to_rgba() {
            Ok(rgba) => rgba,
            Err(_) => {
                let rgb = self.picture.to_rgb().map_err(bad)?;
                let rgba = rgb
                    .pixels
                    .chunks_exact(3)
                    .flat_map(|p| [p[0], p[1], p[2], 255]);
                (rgb.width, rgb.height, rgba.collect())
            }
        };
        size("picture", (pw, ph))?;
        let (sw, sh, sketch) = self.sketch.to_rgba().map_err(bad)?;
        size("sketch", (sw, sh))?;
        let (mw, mh, mask) = self.mask.to_grey().map_err(bad)?;
        size("mask", (mw, mh))?;
        let mut doc = Document::blank(w, h);
        doc.picture = picture;
        doc.origin = self.origin;
        doc.sketch = sketch;
        doc.mask = mask;
        doc.recipe = self.recipe.clone();
        doc.touch();
        let (mut history, mut encoded) = (Vec::new(), Vec::new());
        let mut decoded_bytes = 0usize;
        for (i, e) in self.history.iter().enumerate().rev() {
            let (png, width, height) = e.image.rgb_png().map_err(bad)?;
            if width > MAX_SIDE || height > MAX_SIDE {
                return Err(ProjectError::Invalid(format!(
                    "result {i} is {width}×{height}, larger than any canvas ({MAX_SIDE}×{MAX_SIDE})"
                )));
            }
            let bytes = width * height * 3;
            let (recipe, placement, cost) = (e.recipe.clone(), e.placement.clone(), e.cost.clone());
            if encoded.is_empty() && decoded_bytes + bytes <= budget {
                decoded_bytes += bytes;
                history.push((e.image.to_rgb().map_err(bad)?, recipe, placement, cost));
            } else {
                let png = EncodedResult { png, width, height };
                encoded.push((png, recipe, placement, cost));
            }
        }
        history.reverse();
        encoded.reverse();
        if let Some((i, _)) = (self.history.iter().enumerate())
            .find(|(_, e)| e.placement.as_ref().is_some_and(|p| !p.is_consistent()))
        {
            return Err(ProjectError::Invalid(format!(
                "result {i}'s place in the picture is damaged"
            )));
        }
        let fits = |f: &Frame| {
            f.size > 0
                && f.x.checked_add(f.size).is_some_and(|r| r <= w)
                && f.y.checked_add(f.size).is_some_and(|b| b <= h)
        };
        let frame = self.frame.filter(fits);
        Ok(Restored {
            doc,
            frame,
            history,
            encoded,
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
        let placement = Placement {
            frame: Frame {
                x: 1,
                y: 0,
                size: 3,
            },
            origin: (0, 0),
            paste: crate::paint::frame::Paste::Masked(vec![0, 255, 9, 1, 2, 3, 4, 5, 6]),
        };
        let history = [
            (&img, &recipe, Some(&placement), Some("35 calls · 2.94 s")),
            (&img, &recipe, None, None),
        ];
        let frame = Some(Frame {
            x: 1,
            y: 0,
            size: 3,
        });
        Project::capture(&d, frame, &history, Some(Path::new("/models/m.pt"))).unwrap()
    }

    /// Only the newest results that fit the budget are decoded; the rest stay PNG bytes, weighed from
    /// their headers. An oversized result (no canvas holds it) is refused before it is decoded.
    #[test]
    fn a_restore_decodes_only_what_fits_its_budget() {
        let p = project(); // two 4×3 results: 36 bytes each decoded
        let r = p.restore_within(36).unwrap();
        assert_eq!((r.encoded.len(), r.history.len()), (1, 1));
        let (png, _, _, _) = &r.encoded[0];
        assert_eq!((png.width, png.height), (4, 3));
        let back = crate::picture::decode_bytes(&png.png).unwrap();
        assert_eq!(crate::picture::to_rgb8(&back).pixels, vec![9; 36]);
        assert_eq!(r.encoded[0].2, p.history[0].placement);
        let r = p.restore_within(72).unwrap();
        assert_eq!((r.encoded.len(), r.history.len()), (0, 2));

        let mut huge = p.clone();
        let side = MAX_SIDE + 1;
        let wide = Rgb8 {
            width: side,
            height: 1,
            pixels: vec![0; side * 3],
        };
        huge.history[0].image = EmbeddedImage::from_rgb(&wide).unwrap();
        let e = huge.restore_within(usize::MAX).err().unwrap().to_string();
        assert!(
            e.contains(&format!("result 0 is {side}×1, larger than any canvas")),
            "{e}"
        );
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
        assert_eq!(r.history[0].2, p.history[0].placement);
        assert_eq!(r.history[1].2, None);
        assert_eq!(
            r.history[0].3.as_deref(),
            Some("35 calls · 2.94 s"),
            "the cost comes back"
        );
        assert_eq!(r.history[1].3, None);
        assert_eq!(
            r.frame,
            Some(Frame {
                x: 1,
                y: 0,
                size: 3
            })
        );
    }

    #[test]
    fn an_extended_canvas_round_trips_its_size_empty_area_and_origin() {
        let mut d = Document::blank(4, 3);
        d.picture[0] = 7;
        d.extend(crate::paint::document::Side::Left, 2).unwrap();
        let p = Project::capture(&d, None, &[], None).unwrap();
        let r = Project::from_bytes(&p.to_bytes())
            .unwrap()
            .restore()
            .unwrap();
        assert_eq!((r.doc.width, r.doc.height, r.doc.origin), (6, 3, (2, 0)));
        assert_eq!(r.doc.picture, d.picture);
        assert_eq!(r.frame, None);
    }

    /// An autosave's result files are read in beside it; a damaged or missing one is refused.
    #[test]
    fn an_autosave_reads_its_result_files_and_refuses_damaged_ones() {
        let dir = tempfile::tempdir().unwrap();
        let full = project();
        let mut p = full.clone();
        let results = dir.path().join(AUTOSAVE_RESULTS);
        std::fs::create_dir_all(&results).unwrap();
        for e in std::mem::take(&mut p.history) {
            let (name, bytes) = e.to_file();
            std::fs::write(results.join(&name), bytes).unwrap();
            p.result_files.push(name);
        }
        let path = dir.path().join(AUTOSAVE_FILE);
        std::fs::write(&path, p.to_bytes()).unwrap();
        assert_eq!(Project::read(&path).unwrap(), full);
        let first = results.join(&p.result_files[0]);
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&first, bytes).unwrap();
        let err = Project::read(&path).unwrap_err().to_string();
        assert!(err.contains("does not match its name"), "{err}");
        std::fs::remove_file(&first).unwrap();
        assert!(Project::read(&path).is_err());
    }

    /// A damaged placement (a mask of the wrong size, absurd coordinates) is refused or ignored,
    /// never a panic when the result is applied.
    #[test]
    fn damaged_placements_and_frames_are_refused_cleanly() {
        let mut p = project();
        p.frame = Some(Frame {
            x: usize::MAX,
            y: 0,
            size: 3,
        });
        assert_eq!(p.restore().unwrap().frame, None);
        if let Some(pl) = &mut p.history[0].placement {
            pl.paste = crate::paint::frame::Paste::Masked(vec![1, 2]);
        }
        assert!(p.restore().is_err());
        let mut doc = Document::blank(4, 3);
        doc.origin = (i64::MIN, 0);
        let pl = Placement {
            frame: Frame {
                x: 0,
                y: 0,
                size: 2,
            },
            origin: (i64::MAX, 0),
            paste: crate::paint::frame::Paste::Whole,
        };
        assert_eq!(pl.frame_in(&doc), None);
    }

    /// A project written before frames and extended canvases (no origin, frame or placements).
    #[test]
    fn an_older_project_still_opens() {
        let mut v: serde_json::Value = serde_json::from_slice(&project().to_bytes()).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("origin");
        o.remove("frame");
        for e in o["history"].as_array_mut().unwrap() {
            e.as_object_mut().unwrap().remove("placement");
        }
        let r = Project::from_bytes(&serde_json::to_vec(&v).unwrap())
            .unwrap()
            .restore()
            .unwrap();
        assert_eq!((r.doc.width, r.doc.origin, r.frame), (4, (0, 0), None));
        assert_eq!(r.history[0].2, None);
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
