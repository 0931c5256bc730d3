//! The C allocator, told to keep freed memory for the next step.
//!
//! A UNet allocates and frees the same few activation sizes in every layer of every step. glibc gives
//! blocks above its mmap threshold straight back to the kernel when they are freed, and trims the
//! heap's top once twice that threshold lies free, so the next step faults the same pages in again,
//! each one zeroed by the kernel: 10 % of cm25m's batch-8 step and 20 % of the built-in model's on the
//! Zen 4 bench machine (BENCHMARKS.md). Raised thresholds keep freed memory for reuse instead: the
//! process stays near its high-water mark between steps.

/// Blocks up to this size come from the heap and are reused (glibc refuses more than 32 MiB).
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the heap's top is given back beyond this.
const TRIM_THRESHOLD: i32 = 1 << 30;

/// Applies the thresholds process-wide; call once at start-up (the CLI and the app do). Elsewhere
/// than glibc it does nothing.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
