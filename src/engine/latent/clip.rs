//! CLIP's text encoder (transformers' `CLIPTextModel`): token and position embeddings, pre-norm
//! transformer layers with causal self-attention and a quick-GELU MLP, a final LayerNorm. Stable
//! Diffusion conditions on the last hidden state, [B, 77, C].

use super::nn::{self, Linear, linear};
use crate::engine::error::{EngineError, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct ClipConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
    #[serde(default = "layer_norm_eps")]
    pub layer_norm_eps: f64,
}

fn quick_gelu() -> String {
    "quick_gelu".into()
}
fn layer_norm_eps() -> f64 {
    1e-5
}

impl ClipConfig {
    /// The config, checked to describe a network that can exist: heads that split the width, and
    /// room for the 77 positions of a prompt.
    pub fn read(path: &Path) -> Result<Self> {
        Self::checked(nn::read_json(path)?, &path.display().to_string())
    }

    /// `cfg` if it can exist (`origin` names where it came from in the error).
    pub fn checked(cfg: Self, origin: &str) -> Result<Self> {
        let bad = |why: String| Err(EngineError::InvalidInput(format!("{origin}: {why}")));
        let (c, heads) = (cfg.hidden_size, cfg.num_attention_heads);
        if c == 0 || heads == 0 || !c.is_multiple_of(heads) {
            return bad(format!(
                "{heads} attention heads cannot split a width of {c}"
            ));
        }
        if cfg.vocab_size == 0 || cfg.intermediate_size == 0 || cfg.max_position_embeddings < 77 {
            return bad(format!(
                "vocabulary {}, MLP width {}, {} positions: a CLIP text encoder has tokens, an MLP and 77 positions",
                cfg.vocab_size, cfg.intermediate_size, cfg.max_position_embeddings
            ));
        }
        Ok(cfg)
    }
}

struct EncoderLayer {
    norm1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

pub struct ClipTextEncoder {
    token_embedding: Embedding,
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    final_norm: LayerNorm,
    heads: usize,
    gelu: bool,
}

impl ClipTextEncoder {
    /// Weights under `text_model.` (transformers 4) or at the top level (as transformers 5 saves them).
    pub fn new(cfg: &ClipConfig, vb: VarBuilder) -> Result<Self> {
        let vb = if vb.contains_tensor("text_model.embeddings.token_embedding.weight") {
            vb.pp("text_model")
        } else {
            vb
        };
        let c = cfg.hidden_size;
        let gelu = match cfg.hidden_act.as_str() {
            "quick_gelu" => false,
            "gelu" => true,
            other => {
                return Err(EngineError::InvalidInput(format!(
                    "text encoder: activation `{other}` is not CLIP's (quick_gelu or gelu)"
                )));
            }
        };
        let norm = |vb: VarBuilder| candle_nn::layer_norm(c, cfg.layer_norm_eps, vb);
        let emb = vb.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp(format!("encoder.layers.{i}"));
                let attn = vb.pp("self_attn");
                Ok(EncoderLayer {
                    norm1: norm(vb.pp("layer_norm1"))?,
                    q: linear(c, c, true, attn.pp("q_proj"))?,
                    k: linear(c, c, true, attn.pp("k_proj"))?,
                    v: linear(c, c, true, attn.pp("v_proj"))?,
                    out: linear(c, c, true, attn.pp("out_proj"))?,
                    norm2: norm(vb.pp("layer_norm2"))?,
                    fc1: linear(c, cfg.intermediate_size, true, vb.pp("mlp.fc1"))?,
                    fc2: linear(cfg.intermediate_size, c, true, vb.pp("mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            token_embedding: candle_nn::embedding(cfg.vocab_size, c, emb.pp("token_embedding"))?,
            position_embedding: emb.get(
                (cfg.max_position_embeddings, c),
                "position_embedding.weight",
            )?,
            layers,
            final_norm: norm(vb.pp("final_layer_norm"))?,
            heads: cfg.num_attention_heads,
            gelu,
        })
    }

    /// ids [B, T] (u32) → last hidden state [B, T, C].
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let mut x = self
            .token_embedding
            .forward(ids)?
            .broadcast_add(&self.position_embedding.narrow(0, 0, t)?)?;
        let mask = causal_mask(t, x.device())?;
        for layer in &self.layers {
            let h = layer.norm1.forward(&x)?;
            let (q, k, v) = (
                layer.q.forward(&h)?,
                layer.k.forward(&h)?,
                layer.v.forward(&h)?,
            );
            let a = nn::attention(&q, &k, &v, self.heads, Some(&mask))?;
            x = (x + layer.out.forward(&a)?)?;
            let h = layer.fc1.forward(&layer.norm2.forward(&x)?)?;
            let h = if self.gelu {
                h.gelu_erf()?
            } else {
                // quick GELU: x·σ(1.702x)
                (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?
            };
            x = (x + layer.fc2.forward(&h)?)?;
        }
        Ok(self.final_norm.forward(&x)?)
    }
}

/// [T, T]: 0 on and below the diagonal, −∞ above (a token sees only those before it).
fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..t * t)
        .map(|i| {
            if i % t > i / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(values, (t, t), device)?.to_dtype(DType::F32)?)
}
