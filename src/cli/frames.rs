//! Edits run frame by frame over a picture — `edit outpaint` and `edit superres --enlarge`: the
//! paper's editing grid (an EDM teacher's own), the app's default class, seed S for the first frame,
//! S + 1 for the next…, each result pasted back into its frame as the app pastes it.

use super::edit::EditArgs;
use super::{Loaded, Unlabelled, class_labels, prompt, styles};
use crate::job::io::{mask_to_tensor, picture_to_tensor, tensor_to_rgb8};
use crate::job::{self, AnyModel, Explicit, RunOptions, Steps, network_calls, plan_with};
use crate::paint::document::Document;
use crate::paint::frame::Frame;
use crate::picture::Rgb8;
use crate::recipe::{EmbeddedImage, Operation, Recipe, Sampler};
use anyhow::{Context, Result};

pub(super) struct FrameEditor<'a> {
    model: &'a Loaded,
    /// The command's options (a latent model's prompt and steps).
    run: &'a EditArgs,
    labels: Option<Vec<u32>>,
    style: Option<u32>,
    sampler: Option<Sampler>,
    seed: u64,
    /// Frames run so far.
    pub frames: usize,
    /// Network calls each frame takes.
    pub calls_per_frame: usize,
}

/// What a frame's edit keeps: the inpainting mask of its input (the mask layer and the empty area),
/// or the patch means of super-resolution.
#[derive(Clone, Copy)]
pub(super) enum FrameTask {
    Inpaint,
    SuperRes { factor: usize },
}

impl<'a> FrameEditor<'a> {
    pub fn new(model: &'a Loaded, args: &'a EditArgs) -> Result<Self> {
        let (labels, style, sampler) = match &model.model {
            // a latent model's frames follow the prompt
            AnyModel::Latent(_) => {
                prompt::latent_facts(model, &args.run)?;
                (None, None, None)
            }
            AnyModel::Pixel(m) => {
                let cfg = &m.config;
                let labels = class_labels(&args.run, cfg, 1, Unlabelled::AppDefault)?;
                let style = styles(&args.run, cfg, 1)?.map(|s| s[0]);
                (labels, style, args.ode.sampler(cfg)?)
            }
        };
        let mut editor = Self {
            model,
            run: args,
            labels,
            style,
            sampler,
            seed: args.run.seed,
            frames: 0,
            calls_per_frame: 0,
        };
        let recipe = editor.plan(FrameTask::Inpaint, 0)?;
        editor.calls_per_frame = network_calls(&recipe, model.info().parameterization());
        Ok(editor)
    }

    /// The recipe of frame `index`: the model's editing grid, the frame's seed.
    fn plan(&self, task: FrameTask, index: usize) -> Result<Recipe> {
        let operation = match task {
            FrameTask::Inpaint => Operation::Inpaint,
            FrameTask::SuperRes { factor } => Operation::SuperRes { factor },
        };
        let explicit = Explicit {
            sampler: self.sampler.clone(),
            ..Explicit::default()
        };
        let seed = self.seed.wrapping_add(index as u64);
        if let AnyModel::Latent(_) = &self.model.model {
            let run = &self.run.run;
            return prompt::plan_prompted(self.model, operation, seed, self.run.steps, run);
        }
        let class = self.labels.as_ref().map(|l| l[0]);
        let mut recipe = plan_with(
            self.model.info(),
            operation,
            seed,
            class,
            Steps::One,
            &explicit,
        )?;
        recipe.style = self.style;
        Ok(recipe)
    }

    /// The recipe of the whole run — `operation` (an outpaint or an enlargement) on `picture`, the
    /// first frame's seed, class and style, each frame's grid — which `rerun` replays frame by frame.
    pub fn whole_run(&self, operation: Operation, picture: &Rgb8) -> Result<Recipe> {
        let mut recipe = self.plan(FrameTask::Inpaint, 0)?;
        recipe.operation = operation;
        recipe.input = Some(EmbeddedImage::from_rgb(picture)?);
        Ok(recipe)
    }

    /// Runs `task` on `frame` of `doc` (its blend edge `feather` pixels) and pastes the result back.
    pub fn run(
        &mut self,
        doc: &mut Document,
        frame: Frame,
        task: FrameTask,
        feather: usize,
    ) -> Result<()> {
        let m = self.model;
        let size = m.info().image_size;
        let input = doc.frame_input(frame, size, matches!(task, FrameTask::Inpaint), feather);
        let mask = match task {
            FrameTask::Inpaint => {
                let mask = input
                    .mask
                    .as_ref()
                    .context("an inpainting input has a mask")?;
                Some(mask_to_tensor(size, size, mask, &m.device)?)
            }
            FrameTask::SuperRes { .. } => None,
        };
        let recipe = self.plan(task, self.frames)?;
        let opts = RunOptions {
            images: Some(picture_to_tensor(&input.image, &m.device)?),
            mask,
            ..RunOptions::batch(1)
        };
        let x = job::run(&m.model, &m.device, &recipe, opts, &mut job::run_to_end)?
            .context("the edit was cancelled")?;
        doc.paste(frame, &tensor_to_rgb8(&x.get(0)?)?, &input.paste, None);
        self.frames += 1;
        Ok(())
    }
}
