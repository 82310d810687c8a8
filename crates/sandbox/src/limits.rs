//! The sandbox limits every session obeys, changeable at run time (the host's RG.CONFIGSET
//! calls the setters). Process-wide atomics: read on every entry, never locked.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use wasmtime::ResourceLimiter;

static MEMORY_CAP_BYTES: AtomicUsize = AtomicUsize::new(256 << 20);
static TIME_LIMIT_MS: AtomicU64 = AtomicU64::new(5000);
/// Work inline on Redis's main thread (sync registrations, hooks) blocks every client.
static MAIN_THREAD_TIME_LIMIT_MS: AtomicU64 = AtomicU64::new(500);
/// Largest reply crossing the boundary either way (a command's reply into the guest, a
/// flow's results out of it).
static MAX_REPLY_BYTES: AtomicUsize = AtomicUsize::new(128 << 20);

/// `SandboxMaxReplyMB`.
pub fn set_max_reply_mb(mb: i64) {
    MAX_REPLY_BYTES.store((mb.max(1) as usize) << 20, Ordering::Relaxed);
}

/// The most bytes one reply may encode to (`SandboxMaxReplyMB`).
pub fn max_reply_bytes() -> usize {
    MAX_REPLY_BYTES.load(Ordering::Relaxed)
}

/// The refusal for a reply of `len` bytes, if it is over the cap.
pub fn reply_too_large(len: usize) -> Option<String> {
    let cap = max_reply_bytes();
    (len > cap).then(|| format!("reply of {len} bytes exceeds the limit of {} MB (SandboxMaxReplyMB)", cap >> 20))
}

/// The refusal for a reply whose conversion stopped once it passed the cap (so its whole
/// size is never known, nor held).
pub fn reply_past_cap() -> String {
    let cap = max_reply_bytes();
    format!("reply of more than {cap} bytes exceeds the limit of {} MB (SandboxMaxReplyMB)", cap >> 20)
}

/// Bytes of linear memory held by all live sessions (wasm heaps are invisible to Redis).
static GUEST_MEMORY_BYTES: AtomicUsize = AtomicUsize::new(0);
/// All growth ever (RG.PYSTATS TotalAllocated) and the highest total (PeakAllocated).
static GUEST_MEMORY_GROWN: AtomicUsize = AtomicUsize::new(0);
static GUEST_MEMORY_PEAK: AtomicUsize = AtomicUsize::new(0);

/// The configuration names of the two time limits, as errors name them.
pub const TIME_LIMIT_KEY: &str = "SandboxTimeLimitMS";
/// See [`TIME_LIMIT_KEY`].
pub const MAIN_THREAD_TIME_LIMIT_KEY: &str = "SandboxMainThreadTimeLimitMS";

/// How often the epoch ticker advances: deadlines and aborts are checked at this pace.
pub const EPOCH_TICK_MS: u64 = 10;
/// Growth beyond this many table elements is refused (CPython needs about 10k).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// `SandboxMemoryMB`: the most linear memory one session may have.
pub fn set_memory_cap_mb(mb: i64) {
    MEMORY_CAP_BYTES.store((mb.max(1) as usize) << 20, Ordering::Relaxed);
}

/// `SandboxTimeLimitMS`: the longest one entry may run on a worker.
pub fn set_time_limit_ms(ms: i64) {
    TIME_LIMIT_MS.store(ms.max(1) as u64, Ordering::Relaxed);
}

/// `SandboxMainThreadTimeLimitMS`: the longest one entry may run on Redis's main thread.
pub fn set_main_thread_time_limit_ms(ms: i64) {
    MAIN_THREAD_TIME_LIMIT_MS.store(ms.max(1) as u64, Ordering::Relaxed);
}

/// The main thread's limit, never longer than the general one.
pub fn main_thread_time_limit_ms() -> u64 {
    MAIN_THREAD_TIME_LIMIT_MS.load(Ordering::Relaxed).min(time_limit_ms())
}

/// The general time limit.
pub fn time_limit_ms() -> u64 {
    TIME_LIMIT_MS.load(Ordering::Relaxed)
}

/// (total ever allocated, peak, current) bytes of all sessions' linear memories.
pub fn guest_memory_stats() -> (usize, usize, usize) {
    (
        GUEST_MEMORY_GROWN.load(Ordering::Relaxed),
        GUEST_MEMORY_PEAK.load(Ordering::Relaxed),
        GUEST_MEMORY_BYTES.load(Ordering::Relaxed),
    )
}

/// Bytes of linear memory all live sessions hold now.
pub fn guest_memory_bytes() -> usize {
    GUEST_MEMORY_BYTES.load(Ordering::Relaxed)
}

/// Per-store memory accounting: refuses growth past the cap (the guest's malloc then fails
/// and Python raises MemoryError) and keeps the process-wide total.
#[derive(Default)]
pub struct MemoryLimiter {
    current: usize,
}

impl MemoryLimiter {
    fn account(&mut self, desired: usize) {
        let grown = desired - self.current.min(desired);
        let total = GUEST_MEMORY_BYTES.fetch_add(grown, Ordering::Relaxed) + grown;
        GUEST_MEMORY_GROWN.fetch_add(grown, Ordering::Relaxed);
        GUEST_MEMORY_PEAK.fetch_max(total, Ordering::Relaxed);
        self.current = desired;
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if self.current == 0 {
            self.account(current);
        }
        if desired > MEMORY_CAP_BYTES.load(Ordering::Relaxed) {
            return Ok(false);
        }
        self.account(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        GUEST_MEMORY_BYTES.fetch_sub(self.current, Ordering::Relaxed);
    }
}
