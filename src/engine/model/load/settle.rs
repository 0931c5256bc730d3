//! Resolution of a weight source's configuration, names and sizes, and the check of every weight
//! against what the network needs.

use super::diffusers::diffusers_sources;
use super::{
    Checkpoint, ConfigSource, Opened, ParameterizationSource, StoredTensor, WeightFormat,
    bad_config, not_a_checkpoint,
};
use crate::engine::error::{EngineError, Result, WeightReport};
use crate::engine::model::config::UNetConfig;
use crate::engine::model::spec::{ModelConfig, Parameterization, SamplingConfig, guess_preset};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Settles a weight source's configuration — an explicit `config`, the file's metadata, a diffusers
/// folder's config, or what the tensor shapes and the file name tell — and checks every weight.
pub(super) fn settle(
    path: &Path,
    opened: Opened,
    config: Option<(ModelConfig, PathBuf)>,
) -> Result<Checkpoint> {
    let Opened {
        format,
        reader,
        stored,
        metadata_config,
        diffusers_config,
        stored_bytes,
    } = opened;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let by_name = Parameterization::from_file_name(&file_name);
    let mut parameterization_source = match by_name {
        Some(_) => ParameterizationSource::FileName,
        None => ParameterizationSource::Assumed,
    };
    let (config, config_source) = if let Some((cfg, cfg_path)) = config {
        parameterization_source = ParameterizationSource::Read;
        (cfg, ConfigSource::ConfigFile(cfg_path))
    } else if let Some(text) = metadata_config {
        let cfg: ModelConfig =
            serde_json::from_str(&text).map_err(|e| bad_config(path, e.to_string()))?;
        // Files written before EDM models existed say nothing: they are consistency models.
        let stated = serde_json::from_str::<serde_json::Value>(&text)
            .is_ok_and(|v| v["sampling"].get("parameterization").is_some());
        if stated {
            parameterization_source = ParameterizationSource::Read;
        }
        (cfg, ConfigSource::FileMetadata)
    } else if let Some((unet, scheduler)) = diffusers_config {
        let preset = guess_preset(&file_name, &unet);
        let parameterization = match (by_name, &preset) {
            (Some(p), _) => p,
            (None, Some(p)) if file_name.contains(&p.name) => {
                parameterization_source = ParameterizationSource::Preset(p.name.clone());
                p.sampling.parameterization
            }
            _ => Parameterization::Consistency,
        };
        let name = preset
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_else(|| file_name.clone());
        // The scheduler's grid wins; a preset's tuned ts list only applies to the same grid.
        let sampling = match (scheduler, preset) {
            (Some(mut s), Some(p)) => {
                if s.steps == p.sampling.steps {
                    s.ts = p.sampling.ts;
                }
                s
            }
            (Some(s), None) => s,
            (None, p) => p.map(|p| p.sampling).unwrap_or_default(),
        };
        (
            ModelConfig {
                name,
                unet,
                sampling: SamplingConfig {
                    parameterization,
                    ..sampling
                },
                styles: Vec::new(),
            },
            ConfigSource::DiffusersConfig,
        )
    } else {
        let shapes: HashMap<String, Vec<usize>> = stored
            .iter()
            .map(|(k, v)| (k.clone(), v.shape.clone()))
            .collect();
        if let Some(what) = stable_diffusion_single_file(&shapes) {
            return Err(not_a_checkpoint(
                path,
                format!(
                    "{what} checkpoint in the original single-file layout (model.diffusion_model.…); \
                     cmpaint reads such files for Stable Diffusion 1.x only (with CLIP under \
                     cond_stage_model.transformer.): load this one's diffusers folder (unet/, vae/, \
                     text_encoder/, tokenizer/, scheduler/, model_index.json — most model pages offer \
                     one) or convert the file once with diffusers: \
                     StableDiffusionPipeline.from_single_file(FILE).save_pretrained(DIR)"
                ),
            ));
        }
        let unet = UNetConfig::infer(&normalise_attention_shapes(shapes))
            .map_err(|e| not_a_checkpoint(path, format!("not a consistency-model UNet: {e}")))?;
        match guess_preset(&file_name, &unet) {
            Some(p) => {
                let source = ConfigSource::InferredWithPreset(p.name.clone());
                if file_name.contains(&p.name) || by_name.is_none() {
                    parameterization_source = ParameterizationSource::Preset(p.name.clone());
                }
                (p, source)
            }
            _ => {
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default();
                (
                    ModelConfig {
                        name,
                        unet,
                        sampling: SamplingConfig {
                            parameterization: by_name.unwrap_or_default(),
                            ..SamplingConfig::default()
                        },
                        styles: Vec::new(),
                    },
                    ConfigSource::Inferred,
                )
            }
        }
    };
    config.validate().map_err(|e| bad_config(path, e))?;

    let sources = match format {
        WeightFormat::Diffusers => diffusers_sources(&config.unet),
        _ => config
            .unet
            .expected_weights()
            .into_iter()
            .map(|(n, _)| (n.clone(), vec![n]))
            .collect(),
    };
    check_weights(&config.unet, &sources, &stored)?;
    Ok(Checkpoint {
        path: path.to_path_buf(),
        format,
        config,
        config_source,
        parameterization_source,
        stored_bytes,
        reader,
        sources,
    })
}

/// Older guided-diffusion code saved attention 1×1 convs as 3-D `[O, I, 1]`; treat them as 4-D.
fn normalise_attention_shapes(
    mut shapes: HashMap<String, Vec<usize>>,
) -> HashMap<String, Vec<usize>> {
    for (name, shape) in shapes.iter_mut() {
        if (name.ends_with("qkv.weight") || name.ends_with("proj_out.weight"))
            && shape.len() == 3
            && shape[2] == 1
        {
            shape.push(1);
        }
    }
    shapes
}

/// Compares what the file holds with what the model needs: names, shapes (element counts for the
/// re-shaped attention weights) and dtypes.
fn check_weights(
    cfg: &UNetConfig,
    sources: &HashMap<String, Vec<String>>,
    stored: &HashMap<String, StoredTensor>,
) -> Result<()> {
    let mut report = WeightReport::default();
    let mut used = BTreeSet::new();
    for (name, shape) in cfg.expected_weights() {
        let parts = &sources[&name];
        let elems: usize = shape.iter().product::<usize>() / parts.len();
        for part in parts {
            used.insert(part.clone());
            match stored.get(part) {
                None => report.missing.push(part.clone()),
                Some(t) => {
                    let same = if parts.len() == 1 && part == &name {
                        t.shape == shape
                            || (t.shape.len() == 3 && [t.shape.clone(), vec![1]].concat() == shape)
                    } else {
                        t.shape.iter().product::<usize>() == elems
                    };
                    if !same {
                        let mut expected = shape.clone();
                        expected[0] /= parts.len();
                        report
                            .mismatched
                            .push((part.clone(), expected, t.shape.clone()));
                    }
                }
            }
        }
    }
    report.unexpected = stored
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    report.missing.sort();
    report.unexpected.sort();
    if !report.is_empty() {
        return Err(EngineError::WeightMismatch(report));
    }
    for name in &used {
        let dtype = &stored[name].dtype;
        if !matches!(dtype.as_str(), "f32" | "f16" | "bf16" | "f64") {
            return Err(EngineError::UnsupportedDtype {
                name: name.clone(),
                dtype: dtype.clone(),
            });
        }
    }
    Ok(())
}

/// What LDM single-file checkpoint the tensors are (the UNet under `model.diffusion_model.`) when it
/// is not one the latent loader reads: SDXL, SD 2.x (OpenCLIP), or one missing a part.
fn stable_diffusion_single_file(shapes: &HashMap<String, Vec<usize>>) -> Option<&'static str> {
    let has = |prefix: &str| shapes.keys().any(|k| k.starts_with(prefix));
    if !has("model.diffusion_model.") {
        return None;
    }
    Some(if has("conditioner.embedders.") {
        "an SDXL"
    } else if has("cond_stage_model.model.") {
        "a Stable Diffusion 2.x"
    } else {
        "a Stable Diffusion (without its VAE or CLIP text encoder)"
    })
}
