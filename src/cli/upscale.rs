//! `cmpaint edit superres --enlarge`: a picture made `--factor` times larger, as the app's Upscale
//! does — every pixel becomes an F×F patch whose mean it keeps and whose detail is generated
//! (Algorithm 4's super-resolution), model-sized tile after tile, each a quarter over the last and
//! blended into it; then every patch's mean is made exact again (the blend weighs a patch's pixels
//! unequally).

use super::edit::EditArgs;
use super::frames::{FrameEditor, FrameTask};
use super::{check_memory, load, report_cost, write_output};
use crate::job::io::picture_to_tensor;
use crate::paint::document::{Document, MAX_SIDE};
use crate::paint::frame::upscale_tiles;
use crate::picture::{decode, keep_patch_means, to_rgb8};
use crate::recipe::Operation;
use anyhow::{Result, bail};

/// How many pixels each tile blends into the one before it (the app's default Blend edge).
const TILE_FEATHER: usize = 4;

pub fn run(args: &EditArgs) -> Result<()> {
    if args.run.noise.is_some() {
        bail!(
            "--enlarge draws fresh noise for every tile (seeds --seed, --seed + 1, …): drop --noise"
        );
    }
    let m = load(&args.model, &args.run)?;
    let cfg = &m.pixel("superres --enlarge")?.config;
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
    let mut editor = FrameEditor::new(&m, args)?;
    let mut doc = Document::from_picture(&picture.enlarged(factor));
    let tiles = upscale_tiles(w, h, size, factor);
    let started = std::time::Instant::now();
    for &tile in &tiles {
        editor.run(&mut doc, tile, FrameTask::SuperRes { factor }, TILE_FEATHER)?;
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
    report_cost(tiles.len() * editor.calls_per_frame, started);
    let recipe = editor.whole_run(Operation::Enlarge { factor }, &picture)?;
    write_output(
        &args.run,
        &picture_to_tensor(&enlarged, &m.device)?,
        false,
        &[recipe],
    )
}
