//! Planning: a request (operation, seed, class, and whatever the caller fixed itself) becomes a
//! complete [`Recipe`] — the grid N, the time indices (from a strength for SDEdit), and what the
//! run will cost. The app and the CLI plan through here, so one request gives one recipe everywhere.

use super::model::{LatentFacts, ModelInfo};
use crate::engine::model::spec::{Parameterization, SamplingConfig};
use crate::engine::pipeline::{EDIT_STEPS, sdedit_ts, strength_to_index};
use crate::engine::{EngineError, Result};
use crate::recipe::{Operation, Prompt, RECIPE_VERSION, Recipe, Sampler};

/// How a generation samples: one step, or the model's tuned multistep list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Steps {
    #[default]
    One,
    Tuned,
}

/// What a caller fixed instead of the model's defaults (the CLI's `--steps`, `--ts`,
/// `--strength-index` and EDM sampler options); the app fixes none of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Explicit {
    /// The grid N the time indices refer to (an EDM teacher: its number of steps).
    pub steps: Option<usize>,
    pub ts: Option<Vec<usize>>,
    /// An edit's start index on the grid, instead of the one its strength maps to.
    pub start: Option<usize>,
    /// An EDM teacher's solver and churn (None: deterministic Heun).
    pub sampler: Option<Sampler>,
}

/// A complete recipe for `operation` on `model` with the model's defaults: the paper's editing grid
/// for a consistency model's edits, the model's own grid and tuned `ts` for generation, Heun over
/// the teacher's grid for an EDM teacher (generation from σ_max, edits from the start index alone).
/// `input`/`mask` are embedded by the caller for edits.
pub fn plan(
    model: &ModelInfo,
    operation: Operation,
    seed: u64,
    class: Option<u32>,
    steps: Steps,
) -> Result<Recipe> {
    plan_with(model, operation, seed, class, steps, &Explicit::default())
}

/// [`plan`] with what the caller fixed itself.
pub fn plan_with(
    model: &ModelInfo,
    operation: Operation,
    seed: u64,
    class: Option<u32>,
    steps: Steps,
    explicit: &Explicit,
) -> Result<Recipe> {
    if let Some(latent) = &model.latent {
        return plan_latent(model, latent, operation, seed, explicit);
    }
    let s = &model.sampling;
    if explicit.sampler.is_some() && s.parameterization == Parameterization::Consistency {
        return invalid(format!(
            "{} is a consistency model: --sampler and --s-* are for EDM teachers (see --parameterization)",
            model.name
        ));
    }
    let (n, ts) = match &operation {
        Operation::Generate | Operation::Interpolate { .. } => {
            generation_grid(&model.name, s, steps, explicit)?
        }
        op => edit_grid(s, op, explicit)?,
    };
    Ok(Recipe {
        version: RECIPE_VERSION,
        model: model.model_ref(),
        operation,
        seed,
        class,
        style: None,
        steps: n,
        ts,
        sampler: explicit.sampler.clone(),
        prompt: None,
        input: None,
        mask: None,
        files: Vec::new(),
    })
}

/// A latent model's recipe: its default number of LCM steps (or the caller's) and an empty prompt
/// at its default guidance, which the caller fills in. Colorize and super-resolution are refused: a
/// VAE's latents cannot hold a grey picture's shading apart from its colour, nor a small picture's
/// pixels apart from their detail, as Algorithm 4 needs in pixel space.
fn plan_latent(
    model: &ModelInfo,
    latent: &LatentFacts,
    operation: Operation,
    seed: u64,
    explicit: &Explicit,
) -> Result<Recipe> {
    match &operation {
        Operation::Colorize | Operation::SuperRes { .. } | Operation::Enlarge { .. } => {
            return invalid(format!(
                "{} is a latent model: {} works on pixels (Algorithm 4 in pixel space), which a VAE's \
                 latents do not keep apart; use a pixel-space model",
                model.name,
                operation.label()
            ));
        }
        Operation::SdEdit { strength, .. } if !(*strength > 0.0 && *strength <= 1.0) => {
            return invalid(format!("strength {strength}: it must lie in (0, 1]"));
        }
        _ => {}
    }
    if explicit.ts.is_some() || explicit.start.is_some() || explicit.sampler.is_some() {
        return invalid(format!(
            "{} is a latent model: it takes --steps (1…{}), not --ts, --strength-index or an EDM sampler",
            model.name, latent.max_steps
        ));
    }
    let steps = explicit.steps.unwrap_or(latent.steps);
    if !(1..=latent.max_steps).contains(&steps) {
        return invalid(format!(
            "{steps} steps: {} takes 1…{}",
            model.name, latent.max_steps
        ));
    }
    Ok(Recipe {
        version: RECIPE_VERSION,
        model: model.model_ref(),
        operation,
        seed,
        class: None,
        style: None,
        steps,
        ts: None,
        sampler: None,
        prompt: Some(Prompt {
            text: String::new(),
            negative: String::new(),
            guidance: latent.guidance,
        }),
        input: None,
        mask: None,
        files: Vec::new(),
    })
}

fn invalid<T>(message: String) -> Result<T> {
    Err(EngineError::InvalidInput(message))
}

/// Generation's grid: an EDM teacher integrates over every point of its grid; a consistency model
/// takes one step, or multistep over the given or tuned `ts`.
fn generation_grid(
    name: &str,
    s: &SamplingConfig,
    steps: Steps,
    explicit: &Explicit,
) -> Result<(usize, Option<Vec<usize>>)> {
    let n = explicit.steps.unwrap_or(s.steps);
    if s.parameterization == Parameterization::Edm {
        if explicit.ts.is_some() || steps == Steps::Tuned {
            return invalid(format!(
                "{name} is an EDM teacher: it integrates over all N grid points; give --steps N, not --ts or --multistep"
            ));
        }
        return Ok((n, None));
    }
    match (&explicit.ts, steps) {
        (Some(ts), _) => Ok((n, Some(ts.clone()))),
        (None, _) if explicit.steps.is_some() => {
            invalid("--steps sets the grid of --ts for a consistency model: give --ts too".into())
        }
        (None, Steps::Tuned) => match &s.ts {
            Some(ts) => Ok((n, Some(ts.clone()))),
            None => invalid(format!(
                "{name} has no tuned multistep list: give --ts (e.g. 0,{},{})",
                n / 2,
                n - 1
            )),
        },
        (None, Steps::One) => Ok((n, None)),
    }
}

/// An edit's grid. A consistency model runs Algorithm 4 on the paper's N = 40 grid (every index;
/// SDEdit from the strength's index, then the paper's ratio — see `sdedit_ts`), on the model's own
/// σ range. An EDM teacher runs Heun over its own grid from the start index (0, or the strength's).
fn edit_grid(
    s: &SamplingConfig,
    op: &Operation,
    explicit: &Explicit,
) -> Result<(usize, Option<Vec<usize>>)> {
    let edm = s.parameterization == Parameterization::Edm;
    let n = explicit
        .steps
        .unwrap_or(if edm { s.steps } else { EDIT_STEPS });
    if let Some(i) = explicit.start
        && i + 2 > n
    {
        return invalid(format!(
            "--strength-index {i}: the {n}-point grid starts an edit at index 0…{} (N − 2)",
            n - 2
        ));
    }
    let start = match (explicit.start, op) {
        (Some(i), _) => Some(i),
        (None, Operation::SdEdit { strength, .. }) => Some(strength_to_index(*strength, n)?),
        (None, _) => None,
    };
    if let Some(ts) = &explicit.ts {
        return Ok((n, Some(ts.clone())));
    }
    let ts = match start {
        _ if edm => vec![start.unwrap_or(0)],
        Some(i) => sdedit_ts(i, n, s),
        None => (0..n).collect(),
    };
    Ok((n, Some(ts)))
}

/// An EDM teacher's steps for a recipe: every grid point from the start index (`ts[0]`, else 0).
fn edm_steps(recipe: &Recipe) -> usize {
    let start = recipe.ts.as_ref().and_then(|t| t.first()).copied();
    recipe.steps.saturating_sub(start.unwrap_or(0)).max(1)
}

/// Sampler steps a recipe takes (what progress reports count). A latent model's: its LCM steps and
/// the VAE's decode, and its encode for an edit.
pub fn recipe_steps(recipe: &Recipe, parameterization: Parameterization) -> usize {
    if recipe.prompt.is_some() {
        return recipe.steps + 1 + usize::from(recipe.operation.needs_input());
    }
    match (&recipe.operation, &recipe.ts) {
        (Operation::Interpolate { .. }, _) => 1, // one frame, reported when done
        _ if parameterization == Parameterization::Edm => edm_steps(recipe),
        (_, None) => 1,
        (_, Some(ts)) => ts.len().saturating_sub(1).max(1),
    }
}

/// Network calls a recipe takes per image batch: one per step; an EDM teacher's Heun adds a
/// correction after every step but the one that ends at σ = 0 (Euler adds none). A latent model's
/// UNet calls (classifier-free guidance batches its two predictions into one call).
pub fn network_calls(recipe: &Recipe, parameterization: Parameterization) -> usize {
    if recipe.prompt.is_some() {
        return recipe.steps;
    }
    match parameterization {
        Parameterization::Edm if recipe.sampler.as_ref().is_some_and(Sampler::is_euler) => {
            edm_steps(recipe)
        }
        Parameterization::Edm => 2 * edm_steps(recipe) - 1,
        Parameterization::Consistency => recipe_steps(recipe, parameterization),
    }
}

/// Random draws a run takes: the initial one, then one per step — a consistency model's
/// multistep re-noising (one per time index), or an EDM teacher's churn (none without it). A latent
/// model's: the initial latents (or the edit's noising), then one after every step but the last.
pub fn noise_draws(recipe: &Recipe, parameterization: Parameterization) -> usize {
    if recipe.prompt.is_some() {
        return recipe.steps;
    }
    match parameterization {
        Parameterization::Edm if recipe.sampler.as_ref().is_some_and(Sampler::churns) => {
            1 + edm_steps(recipe)
        }
        Parameterization::Edm => 1,
        Parameterization::Consistency => recipe.ts.as_ref().map_or(1, Vec::len),
    }
}
