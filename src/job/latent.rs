//! Running a recipe on a latent consistency model: the prompt, the picture and mask of an edit at
//! their own size (a multiple of the model's 64 px), the noise entries the LCM sampler reads, and
//! the interpolation slider as a slerp of the initial latents with the prompt fixed.

use super::model::LatentLoaded;
use super::run::{
    RunOptions, interpolation_ends, invalid, prepared_sketch, recipe_mask, recipe_picture,
};
use crate::engine::Result;
use crate::engine::cm::edit::slerp;
use crate::engine::cm::noise::{NoiseSource, SeededNoise};
use crate::engine::cm::sample::OnStep;
use crate::engine::latent::{LatentEdit, LatentRequest};
use crate::recipe::{Operation, Recipe};
use candle_core::{Device, Tensor};

pub(super) fn run(
    model: &LatentLoaded,
    device: &Device,
    recipe: &Recipe,
    opts: RunOptions,
    on_step: OnStep,
) -> Result<Option<Tensor>> {
    let name = &model.info.name;
    let Some(prompt) = &recipe.prompt else {
        return invalid(format!(
            "{name} is a latent model: its recipe needs a prompt"
        ));
    };
    if recipe.class.is_some() || recipe.style.is_some() || opts.labels.is_some() {
        return invalid(format!(
            "{name} follows a prompt: it has no classes or styles"
        ));
    }
    let facts = model
        .info
        .latent
        .as_ref()
        .expect("a latent model has latent facts");
    let batch = opts.batch;
    let request = LatentRequest {
        prompt: &prompt.text,
        negative_prompt: &prompt.negative,
        steps: recipe.steps,
        guidance: prompt.guidance,
    };
    let (picture, mask, strength) = match &recipe.operation {
        Operation::Generate | Operation::Interpolate { .. } => (None, None, 1.0),
        Operation::SdEdit { strength, .. } => {
            let picture = edit_picture(recipe, &opts, device)?;
            (
                Some(prepared_sketch(&recipe.operation, picture)?),
                None,
                *strength,
            )
        }
        Operation::Inpaint => {
            let picture = edit_picture(recipe, &opts, device)?;
            (
                Some(picture),
                Some(recipe_mask(recipe, opts.mask.clone(), device)?),
                1.0,
            )
        }
        op => {
            return invalid(format!(
                "{name} is a latent model: {} works on pixels; use a pixel-space model",
                op.label()
            ));
        }
    };
    let (h, w) = match &picture {
        Some(p) => (p.dim(2)?, p.dim(3)?),
        None => opts
            .size
            .unwrap_or((model.info.image_size, model.info.image_size)),
    };
    let m = facts.size_multiple;
    if h % m != 0 || w % m != 0 || h == 0 || w == 0 {
        return invalid(format!(
            "{w}×{h}: {name} works on sides that are multiples of {m} px"
        ));
    }
    if let (Some(p), Some(mask)) = (&picture, &mask)
        && (mask.dim(2)?, mask.dim(3)?) != (p.dim(2)?, p.dim(3)?)
    {
        return invalid(format!(
            "the mask is {}×{}, the picture {w}×{h}",
            mask.dim(3)?,
            mask.dim(2)?
        ));
    }
    check_memory(model, batch, h, w)?;
    let shape = [batch, 4, h / facts.vae_factor, w / facts.vae_factor];
    let replay = opts.noise.is_some();
    let mut noise: Box<dyn NoiseSource> = match opts.noise {
        Some(n) => n,
        None => Box::new(SeededNoise::new(recipe.seed, batch)),
    };
    let edit = picture.as_ref().map(|p| LatentEdit {
        picture: p,
        mask: mask.as_ref(),
        strength,
    });
    let steps = recipe.steps;
    let pipeline = &model.pipeline;
    match &recipe.operation {
        Operation::Interpolate { seed_b, alpha } => {
            // the slider's ends as a pixel model draws them, then the re-noising draws, shared by
            // every frame
            let (z_a, z_b) = interpolation_ends(noise.as_mut(), replay, *seed_b, &shape)?;
            let later = (1..steps)
                .map(|_| noise.next(&shape))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let alphas = opts.alphas.unwrap_or_else(|| vec![*alpha]);
            let mut frames = Vec::with_capacity(alphas.len());
            for a in alphas {
                let mut entries = vec![slerp(&z_a, &z_b, a)?];
                entries.extend(later.iter().cloned());
                let entries = Tensor::stack(&entries, 0)?.to_device(device)?;
                match pipeline.run(&request, None, &entries, on_step)? {
                    Some(frame) => frames.push(frame),
                    None => return Ok(None),
                }
            }
            Ok(Some(Tensor::cat(&frames, 0)?))
        }
        _ => {
            let entries = (0..steps)
                .map(|_| noise.next(&shape))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let entries = Tensor::stack(&entries, 0)?.to_device(device)?;
            pipeline.run(&request, edit.as_ref(), &entries, on_step)
        }
    }
}

/// Refuses, before anything is allocated, a run that would not fit in the memory the system has
/// free (see [`crate::engine::available_memory`]), with the batch that would.
fn check_memory(model: &LatentLoaded, batch: usize, h: usize, w: usize) -> Result<()> {
    let need = model.pipeline.activation_bytes(batch, h, w);
    let Some(free) = crate::engine::available_memory() else {
        return Ok(());
    };
    if need <= free {
        return Ok(());
    }
    let fits = free / model.pipeline.activation_bytes(1, h, w).max(1);
    let gb = |b: usize| b as f64 / 1e9;
    invalid(format!(
        "{batch} picture(s) of {w}×{h} need about {:.1} GB of memory and {:.1} GB are free: {}",
        gb(need),
        gb(free),
        if fits >= 1 {
            format!("at most {fits} fit")
        } else {
            "not even one of this size fits".into()
        }
    ))
}

/// An edit's picture: the caller's tensor, else the recipe's embedded one.
fn edit_picture(recipe: &Recipe, opts: &RunOptions, device: &Device) -> Result<Tensor> {
    match &opts.images {
        Some(x) => Ok(x.clone()),
        None => recipe_picture(recipe, device),
    }
}
