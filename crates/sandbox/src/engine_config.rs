//! The one wasmtime configuration shared by the module and the build-time snapshot tool.
//!
//! A precompiled guest (`.cwasm`) only loads into an engine with the same settings, so both
//! sides build their `Config` here (the snapshot tool depends on this crate).

/// Native stack wasm may use per entry: CPython recurses in C, so the 512 KiB default is
/// too small for deep-but-legal Python. Worker threads are spawned with room for it. (It may
/// not exceed wasmtime's async stack size, 2 MiB, which wasmtime-wasi's features turn on.)
pub const MAX_WASM_STACK: usize = 2 << 20;

/// Wasmtime settings that affect compiled code.
pub fn base_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    // Explicit bounds checks instead of SIGSEGV handlers: Redis owns those signals for its
    // crash report, and `CONFIG SET crash-log-enabled` would silently replace ours.
    config.signals_based_traps(false);
    // Deadlines: a ticker thread advances the epoch; each entry into Python gets a budget.
    config.epoch_interruption(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.memory_init_cow(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config
}
