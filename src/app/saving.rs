//! The document kept safe: autosave to the data folder, projects (`.cmpaint`) saved and opened
//! (every write atomic, through `file_io`).

use super::App;
use super::MAX_BATCH;
use super::SeedMode;
use super::dialogs::FileRequest;
use super::history;
use super::history::HistoryItem;
use crate::file_io::write_bytes;
use crate::paint::document::Document;
use crate::paint::frame::Frame;
use crate::paint::frame::Placement;
use crate::paint::project;
use crate::paint::project::HistoryEntry;
use crate::paint::project::Project;
use crate::recipe::Recipe;
use crate::worker::is_loadable;
use std::collections::HashMap;
use std::path::Path;
use std::path::PathBuf;
use std::time::Instant;

/// Background saves of the document to the data folder. Each result is written once, to a file of
/// its own (`project::AUTOSAVE_RESULTS`), so an autosave costs the layers and the new results only,
/// however long History grows.
pub(super) struct Autosave {
    pub(super) path: PathBuf,
    /// Document revision and history length last written.
    pub(super) written: (u64, usize),
    /// The Generate settings last written (a changed seed is worth an autosave too).
    pub(super) settings_written: Option<project::SessionSettings>,
    pub(super) last: Instant,
    pub(super) running: Option<std::thread::JoinHandle<Result<Written, String>>>,
    /// The file each result (by `HistoryItem::id`) was written to.
    pub(super) files: HashMap<u64, String>,
}

/// The result files an autosave wrote, by `HistoryItem::id`.
type Written = Vec<(u64, String)>;

/// A result as the autosave thread gets it: written already (its file's name), or to write.
enum ToSave {
    Written(String),
    New(
        u64,
        Box<(history::Kept, Recipe, Option<Placement>, Option<String>)>,
    ),
}

/// Seconds between autosaves of a changed document.
pub const AUTOSAVE_SECONDS: u64 = 30;

impl App {
    /// Autosaves into `dir` (see `project::data_dir`); an autosave already there is offered for
    /// restoring first.
    pub fn with_autosave(mut self, dir: PathBuf) -> Self {
        self.state.spill_dir = Some(spill_dir(&dir));
        let path = dir.join(project::AUTOSAVE_FILE);
        if std::fs::symlink_metadata(&path).is_ok() {
            match Project::read(&path) {
                Ok(p) => self.state.pending_restore = Some(p),
                Err(e) => {
                    let kept = set_aside(&path);
                    self.error(format!(
                        "The last autosave cannot be restored: {e}. {kept}; the canvas starts blank."
                    ))
                }
            }
        }
        self.run.autosave = Some(Autosave {
            path,
            written: (self.state.doc.revision, 0),
            settings_written: None,
            last: Instant::now(),
            running: None,
            files: HashMap::new(),
        });
        self
    }

    /// The state that makes a save necessary: document revision and number of results.
    pub(super) fn save_state(&self) -> (u64, usize) {
        (self.state.doc.revision, self.state.history.len())
    }

    pub fn is_dirty(&self) -> bool {
        self.run.saved_state != Some(self.save_state())
            && (self.state.doc.can_undo() || !self.state.history.is_empty())
    }

    pub(super) fn capture(&self) -> Result<Project, String> {
        let images = self
            .state
            .history
            .iter()
            .map(HistoryItem::image)
            .collect::<Result<Vec<_>, _>>()?;
        let history: Vec<_> = (self.state.history.iter().zip(&images))
            .map(|(r, image)| (image, &r.recipe, r.placement.as_ref(), r.cost.as_deref()))
            .collect();
        let model = self.state.model.as_ref().and_then(|m| m.file.as_deref());
        let mut p = Project::capture(&self.state.doc, Some(self.state.frame), &history, model)
            .map_err(|e| e.to_string())?;
        p.settings = Some(self.session_settings());
        Ok(p)
    }

    /// Every AUTOSAVE_SECONDS, when something changed: the document is copied here and encoded and
    /// written on a background thread (temp file, fsync, rename).
    pub(super) fn autosave_tick(&mut self, force: bool) {
        let state = self.save_state();
        let Some(a) = &mut self.run.autosave else {
            return;
        };
        if let Some(h) = a.running.take_if(|h| h.is_finished() || force) {
            match h.join() {
                Ok(Ok(written)) => a.files.extend(written),
                Ok(Err(e)) => return self.error(format!("autosave failed: {e}")),
                Err(_) => return self.error("autosave failed: its thread stopped"),
            }
        }
        let a = self.run.autosave.as_mut().expect("checked");
        let due = force || a.last.elapsed().as_secs() >= AUTOSAVE_SECONDS;
        let settings = self.session_settings();
        let a = self.run.autosave.as_mut().expect("checked");
        let changed = a.written != state || a.settings_written.as_ref() != Some(&settings);
        if !due || !changed || a.running.is_some() || self.state.pending_restore.is_some() {
            return;
        }
        let doc = self.state.doc.snapshot();
        // only results not written yet are encoded (on the saving thread, read back from disk
        // there when History moved them out of memory)
        let files = &self.run.autosave.as_ref().expect("checked").files;
        let history: Vec<ToSave> = self
            .state
            .history
            .iter()
            .map(|r| match files.get(&r.id) {
                Some(name) => ToSave::Written(name.clone()),
                None => ToSave::New(
                    r.id,
                    Box::new((
                        r.kept().clone(),
                        r.recipe.clone(),
                        r.placement.clone(),
                        r.cost.clone(),
                    )),
                ),
            })
            .collect();
        let frame = Some(self.state.frame);
        let model = self.state.model.as_ref().and_then(|m| m.file.clone());
        let a = self.run.autosave.as_mut().expect("checked");
        let path = a.path.clone();
        a.written = state;
        a.settings_written = Some(settings.clone());
        a.last = Instant::now();
        let save = move || write_autosave(&path, &doc, frame, model.as_deref(), history, settings);
        if force {
            match save() {
                Ok(written) => a.files.extend(written),
                Err(e) => self.error(format!("autosave failed: {e}")),
            }
        } else {
            match std::thread::Builder::new()
                .name("cmpaint-autosave".into())
                .spawn(save)
            {
                Ok(thread) => a.running = Some(thread),
                Err(e) => self.error(format!("autosave failed: no thread to write it ({e})")),
            }
        }
    }

    /// Writes an autosave now and waits for it (on exit, and for tests).
    pub fn autosave_now(&mut self) {
        self.autosave_tick(true);
    }

    /// Replaces the document and history with a project's. Results beyond History's memory budget
    /// (weighed before decoding) go straight to disk as the PNGs they are.
    pub(super) fn restore(&mut self, project: &Project) -> Result<(), String> {
        let r = project
            .restore_within(self.state.history_budget)
            .map_err(|e| e.to_string())?;
        let encoded = r.encoded.len();
        let mut history = Vec::with_capacity(encoded + r.history.len());
        let mut not_kept = None;
        for (png, recipe, placement, cost) in r.encoded {
            match self.spill_png(&png.png) {
                Ok(path) => {
                    let mut item =
                        HistoryItem::on_disk(path, png.width, png.height, recipe, placement);
                    item.cost = cost;
                    history.push(item);
                }
                Err(e) => not_kept = Some(e),
            }
        }
        let dropped = encoded - history.len();
        history.extend(r.history.into_iter().map(|(img, recipe, placement, cost)| {
            let mut item = HistoryItem::new(img, recipe, placement);
            item.cost = cost;
            item
        }));
        self.state.doc = r.doc;
        self.state.history = history;
        if let Some(s) = &project.settings {
            self.state.generate.seed = s.seed;
            self.state.generate.batch = s.batch.clamp(1, MAX_BATCH);
            self.state.generate.prompt = s.prompt.clone();
            self.state.generate.negative_prompt = s.negative_prompt.clone();
            if let Some(mode) = SeedMode::from_name(&s.seed_mode) {
                self.state.generate.seed_mode = mode;
            }
        }
        if let Some(e) = not_kept {
            self.error(format!(
                "{dropped} older result(s) were not restored: they do not fit History's memory budget and cannot go to disk ({e})"
            ));
        }
        let (w, h) = (self.state.doc.width, self.state.doc.height);
        self.state.frame = r
            .frame
            .unwrap_or_else(|| Frame::centred(w, h, self.model_size()));
        self.canvas.fit_pending = true;
        let current = self.state.model.as_ref().and_then(|m| m.file.clone());
        if r.model != current && r.model.as_ref().is_none_or(|p| is_loadable(p)) {
            self.load_model(r.model);
        }
        Ok(())
    }

    pub fn restore_autosave(&mut self, restore: bool) {
        let Some(p) = self.state.pending_restore.take() else {
            return;
        };
        if restore {
            match self.restore(&p) {
                Ok(()) => self.info("restored the last session"),
                Err(e) => {
                    let kept = self
                        .run
                        .autosave
                        .as_ref()
                        .map_or(String::new(), |a| format!(" {}.", set_aside(&a.path)));
                    self.error(format!(
                        "The autosave cannot be restored: {e}.{kept} The canvas is as it was."
                    ))
                }
            }
        }
        // From now on autosaves overwrite it.
        if let Some(a) = &mut self.run.autosave {
            a.written = (u64::MAX, usize::MAX);
        }
    }

    /// File → Save Project (As…): writes the document, results and model to a `.cmpaint` file.
    pub fn save_project(&mut self, ask: bool) {
        match (&self.state.project_path, ask) {
            (Some(p), false) => self.save_project_to(p.clone()),
            _ => self.ask_file(FileRequest::SaveProject { then_close: false }),
        }
    }

    /// Writes the project to `path` (the dialog's answer, or the project's own file).
    pub fn save_project_to(&mut self, path: PathBuf) {
        let written = self
            .capture()
            .and_then(|p| write_bytes(&path, &p.to_bytes()).map_err(|e| e.to_string()));
        match written {
            Ok(()) => {
                self.run.saved_state = Some(self.save_state());
                self.state.project_path = Some(path.clone());
                self.info(format!("saved {}", path.display()));
            }
            Err(e) => self.error(format!(
                "the project was not saved and is still open with its changes: {e}"
            )),
        }
    }

    pub fn open_project(&mut self) {
        self.ask_file(FileRequest::OpenProject);
    }

    /// Opens the project at `path` (the dialog's answer).
    pub fn open_project_from(&mut self, path: PathBuf) {
        let opened = Project::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|p| self.restore(&p));
        match opened {
            Ok(()) => {
                self.run.saved_state = Some(self.save_state());
                self.state.project_path = Some(path.clone());
                self.info(format!("opened {}", path.display()));
            }
            Err(e) => self.error(format!("{}: {e}", path.display())),
        }
    }
}

/// Moves an autosave that cannot be restored out of the way of the next autosave, so that it is not
/// overwritten (a damaged file may still be rescued by hand). Says where it went, for the message.
fn set_aside(path: &Path) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = path.with_file_name(format!("autosave-unreadable-{secs}.cmpaint"));
    match std::fs::rename(path, &aside) {
        Ok(()) => format!("It was kept as {}", aside.display()),
        Err(e) => format!("It is still at {} ({e})", path.display()),
    }
}

/// This session's folder for results moved out of memory: `spill/<pid>` in the data folder. Folders
/// of sessions that are no longer running are removed (their results are in the autosave); where
/// there is no /proc to tell (not Linux), they are left alone.
fn spill_dir(data: &Path) -> PathBuf {
    let root = data.join("spill");
    if Path::new("/proc/self").exists()
        && let Ok(entries) = std::fs::read_dir(&root)
    {
        for e in entries.flatten() {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok();
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    root.join(std::process::id().to_string())
}

/// Writes the autosave at `path`: the new results first, each to its own file (skipped when a file
/// of that content is there already), then the autosave listing them, then it removes the result
/// files it no longer lists (discarded results). Returns the files written, by result id.
fn write_autosave(
    path: &Path,
    doc: &Document,
    frame: Option<Frame>,
    model: Option<&Path>,
    history: Vec<ToSave>,
    settings: project::SessionSettings,
) -> Result<Written, String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let results = dir.join(project::AUTOSAVE_RESULTS);
    std::fs::create_dir_all(&results).map_err(|e| format!("{}: {e}", results.display()))?;
    let mut names = Vec::with_capacity(history.len());
    let mut written = Vec::new();
    for item in history {
        let name = match item {
            ToSave::Written(name) => name,
            ToSave::New(id, new) => {
                let (kept, recipe, placement, cost) = *new;
                let image = kept.load()?;
                let saved = (&image, &recipe, placement.as_ref(), cost.as_deref());
                let entry = HistoryEntry::new(&saved).map_err(|e| e.to_string())?;
                let (name, bytes) = entry.to_file();
                let file = results.join(&name);
                if !file.exists() {
                    write_bytes(&file, &bytes).map_err(|e| e.to_string())?;
                }
                written.push((id, name.clone()));
                name
            }
        };
        names.push(name);
    }
    let mut p = Project::capture(doc, frame, &[], model).map_err(|e| e.to_string())?;
    p.result_files = names;
    p.settings = Some(settings);
    write_bytes(path, &p.to_bytes()).map_err(|e| e.to_string())?;
    let listed: std::collections::HashSet<&String> = p.result_files.iter().collect();
    if let Ok(entries) = std::fs::read_dir(&results) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !listed.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(written)
}
