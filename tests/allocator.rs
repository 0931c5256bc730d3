//! `retain_freed_memory`: large activations come from the heap and are reused, not mapped afresh
//! (and faulted in again) on every allocation. Its own test binary: the count it reads is process-wide.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn large_buffers_come_from_the_heap_after_start_up() {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let mapped = || unsafe { libc::mallinfo2() }.hblks;
    // a 16 MiB activation (cm25m, batch 8, 64²×64 channels is 8 MiB); glibc maps such a block by
    // default (its mmap threshold starts at 128 KiB)
    let activation = || std::hint::black_box(vec![1f32; 4 << 20]);
    let before = mapped();
    let block = activation();
    assert_eq!(mapped(), before + 1, "glibc's default: a fresh mapping");
    drop(block);

    cmpaint::engine::kernels::memory::retain_freed_memory();
    let before = mapped();
    let first = activation();
    let address = first.as_ptr();
    assert_eq!(mapped(), before, "from the heap, not a mapping");
    drop(first);
    let second = activation();
    assert_eq!(second.as_ptr(), address, "the freed block is reused");
}
