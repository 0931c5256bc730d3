//! Runtime choice of vector width for the plain loops of the kernels. The default x86-64 target is
//! SSE2 only; compiling the same loop again with AVX2+FMA enabled lets LLVM vectorise it 8 wide.

/// Runs `f` compiled for AVX2+FMA where the CPU has them, else as is. `f` must be `#[inline(always)]`
/// so it is compiled into the feature-enabled function.
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU supports the features the function is compiled for (checked above).
        return unsafe { avx2(f) };
    }
    f()
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
