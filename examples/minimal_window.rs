//! The smallest eframe-on-wgpu window: one label that changes with the pointer, nothing of cmpaint.
//! The soak test (`.ci/soak.sh --minimal`) drives it like the app to tell the windowing and driver
//! stack's memory growth apart from cmpaint's own.
//!
//! `cargo run --release --example minimal_window`

use eframe::egui;

fn main() -> eframe::Result<()> {
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title("cmpaint-minimal")
            .with_inner_size([1280.0, 820.0]),
        ..Default::default()
    };
    eframe::run_ui_native("cmpaint-minimal", options, |ui, _frame| {
        egui::CentralPanel::default().show(ui, |ui| {
            let pos = ui.input(|i| i.pointer.hover_pos());
            ui.label(format!("pointer: {pos:?}"));
        });
    })
}
