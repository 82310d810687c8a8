//! The sandbox: one wasmtime engine per process, one store + instance ("guest") per session.

pub mod engine_config;
mod guest;
mod host_calls;
pub mod limits;
mod log_stream;
mod wasi_time;

use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use thiserror::Error;
use wasmtime::{Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, PoolingAllocationConfig};

pub use guest::{Created, EntrySetup, Guest, ScriptOutcome};
pub use host_calls::{AfterEntry, CommandCtx, CreatedRegistration, HostState, RedisCaller};

/// Why an entry into the guest did not complete. After any of these the guest is poisoned:
/// its Python state was cut off mid-flight and cannot be trusted again.
#[derive(Debug, Error, Clone)]
pub enum SandboxError {
    #[error("Execution was stopped: time limit of {0} ms exceeded ({1})")]
    TimeLimit(u64, &'static str),
    #[error("Execution was stopped: the sandbox trapped ({0})")]
    Trap(String),
    #[error("Execution was aborted (forced stop)")]
    Aborted,
    #[error("Sandbox error: {0}")]
    Host(String),
    #[error("Could not create a session: {0}")]
    Create(String),
    #[error("Session is unusable after an earlier failure: {0}")]
    Poisoned(String),
}

/// Everything sessions share: the engine, the pre-linked guest and where its stdlib is.
pub struct Runtime {
    engine: Engine,
    pre: InstancePre<HostState>,
    stdlib_dir: PathBuf,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub fn runtime() -> Option<&'static Runtime> {
    RUNTIME.get()
}

/// Loads the guest from `guest_dir` (`gears.cwasm`, else compiles `gears.wasm`) and starts
/// the epoch ticker. `max_sessions` sizes the instance pool.
pub fn init(guest_dir: &Path, max_sessions: u32) -> Result<&'static Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let mut config = engine_config::base_config();
    // Spawning compiler threads inside Redis is pointless: compilation happens at build time.
    config.parallel_compilation(false);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(max_sessions)
        .total_memories(max_sessions)
        .total_tables(max_sessions)
        .max_memory_size(4 << 30)
        .table_elements(100_000)
        .max_core_instance_size(1 << 20)
        .linear_memory_keep_resident(0)
        .table_keep_resident(0);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let module = load_guest(&engine, guest_dir)?;
    let mut linker = Linker::new(&engine);
    host_calls::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let pre = linker.instantiate_pre(&module).map_err(|e| anyhow::anyhow!("linking the guest: {e:#}"))?;
    start_epoch_ticker(engine.clone())?;
    let runtime = Runtime { engine, pre, stdlib_dir: guest_dir.join("lib") };
    Ok(RUNTIME.get_or_init(|| runtime))
}

fn load_guest(engine: &Engine, guest_dir: &Path) -> Result<Module> {
    let cwasm = guest_dir.join("gears.cwasm");
    // SAFETY: `gears.cwasm` is produced by our own build (tools/snapshot) from our guest with
    // this engine configuration; wasmtime verifies the engine compatibility header and
    // refuses a mismatch, in which case we compile the snapshot below instead.
    match unsafe { Module::deserialize_file(engine, &cwasm) } {
        Ok(module) => return Ok(module),
        Err(e) => crate::redis_log::warning(&format!(
            "wasmgears: {} not usable ({e}); compiling gears.wasm (takes a few seconds)",
            cwasm.display()
        )),
    }
    let wasm = guest_dir.join("gears.wasm");
    Module::from_file(engine, &wasm)
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .with_context(|| format!("loading {}", wasm.display()))
}

fn start_epoch_ticker(engine: Engine) -> Result<()> {
    std::thread::Builder::new()
        .name("rg-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(limits::EPOCH_TICK_MS));
            engine.increment_epoch();
        })
        .context("starting the epoch ticker")?;
    Ok(())
}
