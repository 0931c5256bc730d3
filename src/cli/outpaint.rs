//! `cmpaint edit outpaint`: grows a picture past one of its borders, frame by frame, as the app's
//! Outpaint button does — extend the canvas, move the frame over the empty part overlapping the
//! picture, inpaint what is empty (Algorithm 4), paste back — until the new area is filled.

use super::edit::EditArgs;
use super::{Unlabelled, check_memory, class_labels, load, report_cost, write_output};
use crate::engine::cm::noise::SeededNoise;
use crate::engine::cm::pf_ode::{network_calls, pf_ode_sigmas_from};
use crate::engine::image::{mask_to_tensor, picture_to_tensor, tensor_to_rgb8};
use crate::engine::model::spec::Parameterization;
use crate::engine::pipeline::{EDIT_STEPS, EditRequest, EditTask, default_edit_ts, edit};
use crate::paint::document::{Document, Side};
use crate::paint::frame::{Frame, band_starts};
use crate::picture::{decode, to_rgb8};
use anyhow::{Context, Result, bail};

/// `--extend SIDE:N`: which border grows, by how many pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extend {
    pub side: Side,
    pub pixels: usize,
}

impl std::str::FromStr for Extend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (side, n) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected SIDE:PIXELS, e.g. left:64"))?;
        let pixels = n
            .parse()
            .map_err(|_| format!("`{n}`: the pixels to add must be a whole number"))?;
        Ok(Extend {
            side: side.parse()?,
            pixels,
        })
    }
}

pub fn run(args: &EditArgs) -> Result<()> {
    let extend = args
        .extend
        .context("outpaint needs --extend SIDE:PIXELS (left, right, up or down), e.g. left:64")?;
    if args.run.noise.is_some() {
        bail!(
            "outpaint draws fresh noise for every frame (seeds --seed, --seed + 1, …): drop --noise"
        );
    }
    let m = load(&args.model, &args.run)?;
    let cfg = &m.config;
    let size = cfg.unet.image_size;
    let ode = args.ode.options(cfg)?;
    let mut doc = Document::from_picture(&to_rgb8(&decode(&args.image)?));
    doc.extend(extend.side, extend.pixels)
        .map_err(anyhow::Error::msg)?;
    let (w, h) = (doc.width, doc.height);
    let across = match extend.side {
        Side::Left | Side::Right => h,
        Side::Up | Side::Down => w,
    };
    let (smallest, largest) = (size.min(w.min(h)), w.min(h));
    let frame_size = match args.frame {
        Some(f) if !(smallest..=largest).contains(&f) => bail!(
            "--frame {f}: the frame's side runs from {smallest} (the model's size) to {largest} (the extended picture's shorter side)"
        ),
        Some(f) => f,
        None => across.clamp(smallest, largest),
    };
    check_memory(cfg, 1, size)?;
    let overlap = args.overlap.unwrap_or(0.5);
    if !(0.0..1.0).contains(&overlap) {
        bail!("--overlap {overlap}: the part of the frame kept over the picture is in [0, 1)");
    }
    let edm = cfg.sampling.parameterization == Parameterization::Edm;
    let ts = if edm {
        vec![0]
    } else {
        default_edit_ts(&EditTask::Colorize)
    };
    let steps = if edm { cfg.sampling.steps } else { EDIT_STEPS };
    let calls_per_frame = match &ode {
        Some(o) => network_calls(o.solver, &pf_ode_sigmas_from(0, steps, &cfg.sampling)),
        None => ts.len().saturating_sub(1),
    };
    let labels = class_labels(&args.run, cfg, 1, Unlabelled::AppDefault)?;
    let started = std::time::Instant::now();
    let mut frames = 0;
    for start in band_starts(across, frame_size) {
        let mut frame = match extend.side {
            Side::Left | Side::Right => Frame {
                x: 0,
                y: start,
                size: frame_size,
            },
            Side::Up | Side::Down => Frame {
                x: start,
                y: 0,
                size: frame_size,
            },
        };
        while let Some(next) = frame.outpaint(&doc, extend.side, overlap) {
            let input = doc.frame_input(next, size, true, 0);
            let mask = input.mask.as_ref().expect("an inpainting input has a mask");
            let task = EditTask::Inpaint {
                regenerate: mask_to_tensor(size, size, mask, &m.device)?,
            };
            let req = EditRequest {
                images: &picture_to_tensor(&input.image, &m.device)?,
                task: &task,
                class_labels: labels.as_deref(),
                ts: &ts,
                steps,
                ode,
            };
            let mut noise = SeededNoise::new(args.run.seed.wrapping_add(frames as u64), 1);
            let x = edit(&m.unet, &cfg.sampling, &req, &mut noise, &mut |_| {
                std::ops::ControlFlow::Continue(())
            })?
            .context("the edit was cancelled")?;
            doc.paste(next, &tensor_to_rgb8(&x.get(0)?)?, &input.paste, None);
            frame = next;
            frames += 1;
        }
    }
    eprintln!(
        "outpainted {} px {} in {frames} frame{} of {frame_size}² ({})",
        extend.pixels,
        format!("{:?}", extend.side).to_lowercase(),
        if frames == 1 { "" } else { "s" },
        if frame_size == size {
            "native".to_string()
        } else {
            format!("scaled to {size}²")
        }
    );
    report_cost(frames * calls_per_frame, started);
    let picture = picture_to_tensor(&doc.composite(), &m.device)?;
    write_output(&args.run, &picture, false)
}
