//! The document: what the user is painting, as plain data — the picture, the sketch strokes over it,
//! the inpainting mask — with undo/redo that stores only the rectangle each action touched, under a
//! byte budget.

use crate::picture::Rgb8;
use crate::recipe::Recipe;

/// The layers the user sees, bottom to top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// RGBA8, opaque: a loaded picture or an applied result.
    Picture,
    /// RGBA8 with straight alpha: brush strokes over the picture.
    Sketch,
    /// One byte per pixel: 255 = regenerate when inpainting, 0 = keep.
    Mask,
}

impl Layer {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Layer::Mask => 1,
            _ => 4,
        }
    }
}

/// An axis-aligned pixel rectangle, `x0..x1` × `y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl Rect {
    pub fn is_empty(&self) -> bool {
        self.x0 >= self.x1 || self.y0 >= self.y1
    }

    /// The smallest rectangle holding both.
    pub fn union(self, other: Rect) -> Rect {
        Rect {
            x0: self.x0.min(other.x0),
            y0: self.y0.min(other.y0),
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
        }
    }

    pub fn area(&self) -> usize {
        if self.is_empty() {
            0
        } else {
            (self.x1 - self.x0) * (self.y1 - self.y0)
        }
    }
}

/// Grows an optional rectangle by another.
fn add_damage(damage: &mut Option<Rect>, r: Rect) {
    if !r.is_empty() {
        *damage = Some(damage.map_or(r, |d| d.union(r)));
    }
}

#[derive(Debug, Clone)]
struct Patch {
    layer: Layer,
    rect: Rect,
    before: Vec<u8>,
    after: Vec<u8>,
}

/// One undoable action: the patches it changed plus the recipe before and after. An action that
/// changed the document's size (Extend canvas, opening a picture of another size) keeps whole layers
/// instead of patches.
#[derive(Debug, Clone)]
struct UndoStep {
    patches: Vec<Patch>,
    resized: Option<Box<(Layers, Layers)>>,
    recipe_before: Option<Recipe>,
    recipe_after: Option<Recipe>,
}

impl UndoStep {
    fn bytes(&self) -> usize {
        let resized = self
            .resized
            .as_ref()
            .map_or(0, |r| r.0.bytes() + r.1.bytes());
        resized
            + self
                .patches
                .iter()
                .map(|p| p.before.len() + p.after.len())
                .sum::<usize>()
    }
}

/// Every layer with its size, and where the first picture's top-left corner is (see `origin`).
#[derive(Debug, Clone)]
struct Layers {
    width: usize,
    height: usize,
    origin: (i64, i64),
    picture: Vec<u8>,
    sketch: Vec<u8>,
    mask: Vec<u8>,
}

impl Layers {
    fn bytes(&self) -> usize {
        self.picture.len() + self.sketch.len() + self.mask.len()
    }
}

/// A side of the canvas, for Extend canvas and Outpaint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
    Up,
    Down,
}

impl std::str::FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "left" => Ok(Side::Left),
            "right" => Ok(Side::Right),
            "up" => Ok(Side::Up),
            "down" => Ok(Side::Down),
            other => Err(format!("`{other}`: expected left, right, up or down")),
        }
    }
}

/// Largest document side: a 4096² document is 144 MB of layers, and every stroke's undo snapshot
/// copies them once.
pub const MAX_SIDE: usize = 4096;

/// Undo keeps at least this many steps unless they alone exceed the byte budget.
pub const UNDO_LEVELS: usize = 200;
pub const UNDO_BUDGET_BYTES: usize = 256 << 20;

#[derive(Debug, Clone)]
pub struct Document {
    pub width: usize,
    pub height: usize,
    pub picture: Vec<u8>,
    pub sketch: Vec<u8>,
    pub mask: Vec<u8>,
    /// How the picture was made, while it is exactly a result (cleared when painted over).
    pub recipe: Option<Recipe>,
    /// Bumped on every change, so views re-upload only when something changed.
    pub revision: u64,
    /// Where pixel (0, 0) of the canvas as first made now lies: Extend canvas on the left or top
    /// moves it, so positions kept from before (a result's frame in History) stay where they were.
    pub origin: (i64, i64),
    /// Pixels changed since a view last took them (`take_damage`): views upload only these.
    damage: Option<Rect>,
    /// Pixels an open action marked changed (`touch_rect`): `commit` looks for changes only there.
    action_damage: Option<Rect>,
    undo: Vec<UndoStep>,
    redo: Vec<UndoStep>,
    /// The layers as they were when the open action began (see `begin`).
    pending: Option<Snapshot>,
}

#[derive(Debug, Clone)]
struct Snapshot {
    layers: Layers,
    recipe: Option<Recipe>,
}

impl Document {
    /// A white canvas with no strokes and an empty mask.
    pub fn blank(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            picture: vec![255; width * height * 4],
            sketch: vec![0; width * height * 4],
            mask: vec![0; width * height],
            recipe: None,
            revision: 0,
            origin: (0, 0),
            damage: Some(Rect {
                x0: 0,
                y0: 0,
                x1: width,
                y1: height,
            }),
            action_damage: None,
            undo: Vec::new(),
            redo: Vec::new(),
            pending: None,
        }
    }

    pub fn layer(&self, layer: Layer) -> &[u8] {
        match layer {
            Layer::Picture => &self.picture,
            Layer::Sketch => &self.sketch,
            Layer::Mask => &self.mask,
        }
    }

    pub fn layer_mut(&mut self, layer: Layer) -> &mut Vec<u8> {
        match layer {
            Layer::Picture => &mut self.picture,
            Layer::Sketch => &mut self.sketch,
            Layer::Mask => &mut self.mask,
        }
    }

    /// Never changed since it was created blank: replacing it loses nothing.
    pub fn is_pristine(&self) -> bool {
        self.revision == 0
    }

    pub fn has_sketch(&self) -> bool {
        self.sketch.chunks_exact(4).any(|p| p[3] != 0)
    }

    pub fn has_mask(&self) -> bool {
        self.mask.iter().any(|&m| m != 0)
    }

    /// The picture with the sketch composited over it: what the model is given (empty pixels white).
    pub fn composite(&self) -> Rgb8 {
        self.composite_rect(self.bounds())
    }

    /// The composite of the rectangle `r` alone (a job's frame on a large canvas).
    pub fn composite_rect(&self, r: Rect) -> Rgb8 {
        let mut pixels = Vec::with_capacity(r.area() * 3);
        for y in r.y0..r.y1 {
            let row = (y * self.width + r.x0) * 4..(y * self.width + r.x1) * 4;
            let (picture, sketch) = (&self.picture[row.clone()], &self.sketch[row]);
            for (p, s) in picture.chunks_exact(4).zip(sketch.chunks_exact(4)) {
                // empty (transparent) picture pixels show as white, as on paper
                let (pa, a) = (p[3] as u32, s[3] as u32);
                for c in 0..3 {
                    let base = (p[c] as u32 * pa + 255 * (255 - pa) + 127) / 255;
                    let v = (s[c] as u32 * a + base * (255 - a) + 127) / 255;
                    pixels.push(v as u8);
                }
            }
        }
        Rgb8 {
            width: r.x1 - r.x0,
            height: r.y1 - r.y0,
            pixels,
        }
    }

    /// The sketch over the picture with their alpha kept (straight RGBA8): what Export PNG writes
    /// for a canvas with empty pixels.
    pub fn composite_rgba(&self) -> Vec<u8> {
        (self
            .picture
            .chunks_exact(4)
            .zip(self.sketch.chunks_exact(4)))
        .flat_map(|(p, s)| super::brush::over(p, [s[0], s[1], s[2]], s[3] as f32 / 255.0))
        .collect()
    }

    /// The mask in [0, 1] per pixel (1 = regenerate).
    pub fn mask_f32(&self) -> Vec<f32> {
        self.mask.iter().map(|&m| m as f32 / 255.0).collect()
    }

    /// A document holding `picture`, opaque, with no strokes and an empty mask.
    pub fn from_picture(picture: &Rgb8) -> Self {
        let mut doc = Self::blank(picture.width, picture.height);
        doc.set_picture(picture);
        doc
    }

    /// A copy of what the document shows (layers, recipe, origin) without its undo history: what
    /// a save needs, at a fraction of a full clone's memory.
    pub fn snapshot(&self) -> Document {
        let mut copy = Document::blank(0, 0);
        copy.set_layers(self.layers());
        copy.recipe = self.recipe.clone();
        copy.revision = self.revision;
        copy
    }

    fn layers(&self) -> Layers {
        Layers {
            width: self.width,
            height: self.height,
            origin: self.origin,
            picture: self.picture.clone(),
            sketch: self.sketch.clone(),
            mask: self.mask.clone(),
        }
    }

    fn set_layers(&mut self, l: Layers) {
        (self.width, self.height, self.origin) = (l.width, l.height, l.origin);
        (self.picture, self.sketch, self.mask) = (l.picture, l.sketch, l.mask);
        let all = self.bounds();
        add_damage(&mut self.damage, all);
    }

    /// Starts an undoable action: remembers the layers as they are now.
    pub fn begin(&mut self) {
        if self.pending.is_none() {
            self.pending = Some(Snapshot {
                layers: self.layers(),
                recipe: self.recipe.clone(),
            });
        }
    }

    /// The state of `layer` when the open action began (the current state if none is open).
    pub fn before(&self, layer: Layer) -> &[u8] {
        match (&self.pending, layer) {
            (Some(s), Layer::Picture) => &s.layers.picture,
            (Some(s), Layer::Sketch) => &s.layers.sketch,
            (Some(s), Layer::Mask) => &s.layers.mask,
            (None, l) => self.layer(l),
        }
    }

    /// The whole document as a rectangle.
    pub fn bounds(&self) -> Rect {
        Rect {
            x0: 0,
            y0: 0,
            x1: self.width,
            y1: self.height,
        }
    }

    /// Marks a change anywhere (views re-upload everything).
    pub fn touch(&mut self) {
        self.revision += 1;
        let all = self.bounds();
        add_damage(&mut self.damage, all);
    }

    /// Marks a change within `r` inside an open action: views re-upload only `r`, and `commit`
    /// looks for the action's changes only in the rectangles so marked.
    pub fn touch_rect(&mut self, r: Rect) {
        self.revision += 1;
        add_damage(&mut self.damage, r);
        add_damage(&mut self.action_damage, r);
    }

    /// The rectangle changed since the last call (None: nothing changed).
    pub fn take_damage(&mut self) -> Option<Rect> {
        self.damage.take()
    }

    /// Ends the action: stores what changed (only the changed rectangle of each layer) as one undo
    /// step. An action that changed nothing leaves no step.
    pub fn commit(&mut self) {
        let Some(Snapshot {
            layers: before,
            recipe: recipe_before,
        }) = self.pending.take()
        else {
            return;
        };
        let marked = self.action_damage.take();
        if (before.width, before.height) != (self.width, self.height) {
            let after = self.layers();
            return self.push_step(UndoStep {
                patches: Vec::new(),
                resized: Some(Box::new((before, after))),
                recipe_before,
                recipe_after: self.recipe.clone(),
            });
        }
        let mut patches = Vec::new();
        for (layer, before) in [
            (Layer::Picture, before.picture),
            (Layer::Sketch, before.sketch),
            (Layer::Mask, before.mask),
        ] {
            let within = marked.unwrap_or(self.bounds());
            let rect = changed_rect(&before, self.layer(layer), self.width, layer, within);
            if rect.is_empty() {
                continue;
            }
            add_damage(&mut self.damage, rect);
            patches.push(Patch {
                layer,
                rect,
                before: copy_rect(&before, self.width, layer, rect),
                after: copy_rect(self.layer(layer), self.width, layer, rect),
            });
        }
        if patches.is_empty() && recipe_before == self.recipe {
            return;
        }
        self.push_step(UndoStep {
            patches,
            resized: None,
            recipe_before,
            recipe_after: self.recipe.clone(),
        });
    }

    fn push_step(&mut self, step: UndoStep) {
        self.revision += 1;
        self.redo.clear();
        self.undo.push(step);
        self.trim_undo();
    }

    fn trim_undo(&mut self) {
        let mut total: usize = self.undo.iter().map(UndoStep::bytes).sum();
        while self.undo.len() > UNDO_LEVELS || (total > UNDO_BUDGET_BYTES && self.undo.len() > 1) {
            total -= self.undo.remove(0).bytes();
        }
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// Memory the undo and redo steps hold (at most `UNDO_BUDGET_BYTES` for undo).
    pub fn undo_bytes(&self) -> usize {
        self.undo
            .iter()
            .chain(&self.redo)
            .map(UndoStep::bytes)
            .sum()
    }

    pub fn undo_len(&self) -> usize {
        self.undo.len()
    }

    pub fn undo(&mut self) -> bool {
        self.commit();
        let Some(step) = self.undo.pop() else {
            return false;
        };
        self.replay(&step, false);
        self.redo.push(step);
        true
    }

    pub fn redo(&mut self) -> bool {
        self.commit();
        let Some(step) = self.redo.pop() else {
            return false;
        };
        self.replay(&step, true);
        self.undo.push(step);
        true
    }

    /// Puts back the state after (`forward`) or before a step.
    fn replay(&mut self, step: &UndoStep, forward: bool) {
        if let Some(r) = &step.resized {
            self.set_layers(if forward { r.1.clone() } else { r.0.clone() });
        }
        let width = self.width;
        for p in &step.patches {
            add_damage(&mut self.damage, p.rect);
            let pixels = if forward { &p.after } else { &p.before };
            paste_rect(self.layer_mut(p.layer), width, p.layer, p.rect, pixels);
        }
        self.recipe = if forward {
            step.recipe_after.clone()
        } else {
            step.recipe_before.clone()
        };
        self.revision += 1;
    }

    /// Replaces the picture with a result and clears the sketch it was made from (one undo step).
    /// A picture of another size resizes the document to it (also one undo step).
    pub fn apply_result(&mut self, image: &Rgb8, recipe: Option<Recipe>) {
        self.begin();
        if (image.width, image.height) != (self.width, self.height) {
            let origin = self.origin;
            self.set_layers(Document::blank(image.width, image.height).layers());
            self.origin = origin;
        }
        self.set_picture(image);
        self.sketch.fill(0);
        self.recipe = recipe;
        self.commit();
    }

    fn set_picture(&mut self, image: &Rgb8) {
        for (dst, src) in self
            .picture
            .chunks_exact_mut(4)
            .zip(image.pixels.chunks_exact(3))
        {
            dst[..3].copy_from_slice(src);
            dst[3] = 255;
        }
    }

    /// Extend canvas: adds `n` transparent pixels on one side (one undo step). The new area counts as
    /// masked for inpainting (see `frame::FrameInput`); the painting keeps its pixels exactly.
    pub fn extend(&mut self, side: Side, n: usize) -> Result<(), String> {
        let (w, h) = match side {
            Side::Left | Side::Right => (self.width + n, self.height),
            Side::Up | Side::Down => (self.width, self.height + n),
        };
        if w > MAX_SIDE || h > MAX_SIDE {
            return Err(format!(
                "the canvas would be {w}×{h}; the largest is {MAX_SIDE}×{MAX_SIDE}"
            ));
        }
        if n == 0 {
            return Ok(());
        }
        let (dx, dy) = match side {
            Side::Left => (n, 0),
            Side::Up => (0, n),
            _ => (0, 0),
        };
        self.begin();
        let old = self.layers();
        let mut new = Document::blank(w, h).layers();
        new.picture.fill(0);
        new.origin = (old.origin.0 + dx as i64, old.origin.1 + dy as i64);
        for (layer, src, dst) in [
            (Layer::Picture, &old.picture, &mut new.picture),
            (Layer::Sketch, &old.sketch, &mut new.sketch),
            (Layer::Mask, &old.mask, &mut new.mask),
        ] {
            let row = old.width * layer.bytes_per_pixel();
            for y in 0..old.height {
                let at = ((y + dy) * w + dx) * layer.bytes_per_pixel();
                dst[at..at + row].copy_from_slice(&src[y * row..(y + 1) * row]);
            }
        }
        self.set_layers(new);
        self.recipe = None;
        self.commit();
        Ok(())
    }

    /// Whether any pixel of the picture is transparent (left empty by Extend canvas).
    pub fn has_empty(&self) -> bool {
        self.picture.chunks_exact(4).any(|p| p[3] < 255)
    }

    pub fn clear_mask(&mut self) {
        self.begin();
        self.mask.fill(0);
        self.commit();
    }

    pub fn invert_mask(&mut self) {
        self.begin();
        self.mask.iter_mut().for_each(|m| *m = 255 - *m);
        self.commit();
    }

    pub fn clear_sketch(&mut self) {
        self.begin();
        self.sketch.fill(0);
        self.commit();
    }
}

/// Bounding rectangle of the pixels within `within` that differ between two versions of a layer.
fn changed_rect(a: &[u8], b: &[u8], width: usize, layer: Layer, within: Rect) -> Rect {
    let bpp = layer.bytes_per_pixel();
    let mut r = Rect {
        x0: usize::MAX,
        y0: usize::MAX,
        x1: 0,
        y1: 0,
    };
    for y in within.y0..within.y1 {
        let row = (y * width + within.x0) * bpp..(y * width + within.x1) * bpp;
        let (ra, rb) = (&a[row.clone()], &b[row]);
        if ra == rb {
            continue;
        }
        for (i, (pa, pb)) in ra.chunks_exact(bpp).zip(rb.chunks_exact(bpp)).enumerate() {
            if pa != pb {
                let x = within.x0 + i;
                r.x0 = r.x0.min(x);
                r.x1 = r.x1.max(x + 1);
            }
        }
        r.y0 = r.y0.min(y);
        r.y1 = r.y1.max(y + 1);
    }
    r
}

/// The pixels of `r` in a layer, row by row.
pub fn copy_rect(data: &[u8], width: usize, layer: Layer, r: Rect) -> Vec<u8> {
    let bpp = layer.bytes_per_pixel();
    let mut out = Vec::with_capacity((r.x1 - r.x0) * (r.y1 - r.y0) * bpp);
    for y in r.y0..r.y1 {
        out.extend_from_slice(&data[(y * width + r.x0) * bpp..(y * width + r.x1) * bpp]);
    }
    out
}

fn paste_rect(data: &mut [u8], width: usize, layer: Layer, r: Rect, patch: &[u8]) {
    let bpp = layer.bytes_per_pixel();
    let row = (r.x1 - r.x0) * bpp;
    for (i, y) in (r.y0..r.y1).enumerate() {
        data[(y * width + r.x0) * bpp..(y * width + r.x1) * bpp]
            .copy_from_slice(&patch[i * row..(i + 1) * row]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_and_redo_restore_exact_layers() {
        let mut d = Document::blank(8, 8);
        let start = d.clone();
        d.begin();
        d.sketch[4 * 9..4 * 9 + 4].copy_from_slice(&[10, 20, 30, 255]);
        d.mask[63] = 200;
        d.commit();
        let painted = (d.sketch.clone(), d.mask.clone());
        assert!(d.undo());
        assert_eq!(
            (d.sketch.clone(), d.mask.clone()),
            (start.sketch, start.mask)
        );
        assert!(d.redo());
        assert_eq!((d.sketch.clone(), d.mask.clone()), painted);
        assert!(!d.redo());
    }

    #[test]
    fn undo_keeps_the_newest_levels_only() {
        let mut d = Document::blank(4, 4);
        for i in 0..UNDO_LEVELS + 50 {
            d.begin();
            d.mask[i % 16] = d.mask[i % 16].wrapping_add(1);
            d.commit();
        }
        assert_eq!(d.undo_len(), UNDO_LEVELS);
        // A no-op action leaves no step.
        d.begin();
        d.commit();
        assert_eq!(d.undo_len(), UNDO_LEVELS);
    }

    #[test]
    fn composite_blends_the_sketch_over_the_picture() {
        let mut d = Document::blank(1, 1);
        d.sketch.copy_from_slice(&[0, 0, 0, 255]);
        assert_eq!(d.composite().pixels, vec![0, 0, 0]);
        d.sketch.copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(d.composite().pixels, vec![255, 255, 255]);
    }
}
