//! `cmpaint info` and `cmpaint convert`: what a weight file holds, and the project's own format. The
//! two commands that read the engine's model files directly rather than through the job layer.

use super::{ConvertArgs, ModelArgs, model_source};
use crate::engine::latent::pipeline::inspect;
use crate::engine::model::load::{Checkpoint, activation_bytes, save_project};
use crate::engine::model::spec::Parameterization;
use anyhow::Result;
use candle_core::Device;
use clap::Args;
use std::path::{Path, PathBuf};

fn open_checkpoint(args: &ModelArgs) -> Result<Checkpoint> {
    Ok(model_source(args)?.open()?)
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A PNG the app or the CLI wrote: print the recipe inside it instead.
    pub picture: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// A picture's recipes, one line per cell, then the shared settings in full (embedded pictures
/// shortened to their hashes).
fn print_recipes(path: &Path) -> Result<()> {
    let grid = super::rerun::read_recipes(path)?;
    let recipes = grid.recipes();
    println!(
        "{}: {} image{}{}",
        path.display(),
        recipes.len(),
        if recipes.len() == 1 { "" } else { "s" },
        if grid.scale > 1 {
            format!(", each enlarged ×{}", grid.scale)
        } else {
            String::new()
        }
    );
    for r in &recipes {
        println!("  {}", r.describe());
    }
    if let Some(strip) = &grid.strip {
        let alphas: Vec<String> = strip.alphas.iter().map(|a| format!("{a:.3}")).collect();
        println!(
            "an animation of {} frames at {} fps, α {}",
            alphas.len(),
            strip.fps,
            alphas.join(", ")
        );
    }
    let mut shown = serde_json::to_value(&grid.recipe)?;
    for key in ["input", "mask"] {
        if let Some(img) = shown.get_mut(key).filter(|v| !v.is_null()) {
            let sha = img["sha256"].clone();
            *img = serde_json::json!({ "sha256": sha, "png_base64": "…" });
        }
    }
    println!("{}", serde_json::to_string_pretty(&shown)?);
    if let Some(file) = &grid.recipe.model.file {
        println!("model file: {file}");
    }
    Ok(())
}

pub(super) fn run_info(args: InfoArgs) -> Result<()> {
    if let Some(picture) = &args.picture {
        return print_recipes(picture);
    }
    let args = args.model;
    if let Some(dir) = args
        .model
        .as_deref()
        .filter(|d| crate::job::is_latent_model(d))
    {
        return print_latent_folder(dir, args.lora.as_deref());
    }
    let ck = open_checkpoint(&args)?;
    let c = &ck.config;
    println!("model:        {}", ck.path.display());
    println!("format:       {}", ck.format);
    println!("config from:  {}", ck.config_source);
    println!("name:         {}", c.name);
    println!(
        "parameterization: {} ({}){}",
        c.sampling.parameterization,
        ck.parameterization_source,
        match c.sampling.parameterization {
            Parameterization::Consistency => "; samples in 1 step, or a few with --ts",
            Parameterization::Edm => "; an EDM teacher: Heun over N steps (2N−1 network calls)",
        }
    );
    if !c.styles.is_empty() {
        println!(
            "styles:       {} (--style; the network's label is class·{} + style)",
            c.styles.join(", "),
            c.styles.len()
        );
    }
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

/// A Stable Diffusion folder's or single file's parts, read from configs and file headers (nothing is
/// loaded).
fn print_latent_folder(dir: &Path, lora: Option<&Path>) -> Result<()> {
    let f = inspect(dir, lora)?;
    let (u, v, t, s) = (&f.unet, &f.vae, &f.text_encoder, &f.scheduler);
    let factor = v.factor();
    println!("model:        {}", dir.display());
    println!(
        "kind:         a latent consistency model ({})",
        match (u.time_cond_proj_dim, &f.lora_layers) {
            (Some(d), _) => format!("an LCM: guidance read as a {d}-wide embedding, default 8"),
            (None, Some(n)) => format!(
                "Stable Diffusion + LoRA on {n} UNet layers: classifier-free guidance, default 1.5"
            ),
            (None, None) => {
                "no w-embedding and no LoRA: give --lora (an LCM-LoRA) unless one is merged in"
                    .into()
            }
        }
    );
    println!(
        "native size:  {}² (sides: multiples of {})",
        u.sample_size.unwrap_or(64) * factor,
        factor << u.downsamplings()
    );
    println!(
        "tokenizer:    {} tokens{}; text encoder {} layers × {} ({})",
        f.vocabulary,
        if f.single_file {
            " (CLIP's, built in: a single file holds none)"
        } else {
            ""
        },
        t.num_hidden_layers,
        t.hidden_size,
        t.hidden_act
    );
    println!(
        "unet:         channels {:?}, {} per block, cross-attention {}{}",
        u.block_out_channels,
        u.layers_per_block,
        u.cross_attention_dim,
        if u.use_linear_projection {
            ", linear projections (SD 2.x)"
        } else {
            ""
        }
    );
    println!(
        "vae:          channels {:?}, {} latent channels, scaling {}",
        v.block_out_channels, v.latent_channels, v.scaling_factor
    );
    println!(
        "scheduler:    LCM over {} of {} training steps, timestep scaling {}, {} prediction",
        s.original_inference_steps, s.num_train_timesteps, s.timestep_scaling, s.prediction_type
    );
    for p in &f.parts {
        println!(
            "{:13} {} parameters, {} ({})",
            format!("{}:", p.name),
            p.parameters,
            mib(p.bytes as usize),
            p.file.display()
        );
    }
    Ok(())
}

pub(super) fn run_convert(args: ConvertArgs) -> Result<()> {
    let ck = open_checkpoint(&args.model)?;
    let mut tensors = ck.load_tensors(&Device::Cpu)?;
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
