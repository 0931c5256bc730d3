//! Running: a planned recipe through the engine, with progress, step previews and cancel. The
//! worker thread (for the app) and the CLI both run recipes here.

use super::model::{AnyModel, LoadedModel};
use crate::engine::cm::noise::{NoiseSource, SeededNoise};
use crate::engine::cm::pf_ode::{Churn, OdeOptions, Solver};
use crate::engine::cm::sample::{OnStep, Step};
use crate::engine::image::{rgb8_to_tensor, tensor_to_rgb8};
use crate::engine::pipeline::{
    EditRequest, EditTask, GenerateRequest, edit, generate, interpolate,
};
use crate::engine::{EngineError, Result};
use crate::outline_fill::fill_closed_outlines;
use crate::picture::Rgb8;
use crate::recipe::{Operation, Recipe, Sampler};
use candle_core::{Device, Tensor};

/// How one run of a recipe is carried out, beyond what the recipe itself says.
pub struct RunOptions {
    /// Images in the batch; image i draws its noise from seed + i.
    pub batch: usize,
    /// One class label per image; None: the recipe's class for every image.
    pub labels: Option<Vec<u32>>,
    /// One style per image (a model with styles); None: the recipe's style, else `style_of_seed`.
    pub styles: Option<Vec<u32>>,
    /// Replayed draws in the run's order (interpolation: z_a, then z_b); None: seeded noise.
    pub noise: Option<Box<dyn NoiseSource>>,
    /// An edit's picture `[B, 3, H, W]` in [−1, 1], where the caller holds it as a tensor (a tensor
    /// image, a frame of a larger picture); None: the recipe's embedded picture.
    pub images: Option<Tensor>,
    /// An inpainting mask `[1, 1, H, W]` in [0, 1] to go with `images`; None: the recipe's.
    pub mask: Option<Tensor>,
    /// Generation: the draw's height and width where they are not the model's (a replayed noise
    /// file of a network whose size the checkpoint does not say).
    pub size: Option<(usize, usize)>,
    /// Interpolation: every α here instead of the recipe's one; the frames come concatenated.
    pub alphas: Option<Vec<f64>>,
}

impl RunOptions {
    pub fn batch(batch: usize) -> Self {
        Self {
            batch,
            labels: None,
            styles: None,
            noise: None,
            images: None,
            mask: None,
            size: None,
            alphas: None,
        }
    }
}

pub(super) fn invalid<T>(message: String) -> Result<T> {
    Err(EngineError::InvalidInput(message))
}

/// The engine's PF-ODE options for a recipe's sampler (None: deterministic Heun).
pub fn ode_options(sampler: Option<&Sampler>) -> Option<OdeOptions> {
    sampler.map(|s| OdeOptions {
        solver: if s.euler { Solver::Euler } else { Solver::Heun },
        churn: Churn {
            s_churn: s.s_churn,
            s_tmin: s.s_tmin,
            s_tmax: s.s_tmax.unwrap_or(f64::INFINITY),
            s_noise: s.s_noise,
        },
    })
}

/// Runs `recipe` on `model`: `[B, 3, H, W]`, unclamped (edits keep their kept pixels exactly).
/// None when `on_step` cancelled it.
pub fn run(
    model: &AnyModel,
    device: &Device,
    recipe: &Recipe,
    opts: RunOptions,
    on_step: OnStep,
) -> Result<Option<Tensor>> {
    if opts.batch == 0 {
        return invalid("a batch of 0 images".into());
    }
    match model {
        AnyModel::Pixel(m) => run_pixel(m, device, recipe, opts, on_step),
        AnyModel::Latent(m) => super::latent::run(m, device, recipe, opts, on_step),
    }
}

/// [`run`] on a pixel-space model.
fn run_pixel(
    model: &LoadedModel,
    device: &Device,
    recipe: &Recipe,
    opts: RunOptions,
    on_step: OnStep,
) -> Result<Option<Tensor>> {
    let batch = opts.batch;
    let cfg = &model.config;
    let labels = class_labels(model, recipe, &opts)?;
    let ode = ode_options(recipe.sampler.as_ref());
    let (h, w) = opts
        .size
        .unwrap_or((cfg.unet.image_size, cfg.unet.image_size));
    let shape = [batch, cfg.unet.in_channels, h, w];
    let replay = opts.noise.is_some();
    let mut noise: Box<dyn NoiseSource> = match opts.noise {
        Some(n) => n,
        None => Box::new(SeededNoise::new(recipe.seed, batch)),
    };
    match &recipe.operation {
        Operation::Generate => {
            let req = GenerateRequest {
                shape,
                class_labels: labels.as_deref(),
                ts: recipe.ts.as_deref(),
                steps: recipe.steps,
                ode,
            };
            generate(
                &model.unet,
                &cfg.sampling,
                &req,
                noise.as_mut(),
                device,
                on_step,
            )
        }
        Operation::Interpolate { seed_b, alpha } => {
            let (z_a, z_b) = interpolation_ends(noise.as_mut(), replay, *seed_b, &shape)?;
            let alphas = opts.alphas.unwrap_or_else(|| vec![*alpha]);
            let frames = interpolate(
                &model.unet,
                &cfg.sampling,
                &z_a.to_device(device)?,
                &z_b.to_device(device)?,
                &alphas,
                labels.as_deref(),
            )?;
            let _ = on_step(Step::progress(1, 1));
            Ok(Some(Tensor::cat(&frames, 0)?))
        }
        op => {
            let images = match opts.images {
                Some(x) => x,
                None => embedded_picture(recipe, cfg.unet.image_size, batch, device)?,
            };
            let images = prepared_sketch(op, images)?;
            let task = edit_task(op, recipe, opts.mask, device)?;
            let ts = recipe
                .ts
                .as_deref()
                .ok_or_else(|| EngineError::InvalidInput("an edit needs time indices".into()))?;
            let req = EditRequest {
                images: &images,
                task: &task,
                class_labels: labels.as_deref(),
                ts,
                steps: recipe.steps,
                ode,
            };
            edit(&model.unet, &cfg.sampling, &req, noise.as_mut(), on_step)
        }
    }
}

/// The slider's two ends: z_a from the run's noise, z_b after it in a replay, else from seed B's own
/// generators (image i from seed_b + i).
pub(super) fn interpolation_ends(
    noise: &mut dyn NoiseSource,
    replay: bool,
    seed_b: u64,
    shape: &[usize],
) -> Result<(Tensor, Tensor)> {
    let z_a = noise.next(shape)?;
    let z_b = if replay {
        noise.next(shape)?
    } else {
        SeededNoise::new(seed_b, shape[0]).next(shape)?
    };
    Ok((z_a, z_b))
}

/// The network's labels of a run, one per image: the class, and for a model with styles the style
/// (label class·S + style), each checked against the model's.
fn class_labels(
    model: &LoadedModel,
    recipe: &Recipe,
    opts: &RunOptions,
) -> Result<Option<Vec<u32>>> {
    let cfg = &model.config;
    let classes = per_image_values(&opts.labels, recipe.class, opts.batch, "class labels")?;
    let styles = per_image_styles(cfg.styles.len(), recipe, opts)?;
    match (cfg.classes(), classes) {
        (Some(n), Some(l)) => match l.iter().find(|&&c| c as usize >= n) {
            Some(c) => invalid(format!("class {c} is not one of the model's {n}")),
            None => Ok(Some(
                l.iter()
                    .zip(styles.iter())
                    .map(|(&c, &s)| cfg.network_label(c, s))
                    .collect(),
            )),
        },
        (Some(_), None) => invalid(format!("{} needs a class", cfg.name)),
        (None, Some(_)) => invalid(format!("{} is not class-conditional", cfg.name)),
        (None, None) => Ok(None),
    }
}

/// One value per image: the list given (of the batch's length), else the recipe's for all.
fn per_image_values(
    given: &Option<Vec<u32>>,
    recipe: Option<u32>,
    batch: usize,
    what: &str,
) -> Result<Option<Vec<u32>>> {
    match given {
        Some(l) if l.len() != batch => {
            invalid(format!("{} {what} for a batch of {batch}", l.len()))
        }
        Some(l) => Ok(Some(l.clone())),
        None => Ok(recipe.map(|c| vec![c; batch])),
    }
}

/// Each image's style: given, the recipe's, or the seed's (`style_of_seed`); None where the model
/// has no styles.
fn per_image_styles(styles: usize, recipe: &Recipe, opts: &RunOptions) -> Result<Vec<Option<u32>>> {
    let given = per_image_values(&opts.styles, recipe.style, opts.batch, "styles")?;
    if styles == 0 {
        return match given {
            Some(_) => invalid(format!("{} has no styles", recipe.model.name)),
            None => Ok(vec![None; opts.batch]),
        };
    }
    let seeded = (0..opts.batch)
        .map(|i| style_of_seed(recipe.seed.wrapping_add(i as u64), styles))
        .collect();
    let styles_of_images: Vec<u32> = given.unwrap_or(seeded);
    match styles_of_images.iter().find(|&&s| s as usize >= styles) {
        Some(s) => invalid(format!("style {s} is not one of the model's {styles}")),
        None => Ok(styles_of_images.into_iter().map(Some).collect()),
    }
}

/// The style an image takes from its seed when none is asked for: seed mod S, so consecutive seeds
/// (a batch) go through the styles in turn.
pub fn style_of_seed(seed: u64, styles: usize) -> u32 {
    (seed % styles.max(1) as u64) as u32
}

/// The recipe's embedded picture at the model's size, repeated for the batch.
fn embedded_picture(recipe: &Recipe, size: usize, batch: usize, device: &Device) -> Result<Tensor> {
    let picture = recipe_picture(recipe, device)?;
    let (_, _, h, w) = picture.dims4()?;
    if (w, h) != (size, size) {
        return invalid(format!(
            "the picture is {w}×{h}, the model works at {size}×{size}"
        ));
    }
    Ok(picture.repeat((batch, 1, 1, 1))?)
}

/// An edit's picture as the network gets it: for sketch → image with `fill_outlines`, each image's
/// closed coloured outlines filled (`outline_fill`); an image without any is passed on untouched.
pub(super) fn prepared_sketch(op: &Operation, images: Tensor) -> Result<Tensor> {
    if !matches!(
        op,
        Operation::SdEdit {
            fill_outlines: true,
            ..
        }
    ) {
        return Ok(images);
    }
    let filled = (0..images.dim(0)?)
        .map(|i| {
            let image = images.get(i)?;
            let drawn = tensor_to_rgb8(&image)?;
            let filled = fill_closed_outlines(&drawn);
            Ok(if filled == drawn {
                image
            } else {
                rgb8_to_tensor(&filled, images.device())?
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::stack(&filled, 0)?)
}

/// The recipe's embedded picture, [1, 3, H, W] in [−1, 1].
pub(super) fn recipe_picture(recipe: &Recipe, device: &Device) -> Result<Tensor> {
    let picture = recipe
        .input
        .as_ref()
        .ok_or_else(|| {
            EngineError::InvalidInput(format!("{} needs a picture", recipe.operation.label()))
        })?
        .to_rgb()
        .map_err(|e| EngineError::InvalidInput(e.to_string()))?;
    Ok(rgb8_to_tensor(&picture, device)?.unsqueeze(0)?)
}

/// An inpainting mask [1, 1, H, W] in [0, 1] (1 = paint anew): the one given, else the recipe's.
pub(super) fn recipe_mask(
    recipe: &Recipe,
    given: Option<Tensor>,
    device: &Device,
) -> Result<Tensor> {
    if let Some(m) = given {
        return Ok(m);
    }
    let (w, h, mask) = recipe
        .mask
        .as_ref()
        .ok_or_else(|| EngineError::InvalidInput("inpaint needs a mask".into()))?
        .to_mask()
        .map_err(|e| EngineError::InvalidInput(e.to_string()))?;
    Ok(Tensor::from_vec(mask, (1, 1, h, w), device)?)
}

/// The engine's editing task for an operation: the one place an operation becomes a task.
fn edit_task(
    op: &Operation,
    recipe: &Recipe,
    mask: Option<Tensor>,
    device: &Device,
) -> Result<EditTask> {
    Ok(match op {
        Operation::SdEdit { .. } => EditTask::SdEdit,
        Operation::Colorize => EditTask::Colorize,
        Operation::SuperRes { factor } => EditTask::SuperRes { factor: *factor },
        Operation::Inpaint => EditTask::Inpaint {
            regenerate: recipe_mask(recipe, mask, device)?,
        },
        Operation::Outpaint { .. } | Operation::Enlarge { .. } => {
            return invalid(format!(
                "{} runs frame by frame (`cmpaint edit`, `cmpaint rerun`), not as one edit",
                op.label()
            ));
        }
        Operation::Generate | Operation::Interpolate { .. } => {
            unreachable!("generation is not an edit")
        }
    })
}

/// Runs a recipe for `batch` images, each returned as a picture beside its own recipe (its seed,
/// and its class where `labels` gave one per image). None when `on_step` cancelled it.
pub fn run_recipe(
    model: &AnyModel,
    recipe: &Recipe,
    batch: usize,
    device: &Device,
    on_step: OnStep,
) -> Result<Option<Vec<(Rgb8, Recipe)>>> {
    let Some(x) = run(model, device, recipe, RunOptions::batch(batch), on_step)? else {
        return Ok(None);
    };
    let recipes = per_image(recipe, batch, None, None, model.info().styles.len());
    let images = recipes
        .into_iter()
        .enumerate()
        .map(|(i, r)| Ok((tensor_to_rgb8(&x.get(i)?)?, r)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(images))
}

/// Each image's own recipe in a batch run of `recipe`: image i has seed + i (for interpolation both
/// seeds move), its own class and style where `labels` and `styles` gave one per image, and — on a
/// model with `n_styles` styles — the seed's style where neither the recipe nor `styles` gave one.
pub fn per_image(
    recipe: &Recipe,
    batch: usize,
    labels: Option<&[u32]>,
    styles: Option<&[u32]>,
    n_styles: usize,
) -> Vec<Recipe> {
    (0..batch)
        .map(|i| {
            let mut r = recipe.clone();
            r.seed = recipe.seed.wrapping_add(i as u64);
            if let Operation::Interpolate { seed_b, alpha } = r.operation {
                r.operation = Operation::Interpolate {
                    seed_b: seed_b.wrapping_add(i as u64),
                    alpha,
                };
            }
            if let Some(l) = labels {
                r.class = Some(l[i]);
            }
            if let Some(st) = styles {
                r.style = Some(st[i]);
            }
            if n_styles > 0 && r.style.is_none() {
                r.style = Some(style_of_seed(r.seed, n_styles));
            }
            r
        })
        .collect()
}
