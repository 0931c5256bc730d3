//! What the user feels, on the built-in model and this machine's CPU:
//! - UI frame time (`App::show`, headless egui: layout and input, no GPU rendering) while the worker
//!   generates batches of 16 in the background;
//! - slider-to-frame latency: from an interpolation slider move to its frame on screen;
//! - UI frame time on a 2048² document while the user paints and the worker fills a 512² frame
//!   (scaled to the model's size and back), with the bytes the canvas hands the GPU per frame.
//!
//! `cargo bench --bench ui_frame` (prints a table; results go in BENCHMARKS.md / the README).

use cmpaint::app::App;
use cmpaint::app::dialogs::NoDialogs;
use cmpaint::paint::frame::Frame;
use cmpaint::worker::Worker;
use eframe::egui::Vec2;
use eframe::egui::{Event, Modifiers, PointerButton, Pos2};
use egui_kittest::Harness;
use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{what:38} n={:<5} median {:7.2} ms   p99 {:7.2} ms   max {:7.2} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms[ms.len() - 1]
    );
}

/// The app on the built-in model, loaded; `gpu`: the wgpu canvas path (its paint callback is not run
/// headless, so this measures the UI thread's share), else the CPU-composited canvas.
fn app(gpu: bool) -> Harness<'static, App> {
    let worker = Worker::spawn(candle_core::Device::Cpu, || {});
    let app = App::new(worker, None, gpu, Box::new(NoDialogs));
    let mut h = Harness::builder()
        .with_size(Vec2::new(1280.0, 820.0))
        .build_ui_state(|ui, app: &mut App| app.show(ui), app);
    while h.state().model.is_none() {
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    h
}

fn main() {
    let mut h = app(false);

    // Frame time with the worker busy: keep a batch of 16 generating, draw at 60 Hz.
    h.state_mut().generate.batch = 16;
    let mut frames = Vec::new();
    let mut busy_frames = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if !h.state().is_busy() {
            h.state_mut().run_generate();
        }
        busy_frames += h.state().is_busy() as usize;
        h.step();
        frames.push(h.state().stats.frame_seconds.last().copied().unwrap_or(0.0) * 1e3);
        std::thread::sleep(Duration::from_millis(16));
    }
    report("UI frame, worker generating 16 at a time", frames);
    println!(
        "  (frames with a job running: {busy_frames}; results in the history at the end: {})",
        h.state().history.len()
    );

    // Slider move → frame shown.
    let mut latency = Vec::new();
    for i in 0..50 {
        h.state_mut().interpolate.alpha = i as f64 / 49.0;
        let shown = h.state().stats.frames_shown;
        let t = Instant::now();
        h.state_mut().run_interpolation_frame();
        while h.state().stats.frames_shown == shown {
            h.step();
            std::thread::sleep(Duration::from_millis(1));
        }
        latency.push(t.elapsed().as_secs_f64() * 1e3);
    }
    report("slider move to frame (32², one step)", latency);

    drop(h);
    large_document(&mut app(true));
}

/// A 2048² document: strokes on its left half every frame (a new stroke every second) while the
/// worker keeps generating into a 512² frame on its right.
fn large_document(h: &mut Harness<'static, App>) {
    h.state_mut().new_canvas(2048, 2048);
    h.state_mut().frame = Frame {
        x: 1400,
        y: 700,
        size: 512,
    };
    h.state_mut().generate.batch = 1;
    h.step();
    h.step();
    let r = h.state().canvas.image_rect(&h.state().doc);
    let at = |fx: f32, fy: f32| Pos2::new(r.min.x + r.width() * fx, r.min.y + r.height() * fy);
    let press = |pos, pressed| Event::PointerButton {
        pos,
        button: PointerButton::Primary,
        pressed,
        modifiers: Modifiers::NONE,
    };
    let (mut frames, mut uploads) = (Vec::new(), Vec::new());
    let start = Instant::now();
    let mut i = 0usize;
    while start.elapsed() < Duration::from_secs(10) {
        if !h.state().is_busy() {
            h.state_mut().run_generate();
        }
        let t = i as f32 / 60.0;
        let pos = at(
            0.1 + 0.3 * (t % 1.0),
            0.2 + 0.6 * ((i / 60) % 10) as f32 / 10.0,
        );
        match i % 60 {
            0 => {
                h.event(Event::PointerMoved(pos));
                h.event(press(pos, true));
            }
            59 => h.event(press(pos, false)),
            _ => h.event(Event::PointerMoved(pos)),
        }
        h.step();
        frames.push(h.state().stats.frame_seconds.last().copied().unwrap_or(0.0) * 1e3);
        uploads.push(h.state().canvas.last_upload_bytes as f64 / 1e6);
        i += 1;
        std::thread::sleep(Duration::from_millis(16));
    }
    report("UI frame, 2048², painting + 512² frame jobs", frames);
    uploads.sort_by(f64::total_cmp);
    println!(
        "  (layer bytes handed to the GPU per frame: median {:.3} MB, p99 {:.3} MB; results: {})",
        percentile(&uploads, 0.5),
        percentile(&uploads, 0.99),
        h.state().history.len()
    );
}
