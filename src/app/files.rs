//! Files in and out: opening pictures (decoded on a thread of their own), exporting the canvas as
//! PNG with its recipe, re-running a recipe, a new canvas.

use super::App;
use super::dialogs::FileRequest;
use super::jobs::Purpose;
use crate::file_io::write_bytes;
use crate::paint::document::Document;
use crate::paint::document::MAX_SIDE;
use crate::paint::frame::Frame;
use crate::picture::MAX_EXPORT_SCALE;
use crate::picture::Resize;
use crate::picture::Rgb8;
use crate::picture::decode;
use crate::picture::dimensions;
use crate::picture::enlarge;
use crate::picture::to_model_size;
use crate::picture::to_rgb8;
use crate::picture::write_png_rgba;
use crate::recipe::encode_png;
use crate::recipe::read_recipe;
use crate::worker::is_loadable;
use std::path::Path;
use std::path::PathBuf;

/// A picture of another size than the model's, waiting for the user to choose fit or crop.
pub(super) struct PendingImport {
    pub(super) path: PathBuf,
    pub(super) width: u32,
    pub(super) height: u32,
}

/// A picture being decoded and brought to the canvas size on its own thread: a photo takes a tenth of
/// a second or more, which the UI must not wait for.
pub(super) struct Opening {
    pub(super) path: PathBuf,
    pub(super) result: crossbeam_channel::Receiver<Result<Rgb8, String>>,
}

impl App {
    /// Exports the canvas as a PNG; while the canvas is exactly a result, its recipe goes in too.
    pub fn export_png(&mut self) {
        self.ask_file(FileRequest::ExportPng);
    }

    /// Export PNG to `path` (the dialog's answer).
    pub fn export_png_to(&mut self, path: PathBuf) {
        let recipe = (self.state.doc.recipe.clone())
            .filter(|_| !self.state.doc.has_sketch() && !self.state.doc.has_empty());
        // a whole enlargement keeps the pixels crisp; the recipe still describes the picture itself
        let scale = self.state.export_scale.clamp(1, MAX_EXPORT_SCALE);
        let written = if self.state.doc.has_empty() {
            // a canvas with empty pixels (extended, not yet filled) keeps them transparent
            let (w, h, rgba) = (
                self.state.doc.width,
                self.state.doc.height,
                self.state.doc.composite_rgba(),
            );
            let rgba = enlarge(w, h, &rgba, 4, scale);
            write_png_rgba(&path, w * scale, h * scale, &rgba).map_err(|e| e.to_string())
        } else {
            let picture = self.state.doc.composite().enlarged(scale);
            let bytes = encode_png(&picture, recipe.as_ref()).map_err(|e| e.to_string());
            bytes.and_then(|b| write_bytes(&path, &b).map_err(|e| e.to_string()))
        };
        match written {
            Ok(()) => self.info(format!(
                "exported {}{}{}",
                path.display(),
                if scale > 1 {
                    format!(" at ×{scale}")
                } else {
                    String::new()
                },
                if recipe.is_some() {
                    " with its recipe"
                } else {
                    " without a recipe: the canvas is not exactly one result (painted, outpainted or \
                     extended since), so Open recipe cannot re-run it"
                }
            )),
            Err(e) => self.error(format!("export failed, nothing was changed: {e}")),
        }
    }

    /// Reads the recipe from an exported PNG and runs it again (loading its model first if another
    /// one is loaded and its file is known).
    pub fn open_recipe(&mut self) {
        self.ask_file(FileRequest::OpenRecipe);
    }

    /// Open recipe from `path` (the dialog's answer).
    pub fn open_recipe_from(&mut self, path: PathBuf) {
        let recipe = match crate::file_io::read(&path, crate::file_io::limit::PICTURE) {
            Ok(bytes) => read_recipe(&bytes).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) => Err(e.to_string()),
        };
        let recipe = match recipe {
            Ok(r) => r,
            Err(e) => return self.error(e),
        };
        let same_model = self
            .state
            .model
            .as_ref()
            .is_some_and(|m| m.sha256 == recipe.model.sha256);
        if !same_model {
            match &recipe.model.file {
                None => self.load_model(None),
                Some(f) if is_loadable(Path::new(f)) => self.load_model(Some(PathBuf::from(f))),
                Some(f) => {
                    return self.error(format!(
                        "the recipe was made with {} ({f}), which is not here: open that model first",
                        recipe.model.name
                    ));
                }
            }
        }
        if let Some(c) = recipe.class {
            self.state.class = Some(c);
        }
        self.info(format!(
            "re-running the recipe of {} ({}, seed {})",
            path.display(),
            recipe.operation.label(),
            recipe.seed
        ));
        self.submit(recipe, 1, false, Purpose::Apply, None);
    }

    /// File → Open image: the document becomes the picture, at the picture's own size (one undo
    /// step), up to `MAX_SIDE` on a side.
    pub fn open_image(&mut self) {
        self.ask_file(FileRequest::OpenImage {
            at_model_size: false,
        });
    }

    /// Opens the picture at `path` as Open image does.
    pub fn open_image_file(&mut self, path: PathBuf) {
        match dimensions(&path) {
            Ok((w, h)) if w as usize > MAX_SIDE || h as usize > MAX_SIDE => self.error(format!(
                "{}: the picture is {w}×{h} and the largest canvas {MAX_SIDE}×{MAX_SIDE}: \
                 File → Open image at model size brings the whole picture to the model's size",
                path.display()
            )),
            Ok(_) => self.start_opening(path, None),
            Err(e) => self.error(e.to_string()),
        }
    }

    /// File → Open image at model size: the whole picture brought to the model's size, fitted or
    /// cropped as the user chooses (asked only when the sizes differ).
    pub fn open_image_at_model_size(&mut self) {
        self.ask_file(FileRequest::OpenImage {
            at_model_size: true,
        });
    }

    /// Open image at model size from `path` (the dialog's answer).
    pub fn open_image_at_model_size_from(&mut self, path: PathBuf) {
        let size = self.model_size();
        match dimensions(&path) {
            Ok((w, h)) if (w as usize, h as usize) == (size, size) => {
                self.start_opening(path, Some((size, Resize::Fit)))
            }
            Ok((width, height)) => {
                self.state.pending_import = Some(PendingImport {
                    path,
                    width,
                    height,
                })
            }
            Err(e) => self.error(e.to_string()),
        }
    }

    /// Decodes the picture at `path` on a thread of its own, at its own size or brought to
    /// `to_size` (side, fit or crop); the newest picture opened wins.
    pub(super) fn start_opening(&mut self, path: PathBuf, to_size: Option<(usize, Resize)>) {
        let (send, result) = crossbeam_channel::bounded(1);
        let source = path.clone();
        let decoding = std::thread::Builder::new()
            .name("cmpaint-open-picture".into())
            .spawn(move || {
                let picture = decode(&source).and_then(|image| match to_size {
                    Some((size, resize)) => to_model_size(image, size, Some(resize)),
                    None => Ok(image),
                });
                // Nobody waits any more when a newer picture was opened meanwhile.
                let _ = send.send(picture.map(|p| to_rgb8(&p)).map_err(|e| e.to_string()));
            });
        if let Err(e) = decoding {
            self.error(format!("{}: no thread to open it ({e})", path.display()));
            return;
        }
        self.info(format!("opening {}…", path.display()));
        self.run.opening = Some(Opening { path, result });
    }

    pub(super) fn poll_opening(&mut self) {
        use crossbeam_channel::TryRecvError;
        let Some(opening) = &self.run.opening else {
            return;
        };
        let result = match opening.result.try_recv() {
            Err(TryRecvError::Empty) => return,
            Ok(result) => result,
            Err(TryRecvError::Disconnected) => Err("the decoder stopped unexpectedly".into()),
        };
        let path = self.run.opening.take().expect("checked").path;
        match result {
            Ok(picture) => {
                let resized = (picture.width, picture.height)
                    != (self.state.doc.width, self.state.doc.height);
                self.state.doc.apply_result(&picture, None);
                if resized {
                    self.state.frame =
                        Frame::centred(picture.width, picture.height, self.model_size());
                    self.canvas.fit_pending = true;
                }
                self.info(format!(
                    "opened {} ({}×{})",
                    path.display(),
                    picture.width,
                    picture.height
                ));
            }
            Err(e) => self.error(e),
        }
    }

    pub fn is_opening_image(&self) -> bool {
        self.run.opening.is_some()
    }

    /// File → New canvas: a blank document of `width`×`height` (the dialog offers the model's size),
    /// with the frame centred at the model's size.
    pub fn new_canvas(&mut self, width: usize, height: usize) {
        let (w, h) = (width.clamp(1, MAX_SIDE), height.clamp(1, MAX_SIDE));
        self.state.doc = Document::blank(w, h);
        self.state.frame = Frame::centred(w, h, self.model_size());
        self.canvas.fit_pending = true;
    }
}
