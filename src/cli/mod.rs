//! The command line: `cmpaint generate | edit | interpolate | rerun | info | convert | presets`. Every
//! sampling command plans a recipe and runs it through the job layer the app's worker uses; only
//! `info` and `convert` (`info.rs`) read model files through the engine itself. anyhow lives here only.

mod edit;
mod frames;
mod generate;
mod info;
mod interpolate;
mod outpaint;
mod prompt;
mod rerun;
mod upscale;

use crate::file_io::write_bytes;
use crate::job::io::{NoiseSource, ReplayNoise, tensor_to_rgb8, write_tensor_image};
use crate::job::{
    self, AnyModel, LoadedModel, ModelSource, RunOptions, load_any, network_calls, per_image,
    recipe_steps,
};
use crate::job::{
    MAX_STEPS, ModelConfig, Parameterization, Precision, Step, check_run_memory, preset, presets,
    read_config_file, select_device,
};
use crate::picture::{Rgb8, grid};
use crate::recipe::{FileRef, FileRole, GridRecipe, Recipe, Sampler, encode_png_grid, sha256_file};
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "cmpaint",
    version,
    about = "Consistency-model image generation and editing"
)]
pub struct Cli {
    /// Without a command, the app opens on the built-in model.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the desktop app (the default when no command is given).
    App(AppArgs),
    /// Generate images from noise in one step (or a few with --ts / --multistep).
    Generate(generate::GenerateArgs),
    /// Edit a picture zero-shot (paper Algorithm 4): inpaint, colorize, superres, sdedit, denoise,
    /// outpaint.
    Edit(edit::EditArgs),
    /// Images between two noise seeds (spherical interpolation, one step each).
    Interpolate(interpolate::InterpolateArgs),
    /// Print a model's inferred configuration, parameter count and memory need; or, given a
    /// picture, the recipe inside it.
    Info(info::InfoArgs),
    /// Make a picture again from the recipe inside it (any PNG the app or the CLI wrote).
    Rerun(rerun::RerunArgs),
    /// Write a model in the project's safetensors format (config in the metadata).
    Convert(ConvertArgs),
    /// List the presets for the released checkpoints.
    Presets,
}

#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Weights: an OpenAI .pt, safetensors (openai names or the project's own), or a diffusers folder;
    /// or `builtin:teacher`, the built-in model's EDM teacher. Default: the built-in emoji model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A JSON model config file, or the name of a preset (see `cmpaint presets`); overrides what the
    /// file says or what is inferred from it.
    #[arg(long)]
    pub config: Option<String>,
    /// Override how the network's output is scaled: consistency (CD/CT models) or edm (diffusion
    /// teachers, sampled with Heun). Normally read from the file, a preset or an `edm_` file name.
    #[arg(long, value_enum)]
    pub parameterization: Option<ParameterizationArg>,
    /// A LoRA (.safetensors, peft or kohya layout) merged into a Stable Diffusion folder's UNet as it
    /// loads: an LCM-LoRA makes a plain SD 1.5 folder a latent consistency model.
    #[arg(long)]
    pub lora: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ParameterizationArg {
    Consistency,
    Edm,
}

impl From<ParameterizationArg> for Parameterization {
    fn from(p: ParameterizationArg) -> Self {
        match p {
            ParameterizationArg::Consistency => Parameterization::Consistency,
            ParameterizationArg::Edm => Parameterization::Edm,
        }
    }
}

/// The PF-ODE sampler of an EDM teacher (the reference's `karras_sample` options).
#[derive(Args, Debug)]
pub struct OdeArgs {
    /// EDM teachers: heun (2nd order, 2N−1 network calls; the default) or euler (N calls).
    #[arg(long, value_enum)]
    pub sampler: Option<SamplerArg>,
    /// Stochastic churn S_churn (0 = the deterministic ODE). With churn every step draws noise:
    /// a --noise file then holds 1 + N draws (entry i ≥ 1 before step i).
    #[arg(long, allow_negative_numbers = true)]
    pub s_churn: Option<f64>,
    /// Churn applies only at σ ≥ S_tmin.
    #[arg(long, allow_negative_numbers = true)]
    pub s_tmin: Option<f64>,
    /// Churn applies only at σ ≤ S_tmax.
    #[arg(long, allow_negative_numbers = true)]
    pub s_tmax: Option<f64>,
    /// Scale of the churn's noise draws.
    #[arg(long, allow_negative_numbers = true)]
    pub s_noise: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SamplerArg {
    Heun,
    Euler,
}

impl OdeArgs {
    /// An EDM teacher's sampler as the recipe records it (None: deterministic Heun, the default);
    /// refused for a consistency model when any option was given.
    fn sampler(&self, cfg: &ModelConfig) -> Result<Option<Sampler>> {
        let given = self.sampler.is_some()
            || self.s_churn.is_some()
            || self.s_tmin.is_some()
            || self.s_tmax.is_some()
            || self.s_noise.is_some();
        if !given {
            return Ok(None);
        }
        if cfg.sampling.parameterization == Parameterization::Consistency {
            bail!(
                "{} is a consistency model: --sampler and --s-* are for EDM teachers (see --parameterization)",
                cfg.name
            );
        }
        let d = Sampler::default();
        let sampler = Sampler {
            euler: self.sampler == Some(SamplerArg::Euler),
            s_churn: self.s_churn.unwrap_or(d.s_churn),
            s_tmin: self.s_tmin.unwrap_or(d.s_tmin),
            // ∞ (churn at every σ) is no upper bound
            s_tmax: self.s_tmax.or(d.s_tmax).filter(|t| *t != f64::INFINITY),
            s_noise: self.s_noise.unwrap_or(d.s_noise),
        };
        let finite = |v: f64| v.is_finite() && v >= 0.0;
        if !finite(sampler.s_churn) || !finite(sampler.s_noise) || !finite(sampler.s_tmin) {
            bail!("--s-churn, --s-noise and --s-tmin must be finite numbers, 0 or more");
        }
        // S_tmax may be infinite, never NaN, never below S_tmin
        if let Some(t) = self.s_tmax
            && (t.is_nan() || t < sampler.s_tmin)
        {
            bail!("--s-tmax {t} must be at least --s-tmin {}", sampler.s_tmin);
        }
        Ok(Some(sampler))
    }
}

/// Options every sampling command shares.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Class for the whole batch, or one per sample (`3,7`), by number or name (`smileys`,
    /// `"king penguin"`). Class-conditional models only. When omitted, `generate` and `interpolate`
    /// draw labels from the seed; `edit` uses the app's default class (the built-in model's
    /// Smileys & Emotion, else class 0).
    #[arg(long, value_delimiter = ',')]
    pub class: Option<Vec<String>>,
    /// Style, for a model with styles (the built-in emoji models: noto, twemoji, openmoji, fluent,
    /// fluent-flat), by name or number; one for the batch or one per sample. When omitted, each
    /// sample's style comes from its seed (seed mod the number of styles).
    #[arg(long, value_delimiter = ',')]
    pub style: Option<Vec<String>>,
    /// Latent models (Stable Diffusion LCMs): what to paint.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Latent models with classifier-free guidance (SD + LCM-LoRA): what to paint away from.
    #[arg(long)]
    pub negative_prompt: Option<String>,
    /// Latent models: the guidance scale (default: the model's, 8 for an LCM, 1.5 with a LoRA).
    #[arg(long)]
    pub guidance: Option<f64>,
    /// Seed of the noise (sample i of a batch uses seed + i).
    #[arg(long, default_value_t = 0, conflicts_with = "noise")]
    pub seed: u64,
    /// Replay noise: safetensors with f32 `noise` [S, B, 3, H, W] (a latent model's: [S, B, 4, h, w],
    /// entry 0 the initial latents, entry i the draw after step i); replaces every random draw.
    #[arg(long)]
    pub noise: Option<PathBuf>,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// The convolutions' number format on the CPU: f32, or bf16 (CPUs with AVX512-BF16 only; faster,
    /// results within about 1 % — see BENCHMARKS.md). Normalisation and sampling stay f32.
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Output: .png (a batch becomes a grid, row-major) or .safetensors (f32 `image` [B, 3, H, W]).
    #[arg(short, long)]
    pub output: PathBuf,
    /// PNG and GIF outputs: every pixel enlarged to an N×N block (1…16), so a 32² emoji stays crisp
    /// at ×8. Tensor outputs keep the model's size.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub scale: u8,
}

impl RunArgs {
    /// The options of a run that only writes `output` (at `scale`): what `rerun` writes with.
    fn for_output(output: &Path, scale: usize, device: &str) -> Self {
        Self {
            class: None,
            style: None,
            prompt: None,
            negative_prompt: None,
            guidance: None,
            seed: 0,
            noise: None,
            device: device.to_string(),
            precision: Precision::F32,
            output: output.to_path_buf(),
            scale: scale.clamp(1, 16) as u8,
        }
    }
}

#[derive(Args, Debug)]
pub struct AppArgs {
    /// A picture (PNG or JPEG) to open at start, at its own size.
    pub picture: Option<PathBuf>,
    /// Weights to open at start (default: the built-in emoji model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// The convolutions' number format on the CPU: f32 or bf16 (see `generate --help`).
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Store weights as f16 (computation stays f32).
    #[arg(long)]
    pub f16: bool,
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command.unwrap_or(Command::App(AppArgs {
        picture: None,
        model: None,
        device: "auto".into(),
        precision: Precision::F32,
    })) {
        #[cfg(feature = "app")]
        Command::App(args) => {
            crate::app::run(args.model, args.picture, &args.device, args.precision)
        }
        #[cfg(not(feature = "app"))]
        Command::App(_) => bail!("this cmpaint was built without the app (cargo feature `app`)"),
        Command::Generate(args) => generate::run(args),
        Command::Edit(args) => edit::run(args),
        Command::Interpolate(args) => interpolate::run(args),
        Command::Info(args) => info::run_info(args),
        Command::Rerun(args) => rerun::run(args),
        Command::Convert(args) => info::run_convert(args),
        Command::Presets => {
            for p in presets() {
                let ts = p
                    .sampling
                    .ts
                    .as_ref()
                    .map(|t| format!("{t:?}"))
                    .unwrap_or_else(|| "none".into());
                println!(
                    "{:22} {}px  N={:<3} ts={ts}",
                    p.name, p.unet.image_size, p.sampling.steps
                );
            }
            Ok(())
        }
    }
}

/// Where `--model`, `--config` and `--parameterization` say the model comes from.
fn model_source(args: &ModelArgs) -> Result<ModelSource> {
    let config = match &args.config {
        None => None,
        Some(c) => Some(match preset(c) {
            Some(p) => (p, PathBuf::from(format!("preset {c}"))),
            None => (read_config_file(Path::new(c))?, PathBuf::from(c)),
        }),
    };
    Ok(ModelSource {
        file: args.model.clone(),
        config,
        parameterization: args.parameterization.map(Into::into),
        lora: args.lora.clone(),
    })
}

/// A model loaded for sampling, and its device.
struct Loaded {
    model: AnyModel,
    device: Device,
}

impl Loaded {
    /// The pixel-space model, or why `what` needs one.
    fn pixel(&self, what: &str) -> Result<&LoadedModel> {
        Ok(self.model.pixel(what)?)
    }

    fn info(&self) -> &job::ModelInfo {
        self.model.info()
    }

    /// The LoRA merged into a latent model's UNet.
    fn lora(&self) -> Option<&Path> {
        match &self.model {
            AnyModel::Latent(m) => m
                .pipeline
                .parts
                .iter()
                .find(|p| p.name == "lora")
                .map(|p| p.file.as_path()),
            AnyModel::Pixel(_) => None,
        }
    }
}

/// Checks the output path first (so a typo costs no model load), then opens and loads the model.
fn load(model: &ModelArgs, run: &RunArgs) -> Result<Loaded> {
    output_kind(&run.output)?;
    let device = select_device(&run.device)?;
    eprintln!(
        "device: {}",
        if device.is_cuda() { "cuda:0" } else { "cpu" }
    );
    let model = load_any(&model_source(model)?, &device, run.precision)?;
    Ok(Loaded { model, device })
}

/// A model on the device `--device` names (f32), as `rerun` loads the recipe's.
fn load_model_for(source: &ModelSource, device: &str) -> Result<Loaded> {
    let device = select_device(device)?;
    let model = load_any(source, &device, Precision::F32)?;
    Ok(Loaded { model, device })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputKind {
    Png,
    Tensor,
    /// Animations only (`interpolate --frames`).
    Gif,
}

fn output_kind(path: &Path) -> Result<OutputKind> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_lowercase)
        .as_deref()
    {
        Some("png") => Ok(OutputKind::Png),
        Some("safetensors") => Ok(OutputKind::Tensor),
        Some("gif") => Ok(OutputKind::Gif),
        _ => bail!(
            "{}: the output must end in .png, .safetensors (or .gif for an animation)",
            path.display()
        ),
    }
}

/// The kind of a picture output (.png or .safetensors; a .gif is for animations), checked with
/// `--scale` before any work so that a wrong name costs nothing.
fn picture_output(run: &RunArgs) -> Result<OutputKind> {
    let path = &run.output;
    match output_kind(path)? {
        OutputKind::Gif => bail!(
            "{}: a .gif output is for animations (interpolate --frames K); write .png",
            path.display()
        ),
        OutputKind::Tensor if run.scale > 1 => {
            bail!("--scale is for .png and .gif outputs; a tensor output keeps the model's size")
        }
        kind => Ok(kind),
    }
}

/// Writes `[B, 3, H, W]` in [−1, 1] to `run.output`: a tensor image, one PNG grid, or numbered PNGs
/// (`separate`), PNGs enlarged by `--scale`. Each PNG carries the recipes of its images (`recipes`,
/// one per image; a grid holds those of its cells), so `cmpaint rerun` makes it again.
fn write_output(run: &RunArgs, x: &Tensor, separate: bool, recipes: &[Recipe]) -> Result<()> {
    let batch = x.dim(0)?;
    let path = &run.output;
    let kind = picture_output(run)?;
    if kind == OutputKind::Tensor {
        write_tensor_image(path, &x.clamp(-1f32, 1f32)?)?;
        eprintln!("wrote {} ({:?} f32)", path.display(), x.dims());
        return Ok(());
    }
    let images = (0..batch)
        .map(|i| Ok(tensor_to_rgb8(&x.get(i)?)?.enlarged(run.scale as usize)))
        .collect::<Result<Vec<_>>>()?;
    if separate && batch > 1 {
        let stem = path.with_extension("");
        for (i, img) in images.iter().enumerate() {
            let path = PathBuf::from(format!("{}_{i:03}.png", stem.display()));
            write_png_with_recipes(&path, img, &recipes[i..=i], run.scale)?;
            eprintln!("wrote {}", path.display());
        }
    } else {
        write_png_with_recipes(path, &grid(&images), recipes, run.scale)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs a planned recipe with a progress bar (`what` it is doing), says what it cost, and writes the
/// images with each one's recipe.
fn run_and_write(
    m: &Loaded,
    recipe: &Recipe,
    opts: RunOptions,
    what: &str,
    run: &RunArgs,
    separate: bool,
) -> Result<()> {
    let p = m.info().parameterization();
    let (batch, labels, styles) = (opts.batch, opts.labels.clone(), opts.styles.clone());
    let bar = progress(recipe_steps(recipe, p), what);
    let started = std::time::Instant::now();
    let x = job::run(&m.model, &m.device, recipe, opts, &mut on_step(&bar))?
        .with_context(|| format!("{what} was cancelled"))?;
    bar.finish_and_clear();
    report_cost(network_calls(recipe, p), started);
    let n_styles = m.info().styles.len();
    let recipes = per_image(
        recipe,
        batch,
        labels.as_deref(),
        styles.as_deref(),
        n_styles,
    );
    write_output(run, &x, separate, &recipes)
}

/// A PNG with its images' recipes (none where the run had none to give).
fn write_png_with_recipes(path: &Path, img: &Rgb8, recipes: &[Recipe], scale: u8) -> Result<()> {
    let grid = (!recipes.is_empty()).then(|| GridRecipe::new(recipes, scale as usize));
    let bytes = encode_png_grid(img, grid.as_ref())?;
    write_bytes(path, &bytes).map_err(|e| anyhow::anyhow!("cannot write PNG: {e}"))
}

/// The replayed noise file a recipe names (`--noise`), with its hash.
fn noise_file(run: &RunArgs) -> Result<Option<FileRef>> {
    let Some(path) = &run.noise else {
        return Ok(None);
    };
    Ok(Some(FileRef {
        role: FileRole::Noise,
        path: path.display().to_string(),
        sha256: sha256_file(path)?,
    }))
}

/// What a class-conditional model's labels are when `--class` is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unlabelled {
    /// Drawn from the seed (generate, interpolate: variety).
    FromSeed,
    /// The app's default class (edits: the picture is the user's, its class should not be random).
    AppDefault,
}

/// Labels from --class (one for all, or one per sample; numbers or names), else as `unlabelled`
/// says: drawn from the seed (ChaCha20 seeded with the seed, uniform over the classes), or the
/// app's default class.
fn class_labels(
    run: &RunArgs,
    cfg: &ModelConfig,
    batch: usize,
    unlabelled: Unlabelled,
) -> Result<Option<Vec<u32>>> {
    let Some(n_classes) = cfg.classes() else {
        if run.class.is_some() {
            bail!("{} is not class-conditional: drop --class", cfg.name);
        }
        return Ok(None);
    };
    let names = crate::labels::class_names(&cfg.name, Some(n_classes));
    let given = match &run.class {
        Some(c) => Some(
            c.iter()
                .map(|c| crate::labels::resolve_class(&names, c))
                .collect::<Result<Vec<u32>, String>>()
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let labels = match given {
        Some(c) if c.len() == 1 => vec![c[0]; batch],
        Some(c) if c.len() == batch => c,
        Some(c) => bail!(
            "{} class labels for a batch of {batch}: give one, or one per sample",
            c.len()
        ),
        None if unlabelled == Unlabelled::AppDefault => {
            let c = crate::labels::default_class(&names);
            eprintln!(
                "class: {c} {} (the default; --class sets another)",
                names[c as usize]
            );
            vec![c; batch]
        }
        None if run.noise.is_some() => {
            bail!("a replay (--noise) of a class-conditional model needs --class")
        }
        None => {
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(run.seed);
            let labels: Vec<u32> = (0..batch)
                .map(|_| rng.random_range(0..n_classes as u32))
                .collect();
            eprintln!("class labels (from the seed): {labels:?}");
            labels
        }
    };
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= n_classes) {
        bail!(
            "class {bad} is out of range: the model has classes 0..{}",
            n_classes - 1
        );
    }
    Ok(Some(labels))
}

/// Styles from --style (one for all, or one per sample; names or numbers); None: each sample's
/// from its seed.
fn styles(run: &RunArgs, cfg: &ModelConfig, batch: usize) -> Result<Option<Vec<u32>>> {
    let Some(given) = &run.style else {
        return Ok(None);
    };
    if cfg.styles.is_empty() {
        bail!("{} has no styles: drop --style", cfg.name);
    }
    let resolved = given
        .iter()
        .map(|g| crate::labels::resolve_class(&cfg.styles, g))
        .collect::<Result<Vec<u32>, String>>()
        .map_err(|e| {
            let e = e.replace("class", "style");
            anyhow::anyhow!("{e}; the model's styles: {}", cfg.styles.join(", "))
        })?;
    match resolved.len() {
        1 => Ok(Some(vec![resolved[0]; batch])),
        n if n == batch => Ok(Some(resolved)),
        n => bail!("{n} styles for a batch of {batch}: give one, or one per sample"),
    }
}

/// `--steps N` checked against the grid's bounds (the samplers index N − 1 and divide by it).
fn checked_steps(steps: Option<usize>) -> Result<Option<usize>> {
    match steps {
        Some(n) if !(2..=MAX_STEPS).contains(&n) => {
            bail!("--steps {n}: the grid needs 2…{MAX_STEPS} points")
        }
        n => Ok(n),
    }
}

/// Refuses, before any tensor of the run exists, a batch whose activations would not fit in free
/// memory (the app's worker checks the same).
fn check_memory(cfg: &ModelConfig, batch: usize, side: usize) -> Result<()> {
    Ok(check_run_memory(&cfg.unet, batch, side)?)
}

/// A progress bar over network calls, drawn on stderr (hidden when it is not a terminal).
fn progress(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps {elapsed}")
            .expect("valid template"),
    );
    bar.set_message(what.to_string());
    bar
}

fn on_step(bar: &ProgressBar) -> impl FnMut(Step) -> ControlFlow<()> + '_ {
    |step| {
        bar.set_position(step.done as u64);
        ControlFlow::Continue(())
    }
}

/// The line every sampling command ends with, so a teacher and a student are easy to set side by side.
fn report_cost(calls: usize, started: std::time::Instant) {
    eprintln!(
        "{calls} network call{} in {:.2} s",
        if calls == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64()
    );
}

/// Draws replayed from a `--noise` file.
type Replay = Box<dyn NoiseSource>;

/// The replayed noise a run draws from (checked to hold `draws` draws of a usable shape), None for
/// the seed's. `shape` is the draw shape the run wants; with a replay file the batch and, when
/// `free_size` is set, the image size come from the file instead.
fn noise_source(
    run: &RunArgs,
    shape: [usize; 4],
    free_size: Option<usize>,
    draws: usize,
) -> Result<(Option<Replay>, [usize; 4])> {
    let Some(path) = &run.noise else {
        return Ok((None, shape));
    };
    let replay = ReplayNoise::load(path)?;
    let s = replay.draw_shape().to_vec();
    let fits = match free_size {
        Some(factor) => {
            s.len() == 4 && s[1] == shape[1] && s[2] % factor == 0 && s[3] % factor == 0
        }
        None => s.len() == 4 && s[1..] == shape[1..],
    };
    if !fits {
        let want = match free_size {
            Some(factor) => format!(
                "[B, {}, H, W] with H and W divisible by the model's {factor}× downsampling",
                shape[1]
            ),
            None => format!("[B, {}, {}, {}]", shape[1], shape[2], shape[3]),
        };
        bail!(
            "{}: draws of shape {s:?}; this run needs {want}",
            path.display()
        );
    }
    if replay.len() < draws {
        bail!(
            "{}: holds {} draw(s), this run needs {draws}",
            path.display(),
            replay.len()
        );
    }
    Ok((Some(Box::new(replay)), [s[0], s[1], s[2], s[3]]))
}
