//! The engine: tensors in, tensors out. No UI, no threads.
//!
//! | paper / reference                         | file                 |
//! |-------------------------------------------|----------------------|
//! | UNet architecture (cm_reference §f)       | `model/{config,blocks,unet}.rs` |
//! | weight formats and names (§f.5)           | `model/load.rs`      |
//! | presets per released checkpoint (§c.2)    | `model/spec.rs`      |
//! | sampling config, parameterization kinds   | `cm/sampling.rs`     |
//! | scalings c_skip/c_out/c_in, c_noise (§a)  | `cm/param.rs`        |
//! | Karras grid, ts lists (§b)                | `cm/schedule.rs`     |
//! | one-step and Algorithm 1 (§c.1, §c.2)     | `cm/sample.rs`       |
//! | EDM's Heun/Euler PF-ODE sampler (§c.5)    | `cm/pf_ode.rs`       |
//! | Algorithm 4 editing, slerp (§d)           | `cm/edit.rs`         |
//! | seeded and replayed noise                 | `cm/noise.rs`        |
//! | tasks wired to a model's schedule         | `pipeline.rs`        |
//! | pictures ⇄ tensors (pixels: `crate::picture`) | `image.rs`       |
//! | fast CPU convolution, GroupNorm+SiLU      | `kernels/`, `model/layers.rs` |
//! | latent consistency models (LCM, SD + LCM-LoRA) | `latent/`     |
pub mod cm;
pub mod error;
pub mod image;
pub mod kernels;
pub mod latent;
pub mod model;
pub mod pipeline;

pub use error::{EngineError, Result};
pub use kernels::Precision;

/// `cpu`, `cuda`, or `auto` (CUDA when built with it and a device is present, else CPU).
pub fn select_device(name: &str) -> Result<candle_core::Device> {
    use candle_core::Device;
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::new_cuda(0)?),
        "auto" => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
        other => Err(EngineError::InvalidInput(format!(
            "unknown device `{other}` (cpu, cuda or auto)"
        ))),
    }
}

/// Memory the system can still hand out (MemAvailable in /proc/meminfo; None where unknown), checked
/// before loading weights or running a batch so a too-large request is refused, not an OOM kill.
/// `CMPAINT_MEMORY_LIMIT` (bytes) lowers it, to keep cmpaint within a share of a shared machine.
pub fn available_memory() -> Option<usize> {
    let limit = std::env::var("CMPAINT_MEMORY_LIMIT")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok());
    let system = (|| {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb.saturating_mul(1024))
    })();
    match (system, limit) {
        (Some(s), Some(l)) => Some(s.min(l)),
        (s, l) => s.or(l),
    }
}
