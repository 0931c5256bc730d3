//! The app driven through its UI with egui_kittest: real widgets, real pointer and key events, and a
//! real worker thread running the built-in model. File dialogs answer from a script.

mod common;

use cmpaint::app::App;
use cmpaint::app::dialogs::Dialogs;
use cmpaint::paint::brush::Tool;
use cmpaint::paint::document::Document;
use cmpaint::paint::frame::Frame;
use cmpaint::recipe::{Operation, read_recipe};
use cmpaint::worker::Worker;
use egui::{Event, Key, Modifiers, PointerButton, Pos2, Vec2};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui;

/// Answers every dialog with the next scripted path (None when the script is empty: "cancelled").
#[derive(Clone, Default)]
struct Scripted(Arc<Mutex<VecDeque<PathBuf>>>);

impl Scripted {
    fn push(&self, p: PathBuf) {
        self.0.lock().unwrap().push_back(p);
    }
    fn next(&self) -> Option<PathBuf> {
        self.0.lock().unwrap().pop_front()
    }
}

impl Dialogs for Scripted {
    fn open_image(&mut self) -> Option<PathBuf> {
        self.next()
    }
    fn open_model(&mut self, _folder: bool) -> Option<PathBuf> {
        self.next()
    }
    fn open_recipe(&mut self) -> Option<PathBuf> {
        self.next()
    }
    fn save_png(&mut self, _suggested: &str) -> Option<PathBuf> {
        self.next()
    }
    fn open_project(&mut self) -> Option<PathBuf> {
        self.next()
    }
    fn save_project(&mut self, _suggested: &str) -> Option<PathBuf> {
        self.next()
    }
}

fn harness(dialogs: Scripted) -> Harness<'static, App> {
    let worker = Worker::spawn(candle_core::Device::Cpu, || {});
    let app = App::new(worker, None, false, Box::new(dialogs));
    let mut h = Harness::builder()
        .with_size(Vec2::new(1280.0, 820.0))
        .build_ui_state(|ui, app: &mut App| app.show(ui), app);
    wait_until(&mut h, "the model loads", |a| a.model.is_some());
    h
}

/// Steps the UI until `done` holds (the worker runs meanwhile), failing after 300 s (an outpaint that
/// fills a whole edge runs several 39-step inpaints: slow in a test build beside other tests).
fn wait_until(h: &mut Harness<'static, App>, what: &str, done: impl Fn(&App) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "timed out waiting until {what}; messages: {:?}",
            h.state()
                .messages
                .iter()
                .map(|m| &m.text)
                .collect::<Vec<_>>()
        );
        h.step();
        std::thread::sleep(Duration::from_millis(2));
    }
    h.step();
}

/// Drags with the left button along `points` (screen positions), one frame per pointer event.
fn drag(h: &mut Harness<'static, App>, points: &[Pos2]) {
    let press = |pos, pressed| Event::PointerButton {
        pos,
        button: PointerButton::Primary,
        pressed,
        modifiers: Modifiers::NONE,
    };
    h.event(Event::PointerMoved(points[0]));
    h.step();
    h.event(press(points[0], true));
    h.step();
    for &p in &points[1..] {
        h.event(Event::PointerMoved(p));
        h.step();
    }
    h.event(press(*points.last().unwrap(), false));
    h.step();
}

/// A horizontal stroke across the middle of the canvas image.
fn stroke_across_canvas(h: &mut Harness<'static, App>) {
    let r = h.state().canvas.image_rect(&h.state().doc);
    let y = r.center().y;
    drag(
        h,
        &[
            Pos2::new(r.min.x + r.width() * 0.2, y),
            Pos2::new(r.min.x + r.width() * 0.8, y),
        ],
    );
}

#[test]
fn painting_a_stroke_and_undoing_it() {
    let mut h = harness(Scripted::default());
    assert!(!h.state().doc.has_sketch());
    stroke_across_canvas(&mut h);
    let doc = &h.state().doc;
    assert!(doc.has_sketch());
    // One continuous line: every pixel between the ends along the middle row is painted.
    let (w, row) = (doc.width, doc.height / 2);
    let painted = (w / 5 + 1..w * 4 / 5 - 1).all(|x| {
        doc.sketch[((row * w) + x) * 4 + 3] > 0 || doc.sketch[((row - 1) * w + x) * 4 + 3] > 0
    });
    assert!(painted, "the stroke has gaps");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert!(!h.state().doc.has_sketch(), "Ctrl+Z removes the stroke");
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    h.step();
    assert!(h.state().doc.has_sketch(), "Ctrl+Shift+Z brings it back");
}

#[test]
fn tools_and_brush_follow_their_shortcuts() {
    let mut h = harness(Scripted::default());
    for (key, tool) in [
        (Key::E, Tool::Eraser),
        (Key::M, Tool::Mask),
        (Key::I, Tool::Picker),
        (Key::B, Tool::Brush),
    ] {
        h.key_press(key);
        h.step();
        assert_eq!(h.state().tool, tool, "{key:?}");
    }
    let size = h.state().brush.size;
    h.key_press(Key::CloseBracket);
    h.step();
    assert!(h.state().brush.size > size);
    let (p, s) = (h.state().brush.primary, h.state().brush.secondary);
    h.key_press(Key::X);
    h.step();
    assert_eq!((h.state().brush.primary, h.state().brush.secondary), (s, p));
    // The mask brush paints the mask layer, not the sketch.
    h.key_press(Key::M);
    h.step();
    stroke_across_canvas(&mut h);
    assert!(h.state().doc.has_mask() && !h.state().doc.has_sketch());
}

#[test]
fn a_long_history_lays_out_only_the_rows_on_screen() {
    let mut h = harness(Scripted::default());
    let textures = |h: &Harness<'static, App>| h.ctx.tex_manager().read().num_allocated();
    let before = textures(&h);
    h.state_mut().generate.batch = 16;
    for n in [16, 32, 48, 64] {
        h.get_by_label("Generate images").click();
        wait_until(&mut h, "16 more results", |a| a.history.len() == n);
    }
    h.run();
    let label = |i: usize| {
        let r = &h.state().history[i].recipe;
        format!("{} · seed {}", r.operation.label(), r.seed)
    };
    let (newest, oldest) = (label(63), label(0));
    assert!(
        h.query_by_label(&newest).is_some(),
        "the newest row is drawn"
    );
    assert!(
        h.query_by_label(&oldest).is_none(),
        "the oldest is off screen"
    );
    // 820 px of window hold a few 56-px rows; every row used to get its texture on its first frame
    let made = textures(&h) - before;
    assert!(made < 16, "{made} textures for 64 results");
}

#[test]
fn generate_on_a_blank_canvas_brings_images_from_the_worker() {
    let mut h = harness(Scripted::default());
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "results arrive", |a| !a.history.is_empty());
    let app = h.state();
    assert_eq!(app.history.len(), app.generate.batch);
    assert_eq!(app.history[0].recipe.operation, Operation::Generate);
    assert_eq!(
        app.doc.composite(),
        app.history[0].image().unwrap(),
        "the first result is on the canvas"
    );
    assert!(app.doc.can_undo());
}

/// Sketch → image fills closed coloured outlines unless the painter unticks "Fill closed outlines";
/// the recipe of each result says which.
#[test]
fn fill_closed_outlines_is_on_by_default_and_its_checkbox_reaches_the_recipe() {
    let mut h = harness(Scripted::default());
    stroke_across_canvas(&mut h);
    assert!(h.state().generate.fill_outlines);
    for fill in [true, false] {
        if !fill {
            h.get_by_label("Fill closed outlines").click();
            h.run();
        }
        let before = h.state().history.len();
        h.get_by_label("Generate from sketch").click();
        wait_until(&mut h, "the sketch result", |a| a.history.len() > before);
        let strength = h.state().generate.strength;
        let wanted = Operation::SdEdit {
            strength,
            fill_outlines: fill,
        };
        assert!(
            h.state()
                .history
                .iter()
                .any(|e| e.recipe.operation == wanted),
            "no result of {wanted:?}"
        );
    }
}

#[test]
fn generate_with_a_sketch_turns_it_into_an_image_and_inpaint_keeps_unmasked_pixels() {
    let mut h = harness(Scripted::default());
    stroke_across_canvas(&mut h);
    h.get_by_label("Generate from sketch").click();
    wait_until(&mut h, "the sketch result", |a| !a.history.is_empty());
    let recipe = &h.state().history[0].recipe;
    assert!(matches!(recipe.operation, Operation::SdEdit { .. }));
    assert!(
        recipe.input.is_some(),
        "the sketch is embedded in the recipe"
    );
    assert!(
        h.state().doc.has_sketch(),
        "the sketch stays until a result is applied"
    );
    h.get_by_label("Apply to canvas").click();
    h.run();
    assert!(
        !h.state().doc.has_sketch(),
        "applying the result clears the sketch"
    );

    // Mask the top half, inpaint: the bottom half stays bit-exact.
    let before = h.state().doc.composite();
    {
        let doc = &mut h.state_mut().doc;
        doc.begin();
        let half = doc.width * doc.height / 2;
        doc.mask[..half].fill(255);
        doc.commit();
    }
    let n = h.state().history.len();
    h.get_by_label("Inpaint").click();
    wait_until(&mut h, "the inpainting", |a| a.history.len() > n);
    let after = h.state().doc.composite();
    let half = after.pixels.len() / 2;
    assert_eq!(after.pixels[half..], before.pixels[half..]);
    assert_ne!(after.pixels[..half], before.pixels[..half]);
}

#[test]
fn dragging_the_slider_renders_only_the_newest_frame() {
    let mut h = harness(Scripted::default());
    let slider = h
        .get_by_role_and_label(egui::accesskit::Role::Slider, "α")
        .rect();
    let y = slider.center().y;
    let xs: Vec<Pos2> = (0..=40)
        .map(|i| Pos2::new(slider.min.x + slider.width() * i as f32 / 40.0, y))
        .collect();
    drag(&mut h, &xs);
    wait_until(&mut h, "the slider frames settle", |a| !a.is_busy());
    let app = h.state();
    let moves = app.stats.frames_shown + app.stats.jobs_cancelled;
    assert!(moves >= 10, "every slider move asks for a frame ({moves})");
    assert!(
        app.stats.frames_shown < moves,
        "stale frames are dropped, not rendered: {} of {moves}",
        app.stats.frames_shown
    );
    let Operation::Interpolate { alpha, .. } = app.preview.as_ref().unwrap().recipe.operation
    else {
        panic!("the preview is an interpolation frame");
    };
    assert!(
        (alpha - app.interpolate.alpha).abs() < 1e-12,
        "the last frame is the newest"
    );
}

#[test]
fn export_writes_a_png_whose_recipe_reopens_and_reruns_to_the_same_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("result.png");
    let script = Scripted::default();
    let mut h = harness(script.clone());
    h.state_mut().generate.batch = 1;
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "a result", |a| !a.history.is_empty());
    let made = h.state().doc.composite();

    script.push(out.clone());
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Export PNG…").click();
    h.step();
    let bytes = std::fs::read(&out).expect("the PNG is written");
    let recipe = read_recipe(&bytes).expect("the PNG carries the recipe");
    assert_eq!(Some(&recipe), h.state().doc.recipe.as_ref());
    assert_eq!(
        image::load_from_memory(&bytes)
            .unwrap()
            .to_rgb8()
            .into_raw(),
        made.pixels
    );

    // Paint over, then reopen the recipe: the re-run gives the exported image again.
    stroke_across_canvas(&mut h);
    h.state_mut().doc.clear_sketch();
    h.state_mut().doc.apply_result(
        &cmpaint::picture::Rgb8 {
            width: made.width,
            height: made.height,
            pixels: vec![0; made.pixels.len()],
        },
        None,
    );
    script.push(out.clone());
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Open recipe…").click();
    wait_until(&mut h, "the re-run", |a| a.history.len() == 2);
    assert_eq!(h.state().doc.composite(), made);
}

#[test]
fn a_bad_model_file_reports_an_error_and_keeps_the_current_model() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.safetensors");
    std::fs::write(&bad, b"definitely not weights").unwrap();
    let script = Scripted::default();
    let mut h = harness(script.clone());
    let before = h.state().model.clone();
    script.push(bad);
    h.get_by_label("Open file…").click();
    h.step();
    wait_until(&mut h, "the load fails", |a| !a.is_loading_model());
    let last = h.state().messages.last().unwrap();
    assert!(
        last.error && last.text.contains("broken.safetensors"),
        "{}",
        last.text
    );
    assert_eq!(h.state().model, before);
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "the old model still generates", |a| {
        !a.history.is_empty()
    });
}

#[test]
fn open_image_at_model_size_asks_fit_or_crop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.png");
    // 64×32: left half red, right half blue. Cropping the centre square keeps both halves.
    let img = image::RgbImage::from_fn(64, 32, |x, _| {
        if x < 32 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    });
    img.save(&path).unwrap();
    let script = Scripted::default();
    let mut h = harness(script.clone());
    script.push(path);
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Open image at model size…").click();
    h.run();
    assert!(
        h.state().doc.is_pristine(),
        "nothing changes before the choice"
    );
    h.get_by_label("Crop centre").click();
    h.run();
    wait_until(&mut h, "the picture opens", |a| !a.is_opening_image());
    let doc = &h.state().doc;
    let px = |x: usize| &doc.picture[(16 * doc.width + x) * 4..(16 * doc.width + x) * 4 + 3];
    assert_eq!(px(2), [255, 0, 0]);
    assert_eq!(px(doc.width - 3), [0, 0, 255]);
    assert_eq!((doc.width, doc.height), (32, 32), "the model's size");
    assert!(h.state().doc.can_undo(), "opening a picture can be undone");
}

/// File → Open image: the document takes the picture's own size, pixel for pixel, and the frame
/// starts centred at the model's size; undo brings the old canvas back.
#[test]
fn open_image_keeps_the_pictures_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.png");
    let img = image::RgbImage::from_fn(80, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 7]));
    img.save(&path).unwrap();
    let script = Scripted::default();
    let mut h = harness(script.clone());
    script.push(path);
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Open image…").click();
    h.run();
    wait_until(&mut h, "the picture opens", |a| !a.is_opening_image());
    let doc = &h.state().doc;
    assert_eq!((doc.width, doc.height), (80, 48));
    assert_eq!(doc.composite().pixels, img.as_raw().clone());
    assert_eq!(
        h.state().job_frame(),
        Frame {
            x: 24,
            y: 8,
            size: 32
        }
    );
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!((h.state().doc.width, h.state().doc.height), (32, 32));
}

#[test]
fn a_corrupt_picture_is_an_error_and_the_painting_stays() {
    let dir = tempfile::tempdir().unwrap();
    // A PNG whose header says 32×32 and whose pixel data is cut off.
    let path = dir.path().join("cut.png");
    let mut png = Vec::new();
    image::RgbImage::new(32, 32)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(&path, &png[..png.len() / 2]).unwrap();
    let script = Scripted::default();
    let mut h = harness(script.clone());
    h.state_mut().doc.picture[..4].copy_from_slice(&[1, 2, 3, 255]);
    let before = h.state().doc.picture.clone();
    script.push(path);
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Open image…").click();
    h.run();
    wait_until(&mut h, "the picture fails to open", |a| {
        !a.is_opening_image()
    });
    let last = h.state().messages.last().unwrap();
    assert!(last.error && last.text.contains("cut.png"), "{}", last.text);
    assert_eq!(h.state().doc.picture, before);
}

#[test]
fn export_strip_writes_an_animated_png_of_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("strip.png");
    let script = Scripted::default();
    let mut h = harness(script.clone());
    h.state_mut().interpolate.strip_frames = 5;
    script.push(out.clone());
    h.get_by_label("Export strip…").click();
    h.step();
    wait_until(&mut h, "the strip is written", |_| out.exists());
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
    let reader = decoder.read_info().unwrap();
    let anim = reader.info().animation_control().expect("an animated PNG");
    assert_eq!(anim.num_frames, 5);

    // the same strip as a GIF: the name chosen in the dialog says which
    let gif = dir.path().join("strip.gif");
    script.push(gif.clone());
    h.get_by_label("Export strip…").click();
    h.step();
    wait_until(&mut h, "the GIF is written", |_| gif.exists());
    assert_eq!(gif_frames(&gif), 5);
}

fn gif_frames(path: &std::path::Path) -> usize {
    use image::AnimationDecoder;
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let decoder = image::codecs::gif::GifDecoder::new(file).unwrap();
    decoder.into_frames().collect_frames().unwrap().len()
}

fn harness_with_autosave(dir: &std::path::Path, dialogs: Scripted) -> Harness<'static, App> {
    let worker = Worker::spawn(candle_core::Device::Cpu, || {});
    let app = App::new(worker, None, false, Box::new(dialogs)).with_autosave(dir.to_path_buf());
    let mut h = Harness::builder()
        .with_size(Vec2::new(1280.0, 820.0))
        .build_ui_state(|ui, app: &mut App| app.show(ui), app);
    wait_until(&mut h, "the model loads", |a| a.model.is_some());
    h
}

#[test]
fn after_a_kill_the_next_start_restores_everything_up_to_the_last_autosave() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, history) = {
        let mut h = harness_with_autosave(dir.path(), Scripted::default());
        h.state_mut().generate.batch = 2;
        h.get_by_label("Generate images").click();
        wait_until(&mut h, "results", |a| a.history.len() == 2);
        stroke_across_canvas(&mut h);
        h.key_press(Key::M);
        h.step();
        stroke_across_canvas(&mut h);
        h.state_mut().autosave_now();
        let app = h.state();
        let history: Vec<_> = app.history.iter().map(|r| r.image().unwrap()).collect();
        let doc = (
            app.doc.picture.clone(),
            app.doc.sketch.clone(),
            app.doc.mask.clone(),
        );
        // A stroke after the autosave, then the process dies (no on_exit): that stroke may be lost.
        stroke_across_canvas(&mut h);
        std::mem::forget(h);
        (doc, history)
    };
    let mut h = harness_with_autosave(dir.path(), Scripted::default());
    h.run();
    h.get_by_label("Restore").click();
    h.run();
    let app = h.state();
    assert_eq!(
        (
            app.doc.picture.clone(),
            app.doc.sketch.clone(),
            app.doc.mask.clone()
        ),
        doc
    );
    let restored: Vec<_> = app.history.iter().map(|r| r.image().unwrap()).collect();
    assert_eq!(restored, history);
}

#[test]
fn a_save_interrupted_at_any_byte_leaves_the_previous_autosave_whole() {
    use cmpaint::paint::project::{AUTOSAVE_FILE, Project};
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness_with_autosave(dir.path(), Scripted::default());
    stroke_across_canvas(&mut h);
    h.state_mut().autosave_now();
    let path = dir.path().join(AUTOSAVE_FILE);
    let old = std::fs::read(&path).unwrap();
    // The next save's bytes, cut off at every point before its rename — as a kill would leave them.
    h.key_press(Key::M);
    h.step();
    stroke_across_canvas(&mut h);
    h.state_mut().autosave_now();
    let new = std::fs::read(&path).unwrap();
    assert_ne!(old, new);
    std::fs::write(&path, &old).unwrap();
    let tmp = dir.path().join(format!(".{AUTOSAVE_FILE}.cmpaint-tmp"));
    for cut in (0..new.len()).step_by(97) {
        std::fs::write(&tmp, &new[..cut]).unwrap();
        let p = Project::read(&path).expect("the last complete autosave is intact");
        assert_eq!(p.to_bytes(), old, "cut at {cut}");
    }
    // A later autosave replaces the leftover temp file.
    h.key_press(Key::B);
    h.step();
    stroke_across_canvas(&mut h);
    h.state_mut().autosave_now();
    assert!(!tmp.exists());
    Project::read(&path).unwrap().restore().unwrap();
}

#[test]
fn a_failed_export_or_save_says_why_and_keeps_the_document() {
    let script = Scripted::default();
    let mut h = harness(script.clone());
    stroke_across_canvas(&mut h);
    let doc = h.state().doc.sketch.clone();
    script.push(PathBuf::from("/nonexistent-folder/out.png"));
    h.state_mut().export_png();
    let last = h.state().messages.last().unwrap();
    assert!(
        last.error && last.text.contains("nonexistent-folder"),
        "{}",
        last.text
    );
    script.push(PathBuf::from("/nonexistent-folder/p.cmpaint"));
    h.state_mut().save_project(true);
    let last = h.state().messages.last().unwrap();
    assert!(
        last.error && last.text.contains("still open"),
        "{}",
        last.text
    );
    assert!(h.state().is_dirty());
    assert_eq!(h.state().doc.sketch, doc);
    assert!(!std::path::Path::new("/nonexistent-folder").exists());
}

#[test]
fn a_saved_project_reopens_with_its_layers_and_results() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.cmpaint");
    let script = Scripted::default();
    let mut h = harness(script.clone());
    h.state_mut().generate.batch = 1;
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "a result", |a| a.history.len() == 1);
    stroke_across_canvas(&mut h);
    script.push(file.clone());
    h.state_mut().save_project(true);
    assert!(!h.state().is_dirty());
    let sketch = h.state().doc.sketch.clone();
    h.state_mut().new_canvas(32, 32);
    script.push(file);
    h.state_mut().open_project();
    assert_eq!(h.state().doc.sketch, sketch);
    assert_eq!(h.state().history.len(), 1);
    assert!(!h.state().is_dirty());
}

#[test]
fn loading_a_model_of_another_size_never_discards_the_painting() {
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_convres.safetensors");
    let script = Scripted::default();
    let mut h = harness(script.clone());
    stroke_across_canvas(&mut h);
    let painted = h.state().doc.sketch.clone();
    script.push(fixture);
    h.get_by_label("Open file…").click();
    h.step();
    wait_until(&mut h, "the 16² model loads", |a| {
        a.model.as_ref().is_some_and(|m| m.image_size == 16)
    });
    assert_eq!(h.state().doc.sketch, painted, "the 32² painting is kept");
    // The frame takes the new model's size; an edit changes the frame only.
    let frame = h.state().job_frame();
    assert_eq!(frame.size, 16);
    let picture = h.state().doc.picture.clone();
    h.state_mut().run_edit(Operation::Colorize, 0, 1, false);
    wait_until(&mut h, "the edit lands", |a| !a.is_busy());
    assert_only_frame_changed(&picture, &h.state().doc, frame);
    // File → New canvas… offers the model's size
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("New canvas…").click();
    h.run();
    h.get_by_label("Create").click();
    h.run();
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "16² results", |a| !a.history.is_empty());
    assert_eq!(
        h.state().doc.width,
        16,
        "a new canvas takes the model's size"
    );
}

/// A backend whose steps the test releases one at a time; each step's clean estimate is a flat grey
/// picture of the model's size (32²), brighter with each step.
struct Stepwise {
    gate: crossbeam_channel::Receiver<()>,
    steps: usize,
}

impl cmpaint::worker::Backend for Stepwise {
    fn load(
        &mut self,
        _path: Option<&std::path::Path>,
    ) -> Result<cmpaint::worker::ModelInfo, String> {
        Ok(cmpaint::worker::ModelInfo {
            name: "stepwise".into(),
            file: None,
            sha256: "00".into(),
            image_size: 32,
            num_classes: None,
            styles: Vec::new(),
            parameters: 0,
            sampling: cmpaint::engine::model::spec::SamplingConfig {
                parameterization: cmpaint::engine::model::spec::Parameterization::Edm,
                sketch_strength: Some(0.5),
                ..cmpaint::engine::model::spec::SamplingConfig::with_grid(self.steps, None)
            },
            latent: None,
        })
    }

    fn run(
        &mut self,
        recipe: &cmpaint::recipe::Recipe,
        batch: usize,
        on_step: cmpaint::engine::cm::sample::OnStep,
    ) -> Result<Option<Vec<(cmpaint::picture::Rgb8, cmpaint::recipe::Recipe)>>, String> {
        use candle_core::{Device, Tensor};
        for i in 1..=self.steps {
            if self.gate.recv_timeout(Duration::from_secs(30)).is_err() {
                return Err("the test never opened the gate".into());
            }
            let grey = -1.0 + i as f64 / self.steps as f64;
            let estimate =
                (Tensor::zeros((batch, 3, 32, 32), candle_core::DType::F32, &Device::Cpu)
                    .map_err(|e| e.to_string())?
                    + grey)
                    .map_err(|e| e.to_string())?;
            let step = cmpaint::engine::cm::sample::Step {
                done: i,
                total: self.steps,
                estimate: Some(&estimate),
            };
            if on_step(step).is_break() {
                return Ok(None);
            }
        }
        let img = cmpaint::picture::Rgb8 {
            width: 32,
            height: 32,
            pixels: vec![255; 32 * 32 * 3],
        };
        Ok(Some(vec![(img, recipe.clone()); batch]))
    }
}

#[test]
fn step_previews_show_while_a_job_runs_and_go_when_it_ends_or_is_cancelled() {
    let (gate, gate_rx) = crossbeam_channel::unbounded();
    let worker = Worker::spawn_with(
        Stepwise {
            gate: gate_rx,
            steps: 4,
        },
        || {},
    );
    let app = App::new(worker, None, false, Box::new(Scripted::default()));
    let mut h = Harness::builder()
        .with_size(Vec2::new(1280.0, 820.0))
        .build_ui_state(|ui, app: &mut App| app.show(ui), app);
    wait_until(&mut h, "the model loads", |a| a.model.is_some());
    h.get_by_label_contains("EDM teacher: Heun, 4 steps = 7 network calls");

    h.get_by_label("Generate images").click();
    h.step();
    gate.send(()).unwrap();
    wait_until(&mut h, "the first step's preview", |a| {
        a.step_preview.is_some()
    });
    let p = h.state().step_preview.as_ref().unwrap();
    assert_eq!((p.done, p.total), (1, 4));
    assert_eq!(p.image.pixels[0], 32, "step 1 of 4: grey −0.75 → 32");
    assert_eq!(
        p.frame,
        Some(h.state().job_frame()),
        "drawn in the job's frame"
    );
    assert!(
        h.state().history.is_empty(),
        "no result yet: only the preview"
    );
    for _ in 0..3 {
        gate.send(()).unwrap();
    }
    wait_until(&mut h, "the result", |a| !a.history.is_empty());
    assert!(
        h.state().step_preview.is_none(),
        "the result replaces the preview"
    );
    assert_eq!(
        h.state().history[0]
            .cost
            .as_deref()
            .map(|c| c.starts_with("7 calls")),
        Some(true)
    );
    assert_eq!(
        h.get_all_by_label_contains("stepwise · 7 calls").count(),
        4,
        "each of the batch's history rows names the model and the cost"
    );

    // a cancelled job's preview is removed
    let before = h.state().history.len();
    h.get_by_label("Generate images").click();
    h.step();
    gate.send(()).unwrap();
    wait_until(&mut h, "the second job's preview", |a| {
        a.step_preview.is_some()
    });
    h.state_mut().cancel();
    gate.send(()).unwrap();
    wait_until(&mut h, "the cancel", |a| a.step_preview.is_none());
    assert_eq!(
        h.state().history.len(),
        before,
        "a cancelled job adds nothing"
    );
}

#[test]
fn the_built_in_teacher_generates_with_heun_beside_the_student() {
    let mut h = harness(Scripted::default());
    // the student: one call
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "the student's images", |a| !a.history.is_empty());
    let student = h.state().history.len();
    assert!(
        h.state().history[0]
            .cost
            .as_deref()
            .unwrap()
            .starts_with("1 call ·")
    );
    // the teacher, same seed mode: tens of calls, step previews on the way
    h.get_by_label("Built-in teacher").click();
    wait_until(&mut h, "the teacher loads", |a| {
        a.model.as_ref().is_some_and(|m| m.name.contains("teacher"))
    });
    h.get_by_label_contains("EDM teacher: Heun");
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "the teacher's images", |a| {
        a.history.len() > student
    });
    let cost = h.state().history.last().unwrap().cost.clone().unwrap();
    let calls: usize = cost.split(' ').next().unwrap().parse().unwrap();
    let steps = h.state().model.as_ref().unwrap().sampling.steps;
    assert_eq!(calls, 2 * steps - 1, "{cost}");
    assert!(h.state().step_preview.is_none());
}

/// Every pixel of the picture outside `frame` is as it was.
fn assert_only_frame_changed(before: &[u8], doc: &Document, frame: Frame) {
    let mut changed_inside = 0;
    for y in 0..doc.height {
        for x in 0..doc.width {
            let i = (y * doc.width + x) * 4;
            let inside = (frame.x..frame.x + frame.size).contains(&x)
                && (frame.y..frame.y + frame.size).contains(&y);
            if inside {
                changed_inside += (before[i..i + 4] != doc.picture[i..i + 4]) as usize;
            } else {
                assert_eq!(
                    before[i..i + 4],
                    doc.picture[i..i + 4],
                    "pixel ({x}, {y}) outside the frame changed"
                );
            }
        }
    }
    assert!(changed_inside > 0, "nothing changed in the frame");
}

/// How many masked pixels of the picture differ from `before`, asserting that no unmasked one does.
fn masked_pixels_changed(doc: &Document, before: &[u8]) -> usize {
    let mut changed = 0;
    for (i, &m) in doc.mask.iter().enumerate() {
        let (now, was) = (&doc.picture[i * 4..i * 4 + 4], &before[i * 4..i * 4 + 4]);
        if m == 0 {
            assert_eq!(now, was, "unmasked pixel {i} changed");
        } else {
            changed += (now != was) as usize;
        }
    }
    changed
}

/// Masks the rectangle `xs` × `ys` fully.
fn mask_rect(doc: &mut Document, xs: std::ops::Range<usize>, ys: std::ops::Range<usize>) {
    for y in ys {
        for x in xs.clone() {
            doc.mask[y * doc.width + x] = 255;
        }
    }
    doc.touch();
}

/// A harness with a 96×64 document holding a smooth picture (the built-in 32² model).
fn harness_on_photo(dialogs: Scripted) -> Harness<'static, App> {
    let mut h = harness(dialogs);
    let (w, ht) = (96, 64);
    let pixels = (0..w * ht)
        .flat_map(|i| [(i % w * 2) as u8, (i / w * 3) as u8, 90])
        .collect();
    let doc = Document::from_picture(&cmpaint::picture::Rgb8 {
        width: w,
        height: ht,
        pixels,
    });
    h.state_mut().new_canvas(w, ht);
    h.state_mut().doc = doc;
    h.state_mut().canvas.fit_pending = true;
    h.run();
    h
}

#[test]
fn the_frame_moves_with_the_frame_tool_and_resizes_from_a_handle() {
    let mut h = harness_on_photo(Scripted::default());
    assert_eq!(
        h.state().job_frame(),
        Frame {
            x: 32,
            y: 16,
            size: 32
        }
    );
    h.key_press(Key::V);
    h.step();
    assert_eq!(h.state().tool, Tool::Frame);
    let zoom = h.state().canvas.zoom;
    let r = h.state().canvas.frame_rect(&h.state().doc, h.state().frame);
    // drag from the middle by 10 pixels right and 5 up (whole pixels)
    let from = r.center();
    drag(&mut h, &[from, from + Vec2::new(10.0, -5.0) * zoom]);
    assert_eq!(
        h.state().frame,
        Frame {
            x: 42,
            y: 11,
            size: 32
        }
    );
    assert!(
        h.state().doc.revision == 0 || !h.state().doc.has_sketch(),
        "no paint"
    );
    // the bottom-right handle, with the brush: the top-left corner stays, the side grows to 48
    h.key_press(Key::B);
    h.step();
    let r = h.state().canvas.frame_rect(&h.state().doc, h.state().frame);
    drag(
        &mut h,
        &[
            r.right_bottom(),
            r.right_bottom() + Vec2::new(16.0, 40.0) * zoom,
        ],
    );
    let f = h.state().frame;
    assert_eq!((f.x, f.y), (42, 11));
    assert_eq!(f.size, 53, "as far as the pointer went, to the bottom edge");
    assert!(
        !h.state().doc.has_sketch(),
        "grabbing a handle paints nothing"
    );
    // never smaller than the model's size
    let r = h.state().canvas.frame_rect(&h.state().doc, f);
    drag(
        &mut h,
        &[r.right_bottom(), r.left_top() + Vec2::splat(2.0 * zoom)],
    );
    assert_eq!(h.state().frame.size, 32);
    // F hides and shows the frame
    assert!(h.state().framing.shown);
    h.key_press(Key::F);
    h.step();
    assert!(!h.state().framing.shown);
}

#[test]
fn a_job_in_the_frame_changes_only_the_frame_and_native_inpaint_keeps_unmasked_pixels() {
    let mut h = harness_on_photo(Scripted::default());
    h.state_mut().frame = Frame {
        x: 8,
        y: 20,
        size: 32,
    };
    // sketch → image (feathered) and Generate touch the frame only
    let before = h.state().doc.picture.clone();
    h.state_mut().generate.batch = 1;
    h.state_mut().run_generate();
    wait_until(&mut h, "a generated frame", |a| !a.is_busy());
    assert_only_frame_changed(&before, &h.state().doc, h.state().frame);
    assert!(h.state().doc.can_undo());
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(h.state().doc.picture, before, "one undo step");
    // inpainting at native size: masked pixels change, every other pixel is exact
    mask_rect(&mut h.state_mut().doc, 16..30, 28..36);
    h.state_mut().run_edit(Operation::Inpaint, 3, 1, false);
    wait_until(&mut h, "an inpainted frame", |a| !a.is_busy());
    let changed = masked_pixels_changed(&h.state().doc, &before);
    assert!(
        changed > 50,
        "the masked area was regenerated ({changed} pixels)"
    );
    // History keeps where the result was made: Apply puts it back there
    let last = h.state().history.len() - 1;
    assert_eq!(
        h.state().history[last].placement.as_ref().map(|p| p.frame),
        Some(Frame {
            x: 8,
            y: 20,
            size: 32
        })
    );
    let inpainted = h.state().doc.picture.clone();
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    h.state_mut().frame = Frame {
        x: 60,
        y: 0,
        size: 32,
    };
    h.state_mut().apply_history(last);
    assert_eq!(
        h.state().doc.picture,
        inpainted,
        "Apply pastes it where it was made"
    );
}

#[test]
fn a_scaled_frame_inpaints_at_the_models_size_and_keeps_unmasked_pixels() {
    let mut h = harness_on_photo(Scripted::default());
    h.state_mut().frame = Frame {
        x: 20,
        y: 0,
        size: 64,
    };
    mask_rect(&mut h.state_mut().doc, 40..60, 10..30);
    let before = h.state().doc.picture.clone();
    h.state_mut().run_edit(Operation::Inpaint, 0, 1, false);
    wait_until(&mut h, "an inpainted frame", |a| !a.is_busy());
    assert!(masked_pixels_changed(&h.state().doc, &before) > 50);
    let recipe = &h.state().history.last().unwrap().recipe;
    let input = recipe.input.as_ref().unwrap().to_rgb().unwrap();
    assert_eq!(
        (input.width, input.height),
        (32, 32),
        "the model ran at its own size"
    );
}

#[test]
fn outpainting_left_twice_grows_the_picture_and_keeps_its_pixels() {
    let mut h = harness_on_photo(Scripted::default());
    h.state_mut().frame = Frame {
        x: 0,
        y: 16,
        size: 32,
    };
    let before = h.state().doc.clone();
    h.get_by_label("Left").click();
    h.run();
    wait_until(&mut h, "the first outpaint", |a| !a.is_busy());
    h.get_by_label("Left").click();
    h.run();
    wait_until(&mut h, "the second outpaint", |a| !a.is_busy());
    let doc = &h.state().doc;
    // each click extends by the half of the frame the overlap leaves: 16 pixels
    assert_eq!((doc.width, doc.height, doc.origin), (128, 64, (32, 0)));
    for y in 0..64 {
        let old = &before.picture[y * 96 * 4..(y + 1) * 96 * 4];
        let now = &doc.picture[(y * 128 + 32) * 4..(y * 128 + 128) * 4];
        assert_eq!(old, now, "row {y} of the old picture moved or changed");
    }
    // the whole new edge is filled, not only the frame's band: each click moved the frame along
    // the edge (rows 16..48, then 0..32 and 32..64) until nothing empty was left (issue 28, bug 9)
    let alpha = |x: usize, y: usize| doc.picture[(y * 128 + x) * 4 + 3];
    assert!((0..64).all(|y| (0..32).all(|x| alpha(x, y) == 255)));
    assert!(
        !doc.has_empty(),
        "no empty pixel is left on the extended side"
    );
    // the frame is back where the click put it, for the next click
    assert_eq!(
        h.state().job_frame(),
        Frame {
            x: 0,
            y: 16,
            size: 32
        }
    );
    // undo: the three inpaintings along the edge, then the extension, twice over
    for _ in 0..8 {
        h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
        h.step();
    }
    assert_eq!(
        (h.state().doc.width, h.state().doc.picture.len()),
        (96, before.picture.len())
    );
    assert_eq!(h.state().doc.picture, before.picture);
}

#[test]
fn a_project_round_trips_the_canvas_size_the_frame_and_where_results_were_made() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scene.cmpaint");
    let script = Scripted::default();
    let mut h = harness_on_photo(script.clone());
    h.state_mut().frame = Frame {
        x: 0,
        y: 0,
        size: 32,
    };
    h.state_mut().outpaint(cmpaint::paint::document::Side::Up);
    wait_until(&mut h, "an outpaint", |a| !a.is_busy());
    let (w, ht, origin) = (
        h.state().doc.width,
        h.state().doc.height,
        h.state().doc.origin,
    );
    assert_eq!((w, ht, origin), (96, 80, (0, 16)));
    let picture = h.state().doc.picture.clone();
    let frame = h.state().frame;
    script.push(file.clone());
    h.state_mut().save_project(true);
    h.state_mut().new_canvas(32, 32);
    script.push(file);
    h.state_mut().open_project();
    let a = h.state();
    assert_eq!((a.doc.width, a.doc.height, a.doc.origin), (w, ht, origin));
    assert_eq!(a.doc.picture, picture);
    assert_eq!(a.frame, frame);
    assert_eq!(
        a.history[0].placement.as_ref().map(|p| p.frame),
        Some(frame)
    );
}

/// Sketch → image in a scaled frame: the stroke inside the frame becomes part of the picture there
/// (and leaves the sketch layer), pixels outside the frame and the stroke outside it are untouched.
#[test]
fn sketch_to_image_in_a_scaled_frame_changes_only_the_frame() {
    let mut h = harness_on_photo(Scripted::default());
    h.state_mut().frame = Frame {
        x: 32,
        y: 0,
        size: 64,
    };
    let zoom = h.state().canvas.zoom;
    let r = h.state().canvas.image_rect(&h.state().doc);
    let at = |x: f32, y: f32| r.min + Vec2::new(x, y) * zoom;
    drag(&mut h, &[at(40.0, 30.0), at(90.0, 30.0)]); // inside the frame
    drag(&mut h, &[at(4.0, 50.0), at(20.0, 50.0)]); // outside it
    let before = h.state().doc.picture.clone();
    let outside_sketch = |d: &Document| (0..32).any(|x| d.sketch[(50 * 96 + x) * 4 + 3] > 0);
    assert!(outside_sketch(&h.state().doc));
    h.state_mut().generate.batch = 1;
    h.state_mut().run_generate();
    wait_until(&mut h, "sketch to image", |a| !a.is_busy());
    h.state_mut().apply_preview();
    let a = h.state();
    assert_eq!(
        a.history.last().unwrap().recipe.operation.label(),
        "sketch to image"
    );
    assert_only_frame_changed(&before, &a.doc, a.frame);
    assert!(
        !a.doc.has_sketch_in(a.frame),
        "the frame's sketch went into the picture"
    );
    assert!(
        outside_sketch(&a.doc),
        "the stroke outside the frame stays a stroke"
    );
}

/// Over its memory budget, History moves its oldest results to the data folder: memory stays within
/// the budget, every result is still there — shown, applied and saved in projects from disk.
#[test]
fn history_beyond_its_budget_moves_to_disk_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let script = Scripted::default();
    let mut h = harness(script.clone());
    let spill = dir.path().join("spill");
    h.state_mut().spill_dir = Some(spill.clone());
    // a 32² result holds 3 KB of pixels (+ 4 KB of thumbnail once shown): room for about six
    h.state_mut().history_budget = 40 << 10;
    h.state_mut().generate.batch = 4;
    let mut made = Vec::new();
    for _ in 0..5 {
        h.state_mut().run_generate();
        wait_until(&mut h, "a batch", |a| !a.is_busy());
        let n = made.len();
        for r in &h.state().history[n..] {
            made.push(r.image().unwrap());
        }
    }
    let a = h.state();
    assert_eq!(a.history.len(), 20);
    let (bytes, on_disk) = a.history_memory();
    assert!(bytes <= 40 << 10, "{bytes} bytes in memory");
    // 20 results of 3,072 bytes of pixels against 40 KiB: at least 7 must be on disk whatever the
    // thumbnails the panel happens to show add
    assert!(on_disk >= 7, "{on_disk} results on disk");
    assert_eq!(std::fs::read_dir(&spill).unwrap().count(), on_disk);
    for (r, image) in a.history.iter().zip(&made) {
        assert_eq!(
            &r.image().unwrap(),
            image,
            "a result changed on its way to disk"
        );
    }
    // the oldest (on disk) applies as it was made
    assert!(a.history[0].is_on_disk());
    h.state_mut().apply_history(0);
    assert_eq!(h.state().doc.composite(), made[0]);
    // and is saved in a project
    let file = dir.path().join("p.cmpaint");
    script.push(file.clone());
    h.state_mut().save_project(true);
    let restored = cmpaint::paint::project::Project::read(&file)
        .unwrap()
        .restore()
        .unwrap();
    let saved: Vec<_> = restored.history.into_iter().map(|(img, ..)| img).collect();
    assert_eq!(saved, made);
    // Discard takes its file along
    h.state_mut().discard_history(0);
    assert_eq!(std::fs::read_dir(&spill).unwrap().count(), on_disk - 1);
}

/// With nowhere to move them, results over the budget stay in memory and the user is told.
#[test]
fn history_over_budget_without_a_data_folder_keeps_everything_and_says_so() {
    let mut h = harness(Scripted::default());
    h.state_mut().history_budget = 8 << 10;
    h.state_mut().generate.batch = 4;
    h.state_mut().run_generate();
    wait_until(&mut h, "a batch", |a| !a.is_busy());
    let a = h.state();
    assert_eq!(a.history.len(), 4);
    assert!(
        a.history
            .iter()
            .all(|r| !r.is_on_disk() && r.image().is_ok())
    );
    assert!(
        a.messages
            .iter()
            .any(|m| m.error && m.text.contains("stay in memory"))
    );
}

/// The autosave writes each result once, to a file of its own: later autosaves write only the
/// layers and the new results (the autosave file does not grow with History), discarded results'
/// files go, and a restart restores every result.
#[test]
fn autosave_writes_each_result_once() {
    use cmpaint::paint::project::{AUTOSAVE_FILE, AUTOSAVE_RESULTS};
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join(AUTOSAVE_RESULTS);
    let files = || -> Vec<(String, std::time::SystemTime)> {
        let mut v: Vec<_> = std::fs::read_dir(&results)
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, e.metadata().unwrap().modified().unwrap())
            })
            .collect();
        v.sort();
        v
    };
    // the autosave's size without the canvas layers, whose PNGs change with what the canvas shows
    let size = || {
        let text = std::fs::read_to_string(dir.path().join(AUTOSAVE_FILE)).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        for layer in ["picture", "sketch", "mask"] {
            json.as_object_mut().unwrap().remove(layer);
        }
        json.to_string().len()
    };
    let images = {
        let mut h = harness_with_autosave(dir.path(), Scripted::default());
        h.state_mut().generate.batch = 4;
        h.state_mut().run_generate();
        wait_until(&mut h, "4 results", |a| a.history.len() == 4);
        h.state_mut().autosave_now();
        let (first, first_size) = (files(), size());
        assert_eq!(first.len(), 4);
        std::thread::sleep(Duration::from_millis(20));
        h.state_mut().run_generate();
        wait_until(&mut h, "8 results", |a| a.history.len() == 8);
        h.state_mut().autosave_now();
        let second = files();
        assert_eq!(second.len(), 8);
        assert!(
            first.iter().all(|f| second.contains(f)),
            "an old result was rewritten"
        );
        // the autosave itself grows by four names, not four pictures
        assert!(size() < first_size + 4 * 100, "{first_size} → {}", size());
        h.state_mut().history.remove(0);
        h.state_mut().autosave_now();
        assert_eq!(files().len(), 7, "a discarded result's file goes");
        let app = h.state();
        let images: Vec<_> = app.history.iter().map(|r| r.image().unwrap()).collect();
        std::mem::forget(h);
        images
    };
    let mut h = harness_with_autosave(dir.path(), Scripted::default());
    h.run();
    h.get_by_label("Restore").click();
    h.run();
    let restored: Vec<_> = h
        .state()
        .history
        .iter()
        .map(|r| r.image().unwrap())
        .collect();
    assert_eq!(restored, images);
}

/// Export PNG of an extended canvas keeps its empty pixels transparent and the picture exact.
#[test]
fn exporting_an_extended_canvas_keeps_its_empty_area_transparent() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wide.png");
    let script = Scripted::default();
    let mut h = harness_on_photo(script.clone());
    let before = h.state().doc.composite();
    assert!(
        h.state_mut()
            .extend_canvas(cmpaint::paint::document::Side::Right, 10)
    );
    script.push(out.clone());
    h.state_mut().export_png();
    let png = image::open(&out).unwrap().to_rgba8();
    assert_eq!(png.dimensions(), (106, 64));
    for y in 0..64u32 {
        for x in 0..106u32 {
            let p = png.get_pixel(x, y).0;
            if x < 96 {
                let i = (y as usize * 96 + x as usize) * 3;
                assert_eq!(p[..3], before.pixels[i..i + 3], "({x}, {y})");
                assert_eq!(p[3], 255);
            } else {
                assert_eq!(p[3], 0, "({x}, {y}) is empty");
            }
        }
    }
}

/// Start-up problems stay on screen until dismissed (the model-loaded message used to replace them
/// at once), and say what was kept: the unreadable autosave is set aside, not overwritten.
#[test]
fn a_damaged_autosave_is_reported_until_dismissed_and_set_aside() {
    use cmpaint::paint::project::AUTOSAVE_FILE;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(AUTOSAVE_FILE),
        b"{\"format\": \"cmpaint-proj",
    )
    .unwrap();
    let mut h = harness_with_autosave(dir.path(), Scripted::default());
    for _ in 0..5 {
        h.step();
    }
    let notice = "The last autosave cannot be restored";
    assert!(
        h.query_by_label_contains(notice).is_some(),
        "the notice shows"
    );
    assert!(
        h.state()
            .messages
            .last()
            .is_some_and(|m| !m.text.contains(notice)),
        "a later message came, and the notice stayed anyway"
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("autosave-unreadable-"))
        .collect();
    assert_eq!(aside.len(), 1, "set aside: {aside:?}");
    assert!(
        h.query_by_label_contains(&aside[0]).is_some(),
        "the notice says where"
    );
    h.get_by_label("Dismiss").click();
    h.run();
    assert!(h.query_by_label_contains(notice).is_none());
}

/// An autosave that is a link to a device is refused without reading it (it used to read without
/// end), and the app starts.
#[test]
fn an_autosave_linked_to_a_device_is_refused_at_once() {
    use cmpaint::paint::project::AUTOSAVE_FILE;
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join(AUTOSAVE_FILE)).unwrap();
    let mut h = harness_with_autosave(dir.path(), Scripted::default());
    h.step();
    assert!(h.query_by_label_contains("a device, not a file").is_some());
    assert!(h.state().notices.len() == 1);
}

/// A restore weighs every result before decoding it: those beyond History's budget go to disk as
/// the PNGs they are, never into memory, and every one comes back exactly.
#[test]
fn a_restore_keeps_within_the_history_budget() {
    let dir = tempfile::tempdir().unwrap();
    let made: Vec<_> = {
        let mut h = harness_with_autosave(dir.path(), Scripted::default());
        h.state_mut().generate.batch = 8;
        h.state_mut().run_generate();
        wait_until(&mut h, "a batch", |a| a.history.len() == 8);
        h.state_mut().autosave_now();
        let made = h
            .state()
            .history
            .iter()
            .map(|r| r.image().unwrap())
            .collect();
        std::mem::forget(h);
        made
    };
    let mut h = harness_with_autosave(dir.path(), Scripted::default());
    // room for two 32² results (3 KB each)
    h.state_mut().history_budget = 7 << 10;
    h.run();
    h.get_by_label("Restore").click();
    h.run();
    let a = h.state();
    assert_eq!(a.history.len(), 8);
    // the six oldest never came into memory; of the two decoded, the thumbnails shown since may
    // have moved one more to disk
    assert!(a.history[..6].iter().all(|r| r.is_on_disk()));
    assert!(!a.history[7].is_on_disk());
    assert!(a.history_memory().0 <= 7 << 10);
    let restored: Vec<_> = a.history.iter().map(|r| r.image().unwrap()).collect();
    assert_eq!(restored, made);
}

/// A click on a dialog's button as a real pointer makes one, the press in one frame and the release
/// in the next; the press must neither start a stroke nor touch the document under the dialog.
fn click_dialog_button(h: &mut Harness<'static, App>, pos: Pos2) {
    h.event(Event::PointerMoved(pos));
    h.step();
    let layers = |a: &App| {
        (
            a.doc.picture.clone(),
            a.doc.sketch.clone(),
            a.doc.mask.clone(),
        )
    };
    let before = layers(h.state());
    for pressed in [true, false] {
        h.event(Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        });
        h.step();
        if pressed {
            assert!(
                !h.state().canvas.is_stroking(),
                "a stroke began under the dialog"
            );
            assert!(
                layers(h.state()) == before,
                "the press painted under the dialog"
            );
        }
    }
    h.run();
}

/// A click that a dialog takes never reaches the canvas under it: Create in File → New canvas… with
/// the Mask tool, and Restore after an autosave with the Brush, used to leave a dab where the button
/// was (issue 28, bug 1).
#[test]
fn a_click_on_a_dialog_over_the_canvas_leaves_the_document_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut h = harness_with_autosave(dir.path(), Scripted::default());
        stroke_across_canvas(&mut h);
        h.state_mut().autosave_now();
        std::mem::forget(h);
    }
    let mut h = harness_with_autosave(dir.path(), Scripted::default());
    h.run();
    assert_eq!(h.state().tool, Tool::Brush);
    let restore = h.get_by_label("Restore").rect();
    assert!(
        h.state()
            .canvas
            .image_rect(&h.state().doc)
            .contains(restore.center())
    );
    click_dialog_button(&mut h, restore.center());
    let sketch = h.state().doc.sketch.clone();
    assert!(sketch.iter().any(|&v| v != 0), "the restored stroke");
    let restored = cmpaint::paint::project::Project::read(
        &dir.path().join(cmpaint::paint::project::AUTOSAVE_FILE),
    )
    .unwrap()
    .restore()
    .unwrap();
    assert_eq!(sketch, restored.doc.sketch, "no dab on the restored sketch");

    h.key_press(Key::M);
    h.step();
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("New canvas…").click();
    h.run();
    let create = h.get_by_label("Create").rect();
    click_dialog_button(&mut h, create.center());
    assert!(h.state().new_canvas_size.is_none(), "the dialog closed");
    let doc = &h.state().doc;
    assert!(doc.mask.iter().all(|&m| m == 0), "no mask dab under Create");
    assert!(!doc.has_sketch());
}

/// A teacher's recipe re-run while the student is loaded reloads the teacher, and its History row
/// says what the teacher's run cost (2N − 1 calls), not the student's one call (issue 28, bug 3); the
/// cost survives an autosave and restore.
#[test]
fn a_rerun_teacher_recipe_reports_the_teachers_cost_and_restores_keep_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("teacher.png");
    let script = Scripted::default();
    let mut h = harness_with_autosave(dir.path(), script.clone());
    h.state_mut().generate.batch = 1;
    h.get_by_label("Built-in teacher").click();
    wait_until(&mut h, "the teacher loads", |a| {
        a.model.as_ref().is_some_and(|m| m.name.contains("teacher"))
    });
    let calls = 2 * h.state().model.as_ref().unwrap().sampling.steps - 1;
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "the teacher's image", |a| a.history.len() == 1);
    script.push(out.clone());
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Export PNG…").click();
    h.step();
    h.get_by_label("Built in").click();
    wait_until(&mut h, "the student loads", |a| {
        a.model
            .as_ref()
            .is_some_and(|m| !m.name.contains("teacher"))
    });
    script.push(out.clone());
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Open recipe…").click();
    wait_until(&mut h, "the re-run", |a| a.history.len() == 2);
    let cost = h.state().history[1].cost.clone().unwrap();
    assert!(cost.starts_with(&format!("{calls} calls ·")), "{cost}");
    assert_eq!(h.state().history[0].image(), h.state().history[1].image());

    h.state_mut().autosave_now();
    std::mem::forget(h);
    let mut h = harness_with_autosave(dir.path(), Scripted::default());
    h.run();
    h.get_by_label("Restore").click();
    wait_until(&mut h, "the restore", |a| {
        a.history.len() == 2 && !a.is_busy()
    });
    let costs: Vec<_> = h.state().history.iter().map(|r| r.cost.clone()).collect();
    assert!(
        costs.iter().all(|c| c
            .as_deref()
            .is_some_and(|c| c.starts_with(&format!("{calls} calls")))),
        "{costs:?}"
    );
}

/// A canvas that is more than one result exports without a recipe, and both Export and Open recipe
/// say why (issue 28, bug 4: Open recipe said only "it was not exported by cmpaint").
#[test]
fn exporting_a_canvas_that_is_not_one_result_says_it_has_no_recipe_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("painted.png");
    let script = Scripted::default();
    let mut h = harness(script.clone());
    h.state_mut().generate.batch = 1;
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "a result", |a| !a.history.is_empty());
    stroke_across_canvas(&mut h);
    script.push(out.clone());
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Export PNG…").click();
    h.step();
    let said = &h.state().messages.last().unwrap().text;
    assert!(
        said.contains("without a recipe: the canvas is not exactly one result"),
        "{said}"
    );
    script.push(out.clone());
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Open recipe…").click();
    h.step();
    let said = &h.state().messages.last().unwrap().text;
    assert!(
        said.contains("exported while the canvas was not exactly one result"),
        "{said}"
    );
}

/// Switching models keeps a Sketch strength the user set, and says so; an untouched one follows the
/// new model's own (issue 28, item 11: it was reset without a word).
#[test]
fn switching_models_keeps_the_users_sketch_strength_and_says_so() {
    let mut h = harness(Scripted::default());
    let own = h.state().generate.strength;
    h.state_mut().generate.strength = 0.55;
    h.get_by_label("Built-in teacher").click();
    wait_until(&mut h, "the teacher loads", |a| {
        a.model.as_ref().is_some_and(|m| m.name.contains("teacher"))
    });
    assert_eq!(h.state().generate.strength, 0.55);
    let said = &h.state().messages.last().unwrap().text;
    assert!(said.contains("sketch strength 0.55 kept"), "{said}");
    h.state_mut().generate.strength = h.state().model.as_ref().unwrap().sketch_strength();
    h.get_by_label("Built in").click();
    wait_until(&mut h, "the student loads", |a| {
        a.model
            .as_ref()
            .is_some_and(|m| !m.name.contains("teacher"))
    });
    assert_eq!(h.state().generate.strength, own);
    let said = &h.state().messages.last().unwrap().text;
    assert!(said.contains("this model's own"), "{said}");
}

/// The slider's frames show on the canvas, where the painter looks, and the preview's controls
/// appearing move nothing in the side panel (issue 28, bug 2: the frames went to a box at the top of
/// the scrolling panel, which pushed the slider down mid-drag).
#[test]
fn the_sliders_frame_appears_on_the_canvas_and_the_panel_does_not_jump() {
    let mut h = harness(Scripted::default());
    let slider = h
        .get_by_role_and_label(egui::accesskit::Role::Slider, "α")
        .rect();
    let y = slider.center().y;
    drag(
        &mut h,
        &[
            Pos2::new(slider.min.x + slider.width() * 0.3, y),
            Pos2::new(slider.min.x + slider.width() * 0.6, y),
        ],
    );
    wait_until(&mut h, "the slider's frame", |a| {
        a.preview.is_some() && !a.is_busy()
    });
    h.run();
    let overlay = h.state().stats.canvas_overlay.clone();
    assert!(
        overlay
            .as_deref()
            .is_some_and(|o| o.starts_with("preview · interpolate")),
        "{overlay:?}"
    );
    let after = h
        .get_by_role_and_label(egui::accesskit::Role::Slider, "α")
        .rect();
    assert_eq!(after.min, slider.min, "the slider stayed under the pointer");
    h.get_by_label("Dismiss").click();
    h.run();
    assert_eq!(h.state().stats.canvas_overlay, None);
}

/// History rows say their settings (a tooltip with all of them), mark the row the canvas shows, and
/// holding Compare puts a "comparing" badge on the canvas (issue 28, item 10).
#[test]
fn history_rows_say_their_settings_and_which_is_on_the_canvas() {
    let mut h = harness(Scripted::default());
    h.state_mut().generate.batch = 1;
    stroke_across_canvas(&mut h);
    h.state_mut().run_sketch(false);
    wait_until(&mut h, "sketch to image", |a| a.history.len() == 1);
    h.state_mut().apply_preview();
    h.run();
    let strength = h.state().generate.strength;
    let row = format!("sketch to image · seed 0 · strength {strength:.2}");
    assert!(
        h.query_all_by_label_contains(&row).next().is_some(),
        "{row}"
    );
    h.get_by_label("on canvas");
    // painting over it: the canvas is no longer exactly that result
    stroke_across_canvas(&mut h);
    h.run();
    assert!(h.query_by_label("on canvas").is_none());
    // holding Compare
    let compare = h.get_by_label("Compare").rect().center();
    h.event(Event::PointerMoved(compare));
    h.step();
    h.event(Event::PointerButton {
        pos: compare,
        button: PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.step();
    h.step();
    let overlay = h.state().stats.canvas_overlay.clone();
    assert!(
        overlay
            .as_deref()
            .is_some_and(|o| o.starts_with("comparing · sketch to image · seed 0")),
        "{overlay:?}"
    );
}

/// Export scale enlarges the exported PNG and the strip's frames by whole pixels (issue 28, item
/// 14: the GIF strip was 32×32 with no scale option).
#[test]
fn exports_and_strips_enlarge_by_the_export_scale() {
    let dir = tempfile::tempdir().unwrap();
    let (png, gif) = (dir.path().join("big.png"), dir.path().join("big.gif"));
    let script = Scripted::default();
    let mut h = harness(script.clone());
    h.state_mut().generate.batch = 1;
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "a result", |a| !a.history.is_empty());
    h.state_mut().export_scale = 4;
    script.push(png.clone());
    h.state_mut().export_png();
    let exported = image::open(&png).unwrap().to_rgb8();
    assert_eq!(exported.dimensions(), (128, 128));
    let canvas = h.state().doc.composite();
    assert_eq!(
        exported.get_pixel(127, 127).0[..],
        canvas.pixels[(31 * 32 + 31) * 3..][..3]
    );
    assert!(
        read_recipe(&std::fs::read(&png).unwrap()).is_ok(),
        "the recipe goes along"
    );
    h.state_mut().interpolate.strip_frames = 3;
    script.push(gif.clone());
    h.state_mut().export_strip();
    wait_until(&mut h, "the strip", |a| !a.is_busy() && gif.exists());
    assert_eq!(image::image_dimensions(&gif).unwrap(), (128, 128));
    assert_eq!(gif_frames(&gif), 3);
}

/// Closing with changes not saved in a project asks first; Cancel keeps the window, Close without
/// saving closes; a saved painting closes at once. The Generate settings come back with a restore
/// (issue 28, item 13).
#[test]
fn closing_with_unsaved_changes_asks_and_restores_bring_the_settings_back() {
    use cmpaint::app::SeedMode;
    let dir = tempfile::tempdir().unwrap();
    let script = Scripted::default();
    let mut h = harness_with_autosave(dir.path(), script.clone());
    assert!(h.state_mut().may_close(), "nothing painted: it closes");
    stroke_across_canvas(&mut h);
    assert!(
        !h.state_mut().may_close(),
        "a stroke not saved in a project: it asks"
    );
    h.run();
    h.get_by_label("Cancel").click();
    h.run();
    assert!(!h.state().confirm_close);
    assert!(!h.state_mut().may_close());
    h.run();
    script.push(dir.path().join("p.cmpaint"));
    h.get_by_label("Save project…").click();
    h.run();
    assert!(!h.state().is_dirty(), "saved");
    assert!(h.state_mut().may_close(), "saved: it closes");

    let g = &mut h.state_mut().generate;
    (g.seed, g.seed_mode, g.batch) = (42, SeedMode::Fixed, 3);
    h.state_mut().autosave_now();
    std::mem::forget(h);
    let mut h = harness_with_autosave(dir.path(), Scripted::default());
    h.run();
    h.get_by_label("Restore").click();
    h.run();
    let g = &h.state().generate;
    assert_eq!((g.seed, g.seed_mode, g.batch), (42, SeedMode::Fixed, 3));
}

/// After an inpaint the mask overlay goes so the result shows; H shows and hides it, and painting
/// the mask shows it again (issue 28, item 12).
#[test]
fn the_mask_hides_after_an_inpaint_and_h_or_the_mask_brush_shows_it() {
    let mut h = harness(Scripted::default());
    h.key_press(Key::M);
    h.step();
    stroke_across_canvas(&mut h);
    assert!(h.state().canvas.show_mask);
    h.state_mut().run_edit(Operation::Inpaint, 0, 1, false);
    wait_until(&mut h, "the inpaint", |a| {
        !a.history.is_empty() && !a.is_busy()
    });
    assert!(!h.state().canvas.show_mask, "hidden to show the result");
    assert!(
        h.state()
            .messages
            .iter()
            .any(|m| m.text.contains("H shows it"))
    );
    h.key_press(Key::H);
    h.step();
    assert!(h.state().canvas.show_mask);
    h.key_press(Key::H);
    h.step();
    assert!(!h.state().canvas.show_mask);
    stroke_across_canvas(&mut h);
    assert!(h.state().canvas.show_mask, "painting the mask shows it");
}

/// A super-resolution stand-in for the app's tiling (the real model takes seconds a tile in a test
/// build; `tests/edit.rs` and `tests/cli_edit.rs` check the real edit): it returns its input with
/// ±`DETAIL` alternating inside every F×F patch, which keeps each patch's mean.
struct Detailing;

const DETAIL: i32 = 6;

impl cmpaint::worker::Backend for Detailing {
    fn load(
        &mut self,
        _path: Option<&std::path::Path>,
    ) -> Result<cmpaint::worker::ModelInfo, String> {
        Ok(cmpaint::worker::ModelInfo {
            name: "detailing".into(),
            file: None,
            sha256: "00".into(),
            image_size: 32,
            num_classes: None,
            styles: Vec::new(),
            parameters: 0,
            sampling: cmpaint::engine::model::spec::SamplingConfig {
                sketch_strength: Some(0.5),
                ..cmpaint::engine::model::spec::SamplingConfig::with_grid(40, None)
            },
            latent: None,
        })
    }

    fn run(
        &mut self,
        recipe: &cmpaint::recipe::Recipe,
        batch: usize,
        _on_step: cmpaint::engine::cm::sample::OnStep,
    ) -> Result<Option<Vec<(cmpaint::picture::Rgb8, cmpaint::recipe::Recipe)>>, String> {
        let Operation::SuperRes { factor } = recipe.operation else {
            return Err("only super-resolution".into());
        };
        let mut img = recipe
            .input
            .as_ref()
            .unwrap()
            .to_rgb()
            .map_err(|e| e.to_string())?;
        for y in 0..img.height {
            for x in 0..img.width {
                let sign = if (x % factor + y % factor) % 2 == 0 {
                    1
                } else {
                    -1
                };
                for c in 0..3 {
                    let v = &mut img.pixels[(y * img.width + x) * 3 + c];
                    *v = (*v as i32 + sign * DETAIL).clamp(0, 255) as u8;
                }
            }
        }
        Ok(Some(vec![(img, recipe.clone()); batch]))
    }
}

/// Upscale ×4 turns the 32² canvas into 128², tile by tile, each tile blended into the last: every
/// 4×4 patch keeps the pixel it came from as its mean and holds the detail the model made (issue 28,
/// item 8: Super-resolve kept the size and only looked blurrier); then the frame is back at the
/// model's size, and undo gives the small picture back.
#[test]
fn upscale_enlarges_the_canvas_and_keeps_each_pixel_as_its_patch_mean() {
    let worker = Worker::spawn_with(Detailing, || {});
    let app = App::new(worker, None, false, Box::new(Scripted::default()));
    let mut h = Harness::builder()
        .with_size(Vec2::new(1280.0, 820.0))
        .build_ui_state(|ui, app: &mut App| app.show(ui), app);
    wait_until(&mut h, "the model loads", |a| a.model.is_some());
    // a picture whose pixels stay away from 0 and 255, so the detail is never clipped
    let pixels = (0..32 * 32 * 3).map(|i| (40 + i * 7 % 170) as u8).collect();
    let small = cmpaint::picture::Rgb8 {
        width: 32,
        height: 32,
        pixels,
    };
    h.state_mut().doc = Document::from_picture(&small);
    h.state_mut().edit.superres_factor = 4;
    h.get_by_label("Upscale").click();
    wait_until(&mut h, "the upscale", |a| {
        !a.is_busy() && a.doc.width == 128
    });
    let big = h.state().doc.composite();
    assert_eq!((big.width, big.height), (128, 128));
    let mut worst = 0f64;
    for py in 0..32 {
        for px in 0..32 {
            for c in 0..3 {
                let values: Vec<f64> = (0..16)
                    .map(|i| big.pixels[((py * 4 + i / 4) * 128 + px * 4 + i % 4) * 3 + c] as f64)
                    .collect();
                let mean = values.iter().sum::<f64>() / 16.0;
                worst = worst.max((mean - small.pixels[(py * 32 + px) * 3 + c] as f64).abs());
                assert!(
                    values.iter().any(|&v| v != values[0]),
                    "detail in every patch"
                );
            }
        }
    }
    assert!(worst <= 0.5, "a patch mean moved by {worst} levels");
    // 5 × 5 tiles of 32² a quarter overlapping (a stride of 24, the last flush)
    assert_eq!(h.state().history.len(), 25);
    assert_eq!(
        h.state().job_frame().size,
        32,
        "the frame is back at the model's size"
    );
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    let mut undone = 0;
    while h.state().doc.width == 128 && undone < 30 {
        h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
        h.step();
        undone += 1;
    }
    assert_eq!(
        h.state().doc.composite(),
        small,
        "undo gives the small picture back"
    );
}

/// Generate from sketch keeps the sketch as its own layer: the result shows over it as the preview,
/// another strength runs on the same sketch with no Ctrl+Z, holding S shows the sketch, Dismiss goes
/// back to it, and only Apply puts a result on the canvas and clears the sketch (issue 28, item 7:
/// generating consumed the sketch).
#[test]
fn generating_from_a_sketch_keeps_the_sketch_until_a_result_is_applied() {
    let mut h = harness(Scripted::default());
    h.state_mut().generate.batch = 1;
    stroke_across_canvas(&mut h);
    let painted = (h.state().doc.picture.clone(), h.state().doc.sketch.clone());
    h.get_by_label("Generate from sketch").click();
    wait_until(&mut h, "the first result", |a| {
        a.history.len() == 1 && !a.is_busy()
    });
    h.run();
    let doc = &h.state().doc;
    assert_eq!(
        (doc.picture.clone(), doc.sketch.clone()),
        painted,
        "nothing merged yet"
    );
    let overlay = h.state().stats.canvas_overlay.clone().unwrap_or_default();
    assert!(
        overlay.starts_with("preview · sketch to image"),
        "{overlay}"
    );
    assert!(overlay.contains("hold S to see the sketch"), "{overlay}");
    // holding S shows the sketch under the preview
    h.event(Event::Key {
        key: Key::S,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    assert_eq!(
        h.state().stats.canvas_overlay,
        None,
        "the sketch, not the preview"
    );
    h.event(Event::Key {
        key: Key::S,
        physical_key: None,
        pressed: false,
        repeat: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    assert!(h.state().stats.canvas_overlay.is_some());
    // another strength, on the same sketch
    h.state_mut().generate.strength = 0.6;
    h.get_by_label("Generate from sketch").click();
    wait_until(&mut h, "the second result", |a| {
        a.history.len() == 2 && !a.is_busy()
    });
    let a = h.state();
    assert_eq!(
        a.history[0].recipe.input, a.history[1].recipe.input,
        "the same sketch"
    );
    assert_eq!(a.preview.as_ref().unwrap().recipe, a.history[1].recipe);
    // Dismiss: back to the sketch; then Apply a result from History
    h.get_by_label("Dismiss").click();
    h.run();
    assert!(h.state().preview.is_none() && h.state().doc.has_sketch());
    h.state_mut().apply_history(0);
    assert!(
        !h.state().doc.has_sketch(),
        "applying a result clears the sketch"
    );
    assert_eq!(
        h.state().history.len(),
        2,
        "applying adds nothing to History"
    );
}

/// Dialogs whose answers the test gives when it likes: a native dialog on its thread (`Some`), or
/// one that could not open at all (`Err`).
#[derive(Clone, Default)]
struct Later(Arc<Mutex<Option<crossbeam_channel::Sender<cmpaint::app::dialogs::FileAnswer>>>>);

impl Dialogs for Later {
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
    fn ask(
        &mut self,
        _request: cmpaint::app::dialogs::FileRequest,
    ) -> crossbeam_channel::Receiver<cmpaint::app::dialogs::FileAnswer> {
        let (send, answer) = crossbeam_channel::bounded(1);
        *self.0.lock().unwrap() = Some(send);
        answer
    }
}

impl Later {
    fn answer(&self, answer: cmpaint::app::dialogs::FileAnswer) {
        self.0.lock().unwrap().take().unwrap().send(answer).unwrap();
    }
}

/// A file dialog never blocks the UI: frames go on while it is open, and its answer is used when it
/// comes (issue 28, bug 6: the modal dialog held one frame for 11 s). Where no dialog can open (no
/// desktop portal, no zenity), the app asks for the path itself and says why (it did nothing).
#[test]
fn file_dialogs_never_block_and_a_path_field_stands_in_where_none_can_open() {
    let dir = tempfile::tempdir().unwrap();
    let later = Later::default();
    let worker = Worker::spawn(candle_core::Device::Cpu, || {});
    let app = App::new(worker, None, false, Box::new(later.clone()));
    let mut h = Harness::builder()
        .with_size(Vec2::new(1280.0, 820.0))
        .build_ui_state(|ui, app: &mut App| app.show(ui), app);
    wait_until(&mut h, "the model loads", |a| a.model.is_some());
    // the dialog is open on its thread: the app goes on meanwhile, a stroke paints
    h.state_mut().export_png();
    assert!(h.state().is_asking_for_a_file());
    stroke_across_canvas(&mut h);
    assert!(
        h.state().doc.has_sketch(),
        "painted while the dialog was open"
    );
    assert!(h.state().is_asking_for_a_file());
    let first = dir.path().join("first.png");
    later.answer(Ok(Some(first.clone())));
    h.step();
    assert!(first.exists(), "exported once the answer came");
    assert!(!h.state().is_asking_for_a_file());
    // no dialog could open: the path prompt, with the reason
    h.state_mut().export_png();
    later.answer(Err("no file dialog could open (no desktop portal)".into()));
    h.run();
    assert!(
        h.query_by_label_contains("no file dialog could open")
            .is_some()
    );
    let second = dir.path().join("second.png");
    h.get_by_label("Path").click();
    h.run();
    h.get_by_label("Path").type_text(second.to_str().unwrap());
    h.run();
    h.get_by_label("OK").click();
    h.run();
    assert!(second.exists(), "exported to the typed path");
    assert!(h.state().path_prompt.is_none());
}

/// A model with styles shows a Style picker beside the class; the style picked goes into every
/// result's recipe, and "from the seed" gives each image of a batch its seed's style.
#[test]
fn a_model_with_styles_offers_a_style_picker_and_results_record_their_style() {
    let dir = tempfile::tempdir().unwrap();
    let mut classes = 0;
    let unstyled = common::builtin_with(dir.path(), "unstyled.safetensors", |config| {
        config.styles.clear();
        classes = config.unet.num_classes.unwrap() / 2;
    });
    let opened = |name: &'static str| {
        move |a: &App| {
            a.model
                .as_ref()
                .is_some_and(|m| m.file.as_ref().is_some_and(|f| f.ends_with(name)))
        }
    };
    let model = common::builtin_with(dir.path(), "styled.safetensors", |config| {
        config.styles = vec!["plain".into(), "fancy".into()];
    });
    let script = Scripted::default();
    let mut h = harness(script.clone());
    script.push(unstyled);
    h.get_by_label("Open file…").click();
    h.step();
    wait_until(
        &mut h,
        "the unstyled model loads",
        opened("unstyled.safetensors"),
    );
    assert!(
        h.query_by_label("Style").is_none(),
        "a model without styles has no Style picker"
    );
    script.push(model);
    h.get_by_label("Open file…").click();
    h.step();
    wait_until(
        &mut h,
        "the styled model loads",
        opened("styled.safetensors"),
    );
    h.get_by_label_contains(&format!("{classes} classes × 2 styles"));
    h.get_by_label("Style").click();
    h.run();
    h.get_by_label("fancy").click();
    h.run();
    assert_eq!(h.state().style, Some(1));
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "a fancy result", |a| !a.history.is_empty());
    assert!(h.state().history.iter().all(|r| r.recipe.style == Some(1)));

    h.state_mut().style = None;
    h.state_mut().generate.batch = 2;
    let before = h.state().history.len();
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "two more", |a| a.history.len() == before + 2);
    let styles: Vec<(u64, Option<u32>)> = h.state().history[before..]
        .iter()
        .map(|r| (r.recipe.seed, r.recipe.style))
        .collect();
    for (seed, style) in styles {
        assert_eq!(style, Some((seed % 2) as u32), "seed {seed}");
    }
}

#[test]
fn a_latent_model_takes_a_prompt_and_its_results_record_it() {
    let script = Scripted::default();
    let mut h = harness(script.clone());
    assert!(
        h.query_by_label("Prompt").is_none(),
        "the built-in model takes no prompt"
    );
    script.push(common::fixture("tiny_lcm"));
    h.get_by_label("Open folder…").click();
    h.step();
    wait_until(&mut h, "the LCM loads", |a| {
        a.model.as_ref().is_some_and(|m| m.latent.is_some())
    });
    h.get_by_label_contains("follows a prompt");
    h.get_by_label_contains("latent consistency model");
    assert_eq!(
        (h.state().doc.width, h.state().doc.height),
        (64, 64),
        "a blank canvas takes the model's native size"
    );
    assert!(
        h.query_by_label("Negative prompt").is_none(),
        "an LCM has no negative prompt"
    );
    h.get_by_label("Prompt").click();
    h.run();
    h.get_by_label("Prompt").type_text("a red cat");
    h.run();
    assert_eq!(h.state().generate.prompt, "a red cat");
    h.state_mut().generate.batch = 2;
    h.get_by_label("Generate images").click();
    wait_until(&mut h, "two pictures", |a| a.history.len() == 2);
    for r in &h.state().history {
        let prompt = r
            .recipe
            .prompt
            .as_ref()
            .expect("a latent recipe holds its prompt");
        assert_eq!((prompt.text.as_str(), prompt.guidance), ("a red cat", 8.0));
        assert_eq!(r.recipe.steps, 4);
    }

    // sketch → picture on the latent model keeps the prompt; the pixel-only edits are disabled
    stroke_across_canvas(&mut h);
    let before = h.state().history.len();
    h.get_by_label("Generate from sketch").click();
    wait_until(&mut h, "the sketch's picture", |a| a.history.len() > before);
    let last = h.state().history.last().unwrap();
    assert!(matches!(last.recipe.operation, Operation::SdEdit { .. }));
    assert_eq!(last.recipe.prompt.as_ref().unwrap().text, "a red cat");
    for edit in ["Colorize", "Super-resolve", "Upscale"] {
        let disabled = h.get_by_label(edit).accesskit_node().is_disabled();
        assert!(disabled, "{edit} is a pixel model's");
    }

    // SD + LCM-LoRA: the negative prompt appears, the LoRA is part of the model's name
    script.push(common::fixture("tiny_sd"));
    h.get_by_label("Open folder…").click();
    h.step();
    wait_until(&mut h, "plain SD loads", |a| {
        a.model.as_ref().is_some_and(|m| m.name == "tiny_sd")
    });
    script.push(common::fixture("tiny_lcm_lora.safetensors"));
    h.get_by_label("Add LoRA…").click();
    h.step();
    wait_until(&mut h, "the LoRA is merged", |a| {
        a.model
            .as_ref()
            .is_some_and(|m| m.name.contains("tiny_lcm_lora"))
    });
    h.get_by_label("Negative prompt").click();
    h.run();
    h.get_by_label("Negative prompt").type_text("blurry");
    h.run();
    let before = h.state().history.len();
    h.get_by_label("Generate from sketch").click();
    wait_until(&mut h, "a LoRA picture", |a| a.history.len() > before);
    let prompt = h
        .state()
        .history
        .last()
        .unwrap()
        .recipe
        .prompt
        .clone()
        .unwrap();
    assert_eq!((prompt.negative.as_str(), prompt.guidance), ("blurry", 1.5));
}

#[test]
fn a_long_status_message_is_cut_short_beside_the_size_and_zoom() {
    let mut h = harness(Scripted::default());
    h.state_mut().messages.push(cmpaint::app::Message {
        text: "a message long enough to cross the whole status bar: ".repeat(8),
        error: false,
    });
    h.step();
    let message = h.get_by_label_contains("a message long enough").rect();
    let (w, ht) = (h.state().doc.width, h.state().doc.height);
    let size = h
        .get_all_by_label_contains(&format!("{w}×{ht} ·"))
        .find(|n| n.value().is_some_and(|v| v.ends_with(" %")))
        .expect("the size and zoom")
        .rect();
    assert!(
        message.max.x <= size.min.x,
        "the message ({message:?}) runs under the size and zoom ({size:?})"
    );
    assert!(message.width() > 100.0, "the message keeps the free width");
}
