//! The panels around the canvas: menu, tools, Model / Generate / Edit / Interpolate / History, and the
//! status bar. Each reads and edits the app's plain state ([`AppState`]: settings, the class, the
//! tool…) and returns what it asks for beyond that as [`Action`]s, which the App carries out after
//! the panels are drawn. No panel sees the worker, a thread or a tensor.

use super::dialogs::FileRequest;
use super::{AppState, GenerateSettings, MAX_BATCH, SeedMode};
use crate::labels::{class_names, search};
use crate::paint::brush::{MAX_SIZE, MIN_SIZE, Tool};
use crate::paint::document::{MAX_SIDE, Side};
use crate::picture::Resize;
use crate::recipe::Operation;
use crate::worker::Steps;
use crate::worker::{LatentFacts, Parameterization, TEACHER_SPEC};
use eframe::egui::{self, Color32, RichText, Vec2};
use std::path::PathBuf;

/// What a panel asks the App to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    OpenImage,
    OpenImageAtModelSize,
    OpenRecipe,
    OpenProject,
    SaveProject {
        save_as: bool,
    },
    ExportPng,
    ExportStrip,
    /// A file dialog for a purpose.
    Ask(FileRequest),
    /// A path typed into the stand-in for a file dialog.
    FileChosen(FileRequest, PathBuf),
    /// Decode a picture (brought to a side, fit or crop) to open it.
    OpenPicture(PathBuf, Option<(usize, Resize)>),
    NewCanvas(usize, usize),
    /// None: the built-in model.
    LoadModel(Option<PathBuf>),
    Generate,
    Sketch,
    /// An edit in the frame, from a seed.
    Edit(Operation, u64),
    Upscale,
    Outpaint(Side),
    ExtendCanvas(Side, usize),
    InterpolationFrame,
    ApplyPreview,
    ApplyHistory(usize),
    DiscardHistory(usize),
    Cancel,
    FitView,
    ActualSize,
    ShowMask(bool),
    /// Close after the Close dialog's answer: save first, or not.
    CloseAfter(bool),
    RestoreAutosave(bool),
}

/// What the panels show of the running app (beyond its plain state).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    pub loading_model: bool,
    pub dirty: bool,
    pub zoom: f32,
    pub show_mask: bool,
}

pub fn menu_bar(state: &mut AppState, status: &Status, ui: &mut egui::Ui, out: &mut Vec<Action>) {
    egui::Panel::top("menu").show(ui, |ui| {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("New canvas…").clicked() {
                    let size = state.model_size();
                    state.new_canvas_size = Some((size, size));
                }
                if ui.button("Open image…").clicked() {
                    out.push(Action::OpenImage);
                }
                if ui.button("Open image at model size…").clicked() {
                    out.push(Action::OpenImageAtModelSize);
                }
                if ui.button("Open recipe…").clicked() {
                    out.push(Action::OpenRecipe);
                }
                ui.separator();
                if ui.button("Open project…").clicked() {
                    out.push(Action::OpenProject);
                }
                if ui.button("Save project (Ctrl+S)").clicked() {
                    out.push(Action::SaveProject { save_as: false });
                }
                if ui.button("Save project as…").clicked() {
                    out.push(Action::SaveProject { save_as: true });
                }
                ui.separator();
                if ui.button("Export PNG…").clicked() {
                    out.push(Action::ExportPng);
                }
                export_scale(state, ui);
            });
            ui.menu_button("Edit", |ui| {
                if ui
                    .add_enabled(state.doc.can_undo(), egui::Button::new("Undo (Ctrl+Z)"))
                    .clicked()
                {
                    state.doc.undo();
                }
                if ui
                    .add_enabled(
                        state.doc.can_redo(),
                        egui::Button::new("Redo (Ctrl+Shift+Z)"),
                    )
                    .clicked()
                {
                    state.doc.redo();
                }
                ui.separator();
                layer_buttons(state, ui);
            });
            ui.menu_button("View", |ui| {
                if ui.button("Fit (Ctrl+0)").clicked() {
                    out.push(Action::FitView);
                }
                if ui.button("100 % (Ctrl+1)").clicked() {
                    out.push(Action::ActualSize);
                }
                let mut show_mask = status.show_mask;
                if ui.checkbox(&mut show_mask, "Show mask (H)").changed() {
                    out.push(Action::ShowMask(show_mask));
                }
            });
        });
    });
}

/// Errors that wait for the user under the menu bar, each with its own Dismiss.
pub fn notices(state: &mut AppState, ui: &mut egui::Ui) {
    if state.notices.is_empty() {
        return;
    }
    let mut dismissed = None;
    egui::Panel::top("notices").show(ui, |ui| {
        for (i, n) in state.notices.iter().enumerate() {
            ui.horizontal(|ui| {
                if ui.small_button("Dismiss").clicked() {
                    dismissed = Some(i);
                }
                let times = if n.repeats > 1 {
                    format!(" (×{})", n.repeats)
                } else {
                    String::new()
                };
                let text = RichText::new(format!("{}{times}", n.text));
                // a long path must wrap, not run off the window
                ui.add(egui::Label::new(text.color(Color32::from_rgb(235, 90, 90))).wrap());
            });
        }
        if state.notices.len() > 1 && ui.small_button("Dismiss all").clicked() {
            dismissed = Some(usize::MAX);
        }
    });
    match dismissed {
        Some(usize::MAX) => state.notices.clear(),
        Some(i) => {
            state.notices.remove(i);
        }
        None => {}
    }
}

pub fn status_bar(state: &mut AppState, status: &Status, ui: &mut egui::Ui, out: &mut Vec<Action>) {
    egui::Panel::bottom("status").show(ui, |ui| {
        // the figures on the right are laid out first, so that a long message is cut short beside them
        // (the whole of it on hover) instead of running underneath
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if status.dirty {
                ui.weak("unsaved changes");
            }
            let (bytes, on_disk) = state.history_memory();
            let mb = |b: usize| b as f64 / (1 << 20) as f64;
            ui.weak(format!(
                "memory: history {:.1} of {:.0} MB{}, undo {:.1} MB",
                mb(bytes),
                mb(state.history_budget),
                if on_disk > 0 {
                    format!(" ({on_disk} results on disk)")
                } else {
                    String::new()
                },
                mb(state.doc.undo_bytes())
            ))
            .on_hover_text(
                "results beyond the history budget move to the data folder and are read back when shown; undo keeps at most 256 MB",
            );
            let t = &state.stats.frame_seconds;
            if !t.is_empty() {
                let worst = t.iter().cloned().fold(0.0, f64::max);
                ui.weak(format!(
                    "UI {:.1} ms (worst {:.1})",
                    t[t.len() - 1] * 1e3,
                    worst * 1e3
                ));
            }
            ui.weak(format!(
                "{}×{} · {:.0} %",
                state.doc.width,
                state.doc.height,
                status.zoom * 100.0
            ));
            ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                if let Some(r) = &state.running {
                    let f = r.done as f32 / r.total.max(1) as f32;
                    ui.add(
                        egui::ProgressBar::new(f)
                            .desired_width(160.0)
                            .text(r.progress_text()),
                    );
                    if ui.button("Cancel (Esc)").clicked() {
                        out.push(Action::Cancel);
                    }
                } else if status.loading_model {
                    ui.spinner();
                    ui.label("loading the model…");
                }
                if let Some(m) = state.messages.last() {
                    let colour = if m.error {
                        Color32::from_rgb(235, 90, 90)
                    } else {
                        ui.visuals().text_color()
                    };
                    ui.add(egui::Label::new(RichText::new(&m.text).color(colour)).truncate());
                }
            });
        });
    });
}

pub fn tools_panel(state: &mut AppState, ui: &mut egui::Ui, out: &mut Vec<Action>) {
    egui::Panel::left("tools")
        .resizable(false)
        .default_size(150.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| tools(state, ui, out));
        });
}

fn tools(state: &mut AppState, ui: &mut egui::Ui, out: &mut Vec<Action>) {
    ui.heading("Tools");
    for tool in [
        Tool::Brush,
        Tool::Eraser,
        Tool::Mask,
        Tool::Picker,
        Tool::Frame,
    ] {
        ui.selectable_value(&mut state.tool, tool, tool.label());
    }
    ui.separator();
    let b = &mut state.brush;
    ui.add(
        egui::Slider::new(&mut b.size, MIN_SIZE..=MAX_SIZE)
            .logarithmic(true)
            .text("Size"),
    )
    .on_hover_text("[ and ] change the size");
    if state.tool == Tool::Mask {
        let mut feather = 1.0 - b.hardness;
        if ui
            .add(egui::Slider::new(&mut feather, 0.0..=1.0).text("Feather"))
            .changed()
        {
            b.hardness = 1.0 - feather;
        }
        ui.checkbox(&mut b.mask_erase, "Erase mask");
    } else {
        ui.add(egui::Slider::new(&mut b.hardness, 0.0..=1.0).text("Hardness"));
    }
    ui.add(egui::Slider::new(&mut b.opacity, 0.0..=1.0).text("Opacity"));
    ui.separator();
    ui.horizontal(|ui| {
        let l = ui.label("Colours");
        ui.color_edit_button_srgb(&mut b.primary).labelled_by(l.id);
        ui.color_edit_button_srgb(&mut b.secondary)
            .labelled_by(l.id);
        if ui
            .small_button("Swap")
            .on_hover_text("Swap colours (X)")
            .clicked()
        {
            b.swap_colours();
        }
    });
    ui.separator();
    layer_buttons(state, ui);
    ui.separator();
    ui.heading("Frame");
    frame_section(state, ui, out);
}

fn layer_buttons(state: &mut AppState, ui: &mut egui::Ui) {
    if ui.button("Clear sketch").clicked() {
        state.doc.clear_sketch();
    }
    if ui.button("Clear mask").clicked() {
        state.doc.clear_mask();
    }
    if ui.button("Invert mask").clicked() {
        state.doc.invert_mask();
    }
}

pub fn side_panel(state: &mut AppState, ui: &mut egui::Ui, out: &mut Vec<Action>) {
    egui::Panel::right("side")
        .resizable(true)
        .default_size(300.0)
        .size_range(260.0..=480.0)
        .show(ui, |ui| {
            // The preview's buttons sit below the scrolling sections: appearing there, they move
            // nothing under the pointer (at the top they pushed the slider down mid-drag).
            if state.preview.is_some() {
                egui::Panel::bottom("preview").show(ui, |ui| preview(state, ui, out));
            }
            egui::ScrollArea::vertical().show(ui, |ui| {
                egui::CollapsingHeader::new("Model")
                    .default_open(true)
                    .show(ui, |ui| model_section(state, ui, out));
                egui::CollapsingHeader::new("Generate")
                    .default_open(true)
                    .show(ui, |ui| generate_section(state, ui, out));
                egui::CollapsingHeader::new("Edit")
                    .default_open(true)
                    .show(ui, |ui| edit_section(state, ui, out));
                egui::CollapsingHeader::new("Interpolate")
                    .default_open(true)
                    .show(ui, |ui| interpolate_section(state, ui, out));
                egui::CollapsingHeader::new("History")
                    .default_open(true)
                    .show(ui, |ui| history_section(state, ui, out));
            });
        });
}

/// The preview's controls (the picture itself shows on the canvas, in its frame).
fn preview(state: &mut AppState, ui: &mut egui::Ui, out: &mut Vec<Action>) {
    let Some(p) = &state.preview else { return };
    let label = p.recipe.operation.label();
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("Preview ({label}) on the canvas"));
        if ui.button("Apply to canvas").clicked() {
            out.push(Action::ApplyPreview);
        }
        if ui.button("Dismiss").clicked() {
            state.preview = None;
        }
    });
}

fn model_section(state: &mut AppState, ui: &mut egui::Ui, out: &mut Vec<Action>) {
    match &state.model {
        Some(m) => {
            ui.label(RichText::new(&m.name).strong());
            ui.label(format!(
                "{}×{} · {:.1} M parameters · {}",
                m.image_size,
                m.image_size,
                m.parameters as f64 / 1e6,
                match (m.num_classes, m.styles.len()) {
                    _ if m.latent.is_some() => "follows a prompt".into(),
                    (Some(n), 0) => format!("{n} classes"),
                    (Some(n), s) => format!("{n} classes × {s} styles"),
                    (None, _) => "unconditional".into(),
                }
            ));
            match &m.latent {
                Some(l) if l.cfg && !l.parts.iter().any(|(p, _)| p == "lora") => {
                    ui.label(
                        "Stable Diffusion without an LCM-LoRA: its pictures need one to come out \
                         in a few steps (Add LoRA…)",
                    );
                    if ui.button("Add LoRA…").clicked() {
                        out.push(Action::Ask(FileRequest::OpenLora));
                    }
                }
                Some(l) => {
                    ui.label(format!(
                        "latent consistency model: {} network calls by default, guidance {} ({})",
                        l.steps,
                        l.guidance,
                        if l.cfg {
                            "classifier-free, with a negative prompt"
                        } else {
                            "distilled into the network"
                        }
                    ));
                    for (part, bytes) in &l.parts {
                        ui.weak(format!("{part}: {:.1} MB", *bytes as f64 / 1e6));
                    }
                    if ui
                        .button("Add LoRA…")
                        .on_hover_text(
                            "merge a LoRA into the UNet: an LCM-LoRA makes a plain SD 1.5 folder \
                             sample in 4 steps",
                        )
                        .clicked()
                    {
                        out.push(Action::Ask(FileRequest::OpenLora));
                    }
                }
                None => {
                    ui.label(match m.parameterization() {
                        Parameterization::Consistency => {
                            "consistency model: 1 network call".to_string()
                        }
                        Parameterization::Edm => format!(
                            "EDM teacher: Heun, {} steps = {} network calls",
                            m.sampling.steps,
                            2 * m.sampling.steps - 1
                        ),
                    });
                }
            }
            ui.weak(match &m.file {
                Some(f) => f.display().to_string(),
                None => "built in".into(),
            });
        }
        None => {
            ui.label("no model loaded");
        }
    }
    ui.horizontal(|ui| {
        if ui.button("Open file…").clicked() {
            out.push(Action::Ask(FileRequest::OpenModel { folder: false }));
        }
        if ui.button("Open folder…").clicked() {
            out.push(Action::Ask(FileRequest::OpenModel { folder: true }));
        }
        if ui
            .button("Built in")
            .on_hover_text("the emoji consistency model: one network call")
            .clicked()
        {
            out.push(Action::LoadModel(None));
        }
        if ui
            .button("Built-in teacher")
            .on_hover_text("its EDM diffusion teacher: Heun, tens of network calls")
            .clicked()
        {
            out.push(Action::LoadModel(Some(TEACHER_SPEC.into())));
        }
    });
    class_picker(state, ui);
    style_picker(state, ui);
}

/// A model with styles (the built-in emoji sets): one of them, or each image's from its seed.
fn style_picker(state: &mut AppState, ui: &mut egui::Ui) {
    let Some(model) = &state.model else {
        return;
    };
    if model.styles.is_empty() {
        return;
    }
    let name = |s: Option<u32>| match s {
        Some(i) => model.styles.get(i as usize).cloned().unwrap_or_default(),
        None => "from the seed".to_string(),
    };
    let mut style = state.style;
    egui::ComboBox::from_label("Style")
        .selected_text(name(style))
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut style, None, name(None))
                .on_hover_text(
                    "each image takes a style from its seed: a batch shows them in turn",
                );
            for i in 0..model.styles.len() as u32 {
                ui.selectable_value(&mut style, Some(i), name(Some(i)));
            }
        });
    state.style = style;
}

fn class_picker(state: &mut AppState, ui: &mut egui::Ui) {
    let Some(model) = &state.model else {
        return;
    };
    if model.num_classes.is_none() {
        return;
    }
    let names = class_names(&model.name, model.num_classes);
    let current = state.class.unwrap_or(0) as usize;
    ui.label(format!(
        "Class: {current} {}",
        names.get(current).map(String::as_str).unwrap_or("")
    ));
    let l = ui.label("Search");
    ui.add(egui::TextEdit::singleline(&mut state.class_filter).hint_text("name or number"))
        .labelled_by(l.id);
    egui::ScrollArea::vertical()
        .id_salt("classes")
        .max_height(120.0)
        .show(ui, |ui| {
            for i in search(&names, &state.class_filter) {
                if ui
                    .selectable_label(i == current, format!("{i} {}", names[i]))
                    .clicked()
                {
                    state.class = Some(i as u32);
                }
            }
        });
}

const SIDES: [(&str, Side); 4] = [
    ("Left", Side::Left),
    ("Up", Side::Up),
    ("Right", Side::Right),
    ("Down", Side::Down),
];

/// The generation frame (where every job runs), Extend canvas and Outpaint.
fn frame_section(state: &mut AppState, ui: &mut egui::Ui, out: &mut Vec<Action>) {
    let model = state.model_size();
    let (w, h) = (state.doc.width, state.doc.height);
    let mut frame = state.job_frame();
    ui.horizontal_wrapped(|ui| {
        ui.checkbox(&mut state.framing.shown, "Show (F)");
        let native = frame.is_native(model);
        if ui
            .add_enabled(!native, egui::Button::new("Native"))
            .on_hover_text("the model's own size: pixel-exact, unmasked pixels kept exactly")
            .clicked()
        {
            frame.size = model;
        }
    });
    let largest = w.min(h);
    if largest > model.min(largest) {
        ui.add(
            egui::Slider::new(&mut frame.size, model.min(largest)..=largest)
                .text("Frame side")
                .suffix(" px"),
        )
        .on_hover_text("larger than the model's size: the frame is scaled to the model and back");
    }
    state.frame = frame;
    state.frame = state.job_frame();
    ui.add(
        egui::Slider::new(&mut state.framing.feather, 0..=32)
            .text("Blend edge")
            .suffix(" px"),
    )
    .on_hover_text("how far Generate and sketch to image fade into the surroundings");
    ui.separator();
    ui.add(
        egui::Slider::new(&mut state.framing.overlap, 0.1..=0.9)
            .text("Overlap")
            .fixed_decimals(2),
    )
    .on_hover_text("how much of the frame keeps the picture when outpainting");
    ui.horizontal_wrapped(|ui| {
        ui.label("Outpaint");
        for (label, side) in SIDES {
            let tip = "move the frame past the picture's edge (extending the canvas if needed) and inpaint the empty part";
            if ui.button(label).on_hover_text(tip).clicked() {
                out.push(Action::Outpaint(side));
            }
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Extend by");
        ui.add(
            egui::DragValue::new(&mut state.framing.extend_by)
                .range(1..=1024)
                .suffix(" px"),
        );
        for (label, side) in SIDES {
            let button = ui.small_button(format!("+ {label}"));
            if button
                .on_hover_text("Extend canvas: empty pixels on that side")
                .clicked()
            {
                out.push(Action::ExtendCanvas(side, state.framing.extend_by));
            }
        }
    });
}

fn generate_section(state: &mut AppState, ui: &mut egui::Ui, out: &mut Vec<Action>) {
    let has_ts = state
        .model
        .as_ref()
        .is_some_and(|m| m.sampling.ts.is_some());
    let is_teacher = state
        .model
        .as_ref()
        .is_some_and(|m| m.parameterization() == Parameterization::Edm);
    let latent = state.model.as_ref().and_then(|m| m.latent.clone());
    let g = &mut state.generate;
    if let Some(facts) = &latent {
        prompt_fields(g, facts, ui);
    }
    ui.horizontal(|ui| {
        let l = ui.label("Seed");
        ui.add(egui::DragValue::new(&mut g.seed)).labelled_by(l.id);
        egui::ComboBox::from_label("mode")
            .selected_text(format!("{:?}", g.seed_mode))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut g.seed_mode, SeedMode::Fixed, "Fixed");
                ui.selectable_value(&mut g.seed_mode, SeedMode::Random, "Random");
                ui.selectable_value(&mut g.seed_mode, SeedMode::Increment, "Increment");
            });
    });
    if !is_teacher && latent.is_none() {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut g.steps, Steps::One, "1 step");
            ui.add_enabled_ui(has_ts, |ui| {
                ui.selectable_value(&mut g.steps, Steps::Tuned, "2 steps (tuned ts)");
            });
        });
    }
    ui.horizontal(|ui| {
        ui.add(egui::Slider::new(&mut g.batch, 1..=MAX_BATCH).text("Batch"));
    });
    ui.horizontal(|ui| {
        ui.add(egui::Slider::new(&mut g.strength, 0.05..=1.0).text("Sketch strength"))
            .on_hover_text(
                "How far Generate may move away from a sketch: 0 keeps it, 1 ignores it",
            );
    });
    ui.checkbox(&mut g.fill_outlines, "Fill closed outlines")
        .on_hover_text(
            "Before sketch → image, fill each closed outline drawn in a colour with that colour, \
             so an outline becomes a shape (grey and black outlines stay as drawn)",
        );
    let what = if state.doc.has_sketch() {
        "Generate from sketch"
    } else {
        "Generate images"
    };
    let button = egui::Button::new(RichText::new(what).strong()).min_size(Vec2::new(200.0, 28.0));
    if ui
        .add_enabled(state.model.is_some(), button)
        .on_hover_text("Ctrl+Enter")
        .clicked()
    {
        out.push(Action::Generate);
    }
}

/// A latent model's prompt, negative prompt (with classifier-free guidance), steps and guidance.
fn prompt_fields(g: &mut GenerateSettings, facts: &LatentFacts, ui: &mut egui::Ui) {
    let l = ui.label("Prompt");
    ui.add(
        egui::TextEdit::multiline(&mut g.prompt)
            .hint_text("what to paint, e.g. a red fox in the snow, watercolour")
            .desired_rows(2)
            .desired_width(f32::INFINITY),
    )
    .labelled_by(l.id);
    if facts.cfg {
        let l = ui.label("Negative prompt");
        ui.add(
            egui::TextEdit::singleline(&mut g.negative_prompt)
                .hint_text("what to paint away from")
                .desired_width(f32::INFINITY),
        )
        .labelled_by(l.id);
    }
    let max = facts.max_steps.min(8);
    g.latent_steps = g.latent_steps.clamp(1, max);
    ui.add(egui::Slider::new(&mut g.latent_steps, 1..=max).text("Steps"))
        .on_hover_text("network calls per picture: 1 is fastest, 4 is the usual balance");
    let mut guidance = g.guidance.unwrap_or(facts.guidance);
    let range = if facts.cfg { 1.0..=3.0 } else { 1.0..=15.0 };
    if ui
        .add(egui::Slider::new(&mut guidance, range).text("Guidance"))
        .on_hover_text("how closely the picture follows the prompt")
        .changed()
    {
        g.guidance = Some(guidance);
    }
}

fn edit_section(state: &mut AppState, ui: &mut egui::Ui, out: &mut Vec<Action>) {
    let ready = state.model.is_some();
    let seed = state.generate.seed;
    // colorize and super-resolution keep pixels' luminance or patch means, which a latent model's
    // VAE does not keep apart
    let pixels = state.model.as_ref().is_none_or(|m| m.latent.is_none());
    const PIXELS_ONLY: &str = "a pixel-space model's edit: a latent model's VAE does not keep a \
                               picture's luminance or patch means apart";
    ui.add_enabled_ui(ready, |ui| {
        ui.horizontal_wrapped(|ui| {
            if ui
                .button("Inpaint")
                .on_hover_text("Regenerate the masked area; the rest stays exactly as it is")
                .clicked()
            {
                out.push(Action::Edit(Operation::Inpaint, seed));
            }
            if ui
                .add_enabled(pixels, egui::Button::new("Colorize"))
                .on_hover_text("Keep the luminance, generate the colours")
                .on_disabled_hover_text(PIXELS_ONLY)
                .clicked()
            {
                out.push(Action::Edit(Operation::Colorize, seed));
            }
            if ui.button("Sketch to image").clicked() {
                out.push(Action::Sketch);
            }
        });
        ui.horizontal(|ui| {
            let size = state.doc.width;
            let factors: Vec<usize> = [2, 4, 8, 16]
                .into_iter()
                .filter(|&f| size.is_multiple_of(f) && size / f >= 2)
                .collect();
            if !factors.contains(&state.edit.superres_factor)
                && let Some(&f) = factors.first()
            {
                state.edit.superres_factor = f;
            }
            egui::ComboBox::from_label("factor")
                .selected_text(format!("{}×", state.edit.superres_factor))
                .show_ui(ui, |ui| {
                    for f in factors {
                        ui.selectable_value(&mut state.edit.superres_factor, f, format!("{f}×"));
                    }
                });
            if ui
                .add_enabled(pixels, egui::Button::new("Super-resolve"))
                .on_hover_text("In place: keep the mean of every F×F patch, generate the detail")
                .on_disabled_hover_text(PIXELS_ONLY)
                .clicked()
            {
                let factor = state.edit.superres_factor;
                out.push(Action::Edit(Operation::SuperRes { factor }, seed));
            }
            if ui
                .add_enabled(pixels, egui::Button::new("Upscale"))
                .on_hover_text(
                    "Enlarge the canvas F times: every pixel becomes an F×F patch with generated \
                     detail, tile by tile",
                )
                .on_disabled_hover_text(PIXELS_ONLY)
                .clicked()
            {
                out.push(Action::Upscale);
            }
        });
        ui.checkbox(
            &mut state.edit.live,
            "Live: re-run sketch to image when a stroke ends",
        );
    });
}

fn interpolate_section(state: &mut AppState, ui: &mut egui::Ui, out: &mut Vec<Action>) {
    let mut changed = false;
    let s = &mut state.interpolate;
    ui.horizontal(|ui| {
        let l = ui.label("Seed A");
        changed |= ui
            .add(egui::DragValue::new(&mut s.seed_a))
            .labelled_by(l.id)
            .changed();
        let l = ui.label("Seed B");
        changed |= ui
            .add(egui::DragValue::new(&mut s.seed_b))
            .labelled_by(l.id)
            .changed();
    });
    changed |= ui
        .add(egui::Slider::new(&mut s.alpha, 0.0..=1.0).text("α"))
        .changed();
    let mut export = false;
    ui.horizontal(|ui| {
        let l = ui.label("Frames");
        ui.add(egui::DragValue::new(&mut s.strip_frames).range(2..=120))
            .labelled_by(l.id);
        export = ui.button("Export strip…").clicked();
    });
    export_scale(state, ui);
    if export {
        out.push(Action::ExportStrip);
    }
    if changed && state.model.is_some() {
        out.push(Action::InterpolationFrame);
    }
}

/// The whole enlargement of exported PNGs and strips (shown in the File menu and beside the strip).
fn export_scale(state: &mut AppState, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        let l = ui.label("Export scale");
        ui.add(
            egui::DragValue::new(&mut state.export_scale)
                .range(1..=crate::picture::MAX_EXPORT_SCALE)
                .prefix("×"),
        )
        .labelled_by(l.id);
    });
}

/// A history row is as tall as its thumbnail (the text beside it is shorter).
const HISTORY_ROW_HEIGHT: f32 = 64.0;

fn history_section(state: &mut AppState, ui: &mut egui::Ui, out: &mut Vec<Action>) {
    if state.history.is_empty() {
        ui.weak("results appear here");
        return;
    }
    let ctx = ui.ctx().clone();
    let mut apply = None;
    let mut discard = None;
    let mut comparing = None;
    // the result the canvas is exactly (nothing painted over it since)
    let on_canvas = state.doc.recipe.clone().filter(|_| !state.doc.has_sketch());
    let on_canvas = on_canvas.as_ref();
    // Newest first, one row each: thumbnail, what made it, and its actions. Only rows on screen are
    // laid out (and given a texture); the others keep their space. A session holds hundreds of results,
    // and laying them all out made every frame slower as the history grew.
    for (i, r) in state.history.iter_mut().enumerate().rev() {
        let size = Vec2::new(ui.available_width(), HISTORY_ROW_HEIGHT);
        if !ui.is_rect_visible(egui::Rect::from_min_size(ui.cursor().min, size)) {
            ui.allocate_space(size);
            r.forget_thumbnail();
            continue;
        }
        let tex = r.texture(&ctx).clone();
        let on_canvas = on_canvas == Some(&r.recipe);
        ui.horizontal(|ui| {
            ui.set_height(HISTORY_ROW_HEIGHT);
            ui.add(egui::Image::new(&tex).fit_to_exact_size(Vec2::splat(HISTORY_ROW_HEIGHT)))
                .on_hover_text(r.recipe.describe());
            ui.vertical(|ui| {
                // what made it, its setting, and whether it is what the canvas shows now
                let mut line = format!("{} · seed {}", r.recipe.operation.label(), r.recipe.seed);
                if let Some(s) = r.recipe.operation.setting() {
                    line.push_str(&format!(" · {s}"));
                }
                if let Some(p) = &r.recipe.prompt {
                    // the prompt's start; the tooltip has all of it
                    let short: String = p.text.chars().take(24).collect();
                    let more = if p.text.chars().count() > 24 {
                        "…"
                    } else {
                        ""
                    };
                    line.push_str(&format!(" · “{short}{more}”"));
                }
                ui.horizontal(|ui| {
                    ui.label(line).on_hover_text(r.recipe.describe());
                    if on_canvas {
                        ui.label(RichText::new("on canvas").strong());
                    }
                });
                // which model and what it cost: a teacher's tens of calls beside a student's one
                let cost = r
                    .cost
                    .as_deref()
                    .map(|c| format!(" · {c}"))
                    .unwrap_or_default();
                ui.weak(format!("{}{cost}", r.recipe.model.name));
                ui.horizontal(|ui| {
                    if ui.small_button("Apply").clicked() {
                        apply = Some(i);
                    }
                    let cmp = ui
                        .small_button("Compare")
                        .on_hover_text("Hold to show it on the canvas");
                    if cmp.is_pointer_button_down_on() {
                        comparing = Some(i);
                    }
                    if ui.small_button("Discard").clicked() {
                        discard = Some(i);
                    }
                });
            });
        });
    }
    state.compare = comparing;
    if let Some(i) = apply {
        out.push(Action::ApplyHistory(i));
    }
    if let Some(i) = discard {
        out.push(Action::DiscardHistory(i));
    }
}

/// File → New canvas…: width and height, the model's size offered.
pub fn new_canvas_dialog(state: &mut AppState, ctx: &egui::Context, out: &mut Vec<Action>) {
    let Some((mut w, mut h)) = state.new_canvas_size else {
        return;
    };
    let size = state.model_size();
    let mut choice = None;
    egui::Modal::new(egui::Id::unique("new canvas")).show(ctx, |ui| {
        ui.heading("New canvas");
        ui.horizontal(|ui| {
            ui.add(
                egui::DragValue::new(&mut w)
                    .range(1..=MAX_SIDE)
                    .suffix(" px"),
            );
            ui.label("×");
            ui.add(
                egui::DragValue::new(&mut h)
                    .range(1..=MAX_SIDE)
                    .suffix(" px"),
            );
            if ui.button(format!("Model size ({size}²)")).clicked() {
                (w, h) = (size, size);
            }
        });
        ui.weak("Jobs run in the generation frame, a square you move over the canvas (F).");
        ui.horizontal(|ui| {
            if ui.button("Create").clicked() {
                choice = Some(true);
            }
            if ui.button("Cancel").clicked() {
                choice = Some(false);
            }
        });
    });
    state.new_canvas_size = Some((w, h));
    match choice {
        Some(true) => {
            state.new_canvas_size = None;
            out.push(Action::NewCanvas(w, h));
        }
        Some(false) => state.new_canvas_size = None,
        None => {}
    }
}

/// Asks how to bring a picture of another size to the model's: fit, crop, or cancel. Only its header
/// has been read so far.
pub fn import_dialog(state: &mut AppState, ctx: &egui::Context, out: &mut Vec<Action>) {
    let Some(p) = &state.pending_import else {
        return;
    };
    let (w, h) = (p.width, p.height);
    let size = state.model_size();
    let mut choice: Option<Option<Resize>> = None;
    egui::Modal::new(egui::Id::unique("import")).show(ctx, |ui| {
        ui.label(format!(
            "The picture is {w}×{h}; the model works at {size}×{size}."
        ));
        ui.horizontal(|ui| {
            if ui.button("Fit (stretch)").clicked() {
                choice = Some(Some(Resize::Fit));
            }
            if ui.button("Crop centre").clicked() {
                choice = Some(Some(Resize::Crop));
            }
            if ui.button("Cancel").clicked() {
                choice = Some(None);
            }
        });
    });
    match choice {
        Some(Some(resize)) => {
            let p = state.pending_import.take().expect("checked");
            out.push(Action::OpenPicture(p.path, Some((size, resize))));
        }
        Some(None) => state.pending_import = None,
        None => {}
    }
}

/// At start, when an autosave was found: restore it or start fresh.
/// Where no file dialog could open: the path typed in, with the reason.
pub fn path_prompt(state: &mut AppState, ctx: &egui::Context, out: &mut Vec<Action>) {
    let Some(prompt) = &mut state.path_prompt else {
        return;
    };
    let mut choice = None;
    egui::Modal::new(egui::Id::unique("path prompt")).show(ctx, |ui| {
        ui.heading(prompt.request.title());
        ui.label(&prompt.why);
        let label = ui.label("Path");
        let field = ui
            .add(
                egui::TextEdit::singleline(&mut prompt.text)
                    .hint_text("/path/to/file")
                    .desired_width(420.0),
            )
            .labelled_by(label.id);
        if prompt.text.is_empty() && !field.has_focus() {
            field.request_focus();
        }
        let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        ui.horizontal(|ui| {
            if ui.button("OK").clicked() || entered {
                choice = Some(true);
            }
            if ui.button("Cancel").clicked() {
                choice = Some(false);
            }
        });
    });
    match choice {
        Some(true) if !prompt.text.trim().is_empty() => {
            let (request, path) = (prompt.request, std::path::PathBuf::from(prompt.text.trim()));
            state.path_prompt = None;
            out.push(Action::FileChosen(request, path));
        }
        Some(_) => state.path_prompt = None,
        None => {}
    }
}

/// Asked when the window closes with changes not saved in a project.
pub fn close_dialog(state: &mut AppState, ctx: &egui::Context, out: &mut Vec<Action>) {
    if !state.confirm_close {
        return;
    }
    let mut choice = None;
    egui::Modal::new(egui::Id::unique("close")).show(ctx, |ui| {
        ui.heading("Save the painting before closing?");
        ui.label(
            "It has changes that are not in a project file. The autosave keeps them for the next \
             start either way.",
        );
        ui.horizontal(|ui| {
            if ui.button("Save project…").clicked() {
                choice = Some(Some(true));
            }
            if ui.button("Close without saving").clicked() {
                choice = Some(Some(false));
            }
            if ui.button("Cancel").clicked() {
                choice = Some(None);
            }
        });
    });
    match choice {
        Some(Some(save)) => out.push(Action::CloseAfter(save)),
        Some(None) => state.confirm_close = false,
        None => {}
    }
}

pub fn restore_dialog(state: &mut AppState, ctx: &egui::Context, out: &mut Vec<Action>) {
    let Some(p) = &state.pending_restore else {
        return;
    };
    let mut choice = None;
    egui::Modal::new(egui::Id::unique("restore")).show(ctx, |ui| {
        ui.heading("Restore your last session?");
        ui.label(format!(
            "cmpaint found the autosave of a {}×{} canvas with {} result(s).",
            p.width,
            p.height,
            p.history.len()
        ));
        ui.horizontal(|ui| {
            if ui.button("Restore").clicked() {
                choice = Some(true);
            }
            if ui.button("Start fresh").clicked() {
                choice = Some(false);
            }
        });
    });
    if let Some(restore) = choice {
        out.push(Action::RestoreAutosave(restore));
    }
}
