//! `cmpaint generate`: images from noise, one step or multistep.

use super::{
    ModelArgs, OdeArgs, RunArgs, Unlabelled, check_memory, checked_steps, class_labels, load,
    noise_source, on_step, picture_output, progress, report_cost, write_output,
};
use crate::engine::cm::pf_ode::{network_calls, pf_ode_sigmas};
use crate::engine::model::spec::{ModelConfig, Parameterization};
use crate::engine::pipeline::{GenerateRequest, generate};
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

/// The ts list to sample with: explicit, the model's tuned list, or None for one step.
fn resolve_ts(args: &GenerateArgs, cfg: &ModelConfig) -> Result<(Option<Vec<usize>>, usize)> {
    let steps = checked_steps(args.steps)?.unwrap_or(cfg.sampling.steps);
    if cfg.sampling.parameterization == Parameterization::Edm {
        if args.ts.is_some() || args.multistep {
            bail!(
                "{} is an EDM teacher: it integrates over all N grid points; give --steps N, not --ts or --multistep",
                cfg.name
            );
        }
        return Ok((None, steps));
    }
    if args.steps.is_some() && args.ts.is_none() {
        bail!("--steps sets the grid of --ts for a consistency model: give --ts too");
    }
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
    picture_output(&args.run)?;
    let m = load(&args.model, &args.run)?;
    let cfg = &m.config;
    let (ts, steps) = resolve_ts(&args, cfg)?;
    let ode = args.ode.options(cfg)?;
    let batch = args.batch.unwrap_or(1);
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    let size = cfg.unet.image_size;
    // the batch asked for, before its generators exist; then what a noise file asks for
    check_memory(cfg, batch, size)?;
    // draws: the initial one, then one per step (CM multistep, or an EDM teacher with churn)
    let (draws, bar_steps, calls) = match &ode {
        Some(o) => {
            let sigmas = pf_ode_sigmas(steps, &cfg.sampling);
            let per_step = if o.churn.draws() { steps } else { 0 };
            (1 + per_step, steps, network_calls(o.solver, &sigmas))
        }
        None => {
            let n = ts.as_ref().map_or(1, |t| t.len().saturating_sub(1));
            (1 + ts.as_ref().map_or(0, |_| n), n, n)
        }
    };
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
    check_memory(cfg, shape[0], shape[2].max(shape[3]))?;
    let labels = class_labels(&args.run, cfg, shape[0], Unlabelled::FromSeed)?;
    let bar = progress(bar_steps, "sampling");
    let req = GenerateRequest {
        shape,
        class_labels: labels.as_deref(),
        ts: ts.as_deref(),
        steps,
        ode,
    };
    let started = std::time::Instant::now();
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
    report_cost(calls, started);
    write_output(&args.run, &x, args.separate)
}
