//! `cmpaint edit`: zero-shot edits of a picture (paper Algorithm 4) and denoising.

use super::{
    Loaded, ModelArgs, OdeArgs, RunArgs, Unlabelled, check_memory, checked_steps, class_labels,
    load, noise_file, noise_source, picture_output, prompt, run_and_write, styles, write_output,
};
use crate::job::io::{
    estimate_sigma, mask_to_tensor, picture_to_tensor, read_tensor_image, tensor_to_rgb8,
};
use crate::job::{
    AnyModel, EDIT_STEPS, Explicit, Parameterization, RunOptions, Steps, denoise, noise_draws,
    plan_with, strength_to_index,
};
use crate::picture::{Resize, decode, to_model_size, to_rgb8};
use crate::recipe::{EmbeddedImage, FileRef, FileRole, Operation, Recipe, sha256_file};
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use clap::{Args, ValueEnum};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Task {
    /// Regenerate the white part of --mask; black pixels stay exactly as they were.
    Inpaint,
    /// Keep the picture's luminance, generate its colours.
    Colorize,
    /// Keep the mean of every F×F patch (--factor), generate the detail; with --enlarge, make the
    /// picture F times larger first.
    Superres,
    /// Turn a painting into an image: noise it to a level (--strength), then sample.
    Sdedit,
    /// One call of the consistency function at the picture's noise level (--sigma, or estimated).
    Denoise,
    /// Grow the picture past a border (--extend SIDE:N): frames overlapping the picture inpaint the
    /// new area until it is filled; the picture's own pixels are kept exactly.
    Outpaint,
}

#[derive(Args, Debug)]
pub struct EditArgs {
    pub task: Task,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub ode: OdeArgs,
    /// The picture: PNG or JPEG (grey is replicated to RGB), or a tensor image (.safetensors).
    #[arg(long)]
    pub image: std::path::PathBuf,
    /// Inpainting mask, the picture's size: white (255) = regenerate, black (0) = keep, grey = partial.
    #[arg(long)]
    pub mask: Option<std::path::PathBuf>,
    /// Super-resolution patch size F (default: image size / 32, at least 2; the reference's 8 at 256²).
    /// The picture may also be the low-resolution image itself, (size/F)², each pixel a patch mean.
    #[arg(long)]
    pub factor: Option<usize>,
    /// SDEdit start index on the N-point grid (the reference's 16 of 40, σ = 5.38). With --ts, it
    /// must equal the first index.
    #[arg(long, conflicts_with = "strength")]
    pub strength_index: Option<usize>,
    /// SDEdit strength in [0, 1], mapped to start index round((1 − s)·(N − 1)); 0.59 = index 16 of 40.
    /// Default: the model's own (`info` shows it), else the paper's 0.59. With --ts, it must map to the
    /// first index.
    #[arg(long, allow_negative_numbers = true)]
    pub strength: Option<f64>,
    /// SDEdit: fill each closed outline drawn in a colour with that colour first, so a drawn outline
    /// becomes a shape (as the app's "Fill closed outlines", on there by default). Gaps up to two
    /// pixels close; grey and black outlines, and areas over 60 % of the picture, stay as drawn.
    #[arg(long)]
    pub fill_outlines: bool,
    /// Denoising: the picture's noise level σ in [0.002, 80] (data range [−1, 1]); estimated if omitted.
    #[arg(long, allow_negative_numbers = true)]
    pub sigma: Option<f64>,
    /// Grid size N the time indices refer to (default 40, the paper's editing grid; an EDM teacher's
    /// own N).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Time indices on the N-point grid (default: every index 0…N−1; SDEdit 16,20,39). An EDM
    /// teacher uses only the first: the PF-ODE runs from there over every later grid point.
    #[arg(long, value_delimiter = ',')]
    pub ts: Option<Vec<usize>>,
    /// Variations: the picture repeated B times, with seeds S … S+B−1.
    #[arg(long)]
    pub batch: Option<usize>,
    /// For a picture of another size than the model's: fit (scale, aspect not kept) or crop (centre
    /// square, then scale). Without it such a picture is an error.
    #[arg(long)]
    pub resize: Option<Resize>,
    /// Write one PNG per image (OUT_000.png, …) instead of a grid.
    #[arg(long)]
    pub separate: bool,
    /// Superres: enlarge the picture F times (any size up to 4096² enlarged), tile by tile at the
    /// model's size, instead of generating the detail in place.
    #[arg(long)]
    pub enlarge: bool,
    /// Outpaint: the border to grow and by how many pixels, e.g. left:64.
    #[arg(long)]
    pub extend: Option<super::outpaint::Extend>,
    /// Outpaint: the fraction of each frame kept over the picture (default 0.5).
    #[arg(long, allow_negative_numbers = true)]
    pub overlap: Option<f64>,
    /// Outpaint: the frame's side in pixels (default: the picture's side across the extension;
    /// the model's size is native, larger is scaled to it and back).
    #[arg(long)]
    pub frame: Option<usize>,
}

fn is_tensor_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// The picture as `[B, 3, H, W]`: decoded, a low-resolution superres input upsampled by repetition,
/// brought to the model's size. Where the model's size is only a guess (`free`: the network's total
/// downsampling), a picture whose sides are multiples of it keeps its own size.
fn read_picture(
    args: &EditArgs,
    size: usize,
    factor: Option<usize>,
    free: Option<usize>,
    device: &Device,
) -> Result<Tensor> {
    let fits_freely =
        |w: usize, h: usize| free.is_some_and(|f| w.is_multiple_of(f) && h.is_multiple_of(f));
    let upsample = |x: Tensor, f: usize| -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        Ok(x.upsample_nearest2d(h * f, w * f)?)
    };
    let is_low_res = |w: usize, h: usize| factor.is_some_and(|f| f * w == size && f * h == size);
    if is_tensor_file(&args.image) {
        let x = read_tensor_image(&args.image, device)?;
        let (_, _, h, w) = x.dims4()?;
        return match (is_low_res(w, h), factor) {
            (true, Some(f)) => upsample(x, f),
            _ if (w, h) == (size, size) || fits_freely(w, h) => Ok(x),
            _ => bail!(
                "{}: the tensor image is {w}×{h}, the model works at {size}×{size}; resize it, or open it as a PNG with --resize",
                args.image.display()
            ),
        };
    }
    let img = decode(&args.image)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    match (is_low_res(w, h), factor) {
        (true, Some(f)) => upsample(picture_to_tensor(&to_rgb8(&img), device)?, f),
        _ if args.resize.is_none() && fits_freely(w, h) => {
            Ok(picture_to_tensor(&to_rgb8(&img), device)?)
        }
        _ => Ok(picture_to_tensor(
            &to_rgb8(&to_model_size(img, size, args.resize)?),
            device,
        )?),
    }
}

fn read_mask(args: &EditArgs, size: usize, h: usize, w: usize, device: &Device) -> Result<Tensor> {
    let path = args
        .mask
        .as_ref()
        .context("inpaint needs --mask (white = regenerate, black = keep)")?;
    let img = decode(path)?;
    let (mw, mh) = (img.width() as usize, img.height() as usize);
    // The mask follows the picture through the same resize, so the two stay aligned.
    let img = if (mw, mh) != (w, h) && (h, w) == (size, size) && args.resize.is_some() {
        to_model_size(img, size, args.resize)?
    } else {
        img
    };
    let grey = img.to_luma8();
    let (mw, mh) = (grey.width() as usize, grey.height() as usize);
    Ok(mask_to_tensor(mw, mh, grey.as_raw(), device)?)
}

pub fn run(args: EditArgs) -> Result<()> {
    picture_output(&args.run)?;
    let wrong = |flag: &str, task: &str| bail!("{flag} is for {task} only");
    let outpaint_flags = args.extend.is_some() || args.overlap.is_some() || args.frame.is_some();
    if args.task == Task::Outpaint {
        return super::outpaint::run(&args);
    } else if outpaint_flags {
        return wrong("--extend/--overlap/--frame", "outpaint");
    }
    match (args.task, args.enlarge) {
        (Task::Superres, true) => return super::upscale::run(&args),
        (_, true) => return wrong("--enlarge", "superres"),
        _ => {}
    }
    match args.task {
        Task::Inpaint => {}
        _ if args.mask.is_some() => return wrong("--mask", "inpaint"),
        _ => {}
    }
    if args.factor.is_some() && args.task != Task::Superres {
        return wrong("--factor", "superres");
    }
    if (args.strength.is_some() || args.strength_index.is_some()) && args.task != Task::Sdedit {
        return wrong("--strength", "sdedit");
    }
    if args.fill_outlines && args.task != Task::Sdedit {
        return wrong("--fill-outlines", "sdedit");
    }
    if args.sigma.is_some() && args.task != Task::Denoise {
        return wrong("--sigma", "denoise");
    }
    let loaded = load(&args.model, &args.run)?;
    if let AnyModel::Latent(_) = &loaded.model {
        return edit_prompted(&args, &loaded);
    }
    let m = loaded.pixel("edit")?;
    let cfg = &m.config;
    let size = cfg.unet.image_size;
    let factor = (args.task == Task::Superres).then(|| args.factor.unwrap_or((size / 32).max(2)));
    let downsampling = 1 << (cfg.unet.channel_mult.len() - 1);
    let free = m.size_guessed.then_some(downsampling);
    let mut images = read_picture(&args, size, factor, free, &loaded.device)?;
    if m.size_guessed && images.dims()[2..] != [size, size] {
        eprintln!(
            "image size: {}×{} from the picture (the checkpoint does not say)",
            images.dim(3)?,
            images.dim(2)?
        );
    }
    let (_, _, h, w) = images.dims4()?;
    check_memory(cfg, args.batch.unwrap_or(images.dim(0)?), h.max(w))?;
    if let Some(b) = args.batch {
        if images.dim(0)? != 1 {
            bail!(
                "--batch repeats a single picture; {} holds {}",
                args.image.display(),
                images.dim(0)?
            );
        }
        images = images.repeat((b, 1, 1, 1))?;
    }
    let (batch, _, h, w) = images.dims4()?;
    let labels = class_labels(&args.run, cfg, batch, Unlabelled::AppDefault)?;
    let styles = styles(&args.run, cfg, batch)?;

    if args.task == Task::Denoise {
        if args.run.noise.is_some() {
            bail!("denoise draws no noise: drop --noise");
        }
        let sigma = match args.sigma {
            Some(s) => s,
            None => {
                let s =
                    estimate_sigma(&images)?.clamp(cfg.sampling.sigma_min, cfg.sampling.sigma_max);
                eprintln!("estimated noise level σ = {s:.4}");
                s
            }
        };
        let x = denoise(&m.unet, &cfg.sampling, &images, sigma, labels.as_deref())?;
        return write_output(&args.run, &x, args.separate, &[]);
    }

    let mask = match args.task {
        Task::Inpaint => Some(read_mask(&args, size, h, w, &loaded.device)?),
        _ => None,
    };
    let edm = cfg.sampling.parameterization == Parameterization::Edm;
    let steps =
        checked_steps(args.steps)?.unwrap_or(if edm { cfg.sampling.steps } else { EDIT_STEPS });
    check_ts_agree(&args, steps)?;
    // the strength given, else the one --strength-index or --ts starts at, else the model's own
    let start = args
        .strength_index
        .or(args.ts.as_ref().and_then(|t| t.first().copied()));
    let strength = args.strength.unwrap_or(match start {
        Some(i) => 1.0 - i.min(steps - 1) as f64 / (steps - 1) as f64,
        None => cfg.sampling.default_sketch_strength(),
    });
    let operation = match args.task {
        Task::Inpaint => Operation::Inpaint,
        Task::Colorize => Operation::Colorize,
        Task::Superres => Operation::SuperRes {
            factor: factor.expect("set for superres"),
        },
        Task::Sdedit => Operation::SdEdit {
            strength,
            fill_outlines: args.fill_outlines,
        },
        Task::Denoise | Task::Outpaint => unreachable!("handled above"),
    };
    let explicit = Explicit {
        steps: args.steps,
        ts: args.ts.clone(),
        start: args.strength_index,
        sampler: args.ode.sampler(cfg)?,
    };
    let mut recipe = plan_with(
        &m.info,
        operation,
        args.run.seed,
        None,
        Steps::One,
        &explicit,
    )?;
    let p = cfg.sampling.parameterization;
    let (noise, _) = noise_source(&args.run, [batch, 3, h, w], None, noise_draws(&recipe, p))?;
    embed_inputs(&mut recipe, &args, &images, mask.as_ref())?;
    let opts = RunOptions {
        labels,
        styles,
        noise,
        images: Some(images),
        mask,
        ..RunOptions::batch(batch)
    };
    let what = args.task.to_possible_value().expect("named");
    run_and_write(
        &loaded,
        &recipe,
        opts,
        what.get_name(),
        &args.run,
        args.separate,
    )
}

/// What an edit read goes into its recipe: the noise file it replays (by path and hash), the picture
/// it starts from (a PNG), or its name and hash (a tensor image, whose values a PNG would round), and
/// the mask as grey.
fn embed_inputs(
    recipe: &mut Recipe,
    args: &EditArgs,
    images: &Tensor,
    mask: Option<&Tensor>,
) -> Result<()> {
    recipe.files.extend(noise_file(&args.run)?);
    if is_tensor_file(&args.image) {
        recipe.files.push(FileRef {
            role: FileRole::Image,
            path: args.image.display().to_string(),
            sha256: sha256_file(&args.image)?,
        });
    } else {
        recipe.input = Some(EmbeddedImage::from_rgb(&tensor_to_rgb8(&images.get(0)?)?)?);
    }
    if let Some(mask) = mask {
        let (_, _, mh, mw) = mask.dims4()?;
        let values = mask.flatten_all()?.to_vec1::<f32>()?;
        recipe.mask = Some(EmbeddedImage::from_mask(mw, mh, &values)?);
    }
    Ok(())
}

/// `edit sdedit|inpaint --prompt` on a latent model: the picture at its own size (a multiple of the
/// model's 64 px, else --resize to the model's), LCM steps, the prompt.
fn edit_prompted(args: &EditArgs, loaded: &Loaded) -> Result<()> {
    let info = loaded.info();
    let facts = prompt::latent_facts(loaded, &args.run)?;
    if args.ts.is_some() || args.strength_index.is_some() {
        bail!("a latent model takes --strength and --steps, not --ts or --strength-index");
    }
    let operation = match args.task {
        Task::Sdedit => Operation::SdEdit {
            strength: args.strength.unwrap_or(info.sketch_strength()),
            fill_outlines: args.fill_outlines,
        },
        Task::Inpaint => Operation::Inpaint,
        Task::Colorize => Operation::Colorize,
        Task::Superres => Operation::SuperRes {
            factor: args.factor.unwrap_or(2),
        },
        Task::Denoise => bail!(
            "{} is a latent model: denoise works on pixels; use a pixel-space model",
            info.name
        ),
        Task::Outpaint => unreachable!("outpaint runs frame by frame"),
    };
    let mut recipe =
        prompt::plan_prompted(loaded, operation, args.run.seed, args.steps, &args.run)?;
    let side = info.image_size;
    let device = &loaded.device;
    let mut images = read_picture(args, side, None, Some(facts.size_multiple), device)?;
    if let Some(b) = args.batch {
        images = images.repeat((b, 1, 1, 1))?;
    }
    let (batch, _, h, w) = images.dims4()?;
    let mask = match args.task {
        Task::Inpaint => Some(read_mask(args, side, h, w, device)?),
        _ => None,
    };
    let (noise, _) = prompt::latent_noise(&args.run, facts, &recipe, batch, (h, w), 0)?;
    embed_inputs(&mut recipe, args, &images, mask.as_ref())?;
    let opts = RunOptions {
        noise,
        images: Some(images),
        mask,
        ..RunOptions::batch(batch)
    };
    let what = args.task.to_possible_value().expect("named");
    run_and_write(
        loaded,
        &recipe,
        opts,
        what.get_name(),
        &args.run,
        args.separate,
    )
}

/// --ts and a start (--strength or --strength-index) must agree on the first index.
fn check_ts_agree(args: &EditArgs, steps: usize) -> Result<()> {
    let start = match (args.strength_index, args.strength) {
        (Some(i), _) => Some(i),
        (None, Some(s)) => Some(strength_to_index(s, steps)?),
        (None, None) => None,
    };
    if let (Some(ts), Some(i)) = (&args.ts, start)
        && ts.first() != Some(&i)
    {
        let given = match args.strength {
            Some(s) => format!("--strength {s} (start index {i} of N={steps})"),
            None => format!("--strength-index {i}"),
        };
        let first = ts
            .first()
            .map_or("nothing".into(), |t| format!("index {t}"));
        bail!("{given} contradicts --ts, which starts at {first}: give one, or make them agree");
    }
    Ok(())
}
