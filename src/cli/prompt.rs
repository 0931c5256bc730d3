//! What the sampling commands do differently on a latent consistency model (a Stable Diffusion folder,
//! `--lora` merged): a prompt instead of a class, LCM steps instead of a grid, latent noise, pictures
//! at any multiple of 64 px. The recipe is planned and run by the same job layer as a pixel model's.

use super::{Loaded, Replay, RunArgs, noise_file, noise_source};
use crate::job::{Explicit, LatentFacts, RunOptions, Steps, noise_draws, plan_with};
use crate::recipe::{FileRef, FileRole, Operation, Prompt, Recipe, sha256_file};
use anyhow::{Result, bail};

/// The latent model's facts, and the pixel models' options refused.
pub(super) fn latent_facts<'a>(loaded: &'a Loaded, run: &RunArgs) -> Result<&'a LatentFacts> {
    let info = loaded.info();
    let facts = info.latent.as_ref().expect("a latent model");
    if run.class.is_some() || run.style.is_some() {
        bail!(
            "{} follows a prompt (--prompt): it has no classes or styles; drop --class/--style",
            info.name
        );
    }
    Ok(facts)
}

/// `operation` planned on the latent model with `--prompt`, `--negative-prompt`, `--guidance` and
/// `--steps` (else the model's defaults); the LoRA file named with its hash.
pub(super) fn plan_prompted(
    loaded: &Loaded,
    operation: Operation,
    seed: u64,
    steps: Option<usize>,
    run: &RunArgs,
) -> Result<Recipe> {
    let info = loaded.info();
    let facts = latent_facts(loaded, run)?;
    let Some(text) = run.prompt.clone() else {
        bail!("{} follows a prompt: give --prompt TEXT", info.name);
    };
    let negative = run.negative_prompt.clone().unwrap_or_default();
    if !negative.is_empty() && !facts.cfg {
        bail!(
            "{} reads its guidance as an embedding (a distilled LCM): it has no negative prompt; drop --negative-prompt",
            info.name
        );
    }
    let guidance = run.guidance.unwrap_or(facts.guidance);
    if !(0.0..=30.0).contains(&guidance) {
        bail!(
            "--guidance {guidance}: 0 to 30 (the default for this model is {})",
            facts.guidance
        );
    }
    let explicit = Explicit {
        steps,
        ..Explicit::default()
    };
    let mut recipe = plan_with(info, operation, seed, None, Steps::One, &explicit)?;
    recipe.prompt = Some(Prompt {
        text,
        negative,
        guidance,
    });
    if let Some(lora) = loaded.lora() {
        recipe.files.push(FileRef {
            role: FileRole::Lora,
            path: lora.display().to_string(),
            sha256: sha256_file(lora)?,
        });
    }
    Ok(recipe)
}

/// The noise a latent run replays (`--noise`: f32 `noise` [N, B, 4, h, w]), checked to hold the
/// recipe's draws; None: the seed's. → it and the run's latent shape [B, 4, h, w] (from the file
/// where there is one, else the batch at (h, w) pixels).
pub(super) fn latent_noise(
    run: &RunArgs,
    facts: &LatentFacts,
    recipe: &Recipe,
    batch: usize,
    (h, w): (usize, usize),
    extra_draws: usize,
) -> Result<(Option<Replay>, [usize; 4])> {
    let f = facts.vae_factor;
    let shape = [batch, 4, h / f, w / f];
    let draws = noise_draws(recipe, crate::job::Parameterization::Consistency) + extra_draws;
    noise_source(run, shape, Some(facts.size_multiple / f), draws)
}

/// `operation` planned on the latent model and the options of its run: the batch (`--batch`, else
/// 1; a noise file's where one is given, which `--batch` must then match) at the model's native size
/// or the noise file's, and `extra_draws` beyond the recipe's (an interpolation's second end).
pub(super) fn plan_run(
    loaded: &Loaded,
    operation: Operation,
    seed: u64,
    steps: Option<usize>,
    batch: Option<usize>,
    run: &RunArgs,
    extra_draws: usize,
) -> Result<(Recipe, RunOptions)> {
    let facts = latent_facts(loaded, run)?;
    let mut recipe = plan_prompted(loaded, operation, seed, steps, run)?;
    let side = loaded.info().image_size;
    let wanted = batch.unwrap_or(1);
    if wanted == 0 {
        bail!("--batch must be at least 1");
    }
    let (noise, shape) = latent_noise(run, facts, &recipe, wanted, (side, side), extra_draws)?;
    if let Some(b) = batch
        && b != shape[0]
    {
        bail!(
            "--batch {b} disagrees with the noise file's batch of {}",
            shape[0]
        );
    }
    recipe.files.extend(noise_file(run)?);
    let f = facts.vae_factor;
    let opts = RunOptions {
        noise,
        size: Some((shape[2] * f, shape[3] * f)),
        ..RunOptions::batch(shape[0])
    };
    Ok((recipe, opts))
}
