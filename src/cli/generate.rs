//! `cmpaint generate`: images from noise, one step or multistep.

use super::{
    Loaded, ModelArgs, OdeArgs, RunArgs, Unlabelled, check_memory, checked_steps, class_labels,
    load, noise_file, noise_source, picture_output, prompt, run_and_write, styles,
};
use crate::job::{AnyModel, Explicit, RunOptions, Steps, noise_draws, plan_with};
use crate::recipe::Operation;
use anyhow::{Result, bail};
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
    let loaded = load(&args.model, &args.run)?;
    if let AnyModel::Latent(_) = &loaded.model {
        return generate_prompted(&args, &loaded);
    }
    let m = loaded.pixel("generate")?;
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
    let opts = RunOptions {
        labels,
        styles,
        noise,
        size: Some((shape[2], shape[3])),
        ..RunOptions::batch(shape[0])
    };
    run_and_write(&loaded, &recipe, opts, "sampling", &args.run, args.separate)
}

/// `generate --prompt` on a latent model: LCM steps (`--steps`, default the model's), pictures at
/// the model's size or the noise file's.
fn generate_prompted(args: &GenerateArgs, loaded: &Loaded) -> Result<()> {
    if args.ts.is_some() || args.multistep {
        bail!("a latent model samples --steps N (1 to 8 are usual), not --ts or --multistep");
    }
    let (recipe, opts) = prompt::plan_run(
        loaded,
        Operation::Generate,
        args.run.seed,
        args.steps,
        args.batch,
        &args.run,
        0,
    )?;
    run_and_write(loaded, &recipe, opts, "sampling", &args.run, args.separate)
}
