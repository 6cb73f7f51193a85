//! Peak memory of a plan load under glibc's malloc.
//!
//! A load holds every weight twice for a moment: as read (from the ONNX file or the archive)
//! and packed for the CPU's matmul kernels. tract frees each source tensor once its packed
//! copy exists, so the *heap* never holds much more than the weights (measured with heaptrack
//! on base f32: 425 MB at the peak for 408 MB of weights). But glibc raises its mmap threshold
//! each time it frees an mmapped block (up to 32 MiB), so after the first weight is freed the
//! next ones come from the main heap, where a packed tensor (padded to the kernel's tile)
//! does not fit in the hole its source left: the holes stay resident. Peak RSS of a base f32
//! archive load was 646 MB for 425 MB of heap.
//!
//! [`LoadMemory::begin`] pins the threshold at glibc's initial 128 KiB for the duration of a
//! load, so every weight-sized block is its own mapping and goes back to the kernel when
//! freed (f32 646 → 446 MB, f16 native 339 → 231 MB, int8 142 → 140 MB). When the last
//! concurrent load ends the threshold goes to glibc's maximum (the trim threshold to twice
//! that), which is where glibc's own adjustment ends up after a load: per-call tensors then
//! reuse heap memory instead of taking fresh, zero-filled mappings on every call. The price
//! is the page faults of those fresh mappings during the load (base f32 archive ~0.15 s more).
//!
//! If the process was started with `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES` set, the
//! user has chosen: nothing is changed. Other C libraries (musl maps large blocks one by one
//! anyway) and other systems: nothing is changed.

/// Keeps glibc's mmap threshold low while at least one load is in progress.
pub(crate) struct LoadMemory(());

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::sync::Mutex;

    /// Loads in progress; the threshold is set when it leaves 0 and reset when it returns.
    static LOADS: Mutex<usize> = Mutex::new(0);
    const DURING_LOAD: libc::c_int = 128 * 1024;
    /// glibc's DEFAULT_MMAP_THRESHOLD_MAX: 32 MiB on 64-bit targets, 16 MiB on 32-bit ones.
    const AFTER_LOAD: libc::c_int =
        4 * 1024 * 1024 * std::mem::size_of::<libc::c_long>() as libc::c_int;

    fn user_has_chosen() -> bool {
        std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
            || std::env::var_os("GLIBC_TUNABLES").is_some()
    }

    pub(super) fn enter() {
        let mut loads = LOADS.lock().unwrap_or_else(|e| e.into_inner());
        if *loads == 0 && !user_has_chosen() {
            // SAFETY: mallopt only changes allocator parameters; glibc serializes it.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, DURING_LOAD) };
        }
        *loads += 1;
    }

    pub(super) fn leave() {
        let mut loads = LOADS.lock().unwrap_or_else(|e| e.into_inner());
        *loads -= 1;
        if *loads == 0 && !user_has_chosen() {
            // SAFETY: as above. Setting the mmap threshold by hand leaves the trim threshold at
            // 128 KiB: every call would then give its freed tensors back (brk) and fault them
            // in again. glibc's own adjustment keeps it at twice the mmap threshold.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, AFTER_LOAD);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * AFTER_LOAD);
            }
        }
    }
}

impl LoadMemory {
    /// Starts a load; the guard ends it when dropped (also on an error return).
    pub(crate) fn begin() -> LoadMemory {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        glibc::enter();
        LoadMemory(())
    }
}

impl Drop for LoadMemory {
    fn drop(&mut self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        glibc::leave();
    }
}
