//! The two parameterizations (paper Appendix C; cm_reference §a), both
//! c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, c_noise(σ)): the consistency function f(x, σ) of CD/CT models,
//! and the denoiser D(x, σ) of EDM teachers.

use super::sampling::Parameterization;
use candle_core::{Result, Tensor};

/// Scalings of the boundary-condition parameterization used by every CD/CT checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scalings {
    pub c_skip: f64,
    pub c_out: f64,
    pub c_in: f64,
}

/// `c_skip = σd²/((σ−σmin)²+σd²)`, `c_out = (σ−σmin)·σd/√(σ²+σd²)`, `c_in = 1/√(σ²+σd²)`.
/// Note the plain σ² inside c_out's root, exactly as the reference; c_skip(σmin)=1, c_out(σmin)=0.
///
/// ```
/// use cmpaint::engine::cm::param::boundary_scalings;
/// let s = boundary_scalings(0.002, 0.5, 0.002); // f(x, σmin) = x: the boundary condition
/// assert_eq!((s.c_skip, s.c_out), (1.0, 0.0));
/// let s = boundary_scalings(80.0, 0.5, 0.002);
/// assert!((s.c_skip - 3.906293e-5).abs() < 1e-11 && (s.c_in - 0.0124998).abs() < 1e-7);
/// ```
pub fn boundary_scalings(sigma: f64, sigma_data: f64, sigma_min: f64) -> Scalings {
    let sd2 = sigma_data * sigma_data;
    let root = (sigma * sigma + sd2).sqrt();
    Scalings {
        c_skip: sd2 / ((sigma - sigma_min).powi(2) + sd2),
        c_out: (sigma - sigma_min) * sigma_data / root,
        c_in: 1.0 / root,
    }
}

/// The EDM teachers' scalings (`get_scalings`): `c_skip = σd²/(σ²+σd²)`, `c_out = σ·σd/√(σ²+σd²)`,
/// the same `c_in`.
///
/// ```
/// use cmpaint::engine::cm::param::edm_scalings;
/// let s = edm_scalings(0.5, 0.5);
/// assert!((s.c_skip - 0.5).abs() < 1e-15 && (s.c_out - 0.5f64.sqrt() / 2.0).abs() < 1e-15);
/// ```
pub fn edm_scalings(sigma: f64, sigma_data: f64) -> Scalings {
    let sd2 = sigma_data * sigma_data;
    let root = (sigma * sigma + sd2).sqrt();
    Scalings {
        c_skip: sd2 / (sigma * sigma + sd2),
        c_out: sigma * sigma_data / root,
        c_in: 1.0 / root,
    }
}

/// The network's time input: `1000·0.25·ln(σ + 1e-44)` (the 1e-44 only guards ln 0).
pub fn c_noise(sigma: f64) -> f64 {
    250.0 * (sigma + 1e-44).ln()
}

/// The denoiser network F: takes `c_in·x`, the time input per sample and optional class labels.
pub trait Network {
    fn forward(&self, x: &Tensor, c_noise: &[f64], class_labels: Option<&Tensor>)
    -> Result<Tensor>;
}

/// A network wrapped with its scalings: the consistency function f(x, σ) of a consistency model, or
/// the denoiser D(x, σ) of an EDM teacher. Both map a noisy image to a clean estimate.
pub struct Denoiser<'a, N: Network + ?Sized> {
    pub net: &'a N,
    pub parameterization: Parameterization,
    pub sigma_data: f64,
    pub sigma_min: f64,
    pub class_labels: Option<Tensor>,
}

impl<N: Network + ?Sized> Denoiser<'_, N> {
    /// f(x, σ) or D(x, σ) for one σ shared by the whole batch, unclamped.
    pub fn call(&self, x: &Tensor, sigma: f64) -> Result<Tensor> {
        let s = match self.parameterization {
            Parameterization::Consistency => {
                boundary_scalings(sigma, self.sigma_data, self.sigma_min)
            }
            Parameterization::Edm => edm_scalings(sigma, self.sigma_data),
        };
        let batch = x.dim(0)?;
        let out = self.net.forward(
            &(x * s.c_in)?,
            &vec![c_noise(sigma); batch],
            self.class_labels.as_ref(),
        )?;
        (x * s.c_skip)? + (out * s.c_out)?
    }

    /// The denoised estimate clamped to the data range, as every sampler step of the reference does.
    pub fn denoise(&self, x: &Tensor, sigma: f64) -> Result<Tensor> {
        self.call(x, sigma)?.clamp(-1f32, 1f32)
    }
}
