//! The Karras/EDM noise grid (cm_reference §b). Index 0 is the largest noise level, as in the
//! reference's `ts` lists. Plain `f64` data: samplers take σ lists, they never build them.

use super::sampling::SamplingConfig;

/// σ_i = (σmax^(1/ρ) + i/(N−1)·(σmin^(1/ρ) − σmax^(1/ρ)))^ρ, computed in f64 like the reference's
/// multistep sampler (so σ_0 is exactly σmax).
///
/// ```
/// use cmpaint::engine::cm::schedule::karras_sigma;
/// use cmpaint::engine::model::spec::SamplingConfig;
/// let cfg = SamplingConfig::default(); // N = 40, σ in [0.002, 80], ρ = 7
/// assert_eq!(karras_sigma(0, 40, &cfg), 80.0);
/// assert!((karras_sigma(22, 40, &cfg) - 1.382368).abs() < 1e-6); // the middle of ts (0, 22, 39)
/// ```
pub fn karras_sigma(i: usize, n: usize, cfg: &SamplingConfig) -> f64 {
    let max_inv = cfg.sigma_max.powf(1.0 / cfg.rho);
    let min_inv = cfg.sigma_min.powf(1.0 / cfg.rho);
    let frac = if n > 1 {
        i as f64 / (n - 1) as f64
    } else {
        0.0
    };
    (max_inv + frac * (min_inv - max_inv)).powf(cfg.rho)
}

/// The whole N-point grid, descending.
pub fn karras_sigmas(n: usize, cfg: &SamplingConfig) -> Vec<f64> {
    (0..n).map(|i| karras_sigma(i, n, cfg)).collect()
}

/// σ of each index in a `ts` list (the one copy of the reference's ts formula).
pub fn sigmas_from_ts(ts: &[usize], n: usize, cfg: &SamplingConfig) -> Vec<f64> {
    ts.iter().map(|&t| karras_sigma(t, n, cfg)).collect()
}

/// Checks a `ts` list against a grid of N points: strictly increasing indices below N, at least two
/// entries. The last entry should be N−1 (σmin) for the reference's zero-noise final step.
pub fn validate_ts(ts: &[usize], n: usize) -> Result<(), String> {
    if n < 2 {
        return Err(format!("the grid needs at least 2 points, got N={n}"));
    }
    if ts.len() < 2 {
        return Err(format!("ts needs at least two indices (e.g. 0,{})", n - 1));
    }
    if ts.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("ts must be strictly increasing, got {ts:?}"));
    }
    if let Some(&last) = ts.last()
        && last >= n
    {
        return Err(format!(
            "ts index {last} is outside a grid of N={n} points (0..={})",
            n - 1
        ));
    }
    Ok(())
}
