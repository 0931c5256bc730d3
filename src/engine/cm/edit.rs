//! Zero-shot editing, paper Algorithm 4 (Appendix D; cm_reference §d): start from the reference image
//! plus noise at the first σ; after every consistency-function call keep the known part of the
//! reference (in the task's linear basis) and the generated part of the estimate; re-noise; repeat.
//! One generic routine; each task only supplies its replacement operator, written in closed form.

use super::noise::NoiseSource;
use super::param::{Denoiser, Network};
use super::sample::{OnStep, iterate};
use candle_core::{D, Result, Tensor};

/// A task's linear projection: `replace(a, b) = A⁻¹[(A a)⊙(1−Ω) + (A b)⊙Ω]` keeps the known part of
/// `a` and the generated part of `b`.
pub trait Replacement {
    fn replace(&self, known: &Tensor, generated: &Tensor) -> Result<Tensor>;

    /// What the generated part is filled with in the starting image y = replace(images, fill): the
    /// reference uses −1 for inpainting, 0 for colorization and super-resolution.
    fn fill(&self) -> f64 {
        0.0
    }

    /// The reference image y: the known part of `images`, the rest filled.
    fn reference(&self, images: &Tensor) -> Result<Tensor> {
        self.replace(images, &(images.zeros_like()? + self.fill())?)
    }
}

/// Inpainting (A = I): `keep` is 1 where the input is kept, 0 where it is regenerated, in between for
/// a soft edge; shape `[B or 1, 1, H, W]`. replace(a, b) = a·keep + b·(1−keep).
pub struct Inpaint {
    pub keep: Tensor,
}

impl Replacement for Inpaint {
    fn replace(&self, known: &Tensor, generated: &Tensor) -> Result<Tensor> {
        let regenerate = self.keep.affine(-1.0, 1.0)?;
        known.broadcast_mul(&self.keep)? + generated.broadcast_mul(&regenerate)?
    }

    fn fill(&self) -> f64 {
        -1.0
    }
}

/// The paper's luminance weights; colorization keeps the coordinate along v = w/‖w‖ of an orthogonal
/// colour basis (cm_reference §d.3).
pub const LUMINANCE: [f64; 3] = [0.2989, 0.5870, 0.1140];

/// The unit luminance axis v.
pub fn luminance_axis() -> [f64; 3] {
    let n = LUMINANCE.iter().map(|w| w * w).sum::<f64>().sqrt();
    LUMINANCE.map(|w| w / n)
}

/// v·x per pixel: `[B, 3, H, W]` → `[B, 1, H, W]`.
pub fn luminance_coordinate(x: &Tensor) -> Result<Tensor> {
    let v = Tensor::new(&luminance_axis().map(|w| w as f32), x.device())?.reshape((1, 3, 1, 1))?;
    x.broadcast_mul(&v)?.sum_keepdim(1)
}

/// Colorization: keep the luminance coordinate of the reference, generate the two chroma coordinates.
/// Closed form of the reference's Q-basis projection: replace(a, b) = v(v·a) + b − v(v·b).
pub struct Colorize;

impl Replacement for Colorize {
    fn replace(&self, known: &Tensor, generated: &Tensor) -> Result<Tensor> {
        let v = Tensor::new(&luminance_axis().map(|w| w as f32), known.device())?
            .reshape((1, 3, 1, 1))?;
        let delta = (luminance_coordinate(known)? - luminance_coordinate(generated)?)?;
        generated + delta.broadcast_mul(&v)?
    }
}

/// Super-resolution: keep the mean of each `factor`×`factor` patch of the reference, generate the
/// rest. replace(a, b) = b − patchmean(b) + patchmean(a).
pub struct SuperRes {
    pub factor: usize,
}

/// Each `p`×`p` patch replaced by its mean, per channel.
pub fn patch_mean(x: &Tensor, p: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    x.avg_pool2d(p)?.upsample_nearest2d(h, w)
}

impl Replacement for SuperRes {
    fn replace(&self, known: &Tensor, generated: &Tensor) -> Result<Tensor> {
        let p = self.factor;
        (generated - patch_mean(generated, p)?)? + patch_mean(known, p)?
    }
}

/// Stroke-guided editing (SDEdit): A = I and Ω = everything, so nothing is replaced after the start.
pub struct KeepNothing;

impl Replacement for KeepNothing {
    fn replace(&self, _known: &Tensor, generated: &Tensor) -> Result<Tensor> {
        Ok(generated.clone())
    }

    fn reference(&self, images: &Tensor) -> Result<Tensor> {
        Ok(images.clone())
    }
}

/// Algorithm 4 from the reference image y = `op.reference(images)`: x = y + σ₀·z, then the
/// multistep loop with `op.replace(images, ·)` after every call. The result is not clamped (a colour
/// rotation of clamped values may leave [−1, 1] slightly, as in the reference). None when cancelled.
///
/// The known part comes from the picture itself, not from `y` as in the reference code: the two
/// are the same, bit for bit, for a hard mask and for the projections (colorize, superres), but
/// with a soft inpainting mask (0 < keep < 1) replacing from `y` weighs the fill (−1) in once more
/// at every step — keep²·image + keep·(1 − keep)·(−1) — and darkened every feathered edge.
pub fn algorithm4<N: Network + ?Sized>(
    f: &Denoiser<N>,
    images: &Tensor,
    op: &dyn Replacement,
    sigmas: &[f64],
    sigma_max: f64,
    noise: &mut dyn NoiseSource,
    on_step: OnStep,
) -> Result<Option<Tensor>> {
    let y = op.reference(images)?;
    let z = noise.next(y.dims())?.to_device(y.device())?;
    let x = (y + (z * sigmas[0])?)?;
    iterate(
        f,
        x,
        sigmas,
        sigma_max,
        noise,
        &|x0| op.replace(images, &x0),
        on_step,
    )
}

/// Spherical interpolation of two noise tensors `[B, …]`, per sample over its flattened vector
/// (paper Appendix D): θ = arccos(⟨a, b⟩ / ‖a‖‖b‖); falls back to linear interpolation when sin θ ≈ 0.
pub fn slerp(a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor> {
    let batch = a.dim(0)?;
    let (fa, fb) = (a.flatten_from(1)?, b.flatten_from(1)?);
    let dot: Vec<f32> = (&fa * &fb)?.sum(D::Minus1)?.to_vec1()?;
    let na: Vec<f32> = fa.sqr()?.sum(D::Minus1)?.sqrt()?.to_vec1()?;
    let nb: Vec<f32> = fb.sqr()?.sum(D::Minus1)?.sqrt()?.to_vec1()?;
    let mut rows = Vec::with_capacity(batch);
    for i in 0..batch {
        let cos = (dot[i] as f64 / (na[i] as f64 * nb[i] as f64)).clamp(-1.0, 1.0);
        let theta = cos.acos();
        let (wa, wb) = if theta.sin().abs() < 1e-6 {
            (1.0 - alpha, alpha)
        } else {
            (
                ((1.0 - alpha) * theta).sin() / theta.sin(),
                (alpha * theta).sin() / theta.sin(),
            )
        };
        rows.push(((a.get(i)? * wa)? + (b.get(i)? * wb)?)?);
    }
    Tensor::stack(&rows, 0)
}

/// Noise level of an image estimated from its finest diagonal Haar coefficients (Donoho's MAD
/// estimator): σ ≈ median(|HH|)/0.6745, with HH = (a − b − c + d)/2 over 2×2 blocks. Natural images
/// have little energy there, so this is mostly the noise.
pub fn estimate_sigma(x: &Tensor) -> Result<f64> {
    let (_, _, h, w) = x.dims4()?;
    let (h2, w2) = (h / 2 * 2, w / 2 * 2);
    let x = x.narrow(2, 0, h2)?.narrow(3, 0, w2)?;
    let even = |t: &Tensor, dim: usize, off: usize| -> Result<Tensor> {
        let n = t.dim(dim)? / 2;
        let idx = Tensor::arange_step(off as u32, (2 * n) as u32, 2, t.device())?;
        t.index_select(&idx, dim)
    };
    let (r0, r1) = (even(&x, 2, 0)?, even(&x, 2, 1)?);
    let (a, b, c, d) = (
        even(&r0, 3, 0)?,
        even(&r0, 3, 1)?,
        even(&r1, 3, 0)?,
        even(&r1, 3, 1)?,
    );
    let hh = ((((a - b)? - c)? + d)? * 0.5)?.abs()?;
    let mut v: Vec<f32> = hh.flatten_all()?.to_vec1()?;
    if v.is_empty() {
        candle_core::bail!("the image is too small to estimate its noise");
    }
    let mid = v.len() / 2;
    let (_, median, _) = v.select_nth_unstable_by(mid, |p, q| p.total_cmp(q));
    Ok(*median as f64 / 0.6745)
}
