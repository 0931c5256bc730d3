//! The desktop app (eframe/egui on wgpu) over the plain-data document in `paint`. The only bridge to
//! the model is the [`Worker`], so the UI thread never waits on a network call.
//!
//! It imports only `worker`, `paint`, `picture`, `recipe`, `file_io` and `labels` — never the engine.
//!
//! | concept                                                 | file            |
//! |---------------------------------------------------------|-----------------|
//! | the App: `AppState` (plain data), `Runtime` (worker,    | `mod.rs`        |
//! | dialogs, threads), one frame (`show`), shortcuts        |                 |
//! | jobs: submit, replies, step previews, frame, outpaint   | `jobs.rs`       |
//! | files: open picture, export PNG, recipes, new canvas    | `files.rs`      |
//! | saving: autosave, projects (written through `file_io`)  | `saving.rs`     |
//! | history: results, Apply, Compare                        | `history.rs`    |
//! | canvas view and input, frame handles                    | `canvas.rs`     |
//! | WGSL compositor (wgpu callback, partial uploads)        | `canvas_gpu.rs` |
//! | panels: read and edit `AppState`, return `Action`s      | `panels.rs`     |
//! | file dialogs (a trait)                                  | `dialogs.rs`    |

pub mod canvas;
pub mod canvas_gpu;
pub mod dialogs;
mod files;
mod history;
mod jobs;
mod panels;
mod saving;

use files::{Opening, PendingImport};
pub use history::{HISTORY_BUDGET_BYTES, HistoryItem};
use jobs::{FrameRun, Pending, StripExport};
pub use jobs::{Running, StepPreview};
pub use saving::AUTOSAVE_SECONDS;
use saving::Autosave;

use crate::paint::brush::{BrushSettings, Tool};
use crate::paint::document::Document;
use crate::paint::frame::Frame;
use crate::paint::project::{self, Project};
use crate::picture::Rgb8;
use crate::recipe::Operation;
use crate::worker::{CandleBackend, Job, JobId, Precision, Worker};
use crate::worker::{ModelInfo, Steps};
use canvas::{Canvas, CanvasEvent, Compare, FrameEdit};
use dialogs::{Dialogs, FileAnswer, FileRequest};
use eframe::egui;
use panels::Action;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// Opens the app window. `model`: a weight file or diffusers folder; None = the built-in model.
/// `picture`: opened at start, as File → Open image would.
pub fn run(
    model: Option<PathBuf>,
    picture: Option<PathBuf>,
    device: &str,
    precision: Precision,
) -> anyhow::Result<()> {
    precision.check().map_err(anyhow::Error::msg)?;
    let device = crate::worker::select_device(device)?;
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title("cmpaint")
            .with_inner_size([1280.0, 820.0]),
        ..Default::default()
    };
    eframe::run_native(
        "cmpaint",
        options,
        Box::new(move |cc| {
            let gpu = match &cc.wgpu_render_state {
                Some(rs) => {
                    canvas_gpu::register(rs);
                    true
                }
                None => false,
            };
            let backend = CandleBackend::new(device, precision);
            let worker = Worker::spawn_with(backend, {
                let ctx = cc.egui_ctx.clone();
                move || ctx.request_repaint()
            });
            let mut app = App::new(worker, model, gpu, Box::new(dialogs::NativeDialogs));
            if let Some(p) = picture {
                app.open_image_file(p);
            }
            Ok(Box::new(match project::data_dir() {
                Some(dir) => app.with_autosave(dir),
                None => app,
            }))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedMode {
    Fixed,
    Random,
    Increment,
}

impl SeedMode {
    const NAMES: [(SeedMode, &'static str); 3] = [
        (SeedMode::Fixed, "fixed"),
        (SeedMode::Random, "random"),
        (SeedMode::Increment, "increment"),
    ];

    /// The name a project stores.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(m, _)| *m == self)
            .expect("every mode is named")
            .1
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(m, _)| *m)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSettings {
    pub seed: u64,
    pub seed_mode: SeedMode,
    pub steps: Steps,
    pub batch: usize,
    /// How far a sketch may move: 0 keeps it, 1 ignores it.
    pub strength: f64,
    /// Fill closed coloured outlines before sketch → image, so a drawn outline becomes a shape.
    pub fill_outlines: bool,
    /// A latent model's prompt, and its negative prompt where it runs classifier-free guidance.
    pub prompt: String,
    pub negative_prompt: String,
    /// A latent model's guidance scale (None: the model's own) and LCM steps.
    pub guidance: Option<f64>,
    pub latent_steps: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EditSettings {
    pub superres_factor: usize,
    /// Re-run sketch → image when a stroke ends (the result appears as a preview).
    pub live: bool,
}

/// How jobs use the generation frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSettings {
    /// Whether the frame is drawn on the canvas (F); jobs use it either way.
    pub shown: bool,
    /// Pixels over which Generate and sketch → image fade into the surroundings.
    pub feather: usize,
    /// How much of its side the frame keeps over the picture when outpainting.
    pub overlap: f64,
    /// Pixels added by the Extend canvas buttons.
    pub extend_by: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InterpolateSettings {
    pub seed_a: u64,
    pub seed_b: u64,
    pub alpha: f64,
    pub strip_frames: usize,
}

/// The in-app stand-in for a file dialog that could not open: what the path is for, the path typed
/// so far, and why no dialog opened.
pub struct PathPrompt {
    pub request: FileRequest,
    pub text: String,
    pub why: String,
}

pub struct Message {
    pub text: String,
    pub error: bool,
}

/// An error kept on screen until the user dismisses it: the status bar shows only the newest
/// message, and a start-up problem (a damaged autosave, a picture that cannot open) would be gone
/// behind the next one before anybody read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    /// How many times it came, one after another.
    pub repeats: usize,
}

/// The largest batch the Generate panel offers (a restored project is held to it too).
pub const MAX_BATCH: usize = 16;

/// Notices kept at most (the oldest go first).
const MAX_NOTICES: usize = 20;

/// Counters the tests and the frame-time bench read.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub frames_shown: usize,
    pub jobs_cancelled: usize,
    /// Wall time of the last 240 `App::show` calls, in seconds.
    pub frame_seconds: Vec<f64>,
    /// The badge of what was drawn over the canvas in the last frame (a preview), if anything.
    pub canvas_overlay: Option<String>,
}

/// The app's plain data: the document, its settings and History, the loaded model's description,
/// what is on screen. What a project saves comes from here; panels read and edit it and return
/// [`panels::Action`]s for the App to carry out. No handles: no worker, no threads, no textures.
pub struct AppState {
    pub doc: Document,
    pub tool: Tool,
    pub brush: BrushSettings,
    pub model: Option<ModelInfo>,
    pub class: Option<u32>,
    /// The style of a model with styles; None: each image's from its seed.
    pub style: Option<u32>,
    pub class_filter: String,
    pub generate: GenerateSettings,
    pub edit: EditSettings,
    pub interpolate: InterpolateSettings,
    /// Whole enlargement of exported PNGs and strips (×1 … ×16, nearest neighbour).
    pub export_scale: usize,
    /// The square of the document jobs work in (see `paint::frame`).
    pub frame: Frame,
    pub framing: FrameSettings,
    pub history: Vec<HistoryItem>,
    /// Memory History may use before its oldest results move to disk.
    pub history_budget: usize,
    /// Where results over the budget go (a folder of this session's in the data folder).
    pub spill_dir: Option<PathBuf>,
    pub preview: Option<HistoryItem>,
    pub step_preview: Option<StepPreview>,
    /// History entry shown on the canvas instead of the picture (while its Compare is held).
    pub compare: Option<usize>,
    pub running: Option<Running>,
    pub messages: Vec<Message>,
    /// Errors waiting to be dismissed, oldest first.
    pub notices: Vec<Notice>,
    pub stats: Stats,
    pub(in crate::app) pending_import: Option<PendingImport>,
    /// The New canvas dialog, open with the size typed so far.
    pub new_canvas_size: Option<(usize, usize)>,
    /// No dialog could open: the app asks for the path itself.
    pub path_prompt: Option<PathPrompt>,
    /// The project file the document was last saved to or opened from.
    pub project_path: Option<PathBuf>,
    /// An autosave found at start, waiting for the user to restore or discard it.
    pub(in crate::app) pending_restore: Option<Project>,
    /// The window's close was asked for with unsaved changes: the Close dialog is open.
    pub confirm_close: bool,
}

impl AppState {
    /// The loaded model's side (the document's shorter side until one is loaded).
    pub fn model_size(&self) -> usize {
        let (w, h) = (self.doc.width, self.doc.height);
        self.model.as_ref().map_or(w.min(h), |m| m.image_size)
    }

    /// The generation frame, fitted to today's document and model: the one place the app clamps
    /// it (every change of the frame, the document or the model goes through here).
    pub fn job_frame(&self) -> Frame {
        let (w, h) = (self.doc.width, self.doc.height);
        self.frame.clamped(w, h, self.model_size())
    }

    /// Memory History holds now, and how many results are on disk.
    pub fn history_memory(&self) -> (usize, usize) {
        let bytes = self.history.iter().map(HistoryItem::bytes_in_memory).sum();
        let on_disk = self.history.iter().filter(|r| r.is_on_disk()).count();
        (bytes, on_disk)
    }
}

/// What the running app holds besides its data: the worker and the jobs in flight, file dialogs and
/// pictures being opened, the autosave thread, and this run's bookkeeping. Nothing here is saved.
struct Runtime {
    spilled: usize,
    spill_warned: bool,
    /// That entry placed over the canvas, for (entry, document revision).
    compare_cache: Option<((usize, u64), Rgb8)>,
    worker: Worker,
    pending: HashMap<JobId, Pending>,
    model_job: Option<JobId>,
    /// An interpolation strip being rendered, frame by frame, for export.
    strip: Option<StripExport>,
    /// An Outpaint or Upscale still going from frame to frame.
    frame_run: Option<FrameRun>,
    opening: Option<Opening>,
    dialogs: Box<dyn Dialogs>,
    /// A file dialog open (on its own thread), and what its answer is for.
    asking: Option<(FileRequest, crossbeam_channel::Receiver<FileAnswer>)>,
    /// Document revision and history length when the project was last saved (None: never).
    saved_state: Option<(u64, usize)>,
    autosave: Option<Autosave>,
    /// The user chose to close (saved, or closing without saving).
    close_confirmed: bool,
    /// The window was told to close (once).
    close_sent: bool,
}

pub struct App {
    pub state: AppState,
    /// The canvas view: zoom and pan, and its textures (the wgpu ones, or the CPU fallback).
    pub canvas: Canvas,
    run: Runtime,
}

/// The data reads through: `app.doc` is `app.state.doc`.
impl std::ops::Deref for App {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.state
    }
}

impl std::ops::DerefMut for App {
    fn deref_mut(&mut self) -> &mut AppState {
        &mut self.state
    }
}

impl App {
    /// Starts loading `model` (None = built-in) on the worker and opens a blank canvas.
    pub fn new(
        mut worker: Worker,
        model: Option<PathBuf>,
        gpu: bool,
        dialogs: Box<dyn Dialogs>,
    ) -> Self {
        let model_job = Some(worker.submit(Job::LoadModel(model)));
        Self {
            state: AppState {
                doc: Document::blank(32, 32),
                tool: Tool::Brush,
                brush: BrushSettings::default(),
                model: None,
                class: None,
                style: None,
                class_filter: String::new(),
                generate: GenerateSettings {
                    seed: 0,
                    seed_mode: SeedMode::Increment,
                    steps: Steps::One,
                    batch: 4,
                    strength: crate::worker::PAPER_SKETCH_STRENGTH,
                    fill_outlines: true,
                    prompt: String::new(),
                    negative_prompt: String::new(),
                    guidance: None,
                    latent_steps: 4,
                },
                edit: EditSettings {
                    superres_factor: 4,
                    live: false,
                },
                interpolate: InterpolateSettings {
                    seed_a: 0,
                    seed_b: 1,
                    alpha: 0.5,
                    strip_frames: 16,
                },
                export_scale: 1,
                frame: Frame::centred(32, 32, 32),
                framing: FrameSettings {
                    shown: true,
                    feather: 4,
                    overlap: 0.5,
                    extend_by: 64,
                },
                history: Vec::new(),
                history_budget: history::HISTORY_BUDGET_BYTES,
                spill_dir: None,
                preview: None,
                step_preview: None,
                compare: None,
                running: None,
                messages: Vec::new(),
                notices: Vec::new(),
                stats: Stats::default(),
                pending_import: None,
                new_canvas_size: None,
                path_prompt: None,
                project_path: None,
                pending_restore: None,
                confirm_close: false,
            },
            canvas: Canvas::new(gpu),
            run: Runtime {
                spilled: 0,
                spill_warned: false,
                compare_cache: None,
                worker,
                pending: HashMap::new(),
                model_job,
                strip: None,
                frame_run: None,
                opening: None,
                dialogs,
                asking: None,
                saved_state: None,
                autosave: None,
                close_confirmed: false,
                close_sent: false,
            },
        }
    }

    pub fn is_busy(&self) -> bool {
        !self.run.pending.is_empty() || self.run.model_job.is_some() || self.run.opening.is_some()
    }
    /// Carries out what a panel asked for.
    fn perform(&mut self, action: Action) {
        match action {
            Action::OpenImage => self.open_image(),
            Action::OpenImageAtModelSize => self.open_image_at_model_size(),
            Action::OpenRecipe => self.open_recipe(),
            Action::OpenProject => self.open_project(),
            Action::SaveProject { save_as } => self.save_project(save_as),
            Action::ExportPng => self.export_png(),
            Action::ExportStrip => self.export_strip(),
            Action::Ask(request) => self.ask_file(request),
            Action::FileChosen(request, path) => self.file_chosen(request, path),
            Action::OpenPicture(path, to_size) => self.start_opening(path, to_size),
            Action::NewCanvas(w, h) => self.new_canvas(w, h),
            Action::LoadModel(path) => self.load_model(path),
            Action::Generate => self.run_generate(),
            Action::Sketch => self.run_sketch(false),
            Action::Edit(operation, seed) => self.run_edit(operation, seed, 1, false),
            Action::Upscale => self.upscale(),
            Action::Outpaint(side) => self.outpaint(side),
            Action::ExtendCanvas(side, n) => {
                self.extend_canvas(side, n);
            }
            Action::InterpolationFrame => self.run_interpolation_frame(),
            Action::ApplyPreview => self.apply_preview(),
            Action::ApplyHistory(i) => self.apply_history(i),
            Action::DiscardHistory(i) => self.discard_history(i),
            Action::Cancel => self.cancel(),
            Action::FitView => self.canvas.fit(&self.state.doc),
            Action::ActualSize => self.canvas.actual_size(),
            Action::ShowMask(shown) => self.canvas.show_mask = shown,
            Action::CloseAfter(save) => self.close_after(save),
            Action::RestoreAutosave(restore) => self.restore_autosave(restore),
        }
    }

    /// Asks for a file without waiting: the answer comes back in `poll_file_answer` (at once from
    /// scripted dialogs, from the dialog's thread from native ones) and goes where `request` says.
    pub fn ask_file(&mut self, request: FileRequest) {
        if self.run.asking.is_some() {
            return self.info("a file dialog is already open");
        }
        let answer = self.run.dialogs.ask(request);
        self.run.asking = Some((request, answer));
        self.poll_file_answer();
    }

    fn poll_file_answer(&mut self) {
        use crossbeam_channel::TryRecvError;
        let Some((request, answer)) = &self.run.asking else {
            return;
        };
        let request = *request;
        let answer = match answer.try_recv() {
            Err(TryRecvError::Empty) => return,
            Ok(answer) => answer,
            Err(TryRecvError::Disconnected) => Err("the file dialog stopped unexpectedly".into()),
        };
        self.run.asking = None;
        match answer {
            Ok(Some(path)) => self.file_chosen(request, path),
            Ok(None) => {}
            Err(why) => {
                self.state.path_prompt = Some(PathPrompt {
                    request,
                    text: String::new(),
                    why,
                })
            }
        }
    }

    /// Where each file asked for goes.
    pub fn file_chosen(&mut self, request: FileRequest, path: PathBuf) {
        match request {
            FileRequest::OpenImage {
                at_model_size: false,
            } => self.open_image_file(path),
            FileRequest::OpenImage {
                at_model_size: true,
            } => self.open_image_at_model_size_from(path),
            FileRequest::OpenModel { .. } => self.load_model(Some(path)),
            FileRequest::OpenLora => self.load_lora(path),
            FileRequest::OpenRecipe => self.open_recipe_from(path),
            FileRequest::ExportPng => self.export_png_to(path),
            FileRequest::ExportStrip => self.export_strip_to(path),
            FileRequest::OpenProject => self.open_project_from(path),
            FileRequest::SaveProject { then_close } => {
                self.save_project_to(path);
                if then_close && !self.is_dirty() {
                    self.run.close_confirmed = true;
                }
            }
        }
    }

    /// Whether a file dialog is open (its thread still waiting for the user).
    pub fn is_asking_for_a_file(&self) -> bool {
        self.run.asking.is_some()
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.push_message(text.into(), false);
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.push_message(text.into(), true);
    }

    fn push_message(&mut self, text: String, error: bool) {
        if error {
            match self.state.notices.last_mut() {
                Some(last) if last.text == text => last.repeats += 1,
                _ => {
                    self.state.notices.push(Notice {
                        text: text.clone(),
                        repeats: 1,
                    });
                    if self.state.notices.len() > MAX_NOTICES {
                        self.state.notices.remove(0);
                    }
                }
            }
        }
        self.state.messages.push(Message { text, error });
        if self.state.messages.len() > 50 {
            self.state.messages.remove(0);
        }
    }

    /// The window may close now: nothing is unsaved, or the user chose. Otherwise the Close dialog
    /// opens and the close waits for its answer.
    pub fn may_close(&mut self) -> bool {
        if self.run.close_confirmed || !self.is_dirty() {
            return true;
        }
        self.state.confirm_close = true;
        false
    }

    /// The Close dialog's answer: `save` first (a project file; cancelled or failed, nothing closes),
    /// or close as it is (the autosave keeps the painting for the next start either way).
    pub fn close_after(&mut self, save: bool) {
        self.state.confirm_close = false;
        if save {
            match self.state.project_path.clone() {
                Some(path) => self.save_project_to(path),
                // the window closes once the file dialog's answer is saved
                None => return self.ask_file(FileRequest::SaveProject { then_close: true }),
            }
            if self.is_dirty() {
                return;
            }
        }
        self.run.close_confirmed = true;
    }

    /// The Generate settings a project keeps.
    pub(super) fn session_settings(&self) -> project::SessionSettings {
        project::SessionSettings {
            seed: self.state.generate.seed,
            seed_mode: self.state.generate.seed_mode.name().to_string(),
            batch: self.state.generate.batch,
            prompt: self.state.generate.prompt.clone(),
            negative_prompt: self.state.generate.negative_prompt.clone(),
        }
    }

    /// One frame: worker replies, shortcuts, panels, canvas.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let started = Instant::now();
        // Results wait while a stroke is in progress: applying one mid-stroke would split its undo step.
        if !self.canvas.is_stroking() {
            self.poll_worker();
            self.poll_opening();
            self.poll_file_answer();
        }
        self.autosave_tick(false);
        // once per frame: new results and thumbnails made as rows scroll into view both count
        self.keep_history_budget();
        self.shortcuts(ui.ctx());
        let status = panels::Status {
            loading_model: self.is_loading_model(),
            dirty: self.is_dirty(),
            zoom: self.canvas.zoom,
            show_mask: self.canvas.show_mask,
        };
        let mut actions = Vec::new();
        let (state, out) = (&mut self.state, &mut actions);
        panels::menu_bar(state, &status, ui, out);
        panels::notices(state, ui);
        panels::status_bar(state, &status, ui, out);
        panels::tools_panel(state, ui, out);
        panels::side_panel(state, ui, out);
        panels::import_dialog(state, ui.ctx(), out);
        panels::new_canvas_dialog(state, ui.ctx(), out);
        panels::restore_dialog(state, ui.ctx(), out);
        panels::close_dialog(state, ui.ctx(), out);
        panels::path_prompt(state, ui.ctx(), out);
        for action in actions {
            self.perform(action);
        }
        // closing with changes not saved in a project asks first (Krita and GIMP do)
        let ctx = ui.ctx();
        if self.run.close_confirmed && !self.run.close_sent {
            self.run.close_sent = true;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        } else if ctx.input(|i| i.viewport().close_requested()) && !self.may_close() {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
        }
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE)
            .show(ui, |ui| {
                // a result held for Compare shows where it was made, over the canvas
                let key = self.state.compare.map(|i| (i, self.state.doc.revision));
                if self.run.compare_cache.as_ref().map(|c| c.0) != key {
                    self.run.compare_cache = key.and_then(|(i, revision)| {
                        let r = self.state.history.get(i)?;
                        let image = r.image().ok()?;
                        let placed = self.placed_over_canvas(&image, r.placement.as_ref());
                        Some(((i, revision), placed))
                    });
                }
                let compare = self
                    .run
                    .compare_cache
                    .as_ref()
                    .map(|((i, revision), image)| Compare {
                        image,
                        key: key_of(&(i, revision)),
                    });
                let model = self.model_size();
                self.state.frame = self.job_frame();
                let frame = FrameEdit {
                    frame: &mut self.state.frame,
                    min: model,
                    shown: self.state.framing.shown,
                };
                let event = self.canvas.ui(
                    ui,
                    &mut self.state.doc,
                    self.state.tool,
                    &mut self.state.brush,
                    compare,
                    frame,
                );
                self.state.frame = self.job_frame();
                // Over the canvas, where the painter looks: a running job's step preview, else the
                // preview (a slider frame, a live result) in the frame it was made for. Not while
                // Compare is held or a stroke is being painted (the painter sees their own canvas).
                let shown = self.state.compare.is_none() && !self.canvas.is_stroking();
                // holding S looks under a preview, at the sketch it was made from
                let peek = ui.input(|i| i.key_down(egui::Key::S) && i.modifiers.is_none())
                    && !ui.ctx().egui_wants_keyboard_input();
                let uv = egui::Rect::from_min_max(egui::Pos2::ZERO, egui::Pos2::new(1.0, 1.0));
                let mut overlay = None;
                if let Some(p) = self.state.step_preview.as_mut().filter(|_| shown) {
                    let rect = match p.frame {
                        Some(f) => self.canvas.frame_rect(&self.state.doc, f),
                        None => self.canvas.image_rect(&self.state.doc),
                    };
                    let texture = p.texture(ui.ctx()).id();
                    ui.painter_at(ui.max_rect())
                        .image(texture, rect, uv, egui::Color32::WHITE);
                    overlay = Some(format!("preview · step {}/{}", p.done, p.total));
                } else if let Some(p) = self.state.preview.as_mut().filter(|_| shown && !peek) {
                    let frame = p
                        .placement
                        .as_ref()
                        .and_then(|pl| pl.frame_in(&self.state.doc));
                    let rect = match frame {
                        Some(f) => self.canvas.frame_rect(&self.state.doc, f),
                        None => self.canvas.image_rect(&self.state.doc),
                    };
                    let texture = p.texture(ui.ctx()).id();
                    ui.painter_at(ui.max_rect())
                        .image(texture, rect, uv, egui::Color32::WHITE);
                    let sketch = matches!(p.recipe.operation, Operation::SdEdit { .. });
                    overlay = Some(format!(
                        "preview · {} · Apply or Dismiss at the foot of the side panel{}",
                        p.recipe.operation.label(),
                        if sketch {
                            " · hold S to see the sketch"
                        } else {
                            ""
                        }
                    ));
                }
                if let Some(r) = self.state.compare.and_then(|i| self.state.history.get(i)) {
                    overlay = Some(format!("comparing · {}", r.recipe.describe()));
                }
                if let Some(text) = &overlay {
                    canvas::badge(ui, text);
                }
                self.state.stats.canvas_overlay = overlay;
                let sketched = self.state.doc.has_sketch_in(self.job_frame());
                if event == CanvasEvent::StrokeEnded && self.state.edit.live && sketched {
                    self.run_sketch(true);
                }
            });
        if self.is_busy() {
            // A safety net only: every message from the worker wakes the window itself. At 10 frames
            // a second a software renderer (llvmpipe, a machine without a GPU) took 0.65 of the two
            // cores the job needed.
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(500));
        }
        let s = &mut self.state.stats.frame_seconds;
        s.push(started.elapsed().as_secs_f64());
        if s.len() > 240 {
            s.remove(0);
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        use egui::{Key, KeyboardShortcut, Modifiers};
        let cmd = |k| KeyboardShortcut::new(Modifiers::COMMAND, k);
        let cmd_shift = |k| KeyboardShortcut::new(Modifiers::COMMAND | Modifiers::SHIFT, k);
        // Shortcuts with a modifier work everywhere; single keys only when no text field has focus.
        let typing = ctx.egui_wants_keyboard_input();
        let (save, redo, undo, run, fit, actual, cancel) = ctx.input_mut(|i| {
            (
                i.consume_shortcut(&cmd(Key::S)),
                i.consume_shortcut(&cmd_shift(Key::Z)) || i.consume_shortcut(&cmd(Key::Y)),
                i.consume_shortcut(&cmd(Key::Z)),
                i.consume_shortcut(&cmd(Key::Enter)),
                i.consume_shortcut(&cmd(Key::Num0)),
                i.consume_shortcut(&cmd(Key::Num1)),
                i.key_pressed(Key::Escape),
            )
        });
        if save {
            self.save_project(false);
        }
        if undo && !self.canvas.is_stroking() {
            self.state.doc.undo();
        }
        if redo && !self.canvas.is_stroking() {
            self.state.doc.redo();
        }
        if run {
            self.run_generate();
        }
        if fit {
            self.canvas.fit(&self.state.doc);
        }
        if actual {
            self.canvas.actual_size();
        }
        if cancel {
            self.cancel();
        }
        if typing {
            return;
        }
        let pressed = |k| ctx.input(|i| i.key_pressed(k) && i.modifiers.is_none());
        for (key, tool) in [
            (Key::B, Tool::Brush),
            (Key::E, Tool::Eraser),
            (Key::M, Tool::Mask),
            (Key::I, Tool::Picker),
            (Key::V, Tool::Frame),
        ] {
            if pressed(key) {
                self.state.tool = tool;
            }
        }
        if pressed(Key::F) {
            self.state.framing.shown = !self.state.framing.shown;
        }
        if pressed(Key::H) {
            self.canvas.show_mask = !self.canvas.show_mask;
        }
        if pressed(Key::X) {
            self.state.brush.swap_colours();
        }
        if pressed(Key::OpenBracket) {
            self.state.brush.grow(false);
        }
        if pressed(Key::CloseBracket) {
            self.state.brush.grow(true);
        }
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn on_exit(&mut self) {
        self.autosave_now();
        // the results moved to disk are in the autosave now
        if let Some(dir) = &self.state.spill_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A value's hash, as the key that tells the canvas a Compare picture changed.
fn key_of(value: &impl std::hash::Hash) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(value)
}
