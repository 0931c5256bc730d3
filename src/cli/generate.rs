//! `cmpaint generate`: images from noise, one step or multistep.

use super::{
    ModelArgs, OdeArgs, RunArgs, Unlabelled, check_memory, checked_steps, class_labels, load,
    noise_file, noise_source, on_step, picture_output, progress, report_cost, styles, write_output,
};
use crate::job::{
    self, Explicit, RunOptions, Steps, network_calls, noise_draws, per_image, plan_with,
    recipe_steps,
};
use crate::recipe::Operation;
use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub ode: OdeArgs,
    /// Number of images (with --noise: the file's batch).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Grid size N the --ts indices refer to (default: the model's). For an EDM teacher: the number
    /// of sampler steps (default: the model's, 40 for the released teachers).
    #[arg(long)]
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

pub fn run(args: GenerateArgs) -> Result<()> {
    picture_output(&args.run)?;
    let m = load(&args.model, &args.run)?;
    let cfg = &m.config;
    checked_steps(args.steps)?;
    let explicit = Explicit {
        steps: args.steps,
        ts: args.ts.clone(),
        start: None,
        sampler: args.ode.sampler(cfg)?,
    };
    let steps = if args.multistep {
        Steps::Tuned
    } else {
        Steps::One
    };
    let mut recipe = plan_with(
        &m.info,
        Operation::Generate,
        args.run.seed,
        None,
        steps,
        &explicit,
    )?;
    let batch = args.batch.unwrap_or(1);
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    let size = cfg.unet.image_size;
    // the batch asked for, before its generators exist; then what a noise file asks for
    check_memory(cfg, batch, size)?;
    let p = cfg.sampling.parameterization;
    let factor = 1 << (cfg.unet.channel_mult.len() - 1);
    let (noise, shape) = noise_source(
        &args.run,
        [batch, cfg.unet.in_channels, size, size],
        Some(factor),
        noise_draws(&recipe, p),
    )?;
    if let Some(b) = args.batch
        && b != shape[0]
    {
        bail!(
            "--batch {b} disagrees with the noise file's batch of {}",
            shape[0]
        );
    }
    check_memory(cfg, shape[0], shape[2].max(shape[3]))?;
    let labels = class_labels(&args.run, cfg, shape[0], Unlabelled::FromSeed)?;
    let styles = styles(&args.run, cfg, shape[0])?;
    recipe.files.extend(noise_file(&args.run)?);
    let bar = progress(recipe_steps(&recipe, p), "sampling");
    let opts = RunOptions {
        labels: labels.clone(),
        styles: styles.clone(),
        noise,
        size: Some((shape[2], shape[3])),
        ..RunOptions::batch(shape[0])
    };
    let started = std::time::Instant::now();
    let x = job::run(&m.model, &m.device, &recipe, opts, &mut on_step(&bar))?
        .context("sampling was cancelled")?;
    bar.finish_and_clear();
    report_cost(network_calls(&recipe, p), started);
    let recipes = per_image(
        &recipe,
        shape[0],
        labels.as_deref(),
        styles.as_deref(),
        cfg.styles.len(),
    );
    write_output(&args.run, &x, args.separate, &recipes)
}
