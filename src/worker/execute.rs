//! A recipe, planned and run: the one place that turns the app's (or a re-opened PNG's) request into
//! engine calls. Pure functions of the model, the recipe and the step callback.

use crate::engine::cm::noise::{NoiseSource, SeededNoise};
use crate::engine::cm::sample::{OnStep, Step};
use crate::engine::image::{rgb8_to_tensor, tensor_to_rgb8};
use crate::engine::model::default_model;
use crate::engine::model::load::Checkpoint;
use crate::engine::model::spec::ModelConfig;
use crate::engine::model::spec::Parameterization;
use crate::engine::model::unet::UNet;
use crate::engine::pipeline::{
    EDIT_STEPS, EditRequest, EditTask, GenerateRequest, default_edit_ts, edit, generate,
    interpolate, sdedit_ts, strength_to_index,
};
use crate::engine::{EngineError, Precision, Result};
use crate::picture::Rgb8;
use crate::recipe::{ModelRef, Operation, RECIPE_VERSION, Recipe, sha256_file, sha256_hex};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};

/// What the UI knows about the loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    /// None: the built-in model.
    pub file: Option<PathBuf>,
    pub sha256: String,
    pub image_size: usize,
    pub num_classes: Option<usize>,
    /// N of the model's grid and its tuned multistep indices.
    pub steps: usize,
    pub ts: Option<Vec<usize>>,
    pub parameters: usize,
    /// A consistency model (one step) or an EDM teacher (Heun over `steps` grid points).
    pub parameterization: Parameterization,
    /// The model's default sketch → image strength.
    pub sketch_strength: f64,
}

impl ModelInfo {
    pub fn model_ref(&self) -> ModelRef {
        ModelRef {
            name: self.name.clone(),
            file: self.file.as_ref().map(|f| f.display().to_string()),
            sha256: self.sha256.clone(),
        }
    }
}

pub struct LoadedModel {
    pub info: ModelInfo,
    pub config: ModelConfig,
    pub unet: UNet,
}

/// Opens and loads a model (None = the built-in one) and hashes its weights for recipes.
pub fn load_model(
    file: Option<&Path>,
    device: &Device,
    precision: Precision,
) -> Result<LoadedModel> {
    let (ck, sha256) = match file {
        Some(path) if let Some(b) = default_model::named(path) => (
            Checkpoint::embedded(b.name, b.bytes, None)?,
            sha256_hex(b.bytes),
        ),
        Some(path) => {
            let ck = Checkpoint::open(path, None)?;
            let sha = hash_weights(path).map_err(|e| {
                EngineError::InvalidInput(format!("{}: cannot read: {e}", path.display()))
            })?;
            (ck, sha)
        }
        None => (
            Checkpoint::embedded_default(None)?,
            sha256_hex(default_model::BYTES),
        ),
    };
    let unet = ck.load_with(device, precision)?;
    let cfg = &ck.config;
    let info = ModelInfo {
        name: cfg.name.clone(),
        file: file.map(Path::to_path_buf),
        sha256,
        image_size: cfg.unet.image_size,
        num_classes: cfg.unet.num_classes,
        steps: cfg.sampling.steps,
        ts: cfg.sampling.ts.clone(),
        parameters: cfg.unet.parameter_count(),
        parameterization: cfg.sampling.parameterization,
        sketch_strength: cfg.sampling.default_sketch_strength(),
    };
    Ok(LoadedModel {
        info,
        config: ck.config,
        unet,
    })
}

/// A weight file's SHA-256; for a diffusers folder, of its files in name order (config included).
fn hash_weights(path: &Path) -> std::io::Result<String> {
    if !path.is_dir() {
        return sha256_file(path);
    }
    let mut files = Vec::new();
    for dir in [path.to_path_buf(), path.join("unet")] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type()?.is_file() {
                    files.push(e.path());
                }
            }
        }
    }
    files.sort();
    let hashes: Vec<String> = files
        .iter()
        .map(|f| sha256_file(f))
        .collect::<std::io::Result<_>>()?;
    Ok(sha256_hex(hashes.join("\n").as_bytes()))
}

/// How a generation samples: one step, or the model's tuned multistep list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    One,
    Tuned,
}

/// A complete recipe for `operation` on `model`, with the paper's grid and time indices filled in.
/// `input`/`mask` are embedded by the caller for edits. An EDM teacher runs Heun over its own grid:
/// generation from σ_max, edits from the start index alone (σ_max, or the strength's for SDEdit).
pub fn plan(
    model: &ModelInfo,
    operation: Operation,
    seed: u64,
    class: Option<u32>,
    steps: Steps,
) -> Result<Recipe> {
    let sampling = crate::engine::model::spec::SamplingConfig::with_grid(EDIT_STEPS, None);
    let edm = model.parameterization == Parameterization::Edm;
    let (n, ts) = match &operation {
        Operation::Generate | Operation::Interpolate { .. } if edm => (model.steps, None),
        Operation::SdEdit { strength } if edm => (
            model.steps,
            Some(vec![strength_to_index(*strength, model.steps)?]),
        ),
        Operation::Inpaint | Operation::Colorize | Operation::SuperRes { .. } if edm => {
            (model.steps, Some(vec![0]))
        }
        Operation::Generate | Operation::Interpolate { .. } => match (steps, &model.ts) {
            (Steps::One, _) | (_, None) => (model.steps, None),
            (Steps::Tuned, Some(ts)) => (model.steps, Some(ts.clone())),
        },
        Operation::SdEdit { strength } => {
            let start = strength_to_index(*strength, EDIT_STEPS)?;
            (EDIT_STEPS, Some(sdedit_ts(start, EDIT_STEPS, &sampling)))
        }
        Operation::Inpaint | Operation::Colorize | Operation::SuperRes { .. } => {
            (EDIT_STEPS, Some(default_edit_ts(&EditTask::Colorize)))
        }
    };
    Ok(Recipe {
        version: RECIPE_VERSION,
        model: model.model_ref(),
        operation,
        seed,
        class,
        steps: n,
        ts,
        input: None,
        mask: None,
    })
}

/// An EDM teacher's steps for a recipe: every grid point from the start index (`ts[0]`, else 0).
fn edm_steps(recipe: &Recipe) -> usize {
    let start = recipe.ts.as_ref().and_then(|t| t.first()).copied();
    recipe.steps.saturating_sub(start.unwrap_or(0)).max(1)
}

/// Sampler steps a recipe takes (what progress reports count).
pub fn recipe_steps(recipe: &Recipe, parameterization: Parameterization) -> usize {
    match (&recipe.operation, &recipe.ts) {
        (Operation::Interpolate { .. }, _) => 1, // one frame, reported when done
        _ if parameterization == Parameterization::Edm => edm_steps(recipe),
        (_, None) => 1,
        (_, Some(ts)) => ts.len().saturating_sub(1).max(1),
    }
}

/// Network calls a recipe takes per image batch: one per step, and for an EDM teacher's Heun a
/// correction call after every step but the last.
pub fn network_calls(recipe: &Recipe, parameterization: Parameterization) -> usize {
    match parameterization {
        Parameterization::Edm => 2 * edm_steps(recipe) - 1,
        Parameterization::Consistency => recipe_steps(recipe, parameterization),
    }
}

/// Runs a recipe for `batch` images (seeds seed … seed+batch−1; each image's own recipe is returned
/// beside it). None when `on_step` cancelled it.
pub fn run_recipe(
    model: &LoadedModel,
    recipe: &Recipe,
    batch: usize,
    device: &Device,
    on_step: OnStep,
) -> Result<Option<Vec<(Rgb8, Recipe)>>> {
    let invalid = |m: String| Err(EngineError::InvalidInput(m));
    if batch == 0 {
        return invalid("a batch of 0 images".into());
    }
    let cfg = &model.config;
    let size = cfg.unet.image_size;
    let labels = match (cfg.unet.num_classes, recipe.class) {
        (Some(n), Some(c)) if (c as usize) < n => Some(vec![c; batch]),
        (Some(n), Some(c)) => return invalid(format!("class {c} is not one of the model's {n}")),
        (Some(_), None) => return invalid(format!("{} needs a class", cfg.name)),
        (None, Some(_)) => return invalid(format!("{} is not class-conditional", cfg.name)),
        (None, None) => None,
    };
    let shape = [batch, cfg.unet.in_channels, size, size];
    let mut noise = SeededNoise::new(recipe.seed, batch);
    let x = match &recipe.operation {
        Operation::Generate => {
            let req = GenerateRequest {
                shape,
                class_labels: labels.as_deref(),
                ts: recipe.ts.as_deref(),
                steps: recipe.steps,
                ode: None,
            };
            generate(
                &model.unet,
                &cfg.sampling,
                &req,
                &mut noise,
                device,
                on_step,
            )?
        }
        Operation::Interpolate { seed_b, alpha } => {
            let z_a = noise.next(&shape)?.to_device(device)?;
            let z_b = SeededNoise::new(*seed_b, batch)
                .next(&shape)?
                .to_device(device)?;
            let frames = interpolate(
                &model.unet,
                &cfg.sampling,
                &z_a,
                &z_b,
                &[*alpha],
                labels.as_deref(),
            )?;
            let _ = on_step(Step::progress(1, 1));
            frames.into_iter().next()
        }
        op => {
            let picture = recipe
                .input
                .as_ref()
                .ok_or_else(|| {
                    EngineError::InvalidInput(format!("{} needs a picture", op.label()))
                })?
                .to_rgb()
                .map_err(|e| EngineError::InvalidInput(e.to_string()))?;
            if (picture.width, picture.height) != (size, size) {
                return invalid(format!(
                    "the picture is {}×{}, the model works at {size}×{size}",
                    picture.width, picture.height
                ));
            }
            let images = rgb8_to_tensor(&picture, device)?
                .unsqueeze(0)?
                .repeat((batch, 1, 1, 1))?;
            let task = match op {
                Operation::SdEdit { .. } => EditTask::SdEdit,
                Operation::Colorize => EditTask::Colorize,
                Operation::SuperRes { factor } => EditTask::SuperRes { factor: *factor },
                Operation::Inpaint => {
                    let (w, h, mask) = recipe
                        .mask
                        .as_ref()
                        .ok_or_else(|| EngineError::InvalidInput("inpaint needs a mask".into()))?
                        .to_mask()
                        .map_err(|e| EngineError::InvalidInput(e.to_string()))?;
                    EditTask::Inpaint {
                        regenerate: Tensor::from_vec(mask, (1, 1, h, w), device)?,
                    }
                }
                Operation::Generate | Operation::Interpolate { .. } => unreachable!(),
            };
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
                ode: None,
            };
            edit(&model.unet, &cfg.sampling, &req, &mut noise, on_step)?
        }
    };
    let Some(x) = x else { return Ok(None) };
    let images = (0..batch)
        .map(|i| {
            let mut r = recipe.clone();
            r.seed = recipe.seed.wrapping_add(i as u64);
            if let Operation::Interpolate { seed_b, alpha } = r.operation {
                r.operation = Operation::Interpolate {
                    seed_b: seed_b.wrapping_add(i as u64),
                    alpha,
                };
            }
            Ok((tensor_to_rgb8(&x.get(i)?)?, r))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(images))
}
