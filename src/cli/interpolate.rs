//! `cmpaint interpolate`: one-step images between two noise seeds, as single frames or an animation.

use super::{
    ModelArgs, OutputKind, RunArgs, Unlabelled, check_memory, class_labels, load, noise_source,
    output_kind, write_output,
};
use crate::engine::cm::noise::{NoiseSource, SeededNoise};
use crate::engine::image::tensor_to_rgb8;
use crate::engine::pipeline::interpolate;
use crate::picture::{grid, is_gif, write_animation};
use anyhow::{Result, bail};
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
    let m = load(&args.model, &args.run)?;
    let cfg = &m.config;
    let size = cfg.unet.image_size;
    let batch = args.batch.unwrap_or(1);
    if let Some(k) = args.frames
        && k > MAX_FRAMES
    {
        bail!("--frames {k}: at most {MAX_FRAMES} frames");
    }
    // every frame's batch is kept until the animation is written
    let kept = batch.saturating_mul(args.frames.unwrap_or(1));
    check_memory(cfg, kept, size)?;
    let shape = [batch, cfg.unet.in_channels, size, size];
    let factor = 1 << (cfg.unet.channel_mult.len() - 1);
    // The noise file holds z_a then z_b; seeds draw each from its own generator.
    let (z_a, z_b) = match &args.run.noise {
        Some(_) => {
            let (mut noise, shape) = noise_source(&args.run, shape, Some(factor), 2)?;
            (noise.next(&shape)?, noise.next(&shape)?)
        }
        None => (
            SeededNoise::new(args.seed_a, batch).next(&shape)?,
            SeededNoise::new(args.seed_b, batch).next(&shape)?,
        ),
    };
    let batch = z_a.dim(0)?;
    check_memory(
        cfg,
        batch.saturating_mul(args.frames.unwrap_or(1)),
        z_a.dim(2)?.max(z_a.dim(3)?),
    )?;
    let labels = class_labels(&args.run, cfg, batch, Unlabelled::FromSeed)?;
    let alphas: Vec<f64> = match (args.alpha, args.frames) {
        (Some(a), _) => vec![a],
        (None, Some(k)) if k >= 2 => (0..k).map(|i| i as f64 / (k - 1) as f64).collect(),
        (None, _) => bail!("--frames needs at least 2 frames"),
    };
    let (z_a, z_b) = (z_a.to_device(&m.device)?, z_b.to_device(&m.device)?);
    let frames = interpolate(
        &m.unet,
        &cfg.sampling,
        &z_a,
        &z_b,
        &alphas,
        labels.as_deref(),
    )?;
    if args.frames.is_none() || output_kind(&args.run.output)? == OutputKind::Tensor {
        return write_output(&args.run, &Tensor::cat(&frames, 0)?, false);
    }
    let images = frames
        .iter()
        .map(|f| {
            let tiles = (0..batch)
                .map(|i| Ok(tensor_to_rgb8(&f.get(i)?)?.enlarged(args.run.scale as usize)))
                .collect::<Result<Vec<_>>>()?;
            Ok(grid(&tiles))
        })
        .collect::<Result<Vec<_>>>()?;
    write_animation(&args.run.output, &images, args.fps)?;
    eprintln!(
        "wrote {} ({} frames)",
        args.run.output.display(),
        images.len()
    );
    Ok(())
}
