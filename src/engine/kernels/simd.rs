//! Runtime choice of vector width for the plain loops of the kernels. The default x86-64 target is
//! SSE2 only; compiling the same loop again with AVX2+FMA (8 lanes) or AVX-512 (16 lanes) enabled lets
//! LLVM vectorise it for the CPU it runs on.

use std::sync::atomic::{AtomicU8, Ordering};

/// The instruction sets a kernel loop can be compiled for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Scalar = 0,
    Avx2 = 1,
    Avx512 = 2,
}

impl Level {
    #[cfg(test)]
    const ALL: [Level; 3] = [Level::Scalar, Level::Avx2, Level::Avx512];

    /// The widest level this CPU runs.
    pub fn detected() -> Level {
        #[cfg(target_arch = "x86_64")]
        {
            let has = |f: bool| f;
            if has(std::is_x86_feature_detected!("avx512f"))
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512dq")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("fma")
            {
                return Level::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Level::Avx2;
            }
        }
        Level::Scalar
    }
}

/// The widest level the loops may use (tests lower it to check every path; `CMPAINT_SIMD=scalar|avx2`
/// does so for a whole run, e.g. to compare speeds).
static CAP: AtomicU8 = AtomicU8::new(u8::MAX);

/// Lowers (or, with `Level::Avx512`, lifts) the cap on the level the loops use. Process-wide.
#[cfg(test)]
fn set_cap(level: Level) {
    CAP.store(level as u8, Ordering::Relaxed);
}

/// The cap `CMPAINT_SIMD=scalar|avx2` puts on the whole run (read once).
pub fn env_cap() -> Level {
    static FROM_ENV: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *FROM_ENV.get_or_init(|| match std::env::var("CMPAINT_SIMD").as_deref() {
        Ok("scalar") => Level::Scalar,
        Ok("avx2") => Level::Avx2,
        _ => Level::Avx512,
    })
}

/// The level the loops run at now: what the CPU has, under the cap and `CMPAINT_SIMD`.
pub fn level() -> Level {
    let env = env_cap();
    let cap = match CAP.load(Ordering::Relaxed) {
        0 => Level::Scalar,
        1 => Level::Avx2,
        _ => Level::Avx512,
    };
    Level::detected().min(cap).min(env)
}

/// Runs `f` compiled for the widest instruction set allowed (see [`level`]). `f` must be
/// `#[inline(always)]` so it is compiled into the feature-enabled function.
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match level() {
        Level::Avx512 => {
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
            unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            // SAFETY: the CPU supports the features the function is compiled for (`Level::detected`).
            return unsafe { avx512(f) };
        }
        Level::Avx2 => {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            // SAFETY: as above.
            return unsafe { avx2(f) };
        }
        Level::Scalar => {}
    }
    f()
}

/// Runs `check` once at every level this CPU has (the others are skipped), printing which ran, then
/// lifts the cap again. For the kernels' tests: every dispatched path against the same reference.
#[cfg(test)]
pub fn at_every_level(mut check: impl FnMut(Level)) {
    // tests run in parallel: one at a time may move the cap (others only run slower meanwhile)
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for l in Level::ALL.into_iter().filter(|&l| l <= Level::detected()) {
        set_cap(l);
        // straight to stderr, past the test harness's capture: the log says which paths ran
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "kernels: checking the {l:?} path");
        check(l);
    }
    set_cap(Level::Avx512);
}

/// `std::array::from_fn` for the kernels' inner loops: always inlined, so the array lives in
/// registers. (`from_fn` is not inlined into the feature-enabled functions: each call became a
/// function with a `memcpy` inside, 9 % of a 64² network's time at batch 1.)
#[inline(always)]
pub fn array<T: Copy + Default, const N: usize>(mut f: impl FnMut(usize) -> T) -> [T; N] {
    let mut out = [T::default(); N];
    for (i, x) in out.iter_mut().enumerate() {
        *x = f(i);
    }
    out
}

/// `N` values of `src` from `at` as an array (for the same reason as [`array`]).
#[inline(always)]
pub fn load<const N: usize>(src: &[f32], at: usize) -> [f32; N] {
    let src = &src[at..at + N];
    array(|i| src[i])
}

/// e^x in f32 to about 1 ulp (Cephes' expf: x = n·ln2 + r, a degree-6 polynomial in r, then 2^n
/// through the exponent bits). Branch-free, so loops over it vectorise; `std`'s exp does not.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n·LN2_HI is exact
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding and subtracting it rounds to the nearest integer without a rounding instruction
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes' 5.0000001201e-1, which is 0.5 in f32
    p = p * r * r + r + 1.0;
    // 2^n from the exponent bits. The integer is read from the float's mantissa (n + 127 + 1.5·2^23
    // holds it in its low bits) rather than cast: `as i32` saturates and stays scalar.
    let biased = ((n + 127.0) + ROUND)
        .to_bits()
        .wrapping_sub(ROUND.to_bits());
    p * f32::from_bits(biased << 23)
}

/// SiLU, x·σ(x), with the vectorisable exp.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_std_over_the_range_used() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_37;
        }
        assert!(worst <= 2.0 * f32::EPSILON, "relative error {worst:e}");
    }

    #[test]
    fn silu_matches_its_definition_and_saturates() {
        for x in [-100.0f32, -20.0, -1.0, -1e-3, 0.0, 0.5, 3.0, 30.0, 100.0] {
            let want = x as f64 / (1.0 + (-(x as f64)).exp());
            assert!(
                (silu(x) as f64 - want).abs() <= (4e-7 * want.abs()).max(1e-30),
                "silu({x}) = {} not {want}",
                silu(x)
            );
        }
    }
}
