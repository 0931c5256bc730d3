//! The job layer: the one place that turns a [`Recipe`](crate::recipe::Recipe) into work, for the
//! app's worker thread and the CLI alike. [`plan`] makes every decision (the grid, time indices from
//! a strength, steps, what a run costs); [`run()`] calls the engine with progress, previews and
//! cancel. Above it: `worker` (the thread the app talks to) and `cli`; below it: `engine`.

mod latent;
mod model;
mod plan;
mod run;

pub use model::{
    AnyModel, LatentFacts, LatentLoaded, LoadedModel, ModelInfo, ModelSource, hash_weights,
    is_builtin_name, is_latent_folder, is_latent_model, load_any, load_model, weights_sha256,
    with_lora_sha256,
};
pub use plan::{Explicit, Steps, network_calls, noise_draws, plan, plan_with, recipe_steps};
pub use run::{RunOptions, ode_options, per_image, run, run_recipe, style_of_seed};

// What the CLI needs of the engine besides recipes, handed on here so that the CLI reaches the
// engine only through this layer: the parameterization and editing-grid facts that shape its
// arguments, one-call denoising, and the tensor side of pictures and noise files.
pub use crate::engine::cm::sample::{Step, run_to_end};
pub use crate::engine::model::load::{check_run_memory, read_config_file};
pub use crate::engine::model::spec::{MAX_STEPS, ModelConfig, Parameterization, preset, presets};
pub use crate::engine::pipeline::{EDIT_STEPS, denoise, strength_to_index};
pub use crate::engine::{Precision, select_device};

/// Pictures, masks and noise as tensors: the formats the CLI reads and writes.
pub mod io {
    pub use crate::engine::cm::edit::estimate_sigma;
    pub use crate::engine::cm::noise::{NoiseSource, ReplayNoise, SeededNoise};
    pub use crate::engine::image::{
        mask_to_tensor, picture_to_tensor, read_tensor_image, tensor_to_rgb8, write_tensor_image,
    };
}
