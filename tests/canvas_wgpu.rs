//! The WGSL canvas compositor rendered for real through wgpu (Mesa's lavapipe when headless): exact
//! pixel checks of the layer compositing and nearest-neighbour magnification, plus a snapshot of the
//! whole canvas (tests/snapshots/canvas.png; `UPDATE_SNAPSHOTS=1 cargo test` rewrites it).

use cmpaint::app::canvas::{Canvas, FrameEdit};
use cmpaint::app::canvas_gpu;
use cmpaint::paint::brush::{BrushSettings, Tool};
use cmpaint::paint::document::Document;
use cmpaint::paint::frame::Frame;
use eframe::egui::{self, Vec2};
use eframe::egui_wgpu::RendererOptions;
use egui_kittest::Harness;
use egui_kittest::wgpu::{WgpuTestRenderer, create_render_state, default_wgpu_setup};

const SIDE: usize = 8;
const ZOOM: f32 = 16.0;

/// An 8×8 picture: red ramp left to right, green top to bottom; a half-transparent blue sketch
/// pixel at (2, 5); the mask over the right-most column.
fn document() -> Document {
    let mut d = Document::blank(SIDE, SIDE);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let i = (y * SIDE + x) * 4;
            d.picture[i..i + 4].copy_from_slice(&[(x * 32) as u8, (y * 32) as u8, 40, 255]);
        }
    }
    let s = (5 * SIDE + 2) * 4;
    d.sketch[s..s + 4].copy_from_slice(&[0, 0, 255, 128]);
    for y in 0..SIDE {
        d.mask[y * SIDE + SIDE - 1] = 255;
    }
    d.touch();
    d
}

struct State {
    doc: Document,
    canvas: Canvas,
    brush: BrushSettings,
    frame: Frame,
    frame_shown: bool,
}

fn harness() -> Harness<'static, State> {
    harness_with_frame(None)
}

/// `frame`: the generation frame, shown (None: hidden).
fn harness_with_frame(frame: Option<Frame>) -> Harness<'static, State> {
    let render_state = create_render_state(default_wgpu_setup(), RendererOptions::PREDICTABLE);
    canvas_gpu::register(&render_state);
    let mut canvas = Canvas::new(true);
    canvas.fit_pending = false;
    canvas.zoom = ZOOM;
    let state = State {
        doc: document(),
        canvas,
        brush: BrushSettings::default(),
        frame: frame.unwrap_or(Frame {
            x: 0,
            y: 0,
            size: SIDE,
        }),
        frame_shown: frame.is_some(),
    };
    Harness::builder()
        .with_size(Vec2::new(200.0, 160.0))
        .with_pixels_per_point(1.0)
        .renderer(WgpuTestRenderer::from_render_state(render_state))
        .build_ui_state(
            |ui, s: &mut State| {
                egui::CentralPanel::default()
                    .frame(egui::Frame::NONE)
                    .show(ui, |ui| {
                        let frame = FrameEdit {
                            frame: &mut s.frame,
                            min: 2,
                            shown: s.frame_shown,
                        };
                        s.canvas
                            .ui(ui, &mut s.doc, Tool::Picker, &mut s.brush, None, frame);
                    });
            },
            state,
        )
}

#[test]
fn the_compositor_draws_each_model_pixel_as_a_crisp_square_with_the_layers_blended() {
    let mut h = harness();
    h.run();
    let image = h
        .render()
        .expect("wgpu renders (install mesa-vulkan-drivers)");
    let rect = h.state().canvas.image_rect(&h.state().doc);
    // The colour at the centre and near the corners of image pixel (x, y).
    let at = |x: usize, y: usize, fx: f32, fy: f32| {
        let px = rect.min.x + (x as f32 + fx) * ZOOM;
        let py = rect.min.y + (y as f32 + fy) * ZOOM;
        let p = image.get_pixel(px as u32, py as u32).0;
        [p[0], p[1], p[2]]
    };
    for (x, y) in [(0, 0), (3, 1), (6, 7)] {
        let want = [(x * 32) as u8, (y * 32) as u8, 40];
        for (fx, fy) in [(0.5, 0.5), (0.1, 0.1), (0.9, 0.9)] {
            assert_eq!(at(x, y, fx, fy), want, "pixel ({x}, {y}) at ({fx}, {fy})");
        }
    }
    // The sketch pixel: blue at alpha 128/255 over the picture.
    let blend = |pic: f32, s: f32| (pic + (s - pic) * (128.0 / 255.0)).round() as i32;
    let got = at(2, 5, 0.5, 0.5);
    let want = [blend(64.0, 0.0), blend(160.0, 0.0), blend(40.0, 255.0)];
    for c in 0..3 {
        assert!(
            (got[c] as i32 - want[c]).abs() <= 1,
            "sketch blend {got:?} vs {want:?}"
        );
    }
    // The masked column is tinted; its neighbour is not.
    let masked = at(SIDE - 1, 0, 0.5, 0.5);
    assert_ne!(masked, [((SIDE - 1) * 32) as u8, 0, 40]);
    assert!(masked[0] > 200, "the mask tint is reddish: {masked:?}");
    h.snapshot("canvas");
}

/// The generation frame: pixels inside it are drawn as they are, the image outside it is dimmed,
/// its corners carry handles, and the background beyond the image is left alone.
#[test]
fn the_compositor_dims_the_canvas_outside_the_generation_frame() {
    let mut h = harness_with_frame(Some(Frame {
        x: 2,
        y: 2,
        size: 4,
    }));
    h.run();
    let image = h.render().expect("wgpu renders");
    let rect = h.state().canvas.image_rect(&h.state().doc);
    let at = |x: usize, y: usize| {
        let px = rect.min.x + (x as f32 + 0.5) * ZOOM;
        let py = rect.min.y + (y as f32 + 0.5) * ZOOM;
        let p = image.get_pixel(px as u32, py as u32).0;
        [p[0], p[1], p[2]]
    };
    assert_eq!(at(3, 3), [96, 96, 40], "inside the frame: the pixel itself");
    let outside = at(0, 0);
    assert!(
        outside[2] < 40 && outside[2] >= 18,
        "outside the frame the picture is dimmed: {outside:?}"
    );
    // the top-left handle is white at its centre, the frame's corner
    let corner = (rect.min.x + 2.0 * ZOOM, rect.min.y + 2.0 * ZOOM);
    let p = image.get_pixel(corner.0 as u32 + 1, corner.1 as u32 + 1).0;
    assert_eq!([p[0], p[1], p[2]], [255, 255, 255], "handle");
}

/// After the first upload only changed rectangles travel: a one-pixel change hands over one pixel's
/// bytes and shows up; a patch over an upload the compositor never drew (a frame not rendered) is
/// refused, and the next upload is whole, so the canvas is never left stale.
#[test]
fn only_changed_rectangles_are_uploaded_and_a_missed_patch_heals() {
    use cmpaint::paint::document::Rect;
    let mut h = harness();
    h.run();
    let _ = h.render().expect("wgpu renders");
    let whole = SIDE * SIDE * 9;
    let pixel_of = |image: &image::RgbaImage, h: &Harness<'static, State>, x: usize, y: usize| {
        let rect = h.state().canvas.image_rect(&h.state().doc);
        let px = rect.min.x + (x as f32 + 0.5) * ZOOM;
        let py = rect.min.y + (y as f32 + 0.5) * ZOOM;
        let p = image.get_pixel(px as u32, py as u32).0;
        [p[0], p[1], p[2]]
    };
    let paint = |h: &mut Harness<'static, State>, x: usize, y: usize, rgb: [u8; 3]| {
        let d = &mut h.state_mut().doc;
        let i = (y * SIDE + x) * 4;
        d.picture[i..i + 3].copy_from_slice(&rgb);
        d.touch_rect(Rect {
            x0: x,
            y0: y,
            x1: x + 1,
            y1: y + 1,
        });
    };
    paint(&mut h, 1, 1, [250, 0, 250]);
    h.run();
    assert_eq!(
        h.state().canvas.last_upload_bytes,
        9,
        "one pixel of three layers"
    );
    let image = h.render().unwrap();
    assert_eq!(pixel_of(&image, &h, 1, 1), [250, 0, 250]);
    assert_eq!(
        pixel_of(&image, &h, 3, 1),
        [96, 32, 40],
        "its neighbour is untouched"
    );
    // two patches, only the second drawn: refused, then healed by a whole upload
    paint(&mut h, 4, 4, [0, 250, 0]);
    h.step();
    paint(&mut h, 6, 6, [0, 0, 250]);
    h.step();
    let _ = h.render().unwrap();
    h.step();
    assert_eq!(
        h.state().canvas.last_upload_bytes,
        whole,
        "the next upload is whole"
    );
    let image = h.render().unwrap();
    assert_eq!(pixel_of(&image, &h, 4, 4), [0, 250, 0]);
    assert_eq!(pixel_of(&image, &h, 6, 6), [0, 0, 250]);
}

/// The mask's edge is drawn as black and white dashes a pixel wide on each side (issue 28, item 12:
/// the tint alone vanished on red and yellow emoji); the inside stays tinted, the outside as it is.
#[test]
fn the_mask_edge_is_drawn_as_black_and_white_dashes() {
    let mut h = harness();
    h.run();
    let image = h.render().expect("wgpu renders");
    let rect = h.state().canvas.image_rect(&h.state().doc);
    let edge_x = rect.min.x + (SIDE - 1) as f32 * ZOOM;
    let mut dashes = Vec::new();
    for y in 0..(SIDE as u32 * ZOOM as u32) {
        let py = rect.min.y as u32 + y;
        for x in [edge_x - 0.5, edge_x + 0.5] {
            let p = image.get_pixel(x as u32, py).0;
            assert!(
                p[..3] == [0, 0, 0] || p[..3] == [255, 255, 255],
                "a dash pixel is black or white: {p:?} at ({x}, {py})"
            );
            dashes.push(p[0]);
        }
    }
    assert!(
        dashes.contains(&0) && dashes.contains(&255),
        "both colours alternate"
    );
    // one and a half pixels either side: the picture, and the tint
    let y = rect.min.y as u32 + 8;
    let outside = image.get_pixel((edge_x - 1.5) as u32, y).0;
    assert_eq!(outside[..3], [((SIDE - 2) * 32) as u8, 0, 40]);
    let inside = image.get_pixel((edge_x + 1.5) as u32, y).0;
    assert!(
        inside[0] > 200 && inside[..3] != [255, 255, 255],
        "tinted: {inside:?}"
    );
}
