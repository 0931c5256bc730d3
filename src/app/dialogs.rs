//! File dialogs behind a trait, so the app asks the same way in production (rfd: the desktop portal
//! or GTK) and in tests (scripted answers, no window ever opens).

use std::path::PathBuf;

pub trait Dialogs {
    /// A PNG or JPEG to load into the canvas.
    fn open_image(&mut self) -> Option<PathBuf>;
    /// A weight file (`folder` = false) or a diffusers folder.
    fn open_model(&mut self, folder: bool) -> Option<PathBuf>;
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

/// Native dialogs through rfd.
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
}
