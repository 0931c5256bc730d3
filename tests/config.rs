//! The network layout and the loaders' name mapping against cm_unet_keys.tsv (every weight name and
//! shape of the released ImageNet-64 and LSUN-256 networks, openai and diffusers), and configuration
//! inference from shapes alone.

mod common;

use cmpaint::engine::model::config::UNetConfig;
use cmpaint::engine::model::load::diffusers_sources;
use std::collections::HashMap;

struct Row {
    shape: Vec<usize>,
    diffusers: Vec<String>,
}

/// Section name → openai key → row.
fn tsv() -> HashMap<String, HashMap<String, Row>> {
    let text = std::fs::read_to_string(common::fixture("cm_unet_keys.tsv")).unwrap();
    let mut out: HashMap<String, HashMap<String, Row>> = HashMap::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# == ") {
            section = rest.split(':').next().unwrap().to_string();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let shape: Vec<usize> = serde_json::from_str(cols[1]).unwrap();
        // "down_blocks.1.attentions.0.to_q|to_k|to_v.weight (chunk 3 …)" names three tensors.
        let name = cols[2].split(' ').next().unwrap();
        let diffusers = match name.split_once("to_q|to_k|to_v") {
            Some((pre, post)) => ["to_q", "to_k", "to_v"]
                .iter()
                .map(|m| format!("{pre}{m}{post}"))
                .collect(),
            None => vec![name.to_string()],
        };
        out.entry(section.clone())
            .or_default()
            .insert(cols[0].to_string(), Row { shape, diffusers });
    }
    out
}

fn released() -> [(&'static str, UNetConfig, usize); 2] {
    [
        ("imagenet64", UNetConfig::imagenet64(), 295_899_267),
        ("lsun256", UNetConfig::lsun256(), 526_304_771),
    ]
}

#[test]
fn expected_weights_match_the_released_state_dicts() {
    let rows = tsv();
    for (section, cfg, params) in released() {
        let rows = &rows[section];
        let expected = cfg.expected_weights();
        assert_eq!(expected.len(), rows.len(), "{section}: tensor count");
        for (name, shape) in &expected {
            let row = rows
                .get(name)
                .unwrap_or_else(|| panic!("{section}: {name} not in the released state dict"));
            assert_eq!(&row.shape, shape, "{section}: shape of {name}");
        }
        assert_eq!(cfg.parameter_count(), params, "{section}: parameter count");
    }
}

#[test]
fn diffusers_names_match_the_converter() {
    let rows = tsv();
    for (section, cfg, _) in released() {
        let sources = diffusers_sources(&cfg);
        for (name, row) in &rows[section] {
            assert_eq!(
                &sources[name], &row.diffusers,
                "{section}: diffusers name of {name}"
            );
        }
    }
}

#[test]
fn config_is_inferred_from_shapes_alone() {
    let rows = tsv();
    for (section, cfg, _) in released() {
        let shapes: HashMap<String, Vec<usize>> = rows[section]
            .iter()
            .map(|(k, r)| (k.clone(), r.shape.clone()))
            .collect();
        assert_eq!(UNetConfig::infer(&shapes).unwrap(), cfg, "{section}");
    }
}

#[test]
fn inference_covers_conv_resamplers_and_no_classes() {
    let mut cfg = UNetConfig::lsun256();
    cfg.resblock_updown = false;
    cfg.use_scale_shift_norm = true;
    cfg.num_classes = Some(10);
    let shapes: HashMap<String, Vec<usize>> = cfg.expected_weights().into_iter().collect();
    assert_eq!(UNetConfig::infer(&shapes).unwrap(), cfg);
}

#[test]
fn inference_rejects_something_else() {
    let shapes = HashMap::from([("encoder.weight".to_string(), vec![3, 3])]);
    let err = UNetConfig::infer(&shapes).unwrap_err();
    assert!(err.contains("input_blocks.0.0.weight"), "{err}");
}

#[test]
fn validate_names_the_problem() {
    let mut cfg = UNetConfig::imagenet64();
    cfg.num_head_channels = 100;
    assert!(cfg.validate().unwrap_err().contains("heads of 100"));
    let mut cfg = UNetConfig::imagenet64();
    cfg.model_channels = 48;
    assert!(cfg.validate().unwrap_err().contains("GroupNorm(32)"));
}

#[test]
fn presets_are_matched_by_network_then_by_name() {
    use cmpaint::engine::model::spec::guess_preset;
    let name =
        |file: &str, cfg: &UNetConfig| guess_preset(file, cfg).map(|p| (p.name, p.sampling.steps));
    let imagenet = UNetConfig::imagenet64();
    assert_eq!(
        name("ct_imagenet64.pt", &imagenet),
        Some(("ct_imagenet64".into(), 201))
    );
    assert_eq!(
        name("weights.pt", &imagenet),
        Some(("cd_imagenet64_l2".into(), 40))
    );
    // a file name never overrides what the shapes say
    assert_eq!(
        name("cd_imagenet64_l2.pt", &UNetConfig::lsun256()),
        Some(("cd_bedroom256_lpips".into(), 40))
    );
    assert_eq!(
        name("ct_cat256.pt", &UNetConfig::lsun256()),
        Some(("ct_cat256".into(), 151))
    );
    let mut tiny = UNetConfig::imagenet64();
    tiny.num_res_blocks = 1;
    assert_eq!(name("cd_imagenet64_l2.pt", &tiny), None);
}
