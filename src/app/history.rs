//! History: every result with its recipe, thumbnail and cost, and putting one back on the canvas.

use super::App;
use crate::file_io::write_bytes;
use crate::paint::document::Document;
use crate::paint::frame::Placement;
use crate::paint::frame::preview_over;
use crate::picture::Rgb8;
use crate::picture::decode;
use crate::picture::to_rgb8;
use crate::picture::write_png;
use crate::recipe::Operation;
use crate::recipe::Recipe;
use eframe::egui;
use std::path::Path;
use std::path::PathBuf;

/// Memory History may hold in result pictures and their thumbnails (`App::history_budget`); beyond
/// it the oldest results move to disk (see `HistoryItem::spill`).
pub const HISTORY_BUDGET_BYTES: usize = 256 << 20;

/// A result: the image, how it was made, and its thumbnail once shown.
pub struct HistoryItem {
    /// Unique in the process: the autosave remembers by it which results it has written.
    pub(super) id: u64,
    image: Kept,
    pub recipe: Recipe,
    /// What it cost to make, e.g. "79 calls · 3.21 s" (this session's results only).
    pub cost: Option<String>,
    /// Where in the document it was made (None: the whole canvas).
    pub placement: Option<Placement>,
    pub(super) texture: Option<egui::TextureHandle>,
}

/// Where a result's pixels are: in memory, or moved to a PNG in the data folder to keep History
/// within its memory budget (read back whenever it is shown, applied or saved).
#[derive(Clone)]
pub(super) enum Kept {
    Memory(Rgb8),
    Disk {
        path: PathBuf,
        width: usize,
        height: usize,
    },
}

impl Kept {
    fn size(&self) -> (usize, usize) {
        match self {
            Kept::Memory(img) => (img.width, img.height),
            Kept::Disk { width, height, .. } => (*width, *height),
        }
    }

    pub(super) fn load(&self) -> Result<Rgb8, String> {
        match self {
            Kept::Memory(img) => Ok(img.clone()),
            Kept::Disk { path, .. } => decode(path)
                .map(|p| to_rgb8(&p))
                .map_err(|e| format!("a result moved to disk cannot be read back: {e}")),
        }
    }
}

impl HistoryItem {
    pub(super) fn new(image: Rgb8, recipe: Recipe, placement: Option<Placement>) -> Self {
        Self::kept_as(Kept::Memory(image), recipe, placement)
    }

    /// A result whose pixels are already on disk, a PNG of `width`×`height` at `path`.
    pub(super) fn on_disk(
        path: PathBuf,
        width: usize,
        height: usize,
        recipe: Recipe,
        placement: Option<Placement>,
    ) -> Self {
        let image = Kept::Disk {
            path,
            width,
            height,
        };
        Self::kept_as(image, recipe, placement)
    }

    fn kept_as(image: Kept, recipe: Recipe, placement: Option<Placement>) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            image,
            recipe,
            cost: None,
            placement,
            texture: None,
        }
    }

    /// The same result (same id, so that History knows it) without its thumbnail: what the preview
    /// shows of a sketch → image result that is already in History.
    pub(super) fn same_result(&self) -> Self {
        Self {
            id: self.id,
            image: self.image.clone(),
            recipe: self.recipe.clone(),
            cost: self.cost.clone(),
            placement: self.placement.clone(),
            texture: None,
        }
    }

    /// The result's pixels (read from disk when they were moved there).
    pub fn image(&self) -> Result<Rgb8, String> {
        self.image.load()
    }

    pub fn size(&self) -> (usize, usize) {
        self.image.size()
    }

    pub fn is_on_disk(&self) -> bool {
        matches!(self.image, Kept::Disk { .. })
    }

    pub(super) fn kept(&self) -> &Kept {
        &self.image
    }

    /// Bytes it holds in memory: its pixels and thumbnail texture (RGBA); nothing once on disk (a
    /// thumbnail exists only while its row is on screen, a screenful at most).
    pub fn bytes_in_memory(&self) -> usize {
        if self.is_on_disk() {
            return 0;
        }
        let (w, h) = self.size();
        w * h * 3 + self.texture.as_ref().map_or(0, |_| w * h * 4)
    }

    /// Moves the pixels to `path` (a PNG, written atomically) and drops them and the thumbnail.
    pub(super) fn spill(&mut self, path: PathBuf) -> Result<(), String> {
        let Kept::Memory(img) = &self.image else {
            return Ok(());
        };
        write_png(&path, img).map_err(|e| e.to_string())?;
        self.image = Kept::Disk {
            path,
            width: img.width,
            height: img.height,
        };
        self.texture = None;
        Ok(())
    }

    /// A result whose row is off screen gives its thumbnail back (made again when it returns), so
    /// thumbnails cost a screenful, however long History grows.
    pub(super) fn forget_thumbnail(&mut self) {
        self.texture = None;
    }

    pub(super) fn texture(&mut self, ctx: &egui::Context) -> &egui::TextureHandle {
        let image = &self.image;
        self.texture.get_or_insert_with(|| {
            // a thumbnail that cannot be read back shows as grey rather than failing the frame
            let (w, h) = image.size();
            let img = image.load().unwrap_or(Rgb8 {
                width: w,
                height: h,
                pixels: vec![128; w * h * 3],
            });
            let img = egui::ColorImage::from_rgb([img.width, img.height], &img.pixels);
            ctx.load_texture("result", img, egui::TextureOptions::NEAREST)
        })
    }
}

impl App {
    /// Puts a result on the canvas (one undo step): into the frame it was made in, else over the
    /// whole canvas. A whole-canvas result of another size only replaces a canvas nobody has
    /// touched; otherwise it stays in History and the painting is kept.
    pub(super) fn apply_to_canvas(
        &mut self,
        image: &Rgb8,
        recipe: Recipe,
        placement: Option<&Placement>,
    ) {
        if let Some(p) = placement {
            return match p.frame_in(&self.state.doc) {
                Some(f) => self.state.doc.paste(f, image, &p.paste, Some(recipe)),
                None => self.error(
                    "the place this result was made in is no longer on the canvas: it stays in History",
                ),
            };
        }
        let (w, h) = (image.width, image.height);
        if (w, h) != (self.state.doc.width, self.state.doc.height) {
            if !self.state.doc.is_pristine() {
                return self.error(format!(
                    "the result is {w}×{h} and the canvas {}×{}: it is in History — File → New canvas, then Apply it",
                    self.state.doc.width, self.state.doc.height
                ));
            }
            self.state.doc = Document::blank(w, h);
            self.canvas.fit_pending = true;
        }
        self.state.doc.apply_result(image, Some(recipe));
    }

    pub fn apply_history(&mut self, i: usize) {
        let Some(r) = self.state.history.get(i) else {
            return;
        };
        // a sketch → image preview was of the sketch this result replaces
        if self
            .state
            .preview
            .as_ref()
            .is_some_and(|p| matches!(p.recipe.operation, Operation::SdEdit { .. }))
        {
            self.state.preview = None;
        }
        let (recipe, placement) = (r.recipe.clone(), r.placement.clone());
        match r.image() {
            Ok(img) => self.apply_to_canvas(&img, recipe, placement.as_ref()),
            Err(e) => self.error(e),
        }
    }

    /// The canvas as it would look with `image` placed where it goes (Compare, step previews).
    pub(super) fn placed_over_canvas(&self, image: &Rgb8, placement: Option<&Placement>) -> Rgb8 {
        match placement.and_then(|p| p.frame_in(&self.state.doc)) {
            Some(f) => preview_over(&self.state.doc, f, image),
            None => image.clone(),
        }
    }

    /// The preview onto the canvas (a sketch → image result there clears the sketch it was made
    /// from); into History too, unless it is there already.
    pub fn apply_preview(&mut self) {
        if let Some(p) = self.state.preview.take() {
            if let Ok(img) = p.image() {
                self.apply_to_canvas(&img, p.recipe.clone(), p.placement.as_ref());
            }
            if !self.state.history.iter().any(|r| r.id == p.id) {
                self.state.history.push(p);
            }
        }
    }

    /// History's Discard: the result goes, with its file when it had been moved to disk.
    pub fn discard_history(&mut self, i: usize) {
        if i < self.state.history.len()
            && let Kept::Disk { path, .. } = &self.state.history.remove(i).image
        {
            let _ = std::fs::remove_file(path);
        }
    }

    /// A new file name in this session's spill folder (created when missing).
    fn next_spill_path(&mut self, dir: &Path) -> Result<PathBuf, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        self.run.spilled += 1;
        Ok(dir.join(format!("{:06}.png", self.run.spilled)))
    }

    /// Writes a result's PNG bytes straight to the spill folder (a restore's results beyond the
    /// budget: never decoded into memory).
    pub(super) fn spill_png(&mut self, png: &[u8]) -> Result<PathBuf, String> {
        let dir = self
            .state
            .spill_dir
            .clone()
            .ok_or("there is no data folder to move results to")?;
        let path = self.next_spill_path(&dir)?;
        write_bytes(&path, png).map_err(|e| e.to_string())?;
        Ok(path)
    }

    /// Moves the oldest results to disk while History holds more than its budget (never the newest
    /// one). Without a data folder, or when writing fails, they stay in memory and the user is told
    /// once: nothing is dropped.
    pub(super) fn keep_history_budget(&mut self) {
        let (mut bytes, _) = self.history_memory();
        if bytes <= self.state.history_budget {
            return;
        }
        let Some(dir) = self.state.spill_dir.clone() else {
            if !self.run.spill_warned {
                self.run.spill_warned = true;
                self.error("History is over its memory budget and there is no data folder to move results to: they stay in memory");
            }
            return;
        };
        let newest = self.state.history.len().saturating_sub(1);
        for i in 0..newest {
            if bytes <= self.state.history_budget {
                break;
            }
            if self.state.history[i].is_on_disk() {
                continue;
            }
            let before = self.state.history[i].bytes_in_memory();
            let moved = self
                .next_spill_path(&dir)
                .and_then(|path| self.state.history[i].spill(path));
            let r = &self.state.history[i];
            match moved {
                Ok(()) => bytes -= before - r.bytes_in_memory(),
                Err(e) => {
                    if !self.run.spill_warned {
                        self.run.spill_warned = true;
                        self.error(format!(
                            "results cannot be moved to disk, they stay in memory: {e}"
                        ));
                    }
                    return;
                }
            }
        }
    }
}
