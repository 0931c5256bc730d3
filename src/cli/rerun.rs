//! `cmpaint rerun PICTURE.png`: makes a picture again from the recipe inside it — any PNG the app
//! exported or the CLI wrote — with the recipe's model (its hash checked) and the files it names.

use super::{ModelArgs, load_model_for, write_output};
use crate::file_io::{self, limit};
use crate::job::io::{ReplayNoise, read_tensor_image};
use crate::job::{self, ModelInfo, ModelSource, RunOptions};
use crate::picture::{Rgb8, decode_frames};
use crate::recipe::{FileRef, FileRole, GridRecipe, Operation, Recipe, read_grid, sha256_file};
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use clap::{Args, Parser};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct RerunArgs {
    /// A PNG that carries a cmpaint recipe.
    pub picture: PathBuf,
    /// Where the model is now, if not where the recipe says (its hash must still match).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output (.png or .safetensors). Default: PICTURE-rerun.png beside the picture.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The recipes of a PNG, read within the picture size limit.
pub(super) fn read_recipes(path: &Path) -> Result<GridRecipe> {
    let bytes = file_io::read(path, limit::PICTURE)?;
    read_grid(&bytes).with_context(|| format!("{}", path.display()))
}

pub fn run(args: RerunArgs) -> Result<()> {
    let grid_recipe = read_recipes(&args.picture)?;
    let recipes = grid_recipe.recipes();
    let first = &grid_recipe.recipe;
    let output = args.output.clone().unwrap_or_else(|| {
        let stem = args.picture.with_extension("");
        PathBuf::from(format!("{}-rerun.png", stem.display()))
    });
    let batch = recipes.len();
    // a grid's cells are one batch run: consecutive seeds from the first
    let one_run = recipes
        .iter()
        .enumerate()
        .all(|(i, r)| r.seed == first.seed.wrapping_add(i as u64));
    if !one_run {
        bail!("the cells' seeds are not one batch run's; this picture was not written by cmpaint");
    }
    let source = recipe_model(first, &args)?;
    if first.operation.is_frame_run() {
        return rerun_frames(first, &source, &args, &output);
    }
    let loaded = load_model_for(&source, &args.device)?;
    let (model, device) = (&loaded.model, &loaded.device);
    let mut opts = RunOptions {
        // each cell's own class and style
        labels: first
            .class
            .map(|_| recipes.iter().filter_map(|r| r.class).collect()),
        styles: first
            .style
            .map(|_| recipes.iter().filter_map(|r| r.style).collect()),
        ..RunOptions::batch(batch)
    };
    for file in &first.files {
        check_hash(file)?;
        match file.role {
            FileRole::Noise => {
                let noise = ReplayNoise::load(Path::new(&file.path))?;
                let s = noise.draw_shape().to_vec();
                opts.size = Some((s[2], s[3]));
                opts.noise = Some(Box::new(noise));
            }
            FileRole::Image => {
                opts.images = Some(tensor_input(first, &file.path, model.info(), device)?);
            }
            FileRole::Lora => {}
        }
    }
    if let Some(strip) = &grid_recipe.strip {
        opts.alphas = Some(strip.alphas.clone());
    }
    let x = job::run(model, device, first, opts, &mut job::run_to_end)?
        .context("the run was cancelled")?;
    // a tensor output keeps the model's size and holds every frame of a strip
    let tensor_output = output.extension().is_some_and(|e| e == "safetensors");
    if grid_recipe.strip.is_some() && !tensor_output {
        super::interpolate::write_strip(&output, &x, &grid_recipe)?;
        return report_sameness(&args.picture, &output);
    }
    // the app exports a result enlarged (Export scale) with the plain recipe: the same whole factor
    let scale = match crate::picture::dimensions(&args.picture) {
        _ if tensor_output => 1,
        Ok((w, _)) if grid_recipe.cells.len() == 1 && x.dim(3)? > 0 => {
            let w = w as usize;
            match w % x.dim(3)? {
                0 => (w / x.dim(3)?).max(grid_recipe.scale),
                _ => grid_recipe.scale,
            }
        }
        _ => grid_recipe.scale,
    };
    let run = super::RunArgs::for_output(&output, scale, &args.device);
    write_output(&run, &x, false, &recipes)?;
    if tensor_output {
        return Ok(());
    }
    report_sameness(&args.picture, &output)
}

/// An outpaint or an enlargement replayed as it ran: `cmpaint edit` over the recipe's picture (a
/// temporary file) with the recipe's settings, frame by frame.
fn rerun_frames(
    recipe: &Recipe,
    source: &ModelSource,
    args: &RerunArgs,
    output: &Path,
) -> Result<()> {
    let picture = recipe
        .input
        .as_ref()
        .context("the recipe holds no picture to start from")?
        .to_rgb()?;
    let input = std::env::temp_dir().join(format!("cmpaint-rerun-{}.png", std::process::id()));
    crate::picture::write_png(&input, &picture)?;
    let mut argv: Vec<String> = vec!["cmpaint".into(), "edit".into()];
    match &recipe.operation {
        Operation::Outpaint {
            side,
            pixels,
            overlap,
            frame,
        } => argv.extend([
            "outpaint".into(),
            format!("--extend={side}:{pixels}"),
            format!("--overlap={overlap}"),
            format!("--frame={frame}"),
        ]),
        Operation::Enlarge { factor } => argv.extend([
            "superres".into(),
            "--enlarge".into(),
            format!("--factor={factor}"),
        ]),
        _ => unreachable!("a frame run"),
    }
    argv.push(format!("--image={}", input.display()));
    argv.push(format!("--seed={}", recipe.seed));
    argv.extend(recipe.class.map(|c| format!("--class={c}")));
    argv.extend(recipe.style.map(|s| format!("--style={s}")));
    argv.extend(
        source
            .file
            .as_ref()
            .map(|f| format!("--model={}", f.display())),
    );
    argv.extend(args.model.config.as_ref().map(|c| format!("--config={c}")));
    argv.extend(
        source
            .lora
            .as_ref()
            .map(|l| format!("--lora={}", l.display())),
    );
    if let Some(p) = &recipe.prompt {
        argv.push(format!("--prompt={}", p.text));
        if !p.negative.is_empty() {
            argv.push(format!("--negative-prompt={}", p.negative));
        }
        argv.push(format!("--guidance={}", p.guidance));
        argv.push(format!("--steps={}", recipe.steps));
    }
    if let Some(s) = &recipe.sampler {
        argv.push(format!(
            "--sampler={}",
            if s.euler { "euler" } else { "heun" }
        ));
        argv.push(format!("--s-churn={}", s.s_churn));
        argv.push(format!("--s-tmin={}", s.s_tmin));
        argv.extend(s.s_tmax.map(|t| format!("--s-tmax={t}")));
        argv.push(format!("--s-noise={}", s.s_noise));
    }
    argv.push(format!("--device={}", args.device));
    argv.push(format!("--output={}", output.display()));
    let parsed = super::Cli::try_parse_from(&argv);
    let ran = match parsed.map(|c| c.command) {
        Ok(Some(super::Command::Edit(edit))) => super::edit::run(edit),
        Ok(_) => unreachable!("an edit command"),
        Err(e) => Err(anyhow::anyhow!("the recipe's settings do not parse: {e}")),
    };
    let _ = std::fs::remove_file(&input);
    ran?;
    if output.extension().is_some_and(|e| e == "safetensors") {
        return Ok(());
    }
    report_sameness(&args.picture, output)
}

/// The recipe's model: `--model` if given, else the file the recipe names (the built-in one when it
/// names none); refused, before anything loads, when its hash is not the recipe's.
fn recipe_model(recipe: &Recipe, args: &RerunArgs) -> Result<ModelSource> {
    let file = args
        .model
        .model
        .clone()
        .or_else(|| recipe.model.file.as_ref().map(PathBuf::from));
    if let Some(f) = &file
        && args.model.model.is_none()
        && !f.exists()
        && !job::is_builtin_name(f)
    {
        bail!(
            "the recipe's model {} ({}) is not at {}: give --model PATH where it is now",
            recipe.model.name,
            short(&recipe.model.sha256),
            f.display()
        );
    }
    // the LoRA merged into a latent model's UNet: where the recipe says, unless --lora moved it
    let lora = match recipe.files.iter().find(|f| f.role == FileRole::Lora) {
        Some(lora) => {
            let file = FileRef {
                path: args
                    .model
                    .lora
                    .as_ref()
                    .map_or(lora.path.clone(), |p| p.display().to_string()),
                ..lora.clone()
            };
            check_hash(&file)?;
            Some(PathBuf::from(file.path))
        }
        None => None,
    };
    let sha256 = job::with_lora_sha256(&job::weights_sha256(file.as_deref())?, lora.as_deref())?;
    if sha256 != recipe.model.sha256 {
        bail!(
            "{} is not the recipe's model: its SHA-256 is {}, the recipe's {} ({}) is {}",
            file.as_ref()
                .map_or("the built-in model".into(), |f| f.display().to_string()),
            short(&sha256),
            recipe.model.name,
            recipe.model.file.as_deref().unwrap_or("built in"),
            short(&recipe.model.sha256)
        );
    }
    Ok(ModelSource {
        file,
        lora,
        ..super::model_source(&args.model)?
    })
}

fn short(sha: &str) -> String {
    format!("{}…", &sha[..sha.len().min(12)])
}

/// A file the recipe names must be there, with the same bytes.
fn check_hash(file: &FileRef) -> Result<()> {
    let what = match file.role {
        FileRole::Noise => "noise file",
        FileRole::Image => "input picture",
        FileRole::Lora => "LoRA",
    };
    let path = Path::new(&file.path);
    if !path.exists() {
        bail!(
            "the recipe's {what} {} (SHA-256 {}) is missing",
            file.path,
            short(&file.sha256)
        );
    }
    let sha = sha256_file(path)?;
    if sha != file.sha256 {
        bail!(
            "the recipe's {what} {} has changed: SHA-256 {}, the recipe's {}",
            file.path,
            short(&sha),
            short(&file.sha256)
        );
    }
    Ok(())
}

/// A tensor image an edit started from, brought to the model's size as `edit` brought it (a
/// low-resolution super-resolution input is repeated F×F).
fn tensor_input(recipe: &Recipe, path: &str, model: &ModelInfo, device: &Device) -> Result<Tensor> {
    let x = read_tensor_image(Path::new(path), device)?;
    let (_, _, h, w) = x.dims4()?;
    let size = model.image_size;
    Ok(match recipe.operation {
        Operation::SuperRes { factor } if (h * factor, w * factor) == (size, size) => {
            x.upsample_nearest2d(size, size)?
        }
        _ => x,
    })
}

/// Says whether the new picture has the original's pixels (an animation's: every frame's).
fn report_sameness(original: &Path, output: &Path) -> Result<()> {
    let (before, after) = (decode_frames(original)?, decode_frames(output)?);
    if before.len() != after.len() {
        eprintln!(
            "{}: {} frames, the original {}",
            output.display(),
            after.len(),
            before.len()
        );
        return Ok(());
    }
    let (before, after) = (joined(&before), joined(&after));
    if (before.width, before.height) != (after.width, after.height) {
        eprintln!(
            "{}: {}×{}, the original {}×{}",
            output.display(),
            after.width,
            after.height,
            before.width,
            before.height
        );
        return Ok(());
    }
    let differ = before
        .pixels
        .chunks(3)
        .zip(after.pixels.chunks(3))
        .filter(|(a, b)| a != b)
        .count();
    match differ {
        0 => eprintln!("the same pixels as {}", original.display()),
        n => eprintln!("{n} pixels differ from {}", original.display()),
    }
    Ok(())
}

/// An animation's frames one above the other (a still picture: itself), to compare as one.
fn joined(frames: &[Rgb8]) -> Rgb8 {
    Rgb8 {
        width: frames[0].width,
        height: frames.iter().map(|f| f.height).sum(),
        pixels: frames
            .iter()
            .flat_map(|f| f.pixels.iter().copied())
            .collect(),
    }
}
