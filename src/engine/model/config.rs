//! The UNet's hyper-parameters, presets for the released checkpoints, and inference of the
//! configuration from tensor names and shapes (cm_reference §f.1, §f.5).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The largest `image_size` a configuration may declare (the canvas's largest side).
pub const MAX_IMAGE_SIZE: usize = 4096;

/// Hyper-parameters of the ADM / guided-diffusion UNet used by every consistency-model checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UNetConfig {
    /// Side of the square images the model was trained on (the network itself is convolutional).
    pub image_size: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Base channel count; the time embedding is 4× this.
    pub model_channels: usize,
    /// Channels of each resolution level as multiples of `model_channels`.
    pub channel_mult: Vec<usize>,
    pub num_res_blocks: usize,
    /// Downsampling factors (1, 2, 4, …) of the levels that carry attention blocks. The released
    /// "attention_resolutions 32,16,8" at 64² is `[2, 4, 8]`.
    pub attention_ds: Vec<usize>,
    /// Channels per attention head (64 in every released checkpoint; shapes cannot tell it).
    pub num_head_channels: usize,
    /// FiLM conditioning `GN(h)·(1+scale)+shift` (true) or additive `GN(h+emb)` (false).
    pub use_scale_shift_norm: bool,
    /// BigGAN-style residual up/down blocks (true) or plain conv resamplers (false).
    pub resblock_updown: bool,
    /// Number of classes of a class-conditional model.
    pub num_classes: Option<usize>,
}

impl UNetConfig {
    /// ImageNet-64 (cd_imagenet64_l2/lpips, ct_imagenet64).
    pub fn imagenet64() -> Self {
        Self {
            image_size: 64,
            in_channels: 3,
            out_channels: 3,
            model_channels: 192,
            channel_mult: vec![1, 2, 3, 4],
            num_res_blocks: 3,
            attention_ds: vec![2, 4, 8],
            num_head_channels: 64,
            use_scale_shift_norm: true,
            resblock_updown: true,
            num_classes: Some(1000),
        }
    }

    /// LSUN-256 bedroom and cat (cd_*256_l2/lpips, ct_*256).
    pub fn lsun256() -> Self {
        Self {
            image_size: 256,
            in_channels: 3,
            out_channels: 3,
            model_channels: 256,
            channel_mult: vec![1, 1, 2, 2, 4, 4],
            num_res_blocks: 2,
            attention_ds: vec![8, 16, 32],
            num_head_channels: 64,
            use_scale_shift_norm: false,
            resblock_updown: true,
            num_classes: None,
        }
    }

    pub fn time_embed_dim(&self) -> usize {
        4 * self.model_channels
    }

    /// Checks what the network construction relies on, so a bad config file fails with a reason.
    pub fn validate(&self) -> Result<(), String> {
        let levels = self.channel_mult.len();
        if levels == 0 || self.num_res_blocks == 0 || self.model_channels == 0 {
            return Err(
                "channel_mult, num_res_blocks and model_channels must be non-empty / non-zero"
                    .into(),
            );
        }
        // Bounds far past any real network, so that a file's declared sizes cannot ask for more
        // memory than exists (or overflow the arithmetic that estimates it) before anything runs.
        let widest = self.channel_mult.iter().max().copied().unwrap_or(0);
        let bounds = [
            ("image_size", self.image_size, 1, MAX_IMAGE_SIZE),
            ("in_channels", self.in_channels, 1, 64),
            ("out_channels", self.out_channels, 1, 64),
            ("levels of channel_mult", levels, 1, 10),
            ("num_res_blocks", self.num_res_blocks, 1, 64),
            (
                "model_channels × channel_mult",
                self.model_channels.saturating_mul(widest),
                1,
                1 << 14,
            ),
            ("num_classes", self.num_classes.unwrap_or(1), 1, 1 << 20),
        ];
        for (name, value, min, max) in bounds {
            if !(min..=max).contains(&value) {
                return Err(format!(
                    "{name} is {value}; this model format allows {min}…{max}"
                ));
            }
        }
        if self.channel_mult.contains(&0) {
            return Err("channel_mult holds a 0".into());
        }
        if self.num_head_channels == 0 {
            return Err("num_head_channels must be positive".into());
        }
        for spec in self.layout().all_blocks() {
            match spec.kind {
                BlockKind::Res { cin, cout, .. } => {
                    if cin % 32 != 0 || cout % 32 != 0 {
                        return Err(format!(
                            "{}: GroupNorm(32) needs channel counts divisible by 32, got {cin}→{cout}",
                            spec.openai
                        ));
                    }
                }
                BlockKind::Attn { channels } => {
                    if channels % self.num_head_channels != 0 {
                        return Err(format!(
                            "{}: {channels} channels do not split into heads of {}",
                            spec.openai, self.num_head_channels
                        ));
                    }
                }
                BlockKind::DownConv { .. } | BlockKind::UpConv { .. } => {}
            }
        }
        let factor = 1usize << (levels - 1);
        if !self.image_size.is_multiple_of(factor) {
            return Err(format!(
                "image_size {} is not divisible by {factor}",
                self.image_size
            ));
        }
        Ok(())
    }

    /// The block structure of `cm/unet.py`'s `UNetModel`, with each block's openai and diffusers names.
    /// Network construction, the expected-weight list and the diffusers renaming all derive from it.
    pub fn layout(&self) -> Layout {
        let mc = self.model_channels;
        let levels = self.channel_mult.len();
        let resample = |ch: usize, down: bool| -> BlockKind {
            match (self.resblock_updown, down) {
                (true, true) => BlockKind::Res {
                    cin: ch,
                    cout: ch,
                    resample: Resample::Down,
                },
                (true, false) => BlockKind::Res {
                    cin: ch,
                    cout: ch,
                    resample: Resample::Up,
                },
                (false, true) => BlockKind::DownConv { channels: ch },
                (false, false) => BlockKind::UpConv { channels: ch },
            }
        };
        let res = |cin, cout| BlockKind::Res {
            cin,
            cout,
            resample: Resample::None,
        };

        let mut ch = mc * self.channel_mult[0];
        let mut skip_chans = vec![ch];
        let mut input = Vec::new();
        let mut ds = 1;
        for (level, &mult) in self.channel_mult.iter().enumerate() {
            for j in 0..self.num_res_blocks {
                let k = input.len() + 1;
                let mut block = vec![BlockSpec {
                    openai: format!("input_blocks.{k}.0"),
                    diffusers: format!("down_blocks.{level}.resnets.{j}"),
                    kind: res(ch, mult * mc),
                }];
                ch = mult * mc;
                if self.attention_ds.contains(&ds) {
                    block.push(BlockSpec {
                        openai: format!("input_blocks.{k}.1"),
                        diffusers: format!("down_blocks.{level}.attentions.{j}"),
                        kind: BlockKind::Attn { channels: ch },
                    });
                }
                input.push(block);
                skip_chans.push(ch);
            }
            if level + 1 != levels {
                let k = input.len() + 1;
                input.push(vec![BlockSpec {
                    openai: format!("input_blocks.{k}.0"),
                    diffusers: format!("down_blocks.{level}.downsamplers.0"),
                    kind: resample(ch, true),
                }]);
                skip_chans.push(ch);
                ds *= 2;
            }
        }

        let middle = vec![
            BlockSpec {
                openai: "middle_block.0".into(),
                diffusers: "mid_block.resnets.0".into(),
                kind: res(ch, ch),
            },
            BlockSpec {
                openai: "middle_block.1".into(),
                diffusers: "mid_block.attentions.0".into(),
                kind: BlockKind::Attn { channels: ch },
            },
            BlockSpec {
                openai: "middle_block.2".into(),
                diffusers: "mid_block.resnets.1".into(),
                kind: res(ch, ch),
            },
        ];

        let mut output = Vec::new();
        for (level, &mult) in self.channel_mult.iter().enumerate().rev() {
            let up = levels - 1 - level;
            for j in 0..=self.num_res_blocks {
                let k = output.len();
                let skip = skip_chans.pop().expect("one skip per input block");
                let mut block = vec![BlockSpec {
                    openai: format!("output_blocks.{k}.0"),
                    diffusers: format!("up_blocks.{up}.resnets.{j}"),
                    kind: res(ch + skip, mult * mc),
                }];
                ch = mult * mc;
                if self.attention_ds.contains(&ds) {
                    block.push(BlockSpec {
                        openai: format!("output_blocks.{k}.1"),
                        diffusers: format!("up_blocks.{up}.attentions.{j}"),
                        kind: BlockKind::Attn { channels: ch },
                    });
                }
                if level > 0 && j == self.num_res_blocks {
                    block.push(BlockSpec {
                        openai: format!("output_blocks.{k}.{}", block.len()),
                        diffusers: format!("up_blocks.{up}.upsamplers.0"),
                        kind: resample(ch, false),
                    });
                    ds /= 2;
                }
                output.push(block);
            }
        }
        Layout {
            input,
            middle,
            output,
            out_channels_in: ch,
        }
    }

    /// Every weight the model needs, with its openai name and shape, in construction order.
    pub fn expected_weights(&self) -> Vec<(String, Vec<usize>)> {
        let mc = self.model_channels;
        let emb = self.time_embed_dim();
        let ch0 = mc * self.channel_mult[0];
        let mut w: Vec<(String, Vec<usize>)> = vec![
            ("time_embed.0.weight".into(), vec![emb, mc]),
            ("time_embed.0.bias".into(), vec![emb]),
            ("time_embed.2.weight".into(), vec![emb, emb]),
            ("time_embed.2.bias".into(), vec![emb]),
        ];
        if let Some(n) = self.num_classes {
            w.push(("label_emb.weight".into(), vec![n, emb]));
        }
        w.push((
            "input_blocks.0.0.weight".into(),
            vec![ch0, self.in_channels, 3, 3],
        ));
        w.push(("input_blocks.0.0.bias".into(), vec![ch0]));
        let layout = self.layout();
        for spec in layout.all_blocks() {
            for (sub, shape) in spec.kind.weights(emb, self.use_scale_shift_norm) {
                w.push((format!("{}.{sub}", spec.openai), shape));
            }
        }
        let ch = layout.out_channels_in;
        w.push(("out.0.weight".into(), vec![ch]));
        w.push(("out.0.bias".into(), vec![ch]));
        w.push(("out.2.weight".into(), vec![self.out_channels, ch, 3, 3]));
        w.push(("out.2.bias".into(), vec![self.out_channels]));
        w
    }

    pub fn parameter_count(&self) -> usize {
        // Saturating: the shapes may come from a hostile file.
        self.expected_weights()
            .iter()
            .map(|(_, s)| s.iter().fold(1usize, |n, &d| n.saturating_mul(d)))
            .fold(0usize, usize::saturating_add)
    }

    /// Infers the configuration from tensor names and shapes (openai names). Channels per head cannot
    /// be seen in shapes and default to 64; the image size comes from openai's default channel_mult per
    /// size, or 64 when the multipliers match none of them.
    pub fn infer(shapes: &HashMap<String, Vec<usize>>) -> Result<Self, String> {
        let get = |name: &str| -> Result<&Vec<usize>, String> {
            shapes
                .get(name)
                .ok_or_else(|| format!("no `{name}` tensor"))
        };
        let conv_in = get("input_blocks.0.0.weight")?;
        let t0 = get("time_embed.0.weight")?;
        if conv_in.len() != 4 || t0.len() != 2 {
            return Err(
                "`input_blocks.0.0.weight` or `time_embed.0.weight` has an unexpected rank".into(),
            );
        }
        let model_channels = t0[1];
        let (ch0, in_channels) = (conv_in[0], conv_in[1]);
        let out_channels = get("out.2.weight")?[0];
        let num_classes = shapes.get("label_emb.weight").map(|s| s[0]);

        let has = |name: String| shapes.contains_key(&name);
        let n_out = (0..)
            .take_while(|k| has(format!("output_blocks.{k}.0.in_layers.0.weight")))
            .count();
        let is_upsampler = |k: usize, j: usize| {
            has(format!("output_blocks.{k}.{j}.in_layers.0.weight"))
                || has(format!("output_blocks.{k}.{j}.conv.weight"))
        };
        let n_up = (0..n_out)
            .filter(|&k| is_upsampler(k, 1) || is_upsampler(k, 2))
            .count();
        let levels = n_up + 1;
        if n_out == 0 || n_out % levels != 0 {
            return Err(format!(
                "cannot make out the level structure ({n_out} output blocks, {n_up} upsamplers)"
            ));
        }
        let num_res_blocks = n_out / levels - 1;
        if num_res_blocks == 0 {
            return Err("no residual blocks per level".into());
        }
        let mut channel_mult = Vec::new();
        let mut attention_ds = Vec::new();
        for level in 0..levels {
            let k = 1 + level * (num_res_blocks + 1);
            let out = get(&format!("input_blocks.{k}.0.out_layers.3.weight"))?;
            if model_channels == 0 || out[0] % model_channels != 0 {
                return Err(format!(
                    "level {level}: {} channels are not a multiple of {model_channels}",
                    out[0]
                ));
            }
            channel_mult.push(out[0] / model_channels);
            if has(format!("input_blocks.{k}.1.qkv.weight")) {
                attention_ds.push(1 << level);
            }
        }
        if ch0 != model_channels * channel_mult[0] {
            return Err(format!(
                "`input_blocks.0.0.weight` has {ch0} channels, expected {}",
                model_channels * channel_mult[0]
            ));
        }
        let emb_out = get("input_blocks.1.0.emb_layers.1.weight")?[0];
        let use_scale_shift_norm = emb_out == 2 * model_channels * channel_mult[0];
        // The first downsampler sits right after level 0's residual blocks.
        let resblock_updown = levels == 1
            || has(format!(
                "input_blocks.{}.0.in_layers.0.weight",
                num_res_blocks + 1
            ));
        let image_size = match channel_mult.as_slice() {
            [1, 1, 2, 2, 4, 4] => 256,
            [1, 1, 2, 3, 4] => 128,
            _ => 64,
        };
        Ok(Self {
            image_size,
            in_channels,
            out_channels,
            model_channels,
            channel_mult,
            num_res_blocks,
            attention_ds,
            num_head_channels: 64,
            use_scale_shift_norm,
            resblock_updown,
            num_classes,
        })
    }
}

/// How a residual block changes resolution (BigGAN-style up/down blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    None,
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Res {
        cin: usize,
        cout: usize,
        resample: Resample,
    },
    Attn {
        channels: usize,
    },
    /// Strided 3×3 conv downsampler (`op`), used when `resblock_updown` is false.
    DownConv {
        channels: usize,
    },
    /// Nearest ×2 then 3×3 conv (`conv`), used when `resblock_updown` is false.
    UpConv {
        channels: usize,
    },
}

impl BlockKind {
    /// Sub-weight names (openai) and shapes of this block.
    fn weights(&self, emb: usize, scale_shift: bool) -> Vec<(&'static str, Vec<usize>)> {
        match *self {
            BlockKind::Res { cin, cout, .. } => {
                let mut w = vec![
                    ("in_layers.0.weight", vec![cin]),
                    ("in_layers.0.bias", vec![cin]),
                    ("in_layers.2.weight", vec![cout, cin, 3, 3]),
                    ("in_layers.2.bias", vec![cout]),
                    (
                        "emb_layers.1.weight",
                        vec![if scale_shift { 2 * cout } else { cout }, emb],
                    ),
                    (
                        "emb_layers.1.bias",
                        vec![if scale_shift { 2 * cout } else { cout }],
                    ),
                    ("out_layers.0.weight", vec![cout]),
                    ("out_layers.0.bias", vec![cout]),
                    ("out_layers.3.weight", vec![cout, cout, 3, 3]),
                    ("out_layers.3.bias", vec![cout]),
                ];
                if cin != cout {
                    w.push(("skip_connection.weight", vec![cout, cin, 1, 1]));
                    w.push(("skip_connection.bias", vec![cout]));
                }
                w
            }
            BlockKind::Attn { channels: c } => vec![
                ("norm.weight", vec![c]),
                ("norm.bias", vec![c]),
                ("qkv.weight", vec![3 * c, c, 1, 1]),
                ("qkv.bias", vec![3 * c]),
                ("proj_out.weight", vec![c, c, 1, 1]),
                ("proj_out.bias", vec![c]),
            ],
            BlockKind::DownConv { channels: c } => {
                vec![("op.weight", vec![c, c, 3, 3]), ("op.bias", vec![c])]
            }
            BlockKind::UpConv { channels: c } => {
                vec![("conv.weight", vec![c, c, 3, 3]), ("conv.bias", vec![c])]
            }
        }
    }
}

/// One sub-module of an input/middle/output block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSpec {
    /// Prefix in the openai state dict, e.g. `input_blocks.5.1`.
    pub openai: String,
    /// Prefix in a diffusers `UNet2DModel`, e.g. `down_blocks.1.attentions.0`.
    pub diffusers: String,
    pub kind: BlockKind,
}

/// The UNet's blocks in execution order. Each input block's output is kept for a skip connection.
#[derive(Debug, Clone)]
pub struct Layout {
    pub input: Vec<Vec<BlockSpec>>,
    pub middle: Vec<BlockSpec>,
    pub output: Vec<Vec<BlockSpec>>,
    /// Channels entering the final GroupNorm + conv.
    pub out_channels_in: usize,
}

impl Layout {
    pub fn all_blocks(&self) -> impl Iterator<Item = &BlockSpec> {
        self.input
            .iter()
            .flatten()
            .chain(&self.middle)
            .chain(self.output.iter().flatten())
    }
}
