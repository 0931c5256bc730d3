//! Edits run frame by frame over a picture — `edit outpaint` and `edit superres --enlarge`: the
//! paper's editing grid (an EDM teacher's own), the app's default class, seed S for the first frame,
//! S + 1 for the next…, each result pasted back into its frame as the app pastes it.

use super::edit::EditArgs;
use super::{Loaded, Unlabelled, class_labels};
use crate::engine::cm::noise::SeededNoise;
use crate::engine::cm::pf_ode::{network_calls, pf_ode_sigmas_from};
use crate::engine::image::{mask_to_tensor, picture_to_tensor, tensor_to_rgb8};
use crate::engine::model::spec::Parameterization;
use crate::engine::pipeline::{
    EDIT_STEPS, EditRequest, EditTask, OdeOptions, default_edit_ts, edit,
};
use crate::paint::document::Document;
use crate::paint::frame::Frame;
use anyhow::{Context, Result};

pub(super) struct FrameEditor<'a> {
    model: &'a Loaded,
    labels: Option<Vec<u32>>,
    ts: Vec<usize>,
    steps: usize,
    ode: Option<OdeOptions>,
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
    pub fn new(model: &'a Loaded, args: &EditArgs) -> Result<Self> {
        let cfg = &model.config;
        let ode = args.ode.options(cfg)?;
        let edm = cfg.sampling.parameterization == Parameterization::Edm;
        let (ts, steps) = if edm {
            (vec![0], cfg.sampling.steps)
        } else {
            (default_edit_ts(&EditTask::Colorize), EDIT_STEPS)
        };
        let calls_per_frame = match &ode {
            Some(o) => network_calls(o.solver, &pf_ode_sigmas_from(0, steps, &cfg.sampling)),
            None => ts.len().saturating_sub(1),
        };
        Ok(Self {
            model,
            labels: class_labels(&args.run, cfg, 1, Unlabelled::AppDefault)?,
            ts,
            steps,
            ode,
            seed: args.run.seed,
            frames: 0,
            calls_per_frame,
        })
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
        let size = m.config.unet.image_size;
        let inpaint = matches!(task, FrameTask::Inpaint);
        let input = doc.frame_input(frame, size, inpaint, feather);
        let task = match task {
            FrameTask::Inpaint => {
                let mask = input
                    .mask
                    .as_ref()
                    .context("an inpainting input has a mask")?;
                EditTask::Inpaint {
                    regenerate: mask_to_tensor(size, size, mask, &m.device)?,
                }
            }
            FrameTask::SuperRes { factor } => EditTask::SuperRes { factor },
        };
        let req = EditRequest {
            images: &picture_to_tensor(&input.image, &m.device)?,
            task: &task,
            class_labels: self.labels.as_deref(),
            ts: &self.ts,
            steps: self.steps,
            ode: self.ode,
        };
        let mut noise = SeededNoise::new(self.seed.wrapping_add(self.frames as u64), 1);
        let x = edit(&m.unet, &m.config.sampling, &req, &mut noise, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })?
        .context("the edit was cancelled")?;
        doc.paste(frame, &tensor_to_rgb8(&x.get(0)?)?, &input.paste, None);
        self.frames += 1;
        Ok(())
    }
}
