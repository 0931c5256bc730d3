//! The background worker: one thread owns the candle device and the model; the UI talks to it only
//! through [`Worker`] — jobs go in over a crossbeam channel, progress, results and errors come back as
//! [`Reply`] messages, and nothing here ever blocks the caller.
//!
//! Scheduling rules:
//! - **Cancel** (`cancel_through`): every job up to an id is cancelled — queued ones are skipped, the
//!   running one stops at its next network call.
//! - **Newest wins**: an *interactive* job (a slider frame, a live sketch re-run) is dropped when a newer
//!   interactive job is queued behind it, and a running one stops at its next step once a newer one
//!   arrives. Non-interactive jobs (Generate, an edit) always run unless cancelled.
//! - **Isolation**: a job that fails or panics becomes [`Reply::Failed`] and the worker carries on with
//!   the model it had; a model that fails to load leaves the previous one in place.

use crate::engine::cm::sample::{OnStep, Step};
use crate::engine::image::tensor_to_rgb8;
use crate::job::{AnyModel, ModelSource, load_any, run_recipe};
pub use crate::job::{
    Explicit, LatentFacts, ModelInfo, Steps, network_calls, plan, plan_with, recipe_steps,
};
use crate::picture::Rgb8;
use crate::recipe::Recipe;
use candle_core::Device;
use crossbeam_channel::{Receiver, Sender, unbounded};
use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

pub type JobId = u64;

// What the app needs to know of the engine, handed on here so that the app never imports it.
pub use crate::engine::model::default_model::TEACHER_SPEC;
pub use crate::engine::model::spec::PAPER_SKETCH_STRENGTH;
pub use crate::engine::model::spec::Parameterization;
pub use crate::engine::{Precision, select_device};

/// A model path that can be loaded: a file or folder that exists, or a built-in model's name.
pub fn is_loadable(path: &std::path::Path) -> bool {
    path.exists() || crate::job::is_builtin_name(path)
}

/// The least time between two step previews of a job: the UI needs no more, and converting an
/// estimate to pixels then costs the job well under a percent.
pub const PREVIEW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, Clone)]
pub enum Job {
    /// Load a model file or diffusers folder (None = the built-in model).
    LoadModel(Option<PathBuf>),
    /// Load a Stable Diffusion folder with a LoRA (an LCM-LoRA) merged into its UNet.
    LoadWithLora { folder: PathBuf, lora: PathBuf },
    /// Run a recipe for `batch` images (seeds seed … seed+batch−1).
    Run {
        recipe: Box<Recipe>,
        batch: usize,
        interactive: bool,
    },
}

#[derive(Debug, Clone)]
pub enum Reply {
    ModelLoaded {
        id: JobId,
        info: ModelInfo,
    },
    /// A step of a run is done. `preview`: the sampler's current clean estimate of the first image
    /// (x₀ = f(x, σ), or D(x, σ) of an EDM teacher), at most every [`PREVIEW_INTERVAL`].
    Progress {
        id: JobId,
        done: usize,
        total: usize,
        preview: Option<Rgb8>,
    },
    Finished {
        id: JobId,
        images: Vec<(Rgb8, Recipe)>,
        seconds: f64,
    },
    Failed {
        id: JobId,
        message: String,
    },
    /// Cancelled by the user, or superseded by a newer interactive job.
    Cancelled {
        id: JobId,
    },
}

impl Reply {
    pub fn id(&self) -> JobId {
        match self {
            Reply::ModelLoaded { id, .. }
            | Reply::Progress { id, .. }
            | Reply::Finished { id, .. }
            | Reply::Failed { id, .. }
            | Reply::Cancelled { id } => *id,
        }
    }
}

/// State both sides read: the cancel watermark and the newest interactive job.
#[derive(Default)]
struct Shared {
    cancel_through: AtomicU64,
    newest_interactive: AtomicU64,
}

/// The UI's handle on the worker thread. Dropping it ends the thread after its current job.
pub struct Worker {
    jobs: Option<Sender<(JobId, Job)>>,
    replies: Receiver<Reply>,
    shared: Arc<Shared>,
    next_id: JobId,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker on `device`. `wake` is called after every reply (the app passes
    /// `ctx.request_repaint`), so the UI needs no polling timer.
    pub fn spawn(device: Device, wake: impl Fn() + Send + 'static) -> Self {
        Self::spawn_with(CandleBackend::new(device, Precision::F32), wake)
    }

    /// Starts the worker on any backend (tests use one whose steps they control).
    pub fn spawn_with(backend: impl Backend, wake: impl Fn() + Send + 'static) -> Self {
        let (job_tx, job_rx) = unbounded();
        let (reply_tx, reply_rx) = unbounded();
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("cmpaint-worker".into())
            .spawn(move || {
                WorkerThread {
                    backend: Box::new(backend),
                    jobs: job_rx,
                    replies: reply_tx,
                    shared: thread_shared,
                    wake: Box::new(wake),
                    queue: VecDeque::new(),
                }
                .serve()
            })
            .expect("spawning the worker thread");
        Self {
            jobs: Some(job_tx),
            replies: reply_rx,
            shared,
            next_id: 1,
            thread: Some(thread),
        }
    }

    pub fn submit(&mut self, job: Job) -> JobId {
        let id = self.next_id;
        self.next_id += 1;
        if let Job::Run {
            interactive: true, ..
        } = &job
        {
            self.shared.newest_interactive.store(id, Ordering::SeqCst);
        }
        if let Some(tx) = &self.jobs {
            // The worker only stops when this handle drops, so a send cannot fail while we live.
            let _ = tx.send((id, job));
        }
        id
    }

    /// Cancels every job submitted so far.
    pub fn cancel_all(&self) {
        self.shared
            .cancel_through
            .fetch_max(self.next_id - 1, Ordering::SeqCst);
    }

    /// The next reply, if one has arrived (never blocks).
    pub fn try_recv(&self) -> Option<Reply> {
        self.replies.try_recv().ok()
    }

    /// Waits up to `timeout` for a reply (for tests and scripts; the UI uses `try_recv`).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<Reply> {
        self.replies.recv_timeout(timeout).ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.cancel_all();
        self.jobs = None; // closes the channel: the thread ends after its current job
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the worker thread runs jobs on: the model and its device. A backend reports errors as
/// one-line messages; it may also panic, which the worker turns into an error.
pub trait Backend: Send + 'static {
    /// Loads a model (None = built in), replacing the current one only on success.
    fn load(&mut self, path: Option<&std::path::Path>) -> Result<ModelInfo, String>;
    /// Loads a Stable Diffusion folder with a LoRA merged in, likewise.
    fn load_with_lora(
        &mut self,
        _folder: &std::path::Path,
        _lora: &std::path::Path,
    ) -> Result<ModelInfo, String> {
        Err("this backend does not merge LoRAs".into())
    }
    /// Runs a recipe for `batch` images; None when `on_step` cancelled it.
    fn run(
        &mut self,
        recipe: &Recipe,
        batch: usize,
        on_step: OnStep,
    ) -> Result<Option<Vec<(Rgb8, Recipe)>>, String>;
}

/// The real backend: a candle device and the UNet loaded on it.
pub struct CandleBackend {
    device: Device,
    /// the convolutions' number format on the CPU (`--precision`)
    precision: Precision,
    model: Option<AnyModel>,
}

impl CandleBackend {
    pub fn new(device: Device, precision: Precision) -> Self {
        Self {
            device,
            precision,
            model: None,
        }
    }
}

impl CandleBackend {
    fn load_source(&mut self, source: &ModelSource) -> Result<ModelInfo, String> {
        let loaded = load_any(source, &self.device, self.precision).map_err(|e| e.to_string())?;
        let info = loaded.info().clone();
        self.model = Some(loaded);
        Ok(info)
    }
}

impl Backend for CandleBackend {
    fn load(&mut self, path: Option<&std::path::Path>) -> Result<ModelInfo, String> {
        self.load_source(&ModelSource::file(path))
    }

    fn load_with_lora(
        &mut self,
        folder: &std::path::Path,
        lora: &std::path::Path,
    ) -> Result<ModelInfo, String> {
        self.load_source(&ModelSource {
            lora: Some(lora.to_path_buf()),
            ..ModelSource::file(Some(folder))
        })
    }

    fn run(
        &mut self,
        recipe: &Recipe,
        batch: usize,
        on_step: OnStep,
    ) -> Result<Option<Vec<(Rgb8, Recipe)>>, String> {
        let model = self
            .model
            .as_ref()
            .ok_or("no model is loaded: open one in the Model panel")?;
        if recipe.model.sha256 != model.info().sha256 {
            return Err(format!(
                "the recipe was made with {} and the loaded model is {}: load that model first",
                recipe.model.name,
                model.info().name
            ));
        }
        check_memory(model, batch)?;
        run_recipe(model, recipe, batch, &self.device, on_step).map_err(|e| e.to_string())
    }
}

struct WorkerThread {
    backend: Box<dyn Backend>,
    jobs: Receiver<(JobId, Job)>,
    replies: Sender<Reply>,
    shared: Arc<Shared>,
    wake: Box<dyn Fn() + Send>,
    queue: VecDeque<(JobId, Job)>,
}

impl WorkerThread {
    fn serve(mut self) {
        loop {
            self.queue.extend(self.jobs.try_iter());
            if self.queue.is_empty() {
                match self.jobs.recv() {
                    Ok(job) => self.queue.push_back(job),
                    Err(_) => return, // the UI is gone
                }
                continue;
            }
            let (id, job) = self.queue.pop_front().expect("not empty");
            if self.is_cancelled(id) || self.is_superseded(id, &job) {
                self.send(Reply::Cancelled { id });
                continue;
            }
            self.run(id, job);
        }
    }

    fn is_cancelled(&self, id: JobId) -> bool {
        id <= self.shared.cancel_through.load(Ordering::SeqCst)
    }

    fn is_superseded(&self, id: JobId, job: &Job) -> bool {
        matches!(
            job,
            Job::Run {
                interactive: true,
                ..
            }
        ) && self.shared.newest_interactive.load(Ordering::SeqCst) > id
    }

    fn send(&self, reply: Reply) {
        let _ = self.replies.send(reply);
        (self.wake)();
    }

    fn run(&mut self, id: JobId, job: Job) {
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| self.execute(id, &job)));
        let reply = match outcome {
            Ok(Ok(Some(reply))) => reply,
            Ok(Ok(None)) => Reply::Cancelled { id },
            Ok(Err(message)) => Reply::Failed { id, message },
            Err(panic) => Reply::Failed {
                id,
                message: format!("internal error (the job crashed): {}", panic_text(&panic)),
            },
        };
        let reply = match reply {
            Reply::Finished { id, images, .. } => Reply::Finished {
                id,
                images,
                seconds: started.elapsed().as_secs_f64(),
            },
            r => r,
        };
        self.send(reply);
    }

    /// Ok(None): cancelled or superseded.
    fn execute(&mut self, id: JobId, job: &Job) -> Result<Option<Reply>, String> {
        match job {
            Job::LoadModel(path) => {
                let info = self.backend.load(path.as_deref())?;
                Ok(Some(Reply::ModelLoaded { id, info }))
            }
            Job::LoadWithLora { folder, lora } => {
                let info = self.backend.load_with_lora(folder, lora)?;
                Ok(Some(Reply::ModelLoaded { id, info }))
            }
            Job::Run {
                recipe,
                batch,
                interactive,
            } => {
                let shared = &self.shared;
                let replies = &self.replies;
                let wake = &self.wake;
                let mut last_preview: Option<Instant> = None;
                let mut on_step = |step: Step| {
                    let stale = id <= shared.cancel_through.load(Ordering::SeqCst)
                        || (*interactive && shared.newest_interactive.load(Ordering::SeqCst) > id);
                    if stale {
                        return ControlFlow::Break(());
                    }
                    // The last step's estimate is the result itself, which follows at once.
                    let due = step.done < step.total
                        && last_preview.is_none_or(|t| t.elapsed() >= PREVIEW_INTERVAL);
                    let preview = step
                        .estimate
                        .filter(|_| due)
                        .and_then(|x| tensor_to_rgb8(&x.get(0).ok()?).ok());
                    if preview.is_some() {
                        last_preview = Some(Instant::now());
                    }
                    let _ = replies.send(Reply::Progress {
                        id,
                        done: step.done,
                        total: step.total,
                        preview,
                    });
                    wake();
                    ControlFlow::Continue(())
                };
                let images = self.backend.run(recipe, *batch, &mut on_step)?;
                Ok(images.map(|images| Reply::Finished {
                    id,
                    images,
                    seconds: 0.0,
                }))
            }
        }
    }
}

/// Refuses a batch whose activations would not fit in the memory the system has free (a pixel
/// model's; the job layer checks a latent model's itself).
fn check_memory(model: &AnyModel, batch: usize) -> Result<(), String> {
    let AnyModel::Pixel(model) = model else {
        return Ok(());
    };
    let unet = &model.config.unet;
    crate::engine::model::load::check_run_memory(unet, batch, unet.image_size)
        .map_err(|e| e.to_string())
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
