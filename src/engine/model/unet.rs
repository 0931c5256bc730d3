//! The ADM / guided-diffusion UNet of the consistency-model checkpoints (cm/unet.py `UNetModel`;
//! cm_reference §f.3), built from a [`UNetConfig`] and weights under their openai names.

use super::blocks::{Block, conv3x3};
use super::config::{BlockSpec, UNetConfig};
use super::layers::{Conv2d, GroupNorm};
use crate::engine::cm::param::Network;
use crate::engine::kernels::Precision;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

pub struct UNet {
    config: UNetConfig,
    /// exp(−ln(10000)·k/half), rounded exactly as the reference's float32 ops round them.
    time_freqs: Vec<f32>,
    time_embed: (Linear, Linear),
    label_emb: Option<Embedding>,
    conv_in: Conv2d,
    input: Vec<Vec<Block>>,
    middle: Vec<Block>,
    output: Vec<Vec<Block>>,
    out_norm: GroupNorm,
    out_conv: Conv2d,
}

impl UNet {
    /// The network from its weights; `precision` is the convolutions' number format on the CPU.
    pub fn new(config: &UNetConfig, precision: Precision, vb: VarBuilder) -> Result<Self> {
        let emb = config.time_embed_dim();
        let mc = config.model_channels;
        let build = |specs: &[BlockSpec]| -> Result<Vec<Block>> {
            specs
                .iter()
                .map(|s| {
                    Block::new(
                        s.kind,
                        emb,
                        config.use_scale_shift_norm,
                        config.num_head_channels,
                        precision,
                        vb.pp(&s.openai),
                    )
                })
                .collect()
        };
        let layout = config.layout();
        Ok(Self {
            time_freqs: time_frequencies(mc),
            time_embed: (
                candle_nn::linear(mc, emb, vb.pp("time_embed.0"))?,
                candle_nn::linear(emb, emb, vb.pp("time_embed.2"))?,
            ),
            label_emb: match config.num_classes {
                Some(n) => Some(candle_nn::embedding(n, emb, vb.pp("label_emb"))?),
                None => None,
            },
            conv_in: conv3x3(
                config.in_channels,
                mc * config.channel_mult[0],
                1,
                precision,
                vb.pp("input_blocks.0.0"),
            )?,
            input: layout
                .input
                .iter()
                .map(|b| build(b))
                .collect::<Result<_>>()?,
            middle: build(&layout.middle)?,
            output: layout
                .output
                .iter()
                .map(|b| build(b))
                .collect::<Result<_>>()?,
            out_norm: GroupNorm::new(layout.out_channels_in, vb.pp("out.0"))?,
            out_conv: conv3x3(
                layout.out_channels_in,
                config.out_channels,
                1,
                precision,
                vb.pp("out.2"),
            )?,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// One forward pass on zeros. On CUDA the first launch of every kernel JIT-compiles its PTX
    /// (seconds): done at load, not on the user's first click.
    pub fn warm_up(&self, device: &Device) -> Result<()> {
        let (c, s) = (self.config.in_channels, self.config.image_size);
        let x = Tensor::zeros((1, c, s, s), DType::F32, device)?;
        let labels = match self.config.num_classes {
            Some(_) => Some(Tensor::zeros(1, DType::U32, device)?),
            None => None,
        };
        self.forward(&x, &[0.0], labels.as_ref())?;
        Ok(())
    }

    /// Sinusoidal embedding of the time input: `[cos(t·f_k) …, sin(t·f_k) …]`, cos first.
    pub fn timestep_embedding(&self, c_noise: &[f64], device: &Device) -> Result<Tensor> {
        let half = self.time_freqs.len();
        let mut data = Vec::with_capacity(c_noise.len() * 2 * half);
        for &t in c_noise {
            let t = t as f32;
            data.extend(self.time_freqs.iter().map(|&f| (t * f).cos()));
            data.extend(self.time_freqs.iter().map(|&f| (t * f).sin()));
        }
        Tensor::from_vec(data, (c_noise.len(), 2 * half), device)
    }
}

/// Frequencies of the time embedding, computed with the reference's float32 operation order
/// (`exp((−ln 10000 · k) / half)`) so the embedding matches it bit for bit but for exp's last ulp.
fn time_frequencies(dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let neg_log = -(10000f64.ln()) as f32;
    (0..half)
        .map(|k| (((neg_log * k as f32) / half as f32) as f64).exp() as f32)
        .collect()
}

impl Network for UNet {
    fn forward(
        &self,
        x: &Tensor,
        c_noise: &[f64],
        class_labels: Option<&Tensor>,
    ) -> Result<Tensor> {
        let dev = x.device();
        // 1. time (+ class) embedding
        let emb = self.timestep_embedding(c_noise, dev)?;
        let mut emb = self
            .time_embed
            .1
            .forward(&self.time_embed.0.forward(&emb)?.silu()?)?;
        match (&self.label_emb, class_labels) {
            (Some(table), Some(labels)) => {
                emb = (emb + table.forward(&labels.to_dtype(DType::U32)?)?)?
            }
            (Some(_), None) => {
                candle_core::bail!("this model is class-conditional: give a class label")
            }
            (None, Some(_)) => {
                candle_core::bail!("this model is not class-conditional: it takes no class label")
            }
            (None, None) => {}
        }
        let emb_act = emb.silu()?;
        // 2. input blocks, keeping every output for the skip connections
        let mut h = self.conv_in.forward(x)?;
        let mut skips = vec![h.clone()];
        for block in &self.input {
            for m in block {
                h = m.forward(&h, &emb_act)?;
            }
            skips.push(h.clone());
        }
        // 3. middle
        for m in &self.middle {
            h = m.forward(&h, &emb_act)?;
        }
        // 4. output blocks: current features first, skip second
        for block in &self.output {
            let skip = skips
                .pop()
                .expect("layout pairs every output block with a skip");
            h = Tensor::cat(&[&h, &skip], 1)?;
            for m in block {
                h = m.forward(&h, &emb_act)?;
            }
        }
        // 5. out
        self.out_conv.forward(&self.out_norm.forward_silu(&h)?)
    }
}
