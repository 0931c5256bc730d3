//! The machine's physical limits, to read the UNet timings against (BENCHMARKS.md, "fraction of
//! peak"): the f32 FMA peak of each vector width this CPU has (independent FMA chains held in
//! registers, one loop per thread), and the best f32 gemm throughput the `gemm` crate reaches here
//! (square and UNet-shaped products). Threads: `RAYON_NUM_THREADS`, else every core.
//!
//!     cargo bench --bench peak

use std::time::Instant;

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// GFLOP/s of `per_thread` run on every thread at once (best of 5), where one call does `flops`.
fn on_all_threads(flops: f64, per_thread: fn() -> f32) -> f64 {
    let n = threads();
    let mut best = 0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let sink: f32 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n).map(|_| s.spawn(per_thread)).collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        std::hint::black_box(sink);
        best = best.max(flops * n as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    best
}

const ITERS: usize = 20_000_000;

#[cfg(target_arch = "x86_64")]
mod fma {
    use std::arch::x86_64::*;

    /// 12 independent chains × 8 lanes: enough in flight to cover the FMA latency on two ports.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(iters: usize) -> f32 {
        let mut acc = [_mm256_set1_ps(0.0); 12];
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut s = _mm256_setzero_ps();
        for x in acc {
            s = _mm256_add_ps(s, x);
        }
        let mut out = [0f32; 8];
        // SAFETY: `out` holds the 8 floats stored
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }

    /// 12 independent chains × 16 lanes.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(iters: usize) -> f32 {
        let mut acc = [_mm512_set1_ps(0.0); 12];
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for x in acc {
            s = _mm512_add_ps(s, x);
        }
        _mm512_reduce_add_ps(s)
    }
}

/// (m, n, k) GFLOP/s of the gemm crate on all threads, best of 5 after a warm-up.
fn gemm_gflops(m: usize, n: usize, k: usize) -> f64 {
    let a = vec![1.0f32; m * k];
    let b = vec![0.5f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let par = gemm::Parallelism::Rayon(threads());
    let run = |c: &mut [f32]| unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    };
    run(&mut c);
    let mut best = 0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let reps = (2e9 / (2.0 * (m * n * k) as f64)).ceil() as usize;
        for _ in 0..reps {
            run(&mut c);
        }
        let flops = 2.0 * (m * n * k) as f64 * reps as f64;
        best = best.max(flops / start.elapsed().as_secs_f64() / 1e9);
    }
    std::hint::black_box(&c);
    best
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse
    let n = threads();
    println!("threads: {n}");
    #[cfg(target_arch = "x86_64")]
    {
        let flops = (2 * 12 * ITERS) as f64;
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            let g = on_all_threads(flops * 8.0, || unsafe { fma::avx2(ITERS) });
            println!("fma_peak_avx2_gflops: {g:.1}");
        }
        if std::is_x86_feature_detected!("avx512f") {
            let g = on_all_threads(flops * 16.0, || unsafe { fma::avx512(ITERS) });
            println!("fma_peak_avx512_gflops: {g:.1}");
        }
    }
    // square, and the shapes of a 64² UNet's 3×3 convolutions as im2col gemms (pixels × out × in·9)
    for (m, n, k) in [
        (1024, 1024, 1024),
        (2048, 2048, 2048),
        (4096, 128, 1152),
        (1024, 256, 2304),
    ] {
        println!("gemm_{m}x{n}x{k}_gflops: {:.1}", gemm_gflops(m, n, k));
    }
}
