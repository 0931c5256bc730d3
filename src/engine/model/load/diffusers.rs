//! diffusers `UNet2DModel` folders: the config, the scheduler's grid, and which diffusers tensors
//! make each openai weight (cm_reference §f.5).

use super::{bad_config, not_a_checkpoint, read_config_text};
use crate::engine::error::Result;
use crate::engine::model::config::{BlockKind, UNetConfig};
use crate::engine::model::spec::SamplingConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub(super) fn diffusers_paths(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    for base in [dir.join("unet"), dir.to_path_buf()] {
        let weights = base.join("diffusion_pytorch_model.safetensors");
        let config = base.join("config.json");
        if weights.is_file() && config.is_file() {
            return Ok((weights, config));
        }
    }
    Err(not_a_checkpoint(
        dir,
        "a folder, but not a diffusers model: expected config.json and diffusion_pytorch_model.safetensors (here or in unet/)",
    ))
}

#[derive(serde::Deserialize)]
struct DiffusersUNetConfig {
    sample_size: usize,
    #[serde(default = "three")]
    in_channels: usize,
    #[serde(default = "three")]
    out_channels: usize,
    layers_per_block: usize,
    block_out_channels: Vec<usize>,
    down_block_types: Vec<String>,
    up_block_types: Vec<String>,
    attention_head_dim: Option<usize>,
    num_class_embeds: Option<usize>,
    #[serde(default)]
    resnet_time_scale_shift: Option<String>,
    #[serde(default)]
    norm_num_groups: Option<usize>,
    #[serde(default)]
    time_embedding_type: Option<String>,
    #[serde(default)]
    flip_sin_to_cos: Option<bool>,
    #[serde(default)]
    freq_shift: Option<f64>,
    #[serde(default)]
    downsample_type: Option<String>,
    #[serde(default)]
    upsample_type: Option<String>,
    #[serde(default)]
    attn_norm_num_groups: Option<usize>,
    #[serde(default)]
    mid_block_scale_factor: Option<f64>,
    #[serde(default)]
    add_attention: Option<bool>,
}

fn three() -> usize {
    3
}

pub(super) fn read_diffusers_config(path: &Path) -> Result<UNetConfig> {
    let text = read_config_text(path)?;
    let c: DiffusersUNetConfig =
        serde_json::from_str(&text).map_err(|e| bad_config(path, e.to_string()))?;
    let unsupported =
        |what: String| bad_config(path, format!("unsupported UNet2DModel setting: {what}"));
    if c.norm_num_groups.unwrap_or(32) != 32 {
        return Err(unsupported(format!(
            "norm_num_groups {}",
            c.norm_num_groups.unwrap_or(0)
        )));
    }
    if c.time_embedding_type.as_deref().unwrap_or("positional") != "positional"
        || !c.flip_sin_to_cos.unwrap_or(true)
        || c.freq_shift.unwrap_or(0.0) != 0.0
    {
        return Err(unsupported(
            "a time embedding other than positional, cos-first, shift 0".into(),
        ));
    }
    let mc = *c
        .block_out_channels
        .first()
        .ok_or_else(|| bad_config(path, "empty block_out_channels"))?;
    if c.block_out_channels.iter().any(|&b| mc == 0 || b % mc != 0) {
        return Err(unsupported(format!(
            "block_out_channels {:?} (not multiples of the first)",
            c.block_out_channels
        )));
    }
    let levels = c.block_out_channels.len();
    if c.down_block_types.len() != levels || c.up_block_types.len() != levels {
        return Err(bad_config(
            path,
            "down/up block type lists must have one entry per level",
        ));
    }
    // Residual (BigGAN) resamplers: the Resnet*sample blocks, and the Attn blocks with a "resnet"
    // down/upsample_type (what diffusers' consistency-model converter writes).
    let residual = |t: &str| match t {
        "ResnetDownsampleBlock2D" | "ResnetUpsampleBlock2D" => Ok(true),
        "DownBlock2D" | "UpBlock2D" => Ok(false),
        "AttnDownBlock2D" => Ok(c.downsample_type.as_deref().unwrap_or("conv") == "resnet"),
        "AttnUpBlock2D" => Ok(c.upsample_type.as_deref().unwrap_or("conv") == "resnet"),
        other => Err(unsupported(format!("block type {other}"))),
    };
    // The last level has no downsampler and the first no upsampler: they say nothing.
    let kinds = c.down_block_types[..levels - 1]
        .iter()
        .chain(&c.up_block_types[..levels - 1])
        .map(|t| residual(t))
        .collect::<Result<Vec<_>>>()?;
    if kinds
        .iter()
        .any(|&k| k != kinds.first().copied().unwrap_or(true))
    {
        return Err(unsupported("a mix of residual and conv resamplers".into()));
    }
    let shift = c.resnet_time_scale_shift.as_deref().unwrap_or("default");
    if shift != "default" && shift != "scale_shift" {
        return Err(unsupported(format!("resnet_time_scale_shift {shift}")));
    }
    // diffusers drops the mid-block attention's GroupNorm for scale-shift models unless
    // attn_norm_num_groups is set; the openai network always has it.
    if c.add_attention == Some(false)
        || (shift == "scale_shift" && c.attn_norm_num_groups.is_none())
    {
        return Err(unsupported(
            "a mid block without its normalised attention (set attn_norm_num_groups: 32)".into(),
        ));
    }
    if c.mid_block_scale_factor.unwrap_or(1.0) != 1.0 {
        return Err(unsupported("mid_block_scale_factor other than 1".into()));
    }
    let attention_ds: Vec<usize> = (0..levels)
        .filter(|&i| c.down_block_types[i].starts_with("Attn"))
        .map(|i| 1 << i)
        .collect();
    let mirrored = (0..levels).all(|i| {
        c.up_block_types[levels - 1 - i].starts_with("Attn") == attention_ds.contains(&(1 << i))
    });
    if !mirrored {
        return Err(unsupported(
            "attention in up blocks that does not mirror the down blocks".into(),
        ));
    }
    Ok(UNetConfig {
        image_size: c.sample_size,
        in_channels: c.in_channels,
        out_channels: c.out_channels,
        model_channels: mc,
        channel_mult: c.block_out_channels.iter().map(|b| b / mc).collect(),
        num_res_blocks: c.layers_per_block,
        attention_ds,
        num_head_channels: c.attention_head_dim.unwrap_or(64),
        use_scale_shift_norm: shift == "scale_shift",
        resblock_updown: kinds.first().copied().unwrap_or(true),
        num_classes: c.num_class_embeds,
    })
}

/// The scheduler's grid, when the folder is a whole pipeline with `scheduler/scheduler_config.json`.
pub(super) fn read_diffusers_schedule(dir: &Path) -> Option<SamplingConfig> {
    #[derive(serde::Deserialize)]
    struct Sched {
        num_train_timesteps: usize,
        sigma_min: Option<f64>,
        sigma_max: Option<f64>,
        sigma_data: Option<f64>,
        rho: Option<f64>,
    }
    let candidates = [
        dir.join("scheduler/scheduler_config.json"),
        dir.join("../scheduler/scheduler_config.json"),
    ];
    let text = candidates.iter().find_map(|p| read_config_text(p).ok())?;
    let s: Sched = serde_json::from_str(&text).ok()?;
    let mut cfg = SamplingConfig::with_grid(s.num_train_timesteps, None);
    cfg.sigma_min = s.sigma_min.unwrap_or(cfg.sigma_min);
    cfg.sigma_max = s.sigma_max.unwrap_or(cfg.sigma_max);
    cfg.sigma_data = s.sigma_data.unwrap_or(cfg.sigma_data);
    cfg.rho = s.rho.unwrap_or(cfg.rho);
    Some(cfg)
}

/// For every openai weight, the diffusers tensor(s) it comes from (cm_reference §f.5 mapping rules).
pub fn diffusers_sources(cfg: &UNetConfig) -> HashMap<String, Vec<String>> {
    let mut prefixes: Vec<(String, String, Option<BlockKind>)> = vec![
        (
            "time_embed.0".into(),
            "time_embedding.linear_1".into(),
            None,
        ),
        (
            "time_embed.2".into(),
            "time_embedding.linear_2".into(),
            None,
        ),
        ("label_emb".into(), "class_embedding".into(), None),
        ("input_blocks.0.0".into(), "conv_in".into(), None),
        ("out.0".into(), "conv_norm_out".into(), None),
        ("out.2".into(), "conv_out".into(), None),
    ];
    for spec in cfg.layout().all_blocks() {
        prefixes.push((spec.openai.clone(), spec.diffusers.clone(), Some(spec.kind)));
    }
    let mut map = HashMap::new();
    for (name, _) in cfg.expected_weights() {
        let (op, dp, kind) = prefixes
            .iter()
            .filter(|(op, _, _)| name.starts_with(&format!("{op}.")))
            .max_by_key(|(op, _, _)| op.len())
            .expect("every weight belongs to a block");
        let sub = &name[op.len() + 1..];
        let (module, param) = sub.rsplit_once('.').unwrap_or(("", sub));
        let targets: Vec<String> = match kind {
            None => vec![dp.clone()],
            Some(BlockKind::Res { .. }) => vec![format!(
                "{dp}.{}",
                match module {
                    "in_layers.0" => "norm1",
                    "in_layers.2" => "conv1",
                    "emb_layers.1" => "time_emb_proj",
                    "out_layers.0" => "norm2",
                    "out_layers.3" => "conv2",
                    "skip_connection" => "conv_shortcut",
                    other => other,
                }
            )],
            Some(BlockKind::Attn { .. }) => match module {
                "norm" => vec![format!("{dp}.group_norm")],
                "qkv" => ["to_q", "to_k", "to_v"]
                    .iter()
                    .map(|m| format!("{dp}.{m}"))
                    .collect(),
                "proj_out" => vec![format!("{dp}.to_out.0")],
                other => vec![format!("{dp}.{other}")],
            },
            Some(BlockKind::DownConv { .. } | BlockKind::UpConv { .. }) => {
                vec![format!("{dp}.conv")]
            }
        };
        map.insert(
            name.clone(),
            targets
                .into_iter()
                .map(|t| format!("{t}.{param}"))
                .collect(),
        );
    }
    map
}
