//! History: every result with its recipe, thumbnail and cost, and putting one back on the canvas.

use super::*;

/// A result: the image, how it was made, and its thumbnail once shown.
pub struct HistoryItem {
    pub image: Rgb8,
    pub recipe: Recipe,
    /// What it cost to make, e.g. "79 calls · 3.21 s" (this session's results only).
    pub cost: Option<String>,
    /// Where in the document it was made (None: the whole canvas).
    pub placement: Option<Placement>,
    pub(super) texture: Option<egui::TextureHandle>,
}

impl HistoryItem {
    pub(super) fn new(image: Rgb8, recipe: Recipe, placement: Option<Placement>) -> Self {
        Self {
            image,
            recipe,
            cost: None,
            placement,
            texture: None,
        }
    }

    pub(super) fn texture(&mut self, ctx: &egui::Context) -> &egui::TextureHandle {
        self.texture.get_or_insert_with(|| {
            let img = egui::ColorImage::from_rgb(
                [self.image.width, self.image.height],
                &self.image.pixels,
            );
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
            return match p.frame_in(&self.doc) {
                Some(f) => self.doc.paste(f, image, &p.paste, Some(recipe)),
                None => self.error(
                    "the place this result was made in is no longer on the canvas: it stays in History",
                ),
            };
        }
        let (w, h) = (image.width, image.height);
        if (w, h) != (self.doc.width, self.doc.height) {
            if !self.doc.is_pristine() {
                return self.error(format!(
                    "the result is {w}×{h} and the canvas {}×{}: it is in History — File → New canvas, then Apply it",
                    self.doc.width, self.doc.height
                ));
            }
            self.doc = Document::blank(w, h);
            self.canvas.fit_pending = true;
        }
        self.doc.apply_result(image, Some(recipe));
    }

    pub fn apply_history(&mut self, i: usize) {
        if let Some(r) = self.history.get(i) {
            let (img, recipe, placement) = (r.image.clone(), r.recipe.clone(), r.placement.clone());
            self.apply_to_canvas(&img, recipe, placement.as_ref());
        }
    }

    /// The canvas as it would look with `image` placed where it goes (Compare, step previews).
    pub(super) fn placed_over_canvas(&self, image: &Rgb8, placement: Option<&Placement>) -> Rgb8 {
        match placement.and_then(|p| p.frame_in(&self.doc)) {
            Some(f) => preview_over(&self.doc, f, image),
            None => image.clone(),
        }
    }

    pub fn apply_preview(&mut self) {
        if let Some(p) = self.preview.take() {
            self.apply_to_canvas(&p.image, p.recipe.clone(), p.placement.as_ref());
            self.history.push(p);
        }
    }
}
