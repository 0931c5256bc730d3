//! Jobs: what the app asks of the worker (Generate, edits, slider frames, strips), the replies it
//! gets back (progress, step previews, results, failures) and where each result goes.

use super::App;
use super::SeedMode;
use super::dialogs::FileRequest;
use super::history::HistoryItem;
use crate::paint::document::Document;
use crate::paint::document::MAX_SIDE;
use crate::paint::document::Side;
use crate::paint::frame::Frame;
use crate::paint::frame::Paste;
use crate::paint::frame::Placement;
use crate::paint::frame::upscale_tiles;
use crate::picture::MAX_EXPORT_SCALE;
use crate::picture::Rgb8;
use crate::picture::keep_patch_means;
use crate::picture::write_animation;
use crate::recipe::EmbeddedImage;
use crate::recipe::Operation;
use crate::recipe::Recipe;
use crate::worker::Job;
use crate::worker::JobId;
use crate::worker::ModelInfo;
use crate::worker::Reply;
use crate::worker::Steps;
use crate::worker::network_calls;
use crate::worker::recipe_steps;
use crate::worker::{Explicit, plan_with};
use eframe::egui;
use std::path::PathBuf;
use std::time::Instant;

/// What to do with a job's results when they arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// Apply the first image to the canvas, keep all in the history.
    Apply,
    /// Show as the preview (slider frame, live sketch).
    Preview,
    /// Sketch → image: every result into History, the first shown over the sketch as the preview;
    /// the sketch stays its own layer until a result is applied (or it is cleared).
    Sketch,
    /// Frame `i` of an exported strip.
    Strip(usize),
}

/// One job run over several frames, one after another as each result lands (each an undo step): an
/// Outpaint click filling the whole new edge, or an Upscale covering the enlarged canvas tile by tile.
pub(super) struct FrameRun {
    pub(super) operation: Operation,
    /// Where the frame goes when the run ends.
    pub(super) first: Frame,
    /// The frames still to visit, in order.
    pub(super) rest: Vec<Frame>,
    /// An upscale's picture before it was enlarged: its pixels are the patch means at the end.
    pub(super) means: Option<Rgb8>,
}

/// A submitted job the app is waiting for.
pub(super) struct Pending {
    pub(super) purpose: Purpose,
    pub(super) label: String,
    pub(super) total: usize,
    /// A latent model's job: whether it starts by encoding a picture (None: a pixel model's).
    pub(super) latent_encode: Option<bool>,
    /// Where its results go in the document (None: the whole canvas, as a re-run recipe).
    pub(super) placement: Option<Placement>,
}

/// The clean estimate of a running job's current step, drawn over the canvas in the job's frame
/// under a "preview" badge until the result (or a cancel) replaces it. Only its own pixels are drawn
/// (a texture of the model's size): no canvas-sized copy per step, however large the canvas.
pub struct StepPreview {
    pub id: JobId,
    /// The estimate, at the model's size.
    pub image: Rgb8,
    /// Where it goes in the document (None: over the whole canvas).
    pub frame: Option<Frame>,
    pub done: usize,
    pub total: usize,
    pub(super) texture: Option<egui::TextureHandle>,
}

impl StepPreview {
    pub(super) fn texture(&mut self, ctx: &egui::Context) -> &egui::TextureHandle {
        let image = &self.image;
        self.texture.get_or_insert_with(|| {
            let img = egui::ColorImage::from_rgb([image.width, image.height], &image.pixels);
            ctx.load_texture("step preview", img, egui::TextureOptions::NEAREST)
        })
    }
}

/// The job the status bar shows.
pub struct Running {
    pub id: JobId,
    pub label: String,
    pub done: usize,
    pub total: usize,
    pub started: Instant,
    /// A latent model's job: whether it starts by encoding a picture (None: a pixel model's).
    pub latent_encode: Option<bool>,
}

impl Running {
    /// What the progress bar says: the step count, or for a latent model the stage — the VAE's
    /// encode, the UNet call of the total, the VAE's decode — as each takes its own time.
    pub fn progress_text(&self) -> String {
        let Some(encodes) = self.latent_encode else {
            return format!("{} {}/{}", self.label, self.done, self.total);
        };
        let first = usize::from(encodes);
        let calls = self.total.saturating_sub(1 + first);
        let stage = if self.done < first {
            "encoding the picture (VAE)".to_string()
        } else if self.done >= first + calls {
            "decoding (VAE)".to_string()
        } else {
            format!("UNet call {}/{calls}", self.done - first + 1)
        };
        format!("{} · {stage}", self.label)
    }
}

pub(super) struct StripExport {
    pub(super) path: PathBuf,
    pub(super) frames: Vec<Option<Rgb8>>,
}

impl App {
    pub fn cancel(&mut self) {
        if !self.run.pending.is_empty() {
            self.run.worker.cancel_all();
            self.info("cancelled");
        }
    }

    pub(super) fn poll_worker(&mut self) {
        while let Some(reply) = self.run.worker.try_recv() {
            self.handle_reply(reply);
        }
    }

    pub(super) fn handle_reply(&mut self, reply: Reply) {
        let id = reply.id();
        let ends_job = !matches!(reply, Reply::Progress { .. });
        if ends_job && self.state.step_preview.as_ref().is_some_and(|p| p.id == id) {
            self.state.step_preview = None;
        }
        match reply {
            Reply::ModelLoaded { info, .. } => {
                self.run.model_job = None;
                self.model_loaded(info);
            }
            Reply::Progress {
                done,
                total,
                preview,
                ..
            } => {
                let label = self.run.pending.get(&id).map(|p| p.label.clone());
                // only for results bound for the canvas: slider frames and live sketches are quick
                // and have their own preview, strips are not shown
                let shown = self
                    .run
                    .pending
                    .get(&id)
                    .is_some_and(|p| matches!(p.purpose, Purpose::Apply));
                let placement = self.run.pending.get(&id).and_then(|p| p.placement.clone());
                if let Some(image) = preview.filter(|_| shown) {
                    self.state.step_preview = Some(StepPreview {
                        id,
                        image,
                        frame: placement.and_then(|p| p.frame_in(&self.state.doc)),
                        done,
                        total,
                        texture: None,
                    });
                }
                match (&mut self.state.running, label) {
                    (Some(r), _) if r.id == id => (r.done, r.total) = (done, total),
                    (_, Some(label)) => {
                        let latent_encode = self.run.pending.get(&id).and_then(|p| p.latent_encode);
                        self.state.running = Some(Running {
                            id,
                            label,
                            done,
                            total,
                            started: Instant::now(),
                            latent_encode,
                        })
                    }
                    _ => {}
                }
            }
            Reply::Finished {
                images, seconds, ..
            } => {
                if let Some(p) = self.run.pending.remove(&id) {
                    // counted on the model that ran the job: a re-run recipe may have loaded its
                    // own model after the job was submitted (its load reply came first)
                    let calls = images
                        .first()
                        .map_or(0, |(_, r)| network_calls(r, self.parameterization()));
                    let cost = format!(
                        "{calls} call{} · {seconds:.2} s",
                        if calls == 1 { "" } else { "s" }
                    );
                    self.finished(&p, images, cost, seconds);
                }
            }
            Reply::Failed { message, .. } => {
                if self.run.model_job == Some(id) {
                    self.run.model_job = None;
                    let keep = match &self.state.model {
                        Some(m) => format!(" (still using {})", m.name),
                        None => String::new(),
                    };
                    self.error(format!("cannot load the model: {message}{keep}"));
                } else {
                    self.error(message);
                }
                if self.run.pending.remove(&id).is_some() {
                    self.run.frame_run = None;
                    self.strip_failed();
                }
            }
            Reply::Cancelled { .. } => {
                self.state.stats.jobs_cancelled += 1;
                match self.run.pending.remove(&id).map(|p| p.purpose) {
                    Some(Purpose::Strip(_)) => self.strip_failed(),
                    // a cancelled frame of a run (Esc) ends the run
                    Some(Purpose::Apply) => self.run.frame_run = None,
                    _ => {}
                }
            }
        }
        if self
            .state
            .running
            .as_ref()
            .is_some_and(|r| !self.run.pending.contains_key(&r.id))
        {
            self.state.running = None;
        }
        // The oldest job still waiting is the one the worker runs now.
        if self.state.running.is_none()
            && let Some((&next, p)) = self.run.pending.iter().min_by_key(|(id, _)| **id)
        {
            self.state.running = Some(Running {
                id: next,
                label: p.label.clone(),
                done: 0,
                total: p.total,
                started: Instant::now(),
                latent_encode: p.latent_encode,
            });
        }
    }

    pub(super) fn strip_failed(&mut self) {
        if self.run.strip.take().is_some() {
            self.error("the strip export stopped: no file was written");
        }
    }

    pub(super) fn model_loaded(&mut self, info: ModelInfo) {
        let size = info.image_size;
        let (w, h) = (self.state.doc.width, self.state.doc.height);
        if (w, h) != (size, size) && self.state.doc.is_pristine() {
            self.state.doc = Document::blank(size, size);
            self.canvas.fit_pending = true;
        }
        // a new model's frame starts at its native size, centred where it was (fitted below, once
        // the model is in)
        let f = self.state.frame;
        let centre = |at: usize| (at + f.size / 2).saturating_sub(size / 2);
        self.state.frame = Frame {
            x: centre(f.x),
            y: centre(f.y),
            size,
        };
        let names = crate::labels::class_names(&info.name, info.num_classes);
        // a style index means nothing to another model's list
        if self.state.model.as_ref().map(|m| &m.styles) != Some(&info.styles) {
            self.state.style = None;
        }
        self.state.class = info
            .num_classes
            .map(|_| crate::labels::default_class(&names));
        // a guidance scale means something else to another model (an embedding's 8, CFG's 1.5)
        self.state.generate.guidance = None;
        if self.state.generate.steps == Steps::Tuned && info.sampling.ts.is_none() {
            self.state.generate.steps = Steps::One;
        }
        // Each model comes with the sketch strength its sketch test chose (else the paper's); a
        // strength the user set (other than the last model's own) is kept. Either way it is said.
        let previous = self.state.model.as_ref().map(|m| m.sketch_strength());
        let strength = &mut self.state.generate.strength;
        let strength_note = if previous.is_some_and(|p| p != *strength) {
            format!(
                "; sketch strength {:.2} kept (this model's own is {:.2})",
                *strength,
                info.sketch_strength()
            )
        } else {
            *strength = info.sketch_strength();
            format!(
                "; sketch strength {:.2}, this model's own",
                info.sketch_strength()
            )
        };
        self.info(format!(
            "model: {} ({size}×{size}{}){strength_note}",
            info.name,
            if info.num_classes.is_some() {
                ", class-conditional"
            } else {
                ""
            }
        ));
        self.state.model = Some(info);
        self.state.frame = self.job_frame();
    }

    pub(super) fn finished(
        &mut self,
        job: &Pending,
        images: Vec<(Rgb8, Recipe)>,
        cost: String,
        seconds: f64,
    ) {
        let placement = job.placement.clone();
        match job.purpose {
            Purpose::Apply | Purpose::Sketch => {
                let n = images.len();
                let Some((first, recipe)) = images.first().cloned() else {
                    return;
                };
                self.info(format!(
                    "{}: {n} image{} in {seconds:.2} s ({cost}){}",
                    recipe.operation.label(),
                    if n == 1 { "" } else { "s" },
                    if job.purpose == Purpose::Sketch {
                        " over the sketch, which stays: Apply to canvas keeps it, Dismiss goes back"
                    } else {
                        ""
                    }
                ));
                let newest = self.state.history.len();
                for (img, r) in images {
                    let mut item = HistoryItem::new(img, r, placement.clone());
                    item.cost = Some(cost.clone());
                    self.state.history.push(item);
                }
                if job.purpose == Purpose::Sketch {
                    self.state.preview = Some(self.state.history[newest].same_result());
                    return;
                }
                // a painted mask would hide the inpainted result: it goes until H or the mask brush
                // (an outpaint's mask is the empty area, never drawn)
                let painted_mask = self.state.doc.mask.iter().any(|&m| m > 0);
                if recipe.operation == Operation::Inpaint && self.canvas.show_mask && painted_mask {
                    self.canvas.show_mask = false;
                    self.info("the mask is hidden to show the result: H shows it");
                }
                self.apply_to_canvas(&first, recipe, placement.as_ref());
                self.continue_frame_run();
            }
            Purpose::Preview => {
                self.state.stats.frames_shown += 1;
                if let Some((img, r)) = images.into_iter().next() {
                    self.state.preview = Some(HistoryItem::new(img, r, placement));
                }
            }
            Purpose::Strip(i) => {
                let Some(strip) = &mut self.run.strip else {
                    return;
                };
                strip.frames[i] = images.into_iter().next().map(|(img, _)| img);
                if strip.frames.iter().all(Option::is_some) {
                    let strip = self.run.strip.take().expect("checked");
                    let scale = self.state.export_scale.clamp(1, MAX_EXPORT_SCALE);
                    let frames: Vec<Rgb8> = (strip.frames.into_iter().flatten())
                        .map(|f| f.enlarged(scale))
                        .collect();
                    match write_animation(&strip.path, &frames, 10) {
                        Ok(()) => self.info(format!(
                            "wrote {} ({} frames)",
                            strip.path.display(),
                            frames.len()
                        )),
                        Err(e) => self.error(e.to_string()),
                    }
                }
            }
        }
    }

    /// Submits a recipe run; its results go to `placement` (None: the whole canvas).
    pub(super) fn submit(
        &mut self,
        recipe: Recipe,
        batch: usize,
        interactive: bool,
        purpose: Purpose,
        placement: Option<Placement>,
    ) {
        let total = recipe_steps(&recipe, self.parameterization());
        let label = recipe.operation.label().to_string();
        let latent_encode = recipe
            .prompt
            .as_ref()
            .map(|_| recipe.operation.needs_input());
        let id = self.run.worker.submit(Job::Run {
            recipe: Box::new(recipe),
            batch,
            interactive,
        });
        if self.state.running.is_none() {
            self.state.running = Some(Running {
                id,
                label: label.clone(),
                done: 0,
                total,
                started: Instant::now(),
                latent_encode,
            });
        }
        self.run.pending.insert(
            id,
            Pending {
                purpose,
                label,
                total,
                latent_encode,
                placement,
            },
        );
    }

    /// The loaded model's parameterization (a consistency model's until one is loaded).
    fn parameterization(&self) -> crate::worker::Parameterization {
        self.state
            .model
            .as_ref()
            .map(|m| m.parameterization())
            .unwrap_or_default()
    }

    pub(super) fn plan(&mut self, operation: Operation, seed: u64, steps: Steps) -> Option<Recipe> {
        let Some(model) = &self.state.model else {
            self.error("no model is loaded yet");
            return None;
        };
        let g = &self.state.generate;
        let explicit = Explicit {
            steps: model.latent.as_ref().map(|_| g.latent_steps),
            ..Explicit::default()
        };
        match plan_with(model, operation, seed, self.state.class, steps, &explicit) {
            Ok(mut r) => {
                r.style = self.state.style;
                // a latent model's prompt, as the Generate panel has it
                if let (Some(p), Some(facts)) = (&mut r.prompt, &model.latent) {
                    p.text = g.prompt.clone();
                    p.guidance = g.guidance.unwrap_or(facts.guidance);
                    if facts.cfg {
                        p.negative = g.negative_prompt.clone();
                    }
                }
                Some(r)
            }
            Err(e) => {
                self.error(e.to_string());
                None
            }
        }
    }

    /// The seed for the next Generate, advancing it as the seed mode says.
    pub(super) fn next_seed(&mut self) -> u64 {
        let g = &mut self.state.generate;
        match g.seed_mode {
            SeedMode::Fixed => {}
            SeedMode::Random => g.seed = rand::random::<u32>() as u64,
            SeedMode::Increment if !self.state.history.is_empty() => {
                g.seed = g.seed.wrapping_add(g.batch as u64)
            }
            SeedMode::Increment => {}
        }
        g.seed
    }

    /// Generate: a sketch on the canvas becomes an image (SDEdit at the strength); a canvas without
    /// one gets new images from noise. One click either way.
    pub fn run_generate(&mut self) {
        let frame = self.job_frame();
        if self.state.doc.has_sketch_in(frame) {
            self.run_sketch(false);
            return;
        }
        let seed = self.next_seed();
        let steps = self.state.generate.steps;
        let placement = self.placement(frame, Paste::Feather(self.state.framing.feather));
        if let Some(recipe) = self.plan(Operation::Generate, seed, steps) {
            self.submit(
                recipe,
                self.state.generate.batch,
                false,
                Purpose::Apply,
                Some(placement),
            );
        }
    }

    /// Sketch → image on the composite (live: interactive, shown as a preview).
    pub fn run_sketch(&mut self, live: bool) {
        let seed = if live {
            self.state.generate.seed
        } else {
            self.next_seed()
        };
        let op = Operation::SdEdit {
            strength: self.state.generate.strength,
            fill_outlines: self.state.generate.fill_outlines,
        };
        let batch = if live { 1 } else { self.state.generate.batch };
        self.run_edit(op, seed, batch, live);
    }

    /// An edit of what is in the generation frame; the result goes back there.
    pub fn run_edit(&mut self, operation: Operation, seed: u64, batch: usize, live: bool) {
        let frame = self.job_frame();
        let inpaint = operation == Operation::Inpaint;
        if inpaint && !self.state.doc.has_mask_in(frame) && !self.state.doc.has_empty_in(frame) {
            self.error(
                "inpainting needs a mask in the frame: paint one with the mask brush (M), \
                 or move the frame over empty canvas",
            );
            return;
        }
        // an upscale's tiles overlap: each blends into the last (its patch means are the same)
        let upscaling = self
            .run
            .frame_run
            .as_ref()
            .is_some_and(|r| r.operation == operation);
        let feather = match operation {
            Operation::SdEdit { .. } => self.state.framing.feather,
            Operation::SuperRes { .. } if upscaling => self.state.framing.feather,
            _ => 0,
        };
        let Some(mut recipe) = self.plan(operation, seed, Steps::One) else {
            return;
        };
        let size = self.model_size();
        let input = self.state.doc.frame_input(frame, size, inpaint, feather);
        let embedded = EmbeddedImage::from_rgb(&input.image).and_then(|image| {
            let mask = input.mask.as_ref();
            let mask = mask.map(|m| EmbeddedImage::from_grey(size, size, m));
            Ok((image, mask.transpose()?))
        });
        match embedded {
            Ok((image, mask)) => {
                recipe.input = Some(image);
                recipe.mask = mask;
            }
            Err(e) => return self.error(e.to_string()),
        }
        let purpose = match recipe.operation {
            _ if live => Purpose::Preview,
            Operation::SdEdit { .. } => Purpose::Sketch,
            _ => Purpose::Apply,
        };
        let placement = self.placement(frame, input.paste);
        self.submit(recipe, batch, live, purpose, Some(placement));
    }

    fn placement(&self, frame: Frame, paste: Paste) -> Placement {
        Placement {
            frame,
            origin: self.state.doc.origin,
            paste,
        }
    }

    /// Outpaint toward `side`: moves the frame over the empty canvas on that side, overlapping the
    /// picture by the chosen fraction (extending the canvas first when nothing is empty there), and
    /// inpaints what is empty.
    pub fn outpaint(&mut self, side: Side) {
        let overlap = self.state.framing.overlap;
        let mut target = self.job_frame().outpaint(&self.state.doc, side, overlap);
        if target.is_none() {
            self.state.frame = self.job_frame();
            let keep = (self.state.frame.size as f64 * overlap).round() as usize;
            if !self.extend_canvas(side, self.state.frame.size.saturating_sub(keep).max(1)) {
                return;
            }
            target = self.job_frame().outpaint(&self.state.doc, side, overlap);
        }
        let Some(target) = target else {
            return self.error("nothing is painted in the frame's band to continue from");
        };
        // this frame first, then the rest of the new edge, frame by frame as each result lands
        self.run.frame_run = Some(FrameRun {
            operation: Operation::Inpaint,
            first: target,
            rest: target.along_edge(&self.state.doc, side),
            means: None,
        });
        self.state.frame = target;
        let seed = self.next_seed();
        self.run_edit(Operation::Inpaint, seed, 1, false);
    }

    /// After a frame run's result: the next frame (for an outpaint, the next that still has empty
    /// pixels); when none is left, the frame goes back to the run's `first`, so that the next
    /// Outpaint click continues outward from where the last one put it.
    fn continue_frame_run(&mut self) {
        let Some(run) = &mut self.run.frame_run else {
            return;
        };
        let outpaint = run.operation == Operation::Inpaint;
        let doc = &self.state.doc;
        match run
            .rest
            .iter()
            .position(|f| !outpaint || doc.has_empty_in(*f))
        {
            Some(i) => {
                let f = run.rest[i];
                run.rest.drain(..=i);
                let operation = run.operation.clone();
                self.state.frame = f;
                let seed = self.next_seed();
                self.run_edit(operation, seed, 1, false);
            }
            None => {
                self.state.frame = run.first;
                if let (Some(small), Operation::SuperRes { factor }) = (&run.means, &run.operation)
                {
                    // one more undo step: the blend between tiles moved some patch means
                    let mut big = self.state.doc.composite();
                    keep_patch_means(&mut big, small, *factor);
                    self.state.doc.apply_result(&big, None);
                }
                self.run.frame_run = None;
            }
        }
    }

    /// Edit → Upscale ×F: the canvas becomes F times larger, every pixel an F×F patch whose mean it
    /// keeps and whose detail is generated (super-resolution), model-sized tile after tile, each a
    /// quarter over the last and blended into it. The in-place Super-resolve stays for a picture
    /// that is already blurred.
    pub fn upscale(&mut self) {
        let f = self.state.edit.superres_factor;
        let size = self.model_size();
        let (w, h) = (self.state.doc.width * f, self.state.doc.height * f);
        let refuse = |why: String| format!("Upscale ×{f}: {why}");
        let problem = if w > MAX_SIDE || h > MAX_SIDE {
            Some(format!(
                "{w}×{h} is larger than the largest canvas, {MAX_SIDE}×{MAX_SIDE}"
            ))
        } else if w < size || h < size {
            Some(format!("{w}×{h} is smaller than the model's {size}×{size}"))
        } else if !size.is_multiple_of(f) {
            Some(format!("the model's side {size} is not a multiple of {f}"))
        } else if self.state.doc.has_empty() {
            Some("the canvas has empty pixels: fill them (Outpaint) first".into())
        } else {
            None
        };
        if let Some(why) = problem {
            return self.error(refuse(why));
        }
        let small = self.state.doc.composite();
        self.state.doc.apply_result(&small.enlarged(f), None);
        self.canvas.fit_pending = true;
        let mut tiles = upscale_tiles(w, h, size, f);
        let first = tiles.remove(0);
        self.run.frame_run = Some(FrameRun {
            operation: Operation::SuperRes { factor: f },
            first: Frame::centred(w, h, size),
            rest: tiles,
            means: Some(small),
        });
        self.state.frame = first;
        let seed = self.next_seed();
        self.run_edit(Operation::SuperRes { factor: f }, seed, 1, false);
    }

    /// Extend canvas: `n` empty pixels on one side (one undo step); the frame stays on the picture.
    /// False (with the reason shown) when the canvas would grow past its largest size.
    pub fn extend_canvas(&mut self, side: Side, n: usize) -> bool {
        if let Err(e) = self.state.doc.extend(side, n) {
            self.error(e);
            return false;
        }
        self.state.frame = match side {
            Side::Left => Frame {
                x: self.state.frame.x + n,
                ..self.state.frame
            },
            Side::Up => Frame {
                y: self.state.frame.y + n,
                ..self.state.frame
            },
            _ => self.state.frame,
        };
        self.canvas.fit_pending = true;
        true
    }

    /// One slider frame (interactive: a newer frame replaces it).
    pub fn run_interpolation_frame(&mut self) {
        let s = self.state.interpolate.clone();
        let op = Operation::Interpolate {
            seed_b: s.seed_b,
            alpha: s.alpha,
        };
        let placement =
            self.placement(self.job_frame(), Paste::Feather(self.state.framing.feather));
        if let Some(recipe) = self.plan(op, s.seed_a, Steps::One) {
            self.submit(recipe, 1, true, Purpose::Preview, Some(placement));
        }
    }

    /// Renders `strip_frames` frames from seed A to seed B and writes them as an animated PNG.
    pub fn export_strip(&mut self) {
        self.ask_file(FileRequest::ExportStrip);
    }

    /// Export strip to `path` (the dialog's answer): every frame rendered, then written.
    pub fn export_strip_to(&mut self, path: PathBuf) {
        let s = self.state.interpolate.clone();
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
        self.run.strip = Some(StripExport {
            path,
            frames: vec![None; k],
        });
        for (i, r) in recipes.into_iter().enumerate() {
            self.submit(r, 1, false, Purpose::Strip(i), None);
        }
    }

    pub fn load_model(&mut self, path: Option<PathBuf>) {
        self.run.model_job = Some(self.run.worker.submit(Job::LoadModel(path)));
    }

    /// The loaded Stable Diffusion folder again, with `lora` merged into its UNet.
    pub fn load_lora(&mut self, lora: PathBuf) {
        let folder = self.state.model.as_ref().filter(|m| m.latent.is_some());
        let Some(folder) = folder.and_then(|m| m.file.clone()) else {
            return self.error("a LoRA goes with a Stable Diffusion folder: open one first");
        };
        let job = Job::LoadWithLora { folder, lora };
        self.run.model_job = Some(self.run.worker.submit(job));
    }

    pub fn is_loading_model(&self) -> bool {
        self.run.model_job.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(done: usize, total: usize, latent_encode: Option<bool>) -> Running {
        Running {
            id: 1,
            label: "inpaint".into(),
            done,
            total,
            started: Instant::now(),
            latent_encode,
        }
    }

    /// A latent model's progress names its stage: encode, each UNet call, decode.
    #[test]
    fn progress_says_the_latent_stage() {
        let stages: Vec<String> = (0..6)
            .map(|done| running(done, 6, Some(true)).progress_text())
            .collect();
        assert_eq!(
            stages,
            [
                "inpaint · encoding the picture (VAE)",
                "inpaint · UNet call 1/4",
                "inpaint · UNet call 2/4",
                "inpaint · UNet call 3/4",
                "inpaint · UNet call 4/4",
                "inpaint · decoding (VAE)",
            ]
        );
        assert_eq!(
            running(2, 5, Some(false)).progress_text(),
            "inpaint · UNet call 3/4"
        );
        assert_eq!(running(3, 39, None).progress_text(), "inpaint 3/39");
    }
}
