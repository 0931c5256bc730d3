//! Stable Diffusion 1.x as one file in the original (CompVis LDM) layout, as most model pages offer
//! it: the UNet under `model.diffusion_model.`, the VAE under `first_stage_model.`, CLIP's text model
//! under `cond_stage_model.transformer.`. It is read in place: every diffusers name a part asks for is
//! looked up under the file's own name (the renaming diffusers' `single_file_utils` does), the
//! configs come from the tensors' shapes plus what every SD 1.x shares (8 attention heads, CLIP
//! ViT-L/14's 64-wide heads, the SD 1.5 noise schedule), and the tokenizer is CLIP's own, built in.

use super::clip::ClipConfig;
use super::unet::UNetConfig;
use super::vae::VaeConfig;
use crate::engine::error::{EngineError, Result};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const UNET: &str = "model.diffusion_model.";
const VAE: &str = "first_stage_model.";
const CLIP: &str = "cond_stage_model.transformer.";

/// Whether `path` is a safetensors file holding a whole SD 1.x pipeline in the original layout
/// (only its header is read). SD 2.x (OpenCLIP under `cond_stage_model.model.`) and SDXL are not.
pub fn is_single_file(path: &Path) -> bool {
    path.is_file()
        // SAFETY: mapped read-only, only the header is read.
        && unsafe { MmapedSafetensors::new(path) }.is_ok_and(|st| {
            let names = st.tensors();
            let has = |prefix: &str| names.iter().any(|(n, _)| n.starts_with(prefix));
            has(UNET) && has(VAE) && has(&format!("{CLIP}text_model."))
        })
}

/// The mapped file and each part's diffusers names.
pub struct SingleFile {
    pub file: PathBuf,
    tensors: Arc<MmapedSafetensors>,
    shapes: HashMap<String, Vec<usize>>,
}

/// One part's weights under diffusers' names: a VarBuilder backend over the mapped file.
pub struct Renamed {
    tensors: Arc<MmapedSafetensors>,
    /// diffusers name → (the file's name, a 1×1 convolution read as a linear layer)
    names: HashMap<String, (String, bool)>,
}

impl SingleFile {
    pub fn open(file: &Path) -> Result<Self> {
        // SAFETY: mapped read-only; cmpaint never writes model files while they are loaded.
        let tensors = unsafe { MmapedSafetensors::new(file) }
            .map_err(|e| EngineError::InvalidInput(format!("{}: {e}", file.display())))?;
        let shapes = tensors
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.shape().to_vec()))
            .collect();
        Ok(Self {
            file: file.to_owned(),
            tensors: Arc::new(tensors),
            shapes,
        })
    }

    fn shape(&self, name: &str) -> Result<&[usize]> {
        self.shapes.get(name).map(Vec::as_slice).ok_or_else(|| {
            EngineError::InvalidInput(format!(
                "{}: no tensor `{name}` (not a Stable Diffusion 1.x checkpoint, or a truncated one)",
                self.file.display()
            ))
        })
    }

    fn has(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }

    /// The distinct values of the numbered path component after `prefix` (`…layers.3.…` → 3).
    fn indices(&self, prefix: &str) -> BTreeSet<usize> {
        self.shapes
            .keys()
            .filter_map(|k| k.strip_prefix(prefix)?.split('.').next()?.parse().ok())
            .collect()
    }

    fn bad(&self, why: String) -> EngineError {
        EngineError::InvalidInput(format!("{}: {why}", self.file.display()))
    }

    /// The UNet's config: its levels (channels, attention or not) from the input blocks, where a
    /// downsampling ends a level; the context width from a cross-attention's keys.
    pub fn unet_config(&self) -> Result<UNetConfig> {
        let conv_in = self.shape(&format!("{UNET}input_blocks.0.0.weight"))?;
        let out = self.shape(&format!("{UNET}out.2.weight"))?;
        let mut levels: Vec<(usize, bool, usize)> = vec![(0, false, 0)]; // channels, attention, resnets
        for i in 1.. {
            let block = format!("{UNET}input_blocks.{i}.");
            if self.has(&format!("{block}0.op.weight")) {
                levels.push((0, false, 0));
            } else if let Ok(s) = self.shape(&format!("{block}0.out_layers.3.weight")) {
                let level = levels.last_mut().expect("a level");
                level.0 = s[0];
                level.1 |= self.has(&format!("{block}1.proj_in.weight"));
                level.2 += 1;
            } else {
                break;
            }
        }
        let layers = levels[0].2;
        if layers == 0 || levels.iter().any(|l| l.2 != layers) {
            return Err(self.bad(format!(
                "the UNet's levels hold {:?} ResNet blocks; cmpaint reads the same number in each",
                levels.iter().map(|l| l.2).collect::<Vec<_>>()
            )));
        }
        let first_attention = self
            .shapes
            .iter()
            .filter(|(k, _)| k.starts_with(UNET) && k.ends_with("attn2.to_k.weight"))
            .map(|(k, s)| (k, s[1]))
            .min()
            .ok_or_else(|| self.bad("the UNet has no cross-attention".into()))?;
        let proj_in = self
            .shapes
            .iter()
            .find(|(k, _)| k.starts_with(UNET) && k.ends_with(".proj_in.weight"))
            .map(|(_, s)| s.len())
            .unwrap_or(4);
        let transformer_prefix = first_attention
            .0
            .split("transformer_blocks.")
            .next()
            .unwrap_or_default();
        let depth = self
            .indices(&format!("{transformer_prefix}transformer_blocks."))
            .len();
        let down: Vec<&str> = levels
            .iter()
            .map(|l| match l.1 {
                true => "CrossAttnDownBlock2D",
                false => "DownBlock2D",
            })
            .collect();
        let up: Vec<&str> = levels
            .iter()
            .rev()
            .map(|l| match l.1 {
                true => "CrossAttnUpBlock2D",
                false => "UpBlock2D",
            })
            .collect();
        let config = serde_json::from_value(json!({
            "in_channels": conv_in[1],
            "out_channels": out[0],
            "block_out_channels": levels.iter().map(|l| l.0).collect::<Vec<_>>(),
            "layers_per_block": layers,
            "down_block_types": down,
            "up_block_types": up,
            "cross_attention_dim": first_attention.1,
            // SD 1.x: 8 heads at every level (diffusers' `attention_head_dim` counts heads)
            "attention_head_dim": 8,
            "use_linear_projection": proj_in == 2,
            "transformer_layers_per_block": depth.max(1),
            "sample_size": 64,
        }))
        .map_err(|e| self.bad(format!("UNet config: {e}")))?;
        UNetConfig::checked(config, &self.file.display().to_string())
    }

    /// The VAE's config: its levels from the encoder's, the latent channels from `post_quant_conv`.
    pub fn vae_config(&self) -> Result<VaeConfig> {
        let levels = self.indices(&format!("{VAE}encoder.down."));
        let channels = (0..levels.len())
            .map(|i| {
                self.shape(&format!("{VAE}encoder.down.{i}.block.0.conv2.weight"))
                    .map(|s| s[0])
            })
            .collect::<Result<Vec<_>>>()?;
        let latent = self.shape(&format!("{VAE}decoder.conv_in.weight"))?[1];
        let config = serde_json::from_value(json!({
            "in_channels": self.shape(&format!("{VAE}encoder.conv_in.weight"))?[1],
            "out_channels": self.shape(&format!("{VAE}decoder.conv_out.weight"))?[0],
            "latent_channels": latent,
            "block_out_channels": channels,
            "layers_per_block": self.indices(&format!("{VAE}encoder.down.0.block.")).len(),
            "use_quant_conv": self.has(&format!("{VAE}quant_conv.weight")),
            "use_post_quant_conv": self.has(&format!("{VAE}post_quant_conv.weight")),
            "mid_block_add_attention": self.has(&format!("{VAE}encoder.mid.attn_1.q.weight")),
        }))
        .map_err(|e| self.bad(format!("VAE config: {e}")))?;
        VaeConfig::checked(config, &self.file.display().to_string())
    }

    /// CLIP's config from its embeddings and layers; heads 64 wide, as ViT-L/14's.
    pub fn text_config(&self) -> Result<ClipConfig> {
        let prefix = format!("{CLIP}text_model.");
        let tokens = self.shape(&format!("{prefix}embeddings.token_embedding.weight"))?;
        let positions = self.shape(&format!("{prefix}embeddings.position_embedding.weight"))?;
        let fc1 = self.shape(&format!("{prefix}encoder.layers.0.mlp.fc1.weight"))?;
        let config = serde_json::from_value(json!({
            "vocab_size": tokens[0],
            "hidden_size": tokens[1],
            "intermediate_size": fc1[0],
            "num_hidden_layers": self.indices(&format!("{prefix}encoder.layers.")).len(),
            "num_attention_heads": (tokens[1] / 64).max(1),
            "max_position_embeddings": positions[0],
        }))
        .map_err(|e| self.bad(format!("text encoder config: {e}")))?;
        ClipConfig::checked(config, &self.file.display().to_string())
    }

    /// The UNet's weights under diffusers' names.
    pub fn unet(&self, layers_per_block: usize) -> Renamed {
        self.renamed(UNET, |name| unet_name(name, layers_per_block))
    }

    /// The VAE's weights under diffusers' names.
    pub fn vae(&self, levels: usize) -> Renamed {
        self.renamed(VAE, |name| vae_name(name, levels))
    }

    /// The text encoder's weights: transformers' names under a prefix.
    pub fn text_encoder(&self) -> Renamed {
        self.renamed(CLIP, |name| {
            name.starts_with("text_model.")
                .then(|| (name.to_owned(), false))
        })
    }

    fn renamed(&self, prefix: &str, map: impl Fn(&str) -> Option<(String, bool)>) -> Renamed {
        let names = self
            .shapes
            .keys()
            .filter_map(|stored| {
                let (diffusers, squeeze) = map(stored.strip_prefix(prefix)?)?;
                Some((diffusers, (stored.clone(), squeeze)))
            })
            .collect();
        Renamed {
            tensors: self.tensors.clone(),
            names,
        }
    }
}

impl Renamed {
    /// The diffusers names of the part's weights.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    /// Values the part holds.
    pub fn parameters(&self) -> usize {
        self.names
            .values()
            .filter_map(|(stored, _)| self.tensors.get(stored).ok())
            .map(|view| view.shape().iter().product::<usize>())
            .sum()
    }
}

impl SimpleBackend for Renamed {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.get_unchecked(name, dtype, dev)?;
        if tensor.shape() != &s {
            Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: tensor.shape().clone(),
            }
            .bt())?
        }
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let (stored, squeeze) = self.names.get(name).ok_or_else(|| {
            candle_core::Error::CannotFindTensor {
                path: name.to_owned(),
            }
            .bt()
        })?;
        let tensor = self.tensors.load(stored, dev)?.to_dtype(dtype)?;
        match squeeze {
            true => tensor.flatten_from(1),
            false => Ok(tensor),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }
}

/// A ResNet block's LDM names → diffusers'.
fn resnet_name(rest: &str) -> String {
    [
        ("in_layers.0.", "norm1."),
        ("in_layers.2.", "conv1."),
        ("out_layers.0.", "norm2."),
        ("out_layers.3.", "conv2."),
        ("emb_layers.1.", "time_emb_proj."),
        ("skip_connection.", "conv_shortcut."),
    ]
    .iter()
    .find_map(|(ldm, diffusers)| rest.strip_prefix(ldm).map(|r| format!("{diffusers}{r}")))
    .unwrap_or_else(|| rest.to_owned())
}

/// A UNet weight's LDM name (without the prefix) → diffusers', as diffusers'
/// `convert_ldm_unet_checkpoint`: input block i ≥ 1 is layer (i−1) mod (L+1) of level (i−1)/(L+1),
/// the last of each level its downsampler; output block i is layer i mod (L+1) of level i/(L+1), its
/// upsampler after the ResNet (no attention) or after the attention. None: not a UNet weight.
fn unet_name(name: &str, layers: usize) -> Option<(String, bool)> {
    let fixed = [
        ("time_embed.0.", "time_embedding.linear_1."),
        ("time_embed.2.", "time_embedding.linear_2."),
        ("input_blocks.0.0.", "conv_in."),
        ("out.0.", "conv_norm_out."),
        ("out.2.", "conv_out."),
    ];
    if let Some(n) = fixed
        .iter()
        .find_map(|(ldm, d)| name.strip_prefix(ldm).map(|r| format!("{d}{r}")))
    {
        return Some((n, false));
    }
    let (kind, rest) = name.split_once('.')?;
    let (i, rest) = rest.split_once('.')?;
    let i: usize = i.parse().ok()?;
    if kind == "middle_block" {
        let n = match i {
            1 => format!("mid_block.attentions.0.{rest}"),
            _ => format!("mid_block.resnets.{}.{}", i / 2, resnet_name(rest)),
        };
        return Some((n, false));
    }
    let (j, rest) = rest.split_once('.')?;
    let j: usize = j.parse().ok()?;
    let n = match kind {
        "input_blocks" if i >= 1 => {
            let (level, layer) = ((i - 1) / (layers + 1), (i - 1) % (layers + 1));
            match (j, rest.strip_prefix("op.")) {
                (0, Some(r)) => format!("down_blocks.{level}.downsamplers.0.conv.{r}"),
                (0, None) => format!("down_blocks.{level}.resnets.{layer}.{}", resnet_name(rest)),
                (1, _) => format!("down_blocks.{level}.attentions.{layer}.{rest}"),
                _ => return None,
            }
        }
        "output_blocks" => {
            let (level, layer) = (i / (layers + 1), i % (layers + 1));
            match (j, rest.strip_prefix("conv.")) {
                (0, _) => format!("up_blocks.{level}.resnets.{layer}.{}", resnet_name(rest)),
                (1 | 2, Some(r)) => format!("up_blocks.{level}.upsamplers.0.conv.{r}"),
                (1, None) => format!("up_blocks.{level}.attentions.{layer}.{rest}"),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some((n, false))
}

/// A VAE weight's LDM name (without the prefix) → diffusers', as diffusers'
/// `convert_ldm_vae_checkpoint`: the decoder's levels are numbered from the bottom in LDM, from the
/// top in diffusers; the mid-block attention's 1×1 convolutions are linear layers there.
fn vae_name(name: &str, levels: usize) -> Option<(String, bool)> {
    let (coder, rest) = name.split_once('.')?;
    if !matches!(coder, "encoder" | "decoder") {
        return matches!(coder, "quant_conv" | "post_quant_conv").then(|| (name.to_owned(), false));
    }
    let parts: Vec<&str> = rest.splitn(5, '.').collect();
    let level = |i: &str| -> Option<usize> {
        let i: usize = i.parse().ok()?;
        Some(if coder == "decoder" {
            levels.checked_sub(i + 1)?
        } else {
            i
        })
    };
    let n = match parts.as_slice() {
        ["norm_out", r @ ..] => format!("conv_norm_out.{}", r.join(".")),
        ["conv_in" | "conv_out", ..] => rest.to_owned(),
        ["down" | "up", i, "block", j, r @ ..] => format!(
            "{}_blocks.{}.resnets.{j}.{}",
            parts[0],
            level(i)?,
            r.join(".").replace("nin_shortcut.", "conv_shortcut.")
        ),
        [
            kind @ ("down" | "up"),
            i,
            "downsample" | "upsample",
            "conv",
            r,
        ] => {
            format!("{kind}_blocks.{}.{kind}samplers.0.conv.{r}", level(i)?)
        }
        ["mid", "block_1", r @ ..] => format!("mid_block.resnets.0.{}", r.join(".")),
        ["mid", "block_2", r @ ..] => format!("mid_block.resnets.1.{}", r.join(".")),
        ["mid", "attn_1", layer, r] => {
            let layer = match *layer {
                "norm" => "group_norm",
                "q" => "to_q",
                "k" => "to_k",
                "v" => "to_v",
                "proj_out" => "to_out.0",
                _ => return None,
            };
            let linear = layer != "group_norm" && *r == "weight";
            return Some((
                format!("{coder}.mid_block.attentions.0.{layer}.{r}"),
                linear,
            ));
        }
        _ => return None,
    };
    Some((format!("{coder}.{n}"), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unet_names_follow_diffusers() {
        for (ldm, diffusers) in [
            ("time_embed.2.bias", "time_embedding.linear_2.bias"),
            (
                "input_blocks.4.0.in_layers.2.weight",
                "down_blocks.1.resnets.0.conv1.weight",
            ),
            (
                "input_blocks.3.0.op.bias",
                "down_blocks.0.downsamplers.0.conv.bias",
            ),
            (
                "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight",
                "down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight",
            ),
            (
                "middle_block.2.emb_layers.1.weight",
                "mid_block.resnets.1.time_emb_proj.weight",
            ),
            (
                "middle_block.1.proj_out.bias",
                "mid_block.attentions.0.proj_out.bias",
            ),
            (
                "output_blocks.2.1.conv.weight",
                "up_blocks.0.upsamplers.0.conv.weight",
            ),
            (
                "output_blocks.5.2.conv.weight",
                "up_blocks.1.upsamplers.0.conv.weight",
            ),
            (
                "output_blocks.5.0.skip_connection.weight",
                "up_blocks.1.resnets.2.conv_shortcut.weight",
            ),
        ] {
            assert_eq!(
                unet_name(ldm, 2),
                Some((diffusers.to_owned(), false)),
                "{ldm}"
            );
        }
        assert_eq!(unet_name("decay", 2), None);
    }

    #[test]
    fn vae_names_follow_diffusers() {
        for (ldm, diffusers, linear) in [
            (
                "decoder.up.3.block.0.nin_shortcut.weight",
                "decoder.up_blocks.0.resnets.0.conv_shortcut.weight",
                false,
            ),
            (
                "decoder.up.1.upsample.conv.bias",
                "decoder.up_blocks.2.upsamplers.0.conv.bias",
                false,
            ),
            (
                "encoder.down.0.downsample.conv.weight",
                "encoder.down_blocks.0.downsamplers.0.conv.weight",
                false,
            ),
            (
                "encoder.mid.attn_1.proj_out.weight",
                "encoder.mid_block.attentions.0.to_out.0.weight",
                true,
            ),
            (
                "decoder.mid.attn_1.norm.weight",
                "decoder.mid_block.attentions.0.group_norm.weight",
                false,
            ),
            ("encoder.norm_out.bias", "encoder.conv_norm_out.bias", false),
            ("quant_conv.weight", "quant_conv.weight", false),
        ] {
            assert_eq!(
                vae_name(ldm, 4),
                Some((diffusers.to_owned(), linear)),
                "{ldm}"
            );
        }
    }
}
