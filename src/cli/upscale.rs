//! `cmpaint edit superres --enlarge`: a picture made `--factor` times larger, as the app's Upscale
//! does — every pixel becomes an F×F patch whose mean it keeps and whose detail is generated
//! (Algorithm 4's super-resolution), model-sized tile after tile, each a quarter over the last and
//! blended into it; then every patch's mean is made exact again (the blend weighs a patch's pixels
//! unequally).

use super::edit::EditArgs;
use super::{Unlabelled, check_memory, class_labels, load, report_cost, write_output};
use crate::engine::cm::noise::SeededNoise;
use crate::engine::cm::pf_ode::{network_calls, pf_ode_sigmas_from};
use crate::engine::image::{picture_to_tensor, tensor_to_rgb8};
use crate::engine::model::spec::Parameterization;
use crate::engine::pipeline::{EDIT_STEPS, EditRequest, EditTask, default_edit_ts, edit};
use crate::paint::document::{Document, MAX_SIDE};
use crate::paint::frame::upscale_tiles;
use crate::picture::{decode, keep_patch_means, to_rgb8};
use anyhow::{Context, Result, bail};

/// How many pixels each tile blends into the one before it (the app's default Blend edge).
const TILE_FEATHER: usize = 4;

pub fn run(args: &EditArgs) -> Result<()> {
    if args.run.noise.is_some() {
        bail!(
            "--enlarge draws fresh noise for every tile (seeds --seed, --seed + 1, …): drop --noise"
        );
    }
    let m = load(&args.model, &args.run)?;
    let cfg = &m.config;
    let size = cfg.unet.image_size;
    let factor = args.factor.unwrap_or((size / 32).max(2));
    let picture = to_rgb8(&decode(&args.image)?);
    let (w, h) = (picture.width * factor, picture.height * factor);
    if factor < 2 || !size.is_multiple_of(factor) {
        bail!("--factor {factor}: the model's side {size} must be a multiple of it (2 or more)");
    }
    if w > MAX_SIDE || h > MAX_SIDE || w < size || h < size {
        bail!(
            "{}: ×{factor} makes it {w}×{h}; the enlarged picture must lie between the model's {size}² and {MAX_SIDE}²",
            args.image.display()
        );
    }
    check_memory(cfg, 1, size)?;
    let ode = args.ode.options(cfg)?;
    let edm = cfg.sampling.parameterization == Parameterization::Edm;
    let task = EditTask::SuperRes { factor };
    let (ts, steps) = if edm {
        (vec![0], cfg.sampling.steps)
    } else {
        (default_edit_ts(&task), EDIT_STEPS)
    };
    let calls_per_tile = match &ode {
        Some(o) => network_calls(o.solver, &pf_ode_sigmas_from(0, steps, &cfg.sampling)),
        None => ts.len().saturating_sub(1),
    };
    let labels = class_labels(&args.run, cfg, 1, Unlabelled::AppDefault)?;
    let mut doc = Document::from_picture(&picture.enlarged(factor));
    let tiles = upscale_tiles(w, h, size, factor);
    let started = std::time::Instant::now();
    for (i, &tile) in tiles.iter().enumerate() {
        let input = doc.frame_input(tile, size, false, TILE_FEATHER);
        let req = EditRequest {
            images: &picture_to_tensor(&input.image, &m.device)?,
            task: &task,
            class_labels: labels.as_deref(),
            ts: &ts,
            steps,
            ode,
        };
        let mut noise = SeededNoise::new(args.run.seed.wrapping_add(i as u64), 1);
        let x = edit(&m.unet, &cfg.sampling, &req, &mut noise, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })?
        .context("the edit was cancelled")?;
        doc.paste(tile, &tensor_to_rgb8(&x.get(0)?)?, &input.paste, None);
    }
    let mut enlarged = doc.composite();
    keep_patch_means(&mut enlarged, &picture, factor);
    eprintln!(
        "enlarged {}×{} to {w}×{h} in {} tile{} of {size}²",
        picture.width,
        picture.height,
        tiles.len(),
        if tiles.len() == 1 { "" } else { "s" }
    );
    report_cost(tiles.len() * calls_per_tile, started);
    write_output(&args.run, &picture_to_tensor(&enlarged, &m.device)?, false)
}
