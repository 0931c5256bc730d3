//! What the user feels, on the built-in model and this machine's CPU:
//! - UI frame time (`App::show`, headless egui: layout and input, no GPU rendering) while the worker
//!   generates batches of 16 in the background;
//! - slider-to-frame latency: from an interpolation slider move to its frame on screen.
//!
//! `cargo bench --bench ui_frame` (prints a table; results go in BENCHMARKS.md / the README).

use cmpaint::app::App;
use cmpaint::app::dialogs::Dialogs;
use cmpaint::worker::Worker;
use eframe::egui::Vec2;
use egui_kittest::Harness;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct NoDialogs;

impl Dialogs for NoDialogs {
    fn open_image(&mut self) -> Option<PathBuf> {
        None
    }
    fn open_model(&mut self, _folder: bool) -> Option<PathBuf> {
        None
    }
    fn open_recipe(&mut self) -> Option<PathBuf> {
        None
    }
    fn save_png(&mut self, _suggested: &str) -> Option<PathBuf> {
        None
    }
    fn open_project(&mut self) -> Option<PathBuf> {
        None
    }
    fn save_project(&mut self, _suggested: &str) -> Option<PathBuf> {
        None
    }
}

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

fn main() {
    let worker = Worker::spawn(candle_core::Device::Cpu, || {});
    let app = App::new(worker, None, false, Box::new(NoDialogs));
    let mut h = Harness::builder()
        .with_size(Vec2::new(1280.0, 820.0))
        .build_ui_state(|ui, app: &mut App| app.show(ui), app);
    while h.state().model.is_none() {
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }

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
}
