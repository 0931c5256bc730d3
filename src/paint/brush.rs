//! Tools and strokes. A stroke keeps, per pixel, the largest coverage any of its dabs gave, and each
//! change repaints from the layer as it was before the stroke — so overlapping dabs never darken a
//! stroke (opacity is per stroke, as in Krita's "wash" mode) and dabs are placed densely enough along
//! the pointer's path that fast movement draws a line, not dots.

use super::document::{Document, Layer, Rect, copy_rect};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Brush,
    Eraser,
    /// Paints the inpainting mask (or erases it, with `mask_erase`).
    Mask,
    Picker,
    /// Moves and resizes the generation frame (its corner handles also work with any tool).
    Frame,
}

impl Tool {
    pub fn label(self) -> &'static str {
        match self {
            Tool::Brush => "Brush (B)",
            Tool::Eraser => "Eraser (E)",
            Tool::Mask => "Mask (M)",
            Tool::Picker => "Picker (I)",
            Tool::Frame => "Frame (V)",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BrushSettings {
    /// Diameter in image pixels.
    pub size: f32,
    /// 1 = hard edge; 0 = soft all the way from the centre.
    pub hardness: f32,
    pub opacity: f32,
    pub primary: [u8; 3],
    pub secondary: [u8; 3],
    /// The mask tool removes mask instead of adding it.
    pub mask_erase: bool,
}

impl Default for BrushSettings {
    fn default() -> Self {
        Self {
            size: 4.0,
            hardness: 0.8,
            opacity: 1.0,
            primary: [0, 0, 0],
            secondary: [255, 255, 255],
            mask_erase: false,
        }
    }
}

pub const MIN_SIZE: f32 = 1.0;
pub const MAX_SIZE: f32 = 256.0;

impl BrushSettings {
    /// `[` and `]`: a step of about 15 %, at least one pixel.
    pub fn grow(&mut self, up: bool) {
        let step = (self.size * 0.15).max(1.0);
        self.size = if up {
            self.size + step
        } else {
            self.size - step
        }
        .clamp(MIN_SIZE, MAX_SIZE);
    }

    pub fn swap_colours(&mut self) {
        std::mem::swap(&mut self.primary, &mut self.secondary);
    }

    /// Coverage of a dab at distance `d` from its centre.
    fn coverage(&self, d: f32) -> f32 {
        let r = self.size / 2.0;
        // Single-pixel brushes cover their pixel fully.
        if d > r.max(0.5) {
            return 0.0;
        }
        let t = d / r.max(0.5);
        let hard = self.hardness.clamp(0.0, 1.0);
        if t <= hard {
            1.0
        } else {
            ((1.0 - t) / (1.0 - hard)).clamp(0.0, 1.0)
        }
    }
}

/// A stroke in progress on one layer.
#[derive(Debug, Clone)]
pub struct Stroke {
    tool: Tool,
    settings: BrushSettings,
    width: usize,
    coverage: Vec<f32>,
    last: Option<(f32, f32)>,
}

impl Stroke {
    /// Starts a stroke (opens an undo step on the document).
    pub fn begin(doc: &mut Document, tool: Tool, settings: &BrushSettings) -> Self {
        doc.begin();
        Self {
            tool,
            settings: settings.clone(),
            width: doc.width,
            coverage: vec![0.0; doc.width * doc.height],
            last: None,
        }
    }

    fn layer(&self) -> Layer {
        match self.tool {
            Tool::Mask => Layer::Mask,
            _ => Layer::Sketch,
        }
    }

    /// Extends the stroke to `(x, y)` in image coordinates (pixel centres at i + 0.5).
    pub fn extend_to(&mut self, doc: &mut Document, x: f32, y: f32) {
        let from = self.last.unwrap_or((x, y));
        let spacing = (self.settings.size * 0.15).clamp(0.25, 4.0);
        let len = ((x - from.0).powi(2) + (y - from.1).powi(2)).sqrt();
        let dabs = (len / spacing).ceil().max(1.0) as usize;
        for i in 1..=dabs {
            let t = i as f32 / dabs as f32;
            self.dab(from.0 + (x - from.0) * t, from.1 + (y - from.1) * t);
        }
        if self.last.is_none() {
            self.dab(x, y);
        }
        self.last = Some((x, y));
        self.repaint(doc, x, y, from);
    }

    fn dab(&mut self, cx: f32, cy: f32) {
        let (w, h) = self.dims();
        let r = self.settings.size / 2.0 + 1.0;
        let (x0, x1) = (
            (cx - r).floor().max(0.0) as usize,
            ((cx + r).ceil().max(0.0) as usize).min(w),
        );
        let (y0, y1) = (
            (cy - r).floor().max(0.0) as usize,
            ((cy + r).ceil().max(0.0) as usize).min(h),
        );
        for y in y0..y1 {
            for x in x0..x1 {
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                let c = self.settings.coverage(d);
                let slot = &mut self.coverage[y * w + x];
                *slot = slot.max(c);
            }
        }
    }

    fn dims(&self) -> (usize, usize) {
        (self.width, self.coverage.len() / self.width.max(1))
    }

    /// Recomposes the pixels around the last segment from the pre-stroke layer and the coverage.
    fn repaint(&mut self, doc: &mut Document, x: f32, y: f32, from: (f32, f32)) {
        let layer = self.layer();
        let r = self.settings.size / 2.0 + 2.0;
        let (w, h) = (doc.width, doc.height);
        // Pointer positions may lie anywhere, even far off the image: clamp to it.
        let x0 = ((x.min(from.0) - r).floor().max(0.0) as usize).min(w);
        let y0 = ((y.min(from.1) - r).floor().max(0.0) as usize).min(h);
        let x1 = ((x.max(from.0) + r).ceil().max(0.0) as usize).min(w);
        let y1 = ((y.max(from.1) + r).ceil().max(0.0) as usize).min(h);
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let before = copy_rect(doc.before(layer), w, layer, Rect { x0, y0, x1, y1 });
        let opacity = self.settings.opacity.clamp(0.0, 1.0);
        let colour = self.settings.primary;
        let (tool, erase_mask) = (self.tool, self.settings.mask_erase);
        let out = doc.layer_mut(layer);
        let mut k = 0;
        for yy in y0..y1 {
            for xx in x0..x1 {
                let i = yy * w + xx;
                let a = self.coverage[i] * opacity;
                match tool {
                    Tool::Brush => {
                        let b = &before[k * 4..k * 4 + 4];
                        let px = over(b, colour, a);
                        out[i * 4..i * 4 + 4].copy_from_slice(&px);
                    }
                    Tool::Eraser => {
                        let b = &before[k * 4..k * 4 + 4];
                        out[i * 4..i * 4 + 3].copy_from_slice(&b[..3]);
                        out[i * 4 + 3] = (b[3] as f32 * (1.0 - a)).round() as u8;
                    }
                    Tool::Mask => {
                        let b = before[k] as f32;
                        let v = if erase_mask {
                            b * (1.0 - a)
                        } else {
                            b + (255.0 - b) * a
                        };
                        out[i] = v.round() as u8;
                    }
                    Tool::Picker | Tool::Frame => {}
                }
                k += 1;
            }
        }
        doc.touch_rect(Rect { x0, y0, x1, y1 });
    }

    /// Ends the stroke: one undo step.
    pub fn end(self, doc: &mut Document) {
        doc.commit();
    }
}

/// `colour` at coverage `a` over a straight-alpha RGBA pixel.
pub(crate) fn over(b: &[u8], colour: [u8; 3], a: f32) -> [u8; 4] {
    let ba = b[3] as f32 / 255.0;
    let out_a = a + ba * (1.0 - a);
    if out_a <= 0.0 {
        return [0, 0, 0, 0];
    }
    let mut px = [0u8; 4];
    for c in 0..3 {
        let v = (colour[c] as f32 * a + b[c] as f32 * ba * (1.0 - a)) / out_a;
        px[c] = v.round().clamp(0.0, 255.0) as u8;
    }
    px[3] = (out_a * 255.0).round() as u8;
    px
}

/// The colour under `(x, y)` in the composite (picture with sketch), for the picker.
pub fn pick(doc: &Document, x: usize, y: usize) -> Option<[u8; 3]> {
    if x >= doc.width || y >= doc.height {
        return None;
    }
    let i = (y * doc.width + x) * 3;
    let c = doc.composite();
    Some([c.pixels[i], c.pixels[i + 1], c.pixels[i + 2]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(size: f32) -> BrushSettings {
        BrushSettings {
            size,
            hardness: 1.0,
            ..Default::default()
        }
    }

    #[test]
    fn a_fast_drag_draws_a_continuous_line() {
        let mut doc = Document::blank(32, 8);
        let mut s = Stroke::begin(&mut doc, Tool::Brush, &settings(2.0));
        s.extend_to(&mut doc, 1.5, 4.0);
        s.extend_to(&mut doc, 30.5, 4.0); // one pointer event 29 px later
        s.end(&mut doc);
        for x in 1..31 {
            assert_eq!(doc.sketch[(4 * 32 + x) * 4 + 3], 255, "gap at x = {x}");
        }
        assert!(doc.undo());
        assert!(!doc.has_sketch());
    }

    #[test]
    fn overlapping_dabs_do_not_build_up_opacity() {
        let mut doc = Document::blank(16, 16);
        let mut b = settings(6.0);
        b.opacity = 0.5;
        let mut s = Stroke::begin(&mut doc, Tool::Brush, &b);
        for _ in 0..10 {
            s.extend_to(&mut doc, 8.0, 8.0);
        }
        s.end(&mut doc);
        assert_eq!(doc.sketch[(8 * 16 + 8) * 4 + 3], 128);
    }

    #[test]
    fn strokes_off_the_image_change_nothing_and_never_panic() {
        let mut doc = Document::blank(8, 8);
        for tool in [Tool::Brush, Tool::Eraser, Tool::Mask] {
            let mut s = Stroke::begin(&mut doc, tool, &settings(3.0));
            for (x, y) in [
                (40.0, 3.0),
                (9.5, -20.0),
                (-1e6, 1e6),
                (f32::NAN, 2.0),
                (100.0, 100.0),
            ] {
                s.extend_to(&mut doc, x, y);
            }
            s.end(&mut doc);
        }
        assert!(!doc.has_sketch() && !doc.has_mask() && !doc.can_undo());
    }

    #[test]
    fn mask_brush_paints_and_erases() {
        let mut doc = Document::blank(8, 8);
        let mut b = settings(3.0);
        let mut s = Stroke::begin(&mut doc, Tool::Mask, &b);
        s.extend_to(&mut doc, 4.0, 4.0);
        s.end(&mut doc);
        assert_eq!(doc.mask[3 * 8 + 3], 255);
        b.mask_erase = true;
        let mut s = Stroke::begin(&mut doc, Tool::Mask, &b);
        s.extend_to(&mut doc, 4.0, 4.0);
        s.end(&mut doc);
        assert!(!doc.has_mask());
    }
}
