//! `cmpaint generate`: images from noise, one step or multistep.

use super::{
    ModelArgs, RunArgs, class_labels, load, noise_source, on_step, progress, write_output,
};
use crate::engine::model::spec::ModelConfig;
use crate::engine::pipeline::{GenerateRequest, generate};
use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Number of images (with --noise: the file's batch).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Grid size N the --ts indices refer to (default: the model's).
    #[arg(long, requires = "ts")]
    pub steps: Option<usize>,
    /// Multistep time indices on the N-point grid, e.g. 0,22,39 (index 0 = σ_max).
    #[arg(long, value_delimiter = ',', conflicts_with = "multistep")]
    pub ts: Option<Vec<usize>>,
    /// Multistep with the model's tuned ts list (e.g. 0,22,39 for ImageNet-64 CD).
    #[arg(long)]
    pub multistep: bool,
    /// Write one PNG per image (OUT_000.png, OUT_001.png, …) instead of a grid.
    #[arg(long)]
    pub separate: bool,
}

/// The ts list to sample with: explicit, the model's tuned list, or None for one step.
fn resolve_ts(args: &GenerateArgs, cfg: &ModelConfig) -> Result<(Option<Vec<usize>>, usize)> {
    let steps = args.steps.unwrap_or(cfg.sampling.steps);
    if let Some(ts) = &args.ts {
        return Ok((Some(ts.clone()), steps));
    }
    if args.multistep {
        let ts = cfg.sampling.ts.clone().with_context(|| {
            format!(
                "{} has no tuned multistep list: give --ts (e.g. 0,{},{})",
                cfg.name,
                steps / 2,
                steps - 1
            )
        })?;
        return Ok((Some(ts), steps));
    }
    Ok((None, steps))
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let m = load(&args.model, &args.run)?;
    let cfg = &m.config;
    let (ts, steps) = resolve_ts(&args, cfg)?;
    let batch = args.batch.unwrap_or(1);
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    let size = cfg.unet.image_size;
    let draws = 1 + ts.as_ref().map_or(0, |t| t.len().saturating_sub(1));
    let factor = 1 << (cfg.unet.channel_mult.len() - 1);
    let (mut noise, shape) = noise_source(
        &args.run,
        [batch, cfg.unet.in_channels, size, size],
        Some(factor),
        draws,
    )?;
    if let Some(b) = args.batch
        && b != shape[0]
    {
        bail!(
            "--batch {b} disagrees with the noise file's batch of {}",
            shape[0]
        );
    }
    let labels = class_labels(&args.run, cfg, shape[0])?;
    let bar = progress(draws.saturating_sub(1).max(1), "sampling");
    let req = GenerateRequest {
        shape,
        class_labels: labels.as_deref(),
        ts: ts.as_deref(),
        steps,
    };
    let x = generate(
        &m.unet,
        &cfg.sampling,
        &req,
        noise.as_mut(),
        &m.device,
        &mut on_step(&bar),
    )?
    .context("sampling was cancelled")?;
    bar.finish_and_clear();
    write_output(&args.run.output, &x, args.separate)
}
