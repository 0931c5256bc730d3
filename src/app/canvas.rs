//! The canvas widget: view (zoom, pan), pointer input turned into strokes, and drawing — through the
//! WGSL compositor when the app runs on wgpu, else as a plain egui texture composited on the CPU.

use super::canvas_gpu::{CanvasCallback, LayerData, Uniforms};
use crate::paint::brush::{BrushSettings, Stroke, Tool, pick};
use crate::paint::document::Document;
use crate::paint::frame::Frame;
use crate::picture::Rgb8;
use eframe::egui::{self, Color32, PointerButton, Pos2, Rect, Sense, Vec2};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub const MIN_ZOOM: f32 = 0.25;
pub const MAX_ZOOM: f32 = 64.0;
const MASK_COLOUR: [f32; 3] = [1.0, 0.15, 0.35];
const MASK_OPACITY: f32 = 0.55;
const BACKGROUND: Color32 = Color32::from_gray(38);
/// How much the canvas outside the generation frame is darkened.
const FRAME_DIM: f32 = 0.45;

/// Half the side of a frame's corner handle, in screen points.
const HANDLE: f32 = 5.0;

/// The generation frame as the canvas edits it: dragged by the Frame tool, resized from its corner
/// handles with any tool, never smaller than `min` (the model's size) nor outside the document.
pub struct FrameEdit<'a> {
    pub frame: &'a mut Frame,
    pub min: usize,
    pub shown: bool,
}

/// A frame being dragged: from where (image coordinates), and what it was then.
#[derive(Debug, Clone, Copy)]
struct FrameDrag {
    start: (f32, f32),
    was: Frame,
    /// None: moving; else the corner that stays put while the opposite one follows the pointer.
    anchor: Option<(usize, usize)>,
}

/// A picture shown instead of the document (a History result held for Compare, a step preview),
/// the document's size; `key` changes whenever the picture does.
#[derive(Clone, Copy)]
pub struct Compare<'a> {
    pub image: &'a Rgb8,
    pub key: u64,
}

/// What happened on the canvas this frame that the app acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanvasEvent {
    None,
    StrokeEnded,
    Picked,
}

pub struct Canvas {
    /// Screen points per image pixel.
    pub zoom: f32,
    /// Offset of the image centre from the canvas centre, in points.
    pub pan: Vec2,
    /// Fit the image to the view on the next frame.
    pub fit_pending: bool,
    /// The view was last fitted and not zoomed or panned since: it fits again when the canvas area
    /// changes size (the window, the panels laying out on the first frames).
    fitted: bool,
    pub show_mask: bool,
    /// Whether the wgpu compositor is registered (else the CPU fallback draws).
    pub gpu: bool,
    stroke: Option<Stroke>,
    frame_drag: Option<FrameDrag>,
    panning: bool,
    /// The layers last handed to the compositor.
    layers: Option<Arc<LayerData>>,
    /// Set by the compositor when it could not apply a patch (it missed the one before).
    needs_full: Arc<AtomicBool>,
    compare_key: Option<u64>,
    fallback: Option<(egui::TextureHandle, (u64, Option<u64>))>,
    last_rect: Rect,
    /// Layer bytes handed to the compositor on the last frame (0 when nothing changed).
    pub last_upload_bytes: usize,
}

impl Canvas {
    pub fn new(gpu: bool) -> Self {
        Self {
            zoom: 1.0,
            pan: Vec2::ZERO,
            fit_pending: true,
            fitted: false,
            show_mask: true,
            gpu,
            stroke: None,
            frame_drag: None,
            panning: false,
            layers: None,
            needs_full: Arc::new(AtomicBool::new(true)),
            compare_key: None,
            fallback: None,
            last_rect: Rect::NOTHING,
            last_upload_bytes: 0,
        }
    }

    pub fn is_stroking(&self) -> bool {
        self.stroke.is_some()
    }

    /// The frame's rectangle on screen.
    pub fn frame_rect(&self, doc: &Document, f: Frame) -> Rect {
        let r = self.image_rect(doc);
        let min = r.min + Vec2::new(f.x as f32, f.y as f32) * self.zoom;
        Rect::from_min_size(min, Vec2::splat(f.size as f32 * self.zoom))
    }

    /// The frame corner (image coordinates) whose handle is under `pos`, and the opposite corner.
    fn handle_at(&self, doc: &Document, f: Frame, pos: Pos2) -> Option<(usize, usize)> {
        let r = self.frame_rect(doc, f);
        let (x0, y0, x1, y1) = (f.x, f.y, f.x + f.size, f.y + f.size);
        [
            (r.left_top(), (x1, y1)),
            (r.right_top(), (x0, y1)),
            (r.left_bottom(), (x1, y0)),
            (r.right_bottom(), (x0, y0)),
        ]
        .into_iter()
        .find(|(corner, _)| (*corner - pos).abs().max_elem() <= HANDLE + 2.0)
        .map(|(_, anchor)| anchor)
    }

    /// Ctrl+0: the largest integer zoom that fits (or a fraction for huge images).
    pub fn fit(&mut self, doc: &Document) {
        let avail = self.last_rect.size() * 0.92;
        if avail.x <= 0.0 {
            self.fit_pending = true;
            return;
        }
        let z = (avail.x / doc.width as f32).min(avail.y / doc.height as f32);
        self.zoom = if z >= 1.0 { z.floor() } else { z }.clamp(MIN_ZOOM, MAX_ZOOM);
        self.pan = Vec2::ZERO;
        self.fit_pending = false;
        self.fitted = true;
    }

    /// Ctrl+1: one screen point per image pixel.
    pub fn actual_size(&mut self) {
        self.zoom = 1.0;
        self.pan = Vec2::ZERO;
        self.fitted = false;
    }

    /// The image's rectangle on screen.
    pub fn image_rect(&self, doc: &Document) -> Rect {
        let size = Vec2::new(doc.width as f32, doc.height as f32) * self.zoom;
        Rect::from_center_size(self.last_rect.center() + self.pan, size)
    }

    /// Screen position → image coordinates (pixel centres at i + 0.5).
    pub fn to_image(&self, doc: &Document, pos: Pos2) -> (f32, f32) {
        let r = self.image_rect(doc);
        ((pos.x - r.min.x) / self.zoom, (pos.y - r.min.y) / self.zoom)
    }

    /// Shows the canvas filling `ui`, handles its input, and draws it. `compare` replaces the
    /// picture (and hides the sketch) while the user compares a result with the canvas.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        doc: &mut Document,
        tool: Tool,
        brush: &mut BrushSettings,
        compare: Option<Compare>,
        mut frame: FrameEdit,
    ) -> CanvasEvent {
        let rect = ui.available_rect_before_wrap();
        let response = ui.allocate_rect(rect, Sense::click_and_drag());
        let resized = rect.size() != self.last_rect.size();
        self.last_rect = rect;
        if self.fit_pending || (self.fitted && resized) {
            self.fit(doc);
        }
        frame.shown |= tool == Tool::Frame;
        let event = self.handle_input(ui, &response, doc, tool, brush, &mut frame);
        let frame_rect = self.frame_rect(doc, *frame.frame);

        let painter = ui.painter_at(rect);
        let image_rect = self.image_rect(doc);
        let hover = response.hover_pos().filter(|_| !self.panning);
        let show_mask = self.show_mask && compare.is_none();
        if self.gpu {
            let ppp = ui.ctx().pixels_per_point();
            let cursor = match (hover, tool) {
                (Some(p), Tool::Brush | Tool::Eraser | Tool::Mask) => [
                    p.x * ppp,
                    p.y * ppp,
                    brush.size * 0.5 * self.zoom * ppp,
                    1.0,
                ],
                _ => [0.0; 4],
            };
            let bg = BACKGROUND.to_normalized_gamma_f32();
            let uniforms = Uniforms {
                image_rect: physical(image_rect, ppp),
                image_info: [
                    doc.width as f32,
                    doc.height as f32,
                    (8.0 * ppp).round(),
                    MASK_OPACITY,
                ],
                mask_colour: [
                    MASK_COLOUR[0],
                    MASK_COLOUR[1],
                    MASK_COLOUR[2],
                    if show_mask { 1.0 } else { 0.0 },
                ],
                cursor,
                background: bg,
                frame: physical(frame_rect, ppp),
                frame_info: [
                    if frame.shown { 1.0 } else { 0.0 },
                    (HANDLE * ppp).round(),
                    FRAME_DIM,
                    0.0,
                ],
            };
            let layers = self.layer_data(doc, compare);
            painter.add(CanvasCallback { layers, uniforms }.paint_callback(rect));
        } else {
            painter.rect_filled(rect, 0.0, BACKGROUND);
            let texture = self.fallback_texture(ui.ctx(), doc, compare, show_mask);
            painter.image(
                texture.id(),
                image_rect,
                Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
                Color32::WHITE,
            );
            if frame.shown {
                draw_frame(&painter, image_rect, frame_rect);
            }
            if let (Some(p), Tool::Brush | Tool::Eraser | Tool::Mask) = (hover, tool) {
                let r = brush.size * 0.5 * self.zoom;
                painter.circle_stroke(p, r, egui::Stroke::new(1.0, Color32::BLACK));
                painter.circle_stroke(p, r + 1.0, egui::Stroke::new(1.0, Color32::WHITE));
            }
        }
        let on_handle = hover
            .filter(|_| frame.shown)
            .and_then(|p| self.handle_at(doc, *frame.frame, p));
        let icon = match (on_handle, self.frame_drag, tool) {
            (Some(_), _, _)
            | (
                _,
                Some(FrameDrag {
                    anchor: Some(_), ..
                }),
                _,
            ) => Some(egui::CursorIcon::ResizeNwSe),
            (_, Some(_), _) => Some(egui::CursorIcon::Grabbing),
            (_, _, Tool::Frame) => Some(egui::CursorIcon::Grab),
            (_, _, Tool::Brush | Tool::Eraser | Tool::Mask) => Some(egui::CursorIcon::None),
            _ => None,
        };
        if let (Some(_), Some(icon)) = (hover, icon) {
            ui.ctx().set_cursor_icon(icon);
        }
        event
    }

    fn handle_input(
        &mut self,
        ui: &egui::Ui,
        response: &egui::Response,
        doc: &mut Document,
        tool: Tool,
        brush: &mut BrushSettings,
        frame: &mut FrameEdit,
    ) -> CanvasEvent {
        let (space, events, scroll, zoom_delta, hover) = ui.input(|i| {
            (
                i.key_down(egui::Key::Space),
                i.events.clone(),
                i.smooth_scroll_delta.y,
                i.zoom_delta(),
                i.pointer.hover_pos(),
            )
        });
        // Zoom about the pointer: wheel, Ctrl+wheel or pinch.
        if response.hovered() {
            let factor = zoom_delta * (scroll / 200.0).exp();
            if (factor - 1.0).abs() > 1e-4
                && let Some(p) = hover
            {
                let new_zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
                let centre = self.last_rect.center() + self.pan;
                self.pan += (p - centre) * (1.0 - new_zoom / self.zoom);
                self.zoom = new_zoom;
                self.fitted = false;
            }
        }
        // Pan: middle drag, or Space + left drag.
        let pan_drag = response.dragged_by(PointerButton::Middle)
            || (space && response.dragged_by(PointerButton::Primary));
        if pan_drag && self.stroke.is_none() {
            self.panning = true;
            self.pan += response.drag_delta();
            self.fitted = false;
            return CanvasEvent::None;
        }
        if self.panning && !response.dragged() {
            self.panning = false;
        }

        let mut event = CanvasEvent::None;
        // A press that a window, menu or dialog over the canvas takes is not the canvas's: the raw
        // events below know nothing of layers, the response does.
        let pressable = response.contains_pointer() && !space;
        for e in &events {
            match e {
                egui::Event::PointerButton {
                    pos,
                    button: PointerButton::Primary,
                    pressed: true,
                    ..
                } if self.last_rect.contains(*pos) && pressable => {
                    let (x, y) = self.to_image(doc, *pos);
                    let f = *frame.frame;
                    let handle = frame.shown.then(|| self.handle_at(doc, f, *pos)).flatten();
                    let inside = |v: f32, lo: usize| v >= lo as f32 && v < (lo + f.size) as f32;
                    if handle.is_some() || (tool == Tool::Frame && inside(x, f.x) && inside(y, f.y))
                    {
                        self.frame_drag = Some(FrameDrag {
                            start: (x, y),
                            was: f,
                            anchor: handle,
                        });
                    } else if tool == Tool::Picker {
                        if let Some(c) = pick(doc, x.max(0.0) as usize, y.max(0.0) as usize) {
                            brush.primary = c;
                            event = CanvasEvent::Picked;
                        }
                    } else if self.stroke.is_none() && tool != Tool::Frame {
                        // painting the mask shows it (it is hidden after an inpaint)
                        self.show_mask |= tool == Tool::Mask;
                        let mut s = Stroke::begin(doc, tool, brush);
                        s.extend_to(doc, x, y);
                        self.stroke = Some(s);
                    }
                }
                egui::Event::PointerMoved(pos) => {
                    let (x, y) = self.to_image(doc, *pos);
                    if let Some(drag) = self.frame_drag {
                        *frame.frame = drag.follow((x, y), doc, frame.min);
                    }
                    if let Some(s) = &mut self.stroke {
                        s.extend_to(doc, x, y);
                    }
                }
                egui::Event::PointerButton {
                    button: PointerButton::Primary,
                    pressed: false,
                    ..
                }
                | egui::Event::PointerGone => {
                    self.frame_drag = None;
                    if let Some(s) = self.stroke.take() {
                        s.end(doc);
                        event = CanvasEvent::StrokeEnded;
                    }
                }
                _ => {}
            }
        }
        event
    }

    /// The layers as the compositor wants them: the whole layers when the document's size changed,
    /// the compositor asked for them, or a Compare view comes or goes; else only the rectangle the
    /// document changed since the last frame (a brush dab, a frame's result), or nothing at all.
    fn layer_data(&mut self, doc: &mut Document, compare: Option<Compare>) -> Arc<LayerData> {
        self.last_upload_bytes = 0;
        let damage = doc.take_damage();
        let size = (doc.width as u32, doc.height as u32);
        let previous = self.layers.as_ref().map(|l| (l.seq, (l.width, l.height)));
        let compare_key = compare.as_ref().map(|c| c.key);
        let full = self.needs_full.swap(false, Ordering::Relaxed)
            || previous.is_none_or(|(_, s)| s != size)
            || compare_key != self.compare_key;
        self.compare_key = compare_key;
        let seq = previous.map_or(0, |(seq, _)| seq + 1);
        let layers = match (compare, full, damage) {
            (Some(c), true, _) => {
                let blank = vec![0; doc.width * doc.height * 4];
                LayerData::whole(seq, size, rgb_to_rgba(c.image), blank, doc.mask.clone())
            }
            (None, true, _) => LayerData::whole(
                seq,
                size,
                doc.picture.clone(),
                doc.sketch.clone(),
                doc.mask.clone(),
            ),
            // a Compare view hides the document's changes until it goes (then all is re-sent)
            (Some(_), false, _) | (None, false, None) => {
                return self.layers.clone().expect("sent before");
            }
            (None, false, Some(r)) => LayerData::patch(seq, seq - 1, doc, r),
        };
        let layers = Arc::new(LayerData {
            needs_full: self.needs_full.clone(),
            ..layers
        });
        self.last_upload_bytes = layers.bytes();
        self.layers = Some(layers.clone());
        layers
    }

    fn fallback_texture(
        &mut self,
        ctx: &egui::Context,
        doc: &Document,
        compare: Option<Compare>,
        show_mask: bool,
    ) -> egui::TextureHandle {
        let key = (
            doc.revision ^ (show_mask as u64) << 63,
            compare.map(|c| c.key),
        );
        if let Some((t, k)) = &self.fallback
            && *k == key
        {
            return t.clone();
        }
        let base = match compare {
            Some(c) => c.image.clone(),
            None => doc.composite(),
        };
        let mut pixels = Vec::with_capacity(doc.width * doc.height);
        for (i, p) in base.pixels.chunks_exact(3).enumerate() {
            let m = if show_mask {
                doc.mask[i] as f32 / 255.0 * MASK_OPACITY
            } else {
                0.0
            };
            let mix = |c: u8, k: usize| (c as f32 * (1.0 - m) + MASK_COLOUR[k] * 255.0 * m) as u8;
            pixels.push(Color32::from_rgb(mix(p[0], 0), mix(p[1], 1), mix(p[2], 2)));
        }
        let image = egui::ColorImage::new([doc.width, doc.height], pixels);
        let texture = match self.fallback.take() {
            Some((mut t, _)) => {
                t.set(image, egui::TextureOptions::NEAREST);
                t
            }
            None => ctx.load_texture("canvas", image, egui::TextureOptions::NEAREST),
        };
        self.fallback = Some((texture.clone(), key));
        texture
    }
}

impl FrameDrag {
    /// The frame with the pointer at `(x, y)`: moved by whole pixels, or resized (square) from the
    /// anchored corner, kept inside the document and at least `min` on a side (the App fits it to
    /// the model after the canvas, in `App::job_frame`).
    fn follow(&self, (x, y): (f32, f32), doc: &Document, min: usize) -> Frame {
        let (w, h) = (doc.width, doc.height);
        let was = self.was;
        let Some((ax, ay)) = self.anchor else {
            let dx = (x - self.start.0).round() as i64;
            let dy = (y - self.start.1).round() as i64;
            let clamp = |v: i64, room: usize| v.clamp(0, room as i64) as usize;
            return Frame {
                x: clamp(was.x as i64 + dx, w - was.size),
                y: clamp(was.y as i64 + dy, h - was.size),
                size: was.size,
            };
        };
        let (right, down) = (x >= ax as f32, y >= ay as f32);
        let room_x = if right { w - ax } else { ax };
        let room_y = if down { h - ay } else { ay };
        let wanted = (x - ax as f32).abs().max((y - ay as f32).abs()).round() as usize;
        let size = wanted.min(room_x).min(room_y).max(min.min(w).min(h));
        let place = |anchor: usize, forward: bool, room: usize| {
            if forward {
                anchor.min(room - size)
            } else {
                anchor.saturating_sub(size)
            }
        };
        Frame {
            x: place(ax, right, w),
            y: place(ay, down, h),
            size,
        }
    }
}

/// The frame on the CPU path: the outside dimmed, a two-tone outline and corner handles (the wgpu
/// path draws the same in canvas.wgsl).
fn draw_frame(painter: &egui::Painter, image: Rect, frame: Rect) {
    let dim = Color32::from_black_alpha((FRAME_DIM * 255.0) as u8);
    for r in [
        Rect::from_min_max(image.min, Pos2::new(image.max.x, frame.min.y)),
        Rect::from_min_max(Pos2::new(image.min.x, frame.max.y), image.max),
        Rect::from_min_max(
            Pos2::new(image.min.x, frame.min.y),
            Pos2::new(frame.min.x, frame.max.y),
        ),
        Rect::from_min_max(
            Pos2::new(frame.max.x, frame.min.y),
            Pos2::new(image.max.x, frame.max.y),
        ),
    ] {
        if r.is_positive() {
            painter.rect_filled(r, 0.0, dim);
        }
    }
    let outline = |r: Rect, c| painter.rect_stroke(r, 0.0, (1.0, c), egui::StrokeKind::Middle);
    outline(frame.expand(1.0), Color32::BLACK);
    outline(frame, Color32::WHITE);
    for corner in [
        frame.left_top(),
        frame.right_top(),
        frame.left_bottom(),
        frame.right_bottom(),
    ] {
        let handle = Rect::from_center_size(corner, Vec2::splat(2.0 * HANDLE));
        painter.rect_filled(handle, 0.0, Color32::WHITE);
        outline(handle, Color32::BLACK);
    }
}

/// A rectangle in physical pixels (min.x, min.y, max.x, max.y), as the compositor's uniforms hold them.
fn physical(r: Rect, ppp: f32) -> [f32; 4] {
    [r.min.x * ppp, r.min.y * ppp, r.max.x * ppp, r.max.y * ppp]
}

pub fn rgb_to_rgba(img: &Rgb8) -> Vec<u8> {
    img.pixels
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect()
}

/// A small label in the canvas's top-left corner (the "preview" badge of a running job's step).
pub fn badge(ui: &egui::Ui, text: &str) {
    let rect = ui.max_rect();
    let painter = ui.painter();
    let galley = painter.layout_no_wrap(
        text.to_owned(),
        egui::FontId::proportional(13.0),
        Color32::WHITE,
    );
    let pos = rect.min + Vec2::splat(8.0);
    let frame = Rect::from_min_size(pos, galley.size()).expand2(Vec2::new(6.0, 3.0));
    painter.rect_filled(frame, 4.0, Color32::from_black_alpha(170));
    painter.galley(pos, galley, Color32::WHITE);
}
