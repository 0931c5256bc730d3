//! `cmpaint interpolate`: one-step images between two noise seeds, as single frames or an animation.

use super::{
    Loaded, ModelArgs, OutputKind, RunArgs, Unlabelled, check_memory, class_labels, load,
    noise_file, noise_source, output_kind, prompt, styles, write_output,
};
use crate::job::io::tensor_to_rgb8;
use crate::job::{self, AnyModel, LoadedModel, RunOptions, Steps, per_image, plan};
use crate::picture::{grid, is_gif, write_animation_with_text};
use crate::recipe::{GRID_KEYWORD, GridRecipe, Operation, Recipe, Strip};
use anyhow::{Context, Result, bail};
use candle_core::Tensor;
use clap::Args;

#[derive(Args, Debug)]
pub struct InterpolateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Seed of the first end (sample i of a batch uses seed + i).
    #[arg(long, default_value_t = 0, conflicts_with = "noise")]
    pub seed_a: u64,
    /// Seed of the second end.
    #[arg(long, default_value_t = 1, conflicts_with = "noise")]
    pub seed_b: u64,
    /// Position between the two ends, 0 = seed A, 1 = seed B.
    #[arg(
        long,
        required_unless_present = "frames",
        conflicts_with = "frames",
        allow_negative_numbers = true
    )]
    pub alpha: Option<f64>,
    /// K evenly spaced frames from A to B: an animated PNG, a GIF (-o strip.gif), or a tensor image
    /// [K·B, 3, H, W], frame-major.
    #[arg(long)]
    pub frames: Option<usize>,
    /// Frames per second of the animated PNG.
    #[arg(long, default_value_t = 10)]
    pub fps: u16,
    /// Images per frame (with --noise: the file's batch).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Latent models: LCM steps per frame (default: the model's).
    #[arg(long)]
    pub steps: Option<usize>,
}

/// The most frames one strip may have (a minute at 60 frames per second, ten times over).
const MAX_FRAMES: usize = 36_000;

pub fn run(args: InterpolateArgs) -> Result<()> {
    if args.frames.is_none() && is_gif(&args.run.output) {
        bail!("a .gif output is for animations: give --frames K");
    }
    if args.run.scale > 1 && output_kind(&args.run.output)? == OutputKind::Tensor {
        bail!("--scale is for .png and .gif outputs; a tensor output keeps the model's size");
    }
    let loaded = load(&args.model, &args.run)?;
    if let Some(k) = args.frames
        && k > MAX_FRAMES
    {
        bail!("--frames {k}: at most {MAX_FRAMES} frames");
    }
    let alphas: Vec<f64> = match (args.alpha, args.frames) {
        (Some(a), _) => vec![a],
        (None, Some(k)) if k >= 2 => (0..k).map(|i| i as f64 / (k - 1) as f64).collect(),
        (None, _) => bail!("--frames needs at least 2 frames"),
    };
    let operation = Operation::Interpolate {
        seed_b: args.seed_b,
        alpha: alphas[0],
    };
    let alphas_of_strip = args.frames.map(|_| alphas.clone());
    let (recipe, opts) = match &loaded.model {
        AnyModel::Latent(_) => prompted(&args, &loaded, operation)?,
        AnyModel::Pixel(m) => pixel(&args, m, operation)?,
    };
    let (batch, labels, styles) = (opts.batch, opts.labels.clone(), opts.styles.clone());
    let opts = RunOptions {
        alphas: Some(alphas),
        ..opts
    };
    let x = job::run(
        &loaded.model,
        &loaded.device,
        &recipe,
        opts,
        &mut job::run_to_end,
    )?
    .context("interpolation was cancelled")?;
    let recipes = per_image(
        &recipe,
        batch,
        labels.as_deref(),
        styles.as_deref(),
        loaded.info().styles.len(),
    );
    match alphas_of_strip {
        None => write_output(&args.run, &x, false, &recipes),
        Some(_) if output_kind(&args.run.output)? == OutputKind::Tensor => {
            write_output(&args.run, &x, false, &[])
        }
        Some(alphas) => {
            let strip = GridRecipe {
                strip: Some(Strip {
                    alphas,
                    fps: args.fps,
                }),
                ..GridRecipe::new(&recipes, args.run.scale as usize)
            };
            write_strip(&args.run.output, &x, &strip)
        }
    }
}

/// A pixel model's interpolation: its classes and styles, the noise of its size.
fn pixel(
    args: &InterpolateArgs,
    m: &LoadedModel,
    operation: Operation,
) -> Result<(Recipe, RunOptions)> {
    let cfg = &m.config;
    let size = cfg.unet.image_size;
    let batch = args.batch.unwrap_or(1);
    // every frame's batch is kept until the animation is written
    let frames = args.frames.unwrap_or(1);
    check_memory(cfg, batch.saturating_mul(frames), size)?;
    let shape = [batch, cfg.unet.in_channels, size, size];
    let factor = 1 << (cfg.unet.channel_mult.len() - 1);
    // The noise file holds z_a then z_b; seeds draw each from its own generator.
    let (noise, shape) = noise_source(&args.run, shape, Some(factor), 2)?;
    let batch = shape[0];
    check_memory(cfg, batch.saturating_mul(frames), shape[2].max(shape[3]))?;
    let labels = class_labels(&args.run, cfg, batch, Unlabelled::FromSeed)?;
    let styles = styles(&args.run, cfg, batch)?;
    let mut recipe = plan(&m.info, operation, args.seed_a, None, Steps::One)?;
    recipe.files.extend(noise_file(&args.run)?);
    let opts = RunOptions {
        labels,
        styles,
        noise,
        size: Some((shape[2], shape[3])),
        ..RunOptions::batch(batch)
    };
    Ok((recipe, opts))
}

/// A latent model's interpolation: the prompt fixed, the initial latents slerped (a noise file
/// holds z_a, z_b, then the re-noising draws).
fn prompted(
    args: &InterpolateArgs,
    loaded: &Loaded,
    operation: Operation,
) -> Result<(Recipe, RunOptions)> {
    let (seed, steps, run) = (args.seed_a, args.steps, &args.run);
    // a noise file holds z_b after z_a
    prompt::plan_run(loaded, operation, seed, steps, args.batch, run, 1)
}

/// An interpolation strip — `x` holds every frame's grid in turn — as an animation, an animated
/// PNG carrying its recipes (`strip`).
pub(super) fn write_strip(path: &std::path::Path, x: &Tensor, strip: &GridRecipe) -> Result<()> {
    let (cells, alphas) = (
        strip.cells.len(),
        &strip.strip.as_ref().expect("a strip").alphas,
    );
    let images = (0..alphas.len())
        .map(|f| {
            let tiles = (0..cells)
                .map(|i| Ok(tensor_to_rgb8(&x.get(f * cells + i)?)?.enlarged(strip.scale)))
                .collect::<Result<Vec<_>>>()?;
            Ok(grid(&tiles))
        })
        .collect::<Result<Vec<_>>>()?;
    let json = strip.to_json()?;
    let fps = strip.strip.as_ref().map_or(10, |s| s.fps);
    write_animation_with_text(path, &images, fps, Some((GRID_KEYWORD, &json)))?;
    eprintln!("wrote {} ({} frames)", path.display(), images.len());
    Ok(())
}
