//! Latent consistency models (LCM, and Stable Diffusion with an LCM-LoRA): the networks of a
//! diffusers pipeline folder and the LCM sampler, checked against diffusers on tiny random pipelines
//! (tests/fixtures/make_lcm_fixtures.py).
//!
//! | diffusers / transformers                 | file            |
//! |------------------------------------------|-----------------|
//! | `CLIPTokenizer` (vocab.json, merges.txt) | `tokenizer.rs`  |
//! | `CLIPTextModel`                          | `clip.rs`       |
//! | `UNet2DConditionModel`                   | `unet.rs`       |
//! | `AutoencoderKL`                          | `vae.rs`        |
//! | `AutoencoderTiny`'s decoder (TAESD, previews) | `taesd.rs` |
//! | their shared blocks                      | `blocks.rs`, `nn.rs` |
//! | `LCMScheduler`, the w-embedding          | `lcm.rs`        |
//! | LoRA merge (`load_lora_weights` + `fuse_lora`), peft and kohya | `lora.rs` |
//! | `from_single_file` (SD 1.x, LDM layout)  | `single_file.rs` |
//! | the folder and its text-to-image run     | `pipeline.rs`   |
pub mod blocks;
pub mod clip;
pub mod lcm;
pub mod lora;
pub mod nn;
pub mod pipeline;
pub mod single_file;
pub mod taesd;
pub mod tokenizer;
pub mod unet;
pub mod vae;

pub use pipeline::{GuidanceKind, LatentEdit, LatentModel, LatentRequest, is_pipeline_dir};
pub use single_file::is_single_file;
