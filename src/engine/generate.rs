//! Generation from noise: the one-step and multistep samplers wired to a model's schedule.

use super::cm::noise::NoiseSource;
use super::cm::param::{ConsistencyFn, Network};
use super::cm::sample::{OnStep, sample_multistep, sample_onestep};
use super::cm::schedule::{sigmas_from_ts, validate_ts};
use super::error::{EngineError, Result};
use super::model::spec::SamplingConfig;
use candle_core::{Device, Tensor};

/// What to generate: the draw shape `[B, C, H, W]`, optional labels, and the time indices.
pub struct GenerateRequest<'a> {
    pub shape: [usize; 4],
    pub class_labels: Option<&'a [u32]>,
    /// None: one step. Some(ts): multistep over `ts` on a grid of `steps` points.
    pub ts: Option<&'a [usize]>,
    pub steps: usize,
}

/// Draws the initial noise (first draw of `noise`), then samples. Returns None if cancelled.
pub fn generate<N: Network + ?Sized>(
    net: &N,
    sampling: &SamplingConfig,
    req: &GenerateRequest,
    noise: &mut dyn NoiseSource,
    device: &Device,
    on_step: OnStep,
) -> Result<Option<Tensor>> {
    let class_labels = match req.class_labels {
        Some(labels) => {
            if labels.len() != req.shape[0] {
                return Err(EngineError::InvalidInput(format!(
                    "{} class label(s) for a batch of {}",
                    labels.len(),
                    req.shape[0]
                )));
            }
            Some(Tensor::new(labels, device)?)
        }
        None => None,
    };
    let f = ConsistencyFn {
        net,
        sigma_data: sampling.sigma_data,
        sigma_min: sampling.sigma_min,
        class_labels,
    };
    let z = noise.next(&req.shape)?.to_device(device)?;
    match req.ts {
        None => {
            let x = sample_onestep(&f, &z, sampling.sigma_max)?;
            let _ = on_step(1, 1);
            Ok(Some(x))
        }
        Some(ts) => {
            validate_ts(ts, req.steps).map_err(EngineError::InvalidInput)?;
            let sigmas = sigmas_from_ts(ts, req.steps, sampling);
            let x = (z * sigmas[0])?;
            Ok(sample_multistep(
                &f,
                x,
                &sigmas,
                sampling.sigma_max,
                noise,
                on_step,
            )?)
        }
    }
}
