//! The command line: `cmpaint generate | info | convert`, over the same engine the app uses.

use crate::engine::cm::noise::{NoiseSource, ReplayNoise, SeededNoise};
use crate::engine::image::{grid, tensor_to_rgb8, write_png, write_tensor_image};
use crate::engine::model::load::{Checkpoint, activation_bytes, read_config_file, save_project};
use crate::engine::model::spec::{ModelConfig, preset, presets};
use crate::engine::pipeline::{GenerateRequest, generate};
use crate::engine::select_device;
use anyhow::{Context, Result, bail};
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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate images from noise in one step (or a few with --ts / --multistep).
    Generate(GenerateArgs),
    /// Print a model's inferred configuration, parameter count and memory need.
    Info(ModelArgs),
    /// Write a model in the project's safetensors format (config in the metadata).
    Convert(ConvertArgs),
    /// List the presets for the released checkpoints.
    Presets,
}

#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Weights: an OpenAI .pt, safetensors (openai names or the project's own), or a diffusers folder.
    #[arg(long)]
    pub model: PathBuf,
    /// A JSON model config file, or the name of a preset (see `cmpaint presets`); overrides what the
    /// file says or what is inferred from it.
    #[arg(long)]
    pub config: Option<String>,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Class label for the whole batch, or one per sample (`3,7`). Class-conditional models only;
    /// when omitted, labels are drawn from the seed.
    #[arg(long, value_delimiter = ',')]
    pub class: Option<Vec<u32>>,
    /// Number of images.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Seed of the noise (sample i of the batch uses seed + i).
    #[arg(long, default_value_t = 0, conflicts_with = "noise")]
    pub seed: u64,
    /// Replay noise: safetensors with f32 `noise` [S, B, 3, H, W] (entry 0 initial, then one per step).
    #[arg(long)]
    pub noise: Option<PathBuf>,
    /// Grid size N the --ts indices refer to (default: the model's).
    #[arg(long, requires = "ts")]
    pub steps: Option<usize>,
    /// Multistep time indices on the N-point grid, e.g. 0,22,39 (index 0 = σ_max).
    #[arg(long, value_delimiter = ',', conflicts_with = "multistep")]
    pub ts: Option<Vec<usize>>,
    /// Multistep with the model's tuned ts list (e.g. 0,22,39 for ImageNet-64 CD).
    #[arg(long)]
    pub multistep: bool,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Write one PNG per image (OUT_000.png, OUT_001.png, …) instead of a grid.
    #[arg(long)]
    pub separate: bool,
    /// Output: .png (a batch becomes a grid, row-major) or .safetensors (f32 `image` [B, 3, H, W]).
    #[arg(short, long)]
    pub output: PathBuf,
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
    match cli.command {
        Command::Generate(args) => run_generate(args),
        Command::Info(args) => run_info(args),
        Command::Convert(args) => run_convert(args),
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

fn open_checkpoint(args: &ModelArgs) -> Result<Checkpoint> {
    let config = match &args.config {
        None => None,
        Some(c) => Some(match preset(c) {
            Some(p) => (p, PathBuf::from(format!("preset {c}"))),
            None => (read_config_file(Path::new(c))?, PathBuf::from(c)),
        }),
    };
    Ok(Checkpoint::open(&args.model, config)?)
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn run_info(args: ModelArgs) -> Result<()> {
    let ck = open_checkpoint(&args)?;
    let c = &ck.config;
    println!("model:        {}", ck.path.display());
    println!("format:       {}", ck.format);
    println!("config from:  {}", ck.config_source);
    println!("name:         {}", c.name);
    println!("{}", serde_json::to_string_pretty(c)?);
    println!("parameters:   {}", c.unet.parameter_count());
    println!("file tensors: {}", mib(ck.stored_bytes));
    println!(
        "memory (f32): weights {}, activations ≈ {} per image at {}²",
        mib(ck.f32_bytes()),
        mib(activation_bytes(&c.unet, 1)),
        c.unet.image_size
    );
    Ok(())
}

fn run_convert(args: ConvertArgs) -> Result<()> {
    let ck = open_checkpoint(&args.model)?;
    let mut tensors = ck.load_tensors(&candle_core::Device::Cpu)?;
    if args.f16 {
        for t in tensors.values_mut() {
            *t = t.to_dtype(candle_core::DType::F16)?;
        }
    }
    save_project(&args.output, &ck.config, &tensors)?;
    eprintln!(
        "wrote {} ({}, {} tensors)",
        args.output.display(),
        ck.config.name,
        tensors.len()
    );
    Ok(())
}

/// The ts list to sample with: explicit, the model's tuned list, or None for one step.
fn resolve_ts(args: &GenerateArgs, cfg: &ModelConfig) -> Result<(Option<Vec<usize>>, usize)> {
    let steps = args.steps.unwrap_or(cfg.sampling.steps);
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

fn run_generate(args: GenerateArgs) -> Result<()> {
    let ext = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_lowercase();
    if ext != "png" && ext != "safetensors" {
        bail!(
            "{}: the output must end in .png or .safetensors",
            args.output.display()
        );
    }
    let device = select_device(&args.device)?;
    eprintln!(
        "device: {}",
        if device.is_cuda() { "cuda:0" } else { "cpu" }
    );
    let ck = open_checkpoint(&args.model)?;
    let cfg = ck.config.clone();
    let unet = ck.load(&device)?;
    let (ts, steps) = resolve_ts(&args, &cfg)?;

    let size = cfg.unet.image_size;
    let (mut noise, shape): (Box<dyn NoiseSource>, [usize; 4]) = match &args.noise {
        Some(path) => {
            let replay = ReplayNoise::load(path)?;
            let s = replay.draw_shape().to_vec();
            if s.len() != 4 || s[1] != cfg.unet.in_channels {
                bail!(
                    "{}: draws of shape {s:?} do not fit a {}-channel model",
                    path.display(),
                    cfg.unet.in_channels
                );
            }
            if let Some(b) = args.batch
                && b != s[0]
            {
                bail!(
                    "--batch {b} disagrees with the noise file's batch of {}",
                    s[0]
                );
            }
            let factor = 1 << (cfg.unet.channel_mult.len() - 1);
            if s[2] % factor != 0 || s[3] % factor != 0 {
                bail!(
                    "{}: a {}×{} draw is not divisible by the model's {factor}× downsampling",
                    path.display(),
                    s[3],
                    s[2]
                );
            }
            let needed = 1 + ts.as_ref().map_or(0, |t| t.len() - 1);
            if replay.len() < needed {
                bail!(
                    "{}: holds {} draw(s), this run needs {needed}",
                    path.display(),
                    replay.len()
                );
            }
            (Box::new(replay), [s[0], s[1], s[2], s[3]])
        }
        None => {
            let b = args.batch.unwrap_or(1);
            if b == 0 {
                bail!("--batch must be at least 1");
            }
            (
                Box::new(SeededNoise::new(args.seed, b)),
                [b, cfg.unet.in_channels, size, size],
            )
        }
    };
    let batch = shape[0];

    let labels = class_labels(&args, &cfg, batch)?;
    if let Some(l) = &labels
        && args.class.is_none()
    {
        eprintln!("class labels (from the seed): {l:?}");
    }

    let n_calls = ts.as_ref().map_or(1, |t| t.len() - 1);
    let bar = ProgressBar::new(n_calls as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps {elapsed}")
            .expect("valid template"),
    );
    bar.set_message("sampling");
    let req = GenerateRequest {
        shape,
        class_labels: labels.as_deref(),
        ts: ts.as_deref(),
        steps,
    };
    let mut on_step = |i: usize, _n: usize| {
        bar.set_position(i as u64);
        ControlFlow::Continue(())
    };
    let x = generate(
        &unet,
        &cfg.sampling,
        &req,
        noise.as_mut(),
        &device,
        &mut on_step,
    )?
    .context("sampling was cancelled")?;
    bar.finish_and_clear();

    if ext == "safetensors" {
        write_tensor_image(&args.output, &x)?;
        eprintln!(
            "wrote {} ({batch}×3×{}×{} f32)",
            args.output.display(),
            shape[2],
            shape[3]
        );
        return Ok(());
    }
    let images = (0..batch)
        .map(|i| tensor_to_rgb8(&x.get(i)?))
        .collect::<Result<Vec<_>, _>>()?;
    if args.separate && batch > 1 {
        let stem = args.output.with_extension("");
        for (i, img) in images.iter().enumerate() {
            let path = PathBuf::from(format!("{}_{i:03}.png", stem.display()));
            write_png(&path, img)?;
            eprintln!("wrote {}", path.display());
        }
    } else {
        write_png(&args.output, &grid(&images))?;
        eprintln!("wrote {}", args.output.display());
    }
    Ok(())
}

/// Labels from --class (one for all, or one per sample), or drawn from the seed for a
/// class-conditional model (ChaCha20 seeded with the seed, uniform over the classes).
fn class_labels(args: &GenerateArgs, cfg: &ModelConfig, batch: usize) -> Result<Option<Vec<u32>>> {
    let Some(n_classes) = cfg.unet.num_classes else {
        if args.class.is_some() {
            bail!("{} is not class-conditional: drop --class", cfg.name);
        }
        return Ok(None);
    };
    let labels = match &args.class {
        Some(c) if c.len() == 1 => vec![c[0]; batch],
        Some(c) if c.len() == batch => c.clone(),
        Some(c) => bail!(
            "{} class labels for a batch of {batch}: give one, or one per sample",
            c.len()
        ),
        None if args.noise.is_some() => {
            bail!("a replay (--noise) of a class-conditional model needs --class")
        }
        None => {
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(args.seed);
            (0..batch)
                .map(|_| rng.random_range(0..n_classes as u32))
                .collect()
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
