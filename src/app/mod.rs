//! The desktop app (eframe/egui on wgpu) over the plain-data document in `paint`. The only bridge to
//! the model is the [`Worker`], so the UI thread never waits on a network call.
//!
//! | concept                          | file            |
//! |----------------------------------|-----------------|
//! | canvas view and input            | `canvas.rs`     |
//! | WGSL compositor (wgpu callback)  | `canvas_gpu.rs` |
//! | panels                           | `panels.rs`     |
//! | file dialogs (a trait)           | `dialogs.rs`    |
//! | class names                      | `labels.rs`     |

pub mod canvas;
pub mod canvas_gpu;
pub mod dialogs;
pub mod labels;
mod panels;

use crate::paint::brush::{BrushSettings, Tool};
use crate::paint::document::Document;
use crate::paint::project::{self, Project};
use crate::picture::{
    Resize, Rgb8, decode, dimensions, is_gif, to_model_size, write_apng, write_gif,
};
use crate::recipe::{EmbeddedImage, Operation, Recipe, encode_png, read_recipe};
use crate::worker::execute::{ModelInfo, Steps, network_calls, plan, recipe_steps};
use crate::worker::{Job, JobId, Reply, Worker, is_loadable};
use canvas::{Canvas, CanvasEvent};
use dialogs::Dialogs;
use eframe::egui;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Opens the app window. `model`: a weight file or diffusers folder; None = the built-in model.
pub fn run(model: Option<PathBuf>, device: &str) -> anyhow::Result<()> {
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
            let worker = Worker::spawn(device, {
                let ctx = cc.egui_ctx.clone();
                move || ctx.request_repaint()
            });
            let app = App::new(worker, model, gpu, Box::new(dialogs::NativeDialogs));
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

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSettings {
    pub seed: u64,
    pub seed_mode: SeedMode,
    pub steps: Steps,
    pub batch: usize,
    /// How far a sketch may move: 0 keeps it, 1 ignores it.
    pub strength: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EditSettings {
    pub superres_factor: usize,
    /// Re-run sketch → image when a stroke ends (the result appears as a preview).
    pub live: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InterpolateSettings {
    pub seed_a: u64,
    pub seed_b: u64,
    pub alpha: f64,
    pub strip_frames: usize,
}

/// A result: the image, how it was made, and its thumbnail once shown.
pub struct HistoryItem {
    pub image: Rgb8,
    pub recipe: Recipe,
    /// What it cost to make, e.g. "79 calls · 3.21 s" (this session's results only).
    pub cost: Option<String>,
    texture: Option<egui::TextureHandle>,
}

impl HistoryItem {
    fn new(image: Rgb8, recipe: Recipe) -> Self {
        Self {
            image,
            recipe,
            cost: None,
            texture: None,
        }
    }

    fn texture(&mut self, ctx: &egui::Context) -> &egui::TextureHandle {
        self.texture.get_or_insert_with(|| {
            let img = egui::ColorImage::from_rgb(
                [self.image.width, self.image.height],
                &self.image.pixels,
            );
            ctx.load_texture("result", img, egui::TextureOptions::NEAREST)
        })
    }
}

/// What to do with a job's results when they arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Apply the first image to the canvas, keep all in the history.
    Apply,
    /// Show as the preview (slider frame, live sketch).
    Preview,
    /// Frame `i` of an exported strip.
    Strip(usize),
}

/// A submitted job the app is waiting for.
struct Pending {
    purpose: Purpose,
    label: String,
    total: usize,
    /// Network calls of the run, per batch (shown beside the result).
    calls: usize,
}

/// The clean estimate of a running job's current step, shown on the canvas under a "preview" badge
/// until the result (or a cancel) replaces it.
pub struct StepPreview {
    pub id: JobId,
    pub image: Rgb8,
    pub done: usize,
    pub total: usize,
}

/// The job the status bar shows.
pub struct Running {
    pub id: JobId,
    pub label: String,
    pub done: usize,
    pub total: usize,
    pub started: Instant,
}

struct StripExport {
    path: PathBuf,
    frames: Vec<Option<Rgb8>>,
}

/// A picture of another size than the model's, waiting for the user to choose fit or crop.
struct PendingImport {
    path: PathBuf,
    width: u32,
    height: u32,
}

/// A picture being decoded and brought to the canvas size on its own thread: a photo takes a tenth of
/// a second or more, which the UI must not wait for.
struct Opening {
    path: PathBuf,
    result: crossbeam_channel::Receiver<Result<Rgb8, String>>,
}

pub struct Message {
    pub text: String,
    pub error: bool,
}

/// Counters the tests and the frame-time bench read.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub frames_shown: usize,
    pub jobs_cancelled: usize,
    /// Wall time of the last 240 `App::show` calls, in seconds.
    pub frame_seconds: Vec<f64>,
}

pub struct App {
    pub doc: Document,
    pub tool: Tool,
    pub brush: BrushSettings,
    pub canvas: Canvas,
    pub model: Option<ModelInfo>,
    pub class: Option<u32>,
    pub class_filter: String,
    pub generate: GenerateSettings,
    pub edit: EditSettings,
    pub interpolate: InterpolateSettings,
    pub history: Vec<HistoryItem>,
    pub preview: Option<HistoryItem>,
    pub step_preview: Option<StepPreview>,
    /// History entry shown on the canvas instead of the picture (while its Compare is held).
    pub compare: Option<usize>,
    pub running: Option<Running>,
    pub messages: Vec<Message>,
    pub stats: Stats,
    worker: Worker,
    pending: HashMap<JobId, Pending>,
    model_job: Option<JobId>,
    /// An interpolation strip being rendered, frame by frame, for export.
    strip: Option<StripExport>,
    pending_import: Option<PendingImport>,
    opening: Option<Opening>,
    dialogs: Box<dyn Dialogs>,
    /// The project file the document was last saved to or opened from.
    pub project_path: Option<PathBuf>,
    /// Document revision and history length when the project was last saved (None: never).
    saved_state: Option<(u64, usize)>,
    autosave: Option<Autosave>,
    /// An autosave found at start, waiting for the user to restore or discard it.
    pending_restore: Option<Project>,
}

/// Background saves of the document to the data folder.
struct Autosave {
    path: PathBuf,
    /// Document revision and history length last written.
    written: (u64, usize),
    last: Instant,
    running: Option<std::thread::JoinHandle<Result<(), String>>>,
}

/// Seconds between autosaves of a changed document.
pub const AUTOSAVE_SECONDS: u64 = 30;

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
            doc: Document::blank(32, 32),
            tool: Tool::Brush,
            brush: BrushSettings::default(),
            canvas: Canvas::new(gpu),
            model: None,
            class: None,
            class_filter: String::new(),
            generate: GenerateSettings {
                seed: 0,
                seed_mode: SeedMode::Increment,
                steps: Steps::One,
                batch: 4,
                strength: crate::worker::PAPER_SKETCH_STRENGTH,
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
            history: Vec::new(),
            preview: None,
            step_preview: None,
            compare: None,
            running: None,
            messages: Vec::new(),
            stats: Stats::default(),
            worker,
            pending: HashMap::new(),
            model_job,
            strip: None,
            pending_import: None,
            opening: None,
            dialogs,
            project_path: None,
            saved_state: None,
            autosave: None,
            pending_restore: None,
        }
    }

    /// Autosaves into `dir` (see `project::data_dir`); an autosave already there is offered for
    /// restoring first.
    pub fn with_autosave(mut self, dir: PathBuf) -> Self {
        let path = dir.join(project::AUTOSAVE_FILE);
        if path.exists() {
            match Project::read(&path) {
                Ok(p) => self.pending_restore = Some(p),
                Err(e) => self.error(format!("the last autosave cannot be restored: {e}")),
            }
        }
        self.autosave = Some(Autosave {
            path,
            written: (self.doc.revision, 0),
            last: Instant::now(),
            running: None,
        });
        self
    }

    /// The state that makes a save necessary: document revision and number of results.
    fn save_state(&self) -> (u64, usize) {
        (self.doc.revision, self.history.len())
    }

    pub fn is_dirty(&self) -> bool {
        self.saved_state != Some(self.save_state())
            && (self.doc.can_undo() || !self.history.is_empty())
    }

    fn capture(&self) -> Result<Project, String> {
        let history: Vec<(&Rgb8, &Recipe)> =
            self.history.iter().map(|r| (&r.image, &r.recipe)).collect();
        let model = self.model.as_ref().and_then(|m| m.file.as_deref());
        Project::capture(&self.doc, &history, model).map_err(|e| e.to_string())
    }

    /// Every AUTOSAVE_SECONDS, when something changed: the document is copied here and encoded and
    /// written on a background thread (temp file, fsync, rename).
    fn autosave_tick(&mut self, force: bool) {
        let state = self.save_state();
        let Some(a) = &mut self.autosave else { return };
        if let Some(h) = a.running.take_if(|h| h.is_finished() || force)
            && let Ok(Err(e)) = h.join()
        {
            let msg = format!("autosave failed: {e}");
            self.error(msg);
            return;
        }
        let a = self.autosave.as_mut().expect("checked");
        let due = force || a.last.elapsed().as_secs() >= AUTOSAVE_SECONDS;
        if !due || a.written == state || a.running.is_some() || self.pending_restore.is_some() {
            return;
        }
        let doc = self.doc.clone();
        let history: Vec<(Rgb8, Recipe)> = self
            .history
            .iter()
            .map(|r| (r.image.clone(), r.recipe.clone()))
            .collect();
        let model = self.model.as_ref().and_then(|m| m.file.clone());
        let a = self.autosave.as_mut().expect("checked");
        let path = a.path.clone();
        a.written = state;
        a.last = Instant::now();
        let save = move || {
            let refs: Vec<(&Rgb8, &Recipe)> = history.iter().map(|(i, r)| (i, r)).collect();
            let p = Project::capture(&doc, &refs, model.as_deref()).map_err(|e| e.to_string())?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            write_atomic_with(&path, |tmp| write_file(tmp, &p.to_bytes()))
        };
        if force {
            if let Err(e) = save() {
                self.error(format!("autosave failed: {e}"));
            }
        } else {
            a.running = Some(std::thread::spawn(save));
        }
    }

    /// Writes an autosave now and waits for it (on exit, and for tests).
    pub fn autosave_now(&mut self) {
        self.autosave_tick(true);
    }

    /// Replaces the document and history with a project's.
    fn restore(&mut self, project: &Project) -> Result<(), String> {
        let r = project.restore().map_err(|e| e.to_string())?;
        self.doc = r.doc;
        self.history = r
            .history
            .into_iter()
            .map(|(img, recipe)| HistoryItem::new(img, recipe))
            .collect();
        self.canvas.fit_pending = true;
        let current = self.model.as_ref().and_then(|m| m.file.clone());
        if r.model != current && r.model.as_ref().is_none_or(|p| is_loadable(p)) {
            self.load_model(r.model);
        }
        Ok(())
    }

    pub fn restore_autosave(&mut self, restore: bool) {
        let Some(p) = self.pending_restore.take() else {
            return;
        };
        if restore {
            match self.restore(&p) {
                Ok(()) => self.info("restored the last session"),
                Err(e) => self.error(format!("the autosave cannot be restored: {e}")),
            }
        }
        // From now on autosaves overwrite it.
        if let Some(a) = &mut self.autosave {
            a.written = (u64::MAX, usize::MAX);
        }
    }

    /// File → Save Project (As…): writes the document, results and model to a `.cmpaint` file.
    pub fn save_project(&mut self, ask: bool) {
        let path = match (&self.project_path, ask) {
            (Some(p), false) => p.clone(),
            _ => match self.dialogs.save_project("painting.cmpaint") {
                Some(p) => p,
                None => return,
            },
        };
        let written = self
            .capture()
            .and_then(|p| write_atomic_with(&path, |tmp| write_file(tmp, &p.to_bytes())));
        match written {
            Ok(()) => {
                self.saved_state = Some(self.save_state());
                self.project_path = Some(path.clone());
                self.info(format!("saved {}", path.display()));
            }
            Err(e) => self.error(format!(
                "the project was not saved and is still open with its changes: {e}"
            )),
        }
    }

    pub fn open_project(&mut self) {
        let Some(path) = self.dialogs.open_project() else {
            return;
        };
        let opened = Project::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|p| self.restore(&p));
        match opened {
            Ok(()) => {
                self.saved_state = Some(self.save_state());
                self.project_path = Some(path.clone());
                self.info(format!("opened {}", path.display()));
            }
            Err(e) => self.error(format!("{}: {e}", path.display())),
        }
    }

    pub fn is_busy(&self) -> bool {
        !self.pending.is_empty() || self.model_job.is_some() || self.opening.is_some()
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.push_message(text.into(), false);
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.push_message(text.into(), true);
    }

    fn push_message(&mut self, text: String, error: bool) {
        self.messages.push(Message { text, error });
        if self.messages.len() > 50 {
            self.messages.remove(0);
        }
    }

    /// One frame: worker replies, shortcuts, panels, canvas.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let started = Instant::now();
        // Results wait while a stroke is in progress: applying one mid-stroke would split its undo step.
        if !self.canvas.is_stroking() {
            self.poll_worker();
            self.poll_opening();
        }
        self.autosave_tick(false);
        self.shortcuts(ui.ctx());
        panels::menu_bar(self, ui);
        panels::status_bar(self, ui);
        panels::tools_panel(self, ui);
        panels::side_panel(self, ui);
        panels::import_dialog(self, ui.ctx());
        panels::restore_dialog(self, ui.ctx());
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE)
            .show(ui, |ui| {
                // Holding Compare wins; otherwise a running job's step preview, when it is the
                // canvas's size.
                let (w, h) = (self.doc.width, self.doc.height);
                // …and never while a stroke is being painted: the painter sees their own canvas
                let step = self
                    .step_preview
                    .as_ref()
                    .filter(|p| (p.image.width, p.image.height) == (w, h))
                    .filter(|_| !self.canvas.is_stroking());
                let compare = self
                    .compare
                    .and_then(|i| self.history.get(i))
                    .map(|r| r.image.clone())
                    .or_else(|| step.map(|p| p.image.clone()));
                let badge = step
                    .filter(|_| self.compare.is_none())
                    .map(|p| format!("preview · step {}/{}", p.done, p.total));
                let event = self.canvas.ui(
                    ui,
                    &mut self.doc,
                    self.tool,
                    &mut self.brush,
                    compare.as_ref(),
                );
                if let Some(text) = badge {
                    canvas::badge(ui, &text);
                }
                if event == CanvasEvent::StrokeEnded && self.edit.live && self.doc.has_sketch() {
                    self.run_sketch(true);
                }
            });
        if self.is_busy() {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        }
        let s = &mut self.stats.frame_seconds;
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
            self.doc.undo();
        }
        if redo && !self.canvas.is_stroking() {
            self.doc.redo();
        }
        if run {
            self.run_generate();
        }
        if fit {
            self.canvas.fit(&self.doc);
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
        ] {
            if pressed(key) {
                self.tool = tool;
            }
        }
        if pressed(Key::X) {
            self.brush.swap_colours();
        }
        if pressed(Key::OpenBracket) {
            self.brush.grow(false);
        }
        if pressed(Key::CloseBracket) {
            self.brush.grow(true);
        }
    }

    pub fn cancel(&mut self) {
        if !self.pending.is_empty() {
            self.worker.cancel_all();
            self.info("cancelled");
        }
    }

    fn poll_worker(&mut self) {
        while let Some(reply) = self.worker.try_recv() {
            self.handle_reply(reply);
        }
    }

    fn handle_reply(&mut self, reply: Reply) {
        let id = reply.id();
        let ends_job = !matches!(reply, Reply::Progress { .. });
        if ends_job && self.step_preview.as_ref().is_some_and(|p| p.id == id) {
            self.step_preview = None;
        }
        match reply {
            Reply::ModelLoaded { info, .. } => {
                self.model_job = None;
                self.model_loaded(info);
            }
            Reply::Progress {
                done,
                total,
                preview,
                ..
            } => {
                let label = self.pending.get(&id).map(|p| p.label.clone());
                // only for results bound for the canvas: slider frames and live sketches are quick
                // and have their own preview, strips are not shown
                let shown = self
                    .pending
                    .get(&id)
                    .is_some_and(|p| matches!(p.purpose, Purpose::Apply));
                if let Some(image) = preview.filter(|_| shown) {
                    self.step_preview = Some(StepPreview {
                        id,
                        image,
                        done,
                        total,
                    });
                }
                match (&mut self.running, label) {
                    (Some(r), _) if r.id == id => (r.done, r.total) = (done, total),
                    (_, Some(label)) => {
                        self.running = Some(Running {
                            id,
                            label,
                            done,
                            total,
                            started: Instant::now(),
                        })
                    }
                    _ => {}
                }
            }
            Reply::Finished {
                images, seconds, ..
            } => {
                if let Some(p) = self.pending.remove(&id) {
                    let cost = format!(
                        "{} call{} · {seconds:.2} s",
                        p.calls,
                        if p.calls == 1 { "" } else { "s" }
                    );
                    self.finished(p.purpose, images, cost, seconds);
                }
            }
            Reply::Failed { message, .. } => {
                if self.model_job == Some(id) {
                    self.model_job = None;
                    let keep = match &self.model {
                        Some(m) => format!(" (still using {})", m.name),
                        None => String::new(),
                    };
                    self.error(format!("cannot load the model: {message}{keep}"));
                } else {
                    self.error(message);
                }
                if self.pending.remove(&id).is_some() {
                    self.strip_failed();
                }
            }
            Reply::Cancelled { .. } => {
                self.stats.jobs_cancelled += 1;
                if self
                    .pending
                    .remove(&id)
                    .is_some_and(|p| matches!(p.purpose, Purpose::Strip(_)))
                {
                    self.strip_failed();
                }
            }
        }
        if self
            .running
            .as_ref()
            .is_some_and(|r| !self.pending.contains_key(&r.id))
        {
            self.running = None;
        }
        // The oldest job still waiting is the one the worker runs now.
        if self.running.is_none()
            && let Some((&next, p)) = self.pending.iter().min_by_key(|(id, _)| **id)
        {
            self.running = Some(Running {
                id: next,
                label: p.label.clone(),
                done: 0,
                total: p.total,
                started: Instant::now(),
            });
        }
    }

    fn strip_failed(&mut self) {
        if self.strip.take().is_some() {
            self.error("the strip export stopped: no file was written");
        }
    }

    fn model_loaded(&mut self, info: ModelInfo) {
        let size = info.image_size;
        if (self.doc.width, self.doc.height) != (size, size) {
            if self.doc.is_pristine() {
                self.doc = Document::blank(size, size);
                self.canvas.fit_pending = true;
            } else {
                self.info(format!(
                    "the canvas is {}×{} and the model works at {size}×{size}: your painting is kept; \
                     File → New canvas (or Open image) to work at the model's size",
                    self.doc.width, self.doc.height
                ));
            }
        }
        let names = labels::class_names(&info);
        self.class = info.num_classes.map(|_| labels::default_class(&names));
        self.info(format!(
            "model: {} ({size}×{size}{})",
            info.name,
            if info.num_classes.is_some() {
                ", class-conditional"
            } else {
                ""
            }
        ));
        if self.generate.steps == Steps::Tuned && info.ts.is_none() {
            self.generate.steps = Steps::One;
        }
        // each model comes with the sketch strength its sketch test chose (else the paper's)
        self.generate.strength = info.sketch_strength;
        self.model = Some(info);
    }

    fn finished(
        &mut self,
        purpose: Purpose,
        images: Vec<(Rgb8, Recipe)>,
        cost: String,
        seconds: f64,
    ) {
        match purpose {
            Purpose::Apply => {
                let n = images.len();
                let Some((first, recipe)) = images.first().cloned() else {
                    return;
                };
                self.info(format!(
                    "{}: {n} image{} in {seconds:.2} s ({cost})",
                    recipe.operation.label(),
                    if n == 1 { "" } else { "s" }
                ));
                for (img, r) in images {
                    let mut item = HistoryItem::new(img, r);
                    item.cost = Some(cost.clone());
                    self.history.push(item);
                }
                self.apply_to_canvas(&first, recipe);
            }
            Purpose::Preview => {
                self.stats.frames_shown += 1;
                if let Some((img, r)) = images.into_iter().next() {
                    self.preview = Some(HistoryItem::new(img, r));
                }
            }
            Purpose::Strip(i) => {
                let Some(strip) = &mut self.strip else { return };
                strip.frames[i] = images.into_iter().next().map(|(img, _)| img);
                if strip.frames.iter().all(Option::is_some) {
                    let strip = self.strip.take().expect("checked");
                    let frames: Vec<Rgb8> = strip.frames.into_iter().flatten().collect();
                    // the temporary file has another name: the chosen path says which format
                    let gif = is_gif(&strip.path);
                    match write_atomic_with(&strip.path, |tmp| {
                        let written = if gif {
                            write_gif(tmp, &frames, 10)
                        } else {
                            write_apng(tmp, &frames, 10)
                        };
                        written.map_err(|e| e.to_string())
                    }) {
                        Ok(()) => self.info(format!(
                            "wrote {} ({} frames)",
                            strip.path.display(),
                            frames.len()
                        )),
                        Err(e) => self.error(e),
                    }
                }
            }
        }
    }

    /// Submits a recipe run; `label` is what the status bar says.
    fn submit(&mut self, recipe: Recipe, batch: usize, interactive: bool, purpose: Purpose) {
        let parameterization = self
            .model
            .as_ref()
            .map(|m| m.parameterization)
            .unwrap_or_default();
        let total = recipe_steps(&recipe, parameterization);
        let calls = network_calls(&recipe, parameterization);
        let label = recipe.operation.label().to_string();
        let id = self.worker.submit(Job::Run {
            recipe: Box::new(recipe),
            batch,
            interactive,
        });
        if self.running.is_none() {
            self.running = Some(Running {
                id,
                label: label.clone(),
                done: 0,
                total,
                started: Instant::now(),
            });
        }
        self.pending.insert(
            id,
            Pending {
                purpose,
                label,
                total,
                calls,
            },
        );
    }

    fn plan(&mut self, operation: Operation, seed: u64, steps: Steps) -> Option<Recipe> {
        let Some(model) = &self.model else {
            self.error("no model is loaded yet");
            return None;
        };
        match plan(model, operation, seed, self.class, steps) {
            Ok(r) => Some(r),
            Err(e) => {
                self.error(e.to_string());
                None
            }
        }
    }

    /// The seed for the next Generate, advancing it as the seed mode says.
    fn next_seed(&mut self) -> u64 {
        let g = &mut self.generate;
        match g.seed_mode {
            SeedMode::Fixed => {}
            SeedMode::Random => g.seed = rand::random::<u32>() as u64,
            SeedMode::Increment if !self.history.is_empty() => {
                g.seed = g.seed.wrapping_add(g.batch as u64)
            }
            SeedMode::Increment => {}
        }
        g.seed
    }

    /// Generate: a sketch on the canvas becomes an image (SDEdit at the strength); a canvas without
    /// one gets new images from noise. One click either way.
    pub fn run_generate(&mut self) {
        if self.doc.has_sketch() {
            self.run_sketch(false);
            return;
        }
        let seed = self.next_seed();
        let steps = self.generate.steps;
        if let Some(recipe) = self.plan(Operation::Generate, seed, steps) {
            self.submit(recipe, self.generate.batch, false, Purpose::Apply);
        }
    }

    /// Sketch → image on the composite (live: interactive, shown as a preview).
    pub fn run_sketch(&mut self, live: bool) {
        let seed = if live {
            self.generate.seed
        } else {
            self.next_seed()
        };
        let op = Operation::SdEdit {
            strength: self.generate.strength,
        };
        let batch = if live { 1 } else { self.generate.batch };
        self.run_edit(op, seed, batch, live);
    }

    pub fn run_edit(&mut self, operation: Operation, seed: u64, batch: usize, live: bool) {
        if operation == Operation::Inpaint && !self.doc.has_mask() {
            self.error("inpainting needs a mask: paint one with the mask brush (M)");
            return;
        }
        let mask = (operation == Operation::Inpaint).then(|| self.doc.mask_f32());
        let Some(mut recipe) = self.plan(operation, seed, Steps::One) else {
            return;
        };
        let embedded = EmbeddedImage::from_rgb(&self.doc.composite()).and_then(|input| {
            let mask = mask
                .map(|m| EmbeddedImage::from_mask(self.doc.width, self.doc.height, &m))
                .transpose()?;
            Ok((input, mask))
        });
        match embedded {
            Ok((input, mask)) => {
                recipe.input = Some(input);
                recipe.mask = mask;
            }
            Err(e) => return self.error(e.to_string()),
        }
        let purpose = if live {
            Purpose::Preview
        } else {
            Purpose::Apply
        };
        self.submit(recipe, batch, live, purpose);
    }

    /// One slider frame (interactive: a newer frame replaces it).
    pub fn run_interpolation_frame(&mut self) {
        let s = self.interpolate.clone();
        let op = Operation::Interpolate {
            seed_b: s.seed_b,
            alpha: s.alpha,
        };
        if let Some(recipe) = self.plan(op, s.seed_a, Steps::One) {
            self.submit(recipe, 1, true, Purpose::Preview);
        }
    }

    /// Renders `strip_frames` frames from seed A to seed B and writes them as an animated PNG.
    pub fn export_strip(&mut self) {
        let s = self.interpolate.clone();
        let Some(path) = self.dialogs.save_animation("interpolation.gif") else {
            return;
        };
        let k = s.strip_frames.max(2);
        let mut recipes = Vec::new();
        for i in 0..k {
            let op = Operation::Interpolate {
                seed_b: s.seed_b,
                alpha: i as f64 / (k - 1) as f64,
            };
            match self.plan(op, s.seed_a, Steps::One) {
                Some(r) => recipes.push(r),
                None => return,
            }
        }
        self.strip = Some(StripExport {
            path,
            frames: vec![None; k],
        });
        for (i, r) in recipes.into_iter().enumerate() {
            self.submit(r, 1, false, Purpose::Strip(i));
        }
    }

    pub fn load_model(&mut self, path: Option<PathBuf>) {
        self.model_job = Some(self.worker.submit(Job::LoadModel(path)));
    }

    pub fn is_loading_model(&self) -> bool {
        self.model_job.is_some()
    }

    /// Exports the canvas as a PNG; while the canvas is exactly a result, its recipe goes in too.
    pub fn export_png(&mut self) {
        let Some(path) = self.dialogs.save_png("cmpaint.png") else {
            return;
        };
        let image = self.doc.composite();
        let recipe = self.doc.recipe.clone().filter(|_| !self.doc.has_sketch());
        let bytes = encode_png(&image, recipe.as_ref()).map_err(|e| e.to_string());
        let written = bytes.and_then(|b| write_atomic_with(&path, |tmp| write_file(tmp, &b)));
        match written {
            Ok(()) => self.info(format!(
                "exported {}{}",
                path.display(),
                if recipe.is_some() {
                    " with its recipe"
                } else {
                    ""
                }
            )),
            Err(e) => self.error(format!("export failed, nothing was changed: {e}")),
        }
    }

    /// Reads the recipe from an exported PNG and runs it again (loading its model first if another
    /// one is loaded and its file is known).
    pub fn open_recipe(&mut self) {
        let Some(path) = self.dialogs.open_recipe() else {
            return;
        };
        let recipe = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| read_recipe(&b).map_err(|e| e.to_string()));
        let recipe = match recipe {
            Ok(r) => r,
            Err(e) => return self.error(format!("{}: {e}", path.display())),
        };
        let same_model = self
            .model
            .as_ref()
            .is_some_and(|m| m.sha256 == recipe.model.sha256);
        if !same_model {
            match &recipe.model.file {
                None => self.load_model(None),
                Some(f) if is_loadable(Path::new(f)) => self.load_model(Some(PathBuf::from(f))),
                Some(f) => {
                    return self.error(format!(
                        "the recipe was made with {} ({f}), which is not here: open that model first",
                        recipe.model.name
                    ));
                }
            }
        }
        if let Some(c) = recipe.class {
            self.class = Some(c);
        }
        self.info(format!(
            "re-running the recipe of {} ({}, seed {})",
            path.display(),
            recipe.operation.label(),
            recipe.seed
        ));
        self.submit(recipe, 1, false, Purpose::Apply);
    }

    /// File → Open image: loads into the picture; a picture of another size asks fit or crop first.
    pub fn open_image(&mut self) {
        let Some(path) = self.dialogs.open_image() else {
            return;
        };
        match dimensions(&path) {
            Ok((width, height))
                if (width as usize, height as usize) == (self.doc.width, self.doc.height) =>
            {
                self.start_opening(path, None)
            }
            Ok((width, height)) => {
                self.pending_import = Some(PendingImport {
                    path,
                    width,
                    height,
                })
            }
            Err(e) => self.error(e.to_string()),
        }
    }

    /// Decodes the picture at `path` and brings it to the canvas size on a thread of its own; the newest
    /// picture opened wins.
    fn start_opening(&mut self, path: PathBuf, resize: Option<Resize>) {
        let size = self.doc.width;
        let (send, result) = crossbeam_channel::bounded(1);
        let source = path.clone();
        std::thread::spawn(move || {
            let picture = decode(&source)
                .and_then(|image| to_model_size(image, size, resize))
                .map(|image| Rgb8 {
                    width: size,
                    height: size,
                    pixels: image.to_rgb8().into_raw(),
                });
            // Nobody waits any more when a newer picture was opened meanwhile.
            let _ = send.send(picture.map_err(|e| e.to_string()));
        });
        self.info(format!("opening {}…", path.display()));
        self.opening = Some(Opening { path, result });
    }

    fn poll_opening(&mut self) {
        use crossbeam_channel::TryRecvError;
        let Some(opening) = &self.opening else { return };
        let result = match opening.result.try_recv() {
            Err(TryRecvError::Empty) => return,
            Ok(result) => result,
            Err(TryRecvError::Disconnected) => Err("the decoder stopped unexpectedly".into()),
        };
        let path = self.opening.take().expect("checked").path;
        match result {
            Ok(picture) if (picture.width, picture.height) != (self.doc.width, self.doc.height) => {
                self.error(format!(
                    "{}: the canvas changed size while the picture was opening; open it again",
                    path.display()
                ))
            }
            Ok(picture) => {
                self.doc.apply_result(&picture, None);
                self.info(format!("opened {}", path.display()));
            }
            Err(e) => self.error(e),
        }
    }

    pub fn is_opening_image(&self) -> bool {
        self.opening.is_some()
    }

    pub fn new_canvas(&mut self) {
        let size = self.model.as_ref().map_or(self.doc.width, |m| m.image_size);
        self.doc = Document::blank(size, size);
        self.canvas.fit_pending = true;
    }

    /// Puts a result on the canvas (one undo step). A result of another size than the canvas only
    /// replaces a canvas nobody has touched; otherwise it stays in History and the painting is kept.
    fn apply_to_canvas(&mut self, image: &Rgb8, recipe: Recipe) {
        let (w, h) = (image.width, image.height);
        if (w, h) != (self.doc.width, self.doc.height) {
            if !self.doc.is_pristine() {
                return self.error(format!(
                    "the result is {w}×{h} and the canvas {}×{}: it is in History — File → New canvas, then Apply it",
                    self.doc.width, self.doc.height
                ));
            }
            self.doc = Document::blank(w, h);
            self.canvas.fit_pending = true;
        }
        self.doc.apply_result(image, Some(recipe));
    }

    pub fn apply_history(&mut self, i: usize) {
        if let Some(r) = self.history.get(i) {
            let (img, recipe) = (r.image.clone(), r.recipe.clone());
            self.apply_to_canvas(&img, recipe);
        }
    }

    pub fn apply_preview(&mut self) {
        if let Some(p) = self.preview.take() {
            self.apply_to_canvas(&p.image, p.recipe.clone());
            self.history.push(p);
        }
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn on_exit(&mut self) {
        self.autosave_now();
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| e.to_string())?;
    f.write_all(bytes).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())
}

/// Writes through a temporary file in the same folder and renames it over `path`, so a failure
/// (full disk, read-only folder) never leaves a half-written file and never touches an existing one.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let tmp = dir.join(format!(".{}.cmpaint-tmp", name.to_string_lossy()));
    let result = write(&tmp)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display())));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| format!("{}: {e}", path.display()))
}
