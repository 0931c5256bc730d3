//! The memory soak without a window: `App::show` through egui_kittest with the wgpu renderer (Mesa's
//! lavapipe when there is no GPU), every frame rendered, pointer moves and strokes over the canvas
//! and Generate clicks, RSS printed every 500 frames. Beside `.ci/soak.sh` (the real window), it tells
//! cmpaint's own growth apart from the windowing stack's.
//!
//! `cargo bench --bench soak_headless [-- FRAMES]` (default 3,000)

use cmpaint::app::App;
use cmpaint::app::canvas_gpu;
use cmpaint::app::dialogs::NoDialogs;
use cmpaint::worker::Worker;
use eframe::egui::{Event, Modifiers, PointerButton, Pos2, Vec2};
use eframe::egui_wgpu::RendererOptions;
use egui_kittest::Harness;
use egui_kittest::wgpu::{WgpuTestRenderer, create_render_state, default_wgpu_setup};

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn main() {
    let frames: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3000);
    let render_state = create_render_state(default_wgpu_setup(), RendererOptions::PREDICTABLE);
    canvas_gpu::register(&render_state);
    let worker = Worker::spawn(candle_core::Device::Cpu, || {});
    let app = App::new(worker, None, true, Box::new(NoDialogs));
    let mut h = Harness::builder()
        .with_size(Vec2::new(1280.0, 820.0))
        .renderer(WgpuTestRenderer::from_render_state(render_state))
        .build_ui_state(|ui, app: &mut App| app.show(ui), app);
    while h.state().model.is_none() {
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let press = |pos, pressed| Event::PointerButton {
        pos,
        button: PointerButton::Primary,
        pressed,
        modifiers: Modifiers::NONE,
    };
    println!("{:>7} {:>9} {:>8}", "frame", "RSS (MB)", "results");
    let mut warm = 0.0;
    for i in 0..frames {
        let r = h.state().canvas.image_rect(&h.state().doc);
        let t = (i % 97) as f32 / 97.0;
        let pos = Pos2::new(r.min.x + r.width() * t, r.min.y + r.height() * (1.0 - t));
        match i % 200 {
            // a stroke every 200 frames, then its undo
            0 => {
                h.event(Event::PointerMoved(pos));
                h.event(press(pos, true));
            }
            1..=9 => h.event(Event::PointerMoved(pos)),
            10 => {
                h.event(press(pos, false));
                h.event(Event::Key {
                    key: eframe::egui::Key::Z,
                    physical_key: None,
                    pressed: true,
                    repeat: false,
                    modifiers: Modifiers::COMMAND,
                });
            }
            50 if !h.state().is_busy() => h.state_mut().run_generate(),
            _ => h.event(Event::PointerMoved(Pos2::new(pos.x + 500.0 * t, pos.y))),
        }
        h.step();
        let _ = h.render().expect("wgpu renders");
        if i % 500 == 0 || i + 1 == frames {
            if i == 1000 {
                warm = rss_mb();
            }
            println!("{i:>7} {:>9.1} {:>8}", rss_mb(), h.state().history.len());
        }
    }
    if warm > 0.0 {
        println!("growth after frame 1000: {:.1} MB", rss_mb() - warm);
    }
}
