//! File dialogs behind a trait, so the app asks the same way in production (rfd: the desktop portal,
//! else zenity) and in tests (scripted answers, no window ever opens).
//!
//! The app asks without waiting ([`Dialogs::ask`]): the native dialogs run on a thread of their own,
//! so a dialog that takes seconds to open never freezes a frame, and the answer arrives on a
//! channel. Where no dialog can open at all (no desktop portal and no zenity: a plain X11 session,
//! many tiling window managers), the answer says so and the app asks for the path itself.

use crossbeam_channel::Receiver;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a file is asked for: the answer's destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRequest {
    /// File → Open image (at its own size, or brought to the model's).
    OpenImage {
        at_model_size: bool,
    },
    /// Model → Open file… (`folder` false) or Open folder… (a diffusers model).
    OpenModel {
        folder: bool,
    },
    /// Model → Add LoRA… (an LCM-LoRA for the Stable Diffusion folder loaded).
    OpenLora,
    OpenRecipe,
    ExportPng,
    ExportStrip,
    OpenProject,
    /// File → Save project (as); `then_close`: the window closes once it is saved.
    SaveProject {
        then_close: bool,
    },
}

impl FileRequest {
    /// The dialog's title, also the in-app path prompt's.
    pub fn title(self) -> &'static str {
        match self {
            FileRequest::OpenImage { .. } => "Open image",
            FileRequest::OpenModel { folder: false } => "Open model weights",
            FileRequest::OpenModel { folder: true } => "Open a diffusers model folder",
            FileRequest::OpenLora => "Open a LoRA (.safetensors) for this model",
            FileRequest::OpenRecipe => "Open a recipe (a PNG exported by cmpaint)",
            FileRequest::ExportPng => "Export PNG",
            FileRequest::ExportStrip => "Export strip (.gif or animated .png)",
            FileRequest::OpenProject => "Open project",
            FileRequest::SaveProject { .. } => "Save project",
        }
    }
}

/// A path, None when the user cancelled, or why no dialog could open (the app then asks itself).
pub type FileAnswer = Result<Option<PathBuf>, String>;

/// A native dialog that answers "nothing" faster than this never opened: nobody cancels that fast.
const NO_DIALOG_WITHIN: Duration = Duration::from_millis(300);

pub trait Dialogs {
    /// A PNG or JPEG to load into the canvas.
    fn open_image(&mut self) -> Option<PathBuf>;
    /// A weight file (`folder` = false) or a diffusers folder.
    fn open_model(&mut self, folder: bool) -> Option<PathBuf>;
    /// A LoRA's .safetensors.
    fn open_lora(&mut self) -> Option<PathBuf> {
        self.open_model(false)
    }
    /// A PNG exported by cmpaint, to re-run its recipe.
    fn open_recipe(&mut self) -> Option<PathBuf>;
    /// Where to save a PNG (`suggested` is the default file name).
    fn save_png(&mut self, suggested: &str) -> Option<PathBuf>;
    /// Where to export an animation: `.gif` or `.png` (animated PNG), as the name ends.
    fn save_animation(&mut self, suggested: &str) -> Option<PathBuf> {
        self.save_png(suggested)
    }
    /// A `.cmpaint` project to open.
    fn open_project(&mut self) -> Option<PathBuf>;
    /// Where to save the project.
    fn save_project(&mut self, suggested: &str) -> Option<PathBuf>;

    /// The answer to `request`, waiting for it.
    fn answer(&mut self, request: FileRequest) -> Option<PathBuf> {
        match request {
            FileRequest::OpenImage { .. } => self.open_image(),
            FileRequest::OpenModel { folder } => self.open_model(folder),
            FileRequest::OpenLora => self.open_lora(),
            FileRequest::OpenRecipe => self.open_recipe(),
            FileRequest::ExportPng => self.save_png("cmpaint.png"),
            FileRequest::ExportStrip => self.save_animation("interpolation.gif"),
            FileRequest::OpenProject => self.open_project(),
            FileRequest::SaveProject { .. } => self.save_project("painting.cmpaint"),
        }
    }

    /// Asks without waiting: the answer arrives on the channel (here at once; the native dialogs
    /// answer from a thread of their own).
    fn ask(&mut self, request: FileRequest) -> Receiver<FileAnswer> {
        let (send, answer) = crossbeam_channel::bounded(1);
        let _ = send.send(Ok(self.answer(request)));
        answer
    }
}

/// Dialogs that are always cancelled: for benchmarks and headless runs that open no file.
pub struct NoDialogs;

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

/// Native dialogs through rfd, each on a thread of its own.
pub struct NativeDialogs;

impl Dialogs for NativeDialogs {
    fn open_image(&mut self) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Open image")
            .add_filter("Images", &["png", "jpg", "jpeg"])
            .pick_file()
    }

    fn open_model(&mut self, folder: bool) -> Option<PathBuf> {
        let d = rfd::FileDialog::new();
        if folder {
            d.set_title("Open a diffusers model folder").pick_folder()
        } else {
            d.set_title("Open model weights")
                .add_filter("Checkpoints", &["pt", "safetensors"])
                .pick_file()
        }
    }

    fn open_lora(&mut self) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Open a LoRA for this model")
            .add_filter("LoRA", &["safetensors"])
            .pick_file()
    }

    fn open_recipe(&mut self) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Open a recipe (a PNG exported by cmpaint)")
            .add_filter("PNG", &["png"])
            .pick_file()
    }

    fn save_png(&mut self, suggested: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Export PNG")
            .set_file_name(suggested)
            .add_filter("PNG", &["png"])
            .save_file()
    }

    fn save_animation(&mut self, suggested: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Export strip")
            .set_file_name(suggested)
            .add_filter("GIF", &["gif"])
            .add_filter("Animated PNG", &["png"])
            .save_file()
    }

    fn open_project(&mut self) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Open project")
            .add_filter("cmpaint project", &["cmpaint"])
            .pick_file()
    }

    fn save_project(&mut self, suggested: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Save project")
            .set_file_name(suggested)
            .add_filter("cmpaint project", &["cmpaint"])
            .save_file()
    }

    fn ask(&mut self, request: FileRequest) -> Receiver<FileAnswer> {
        let (send, answer) = crossbeam_channel::bounded(1);
        let on_failure = send.clone();
        let asked = std::thread::Builder::new()
            .name("cmpaint-file-dialog".into())
            .spawn(move || {
                let started = Instant::now();
                let picked = NativeDialogs.answer(request);
                let answer = match picked {
                    None if started.elapsed() < NO_DIALOG_WITHIN => Err(
                        "no file dialog could open (no desktop portal, and no zenity to fall back \
                         on): type the path here"
                            .into(),
                    ),
                    picked => Ok(picked),
                };
                let _ = send.send(answer);
            });
        if let Err(e) = asked {
            // the app then asks for the path itself, as when no dialog can open
            let _ = on_failure.send(Err(format!(
                "no thread for a file dialog ({e}): type the path here"
            )));
        }
        answer
    }
}
