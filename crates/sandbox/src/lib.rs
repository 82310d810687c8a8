//! The wasmgears sandbox: one wasmtime engine per process, one store + instance ("guest") of
//! the pre-initialised CPython per session. It knows nothing of Redis: a guest reaches its
//! host only through the traits of [`services`], and the wire format is `wasmgears_abi`'s.
//!
//! - [`Runtime`]: the engine, the pre-linked guest, the epoch ticker (deadlines, aborts);
//! - [`Guest`]: one session's instance, entered through [`Guest::enter`]-based calls;
//! - `host_calls`: the guest's one import; `wasi_time`: its clocks and sleeps;
//! - [`limits`]: memory cap, time limits, reply size (process-wide atomics);
//! - [`profiling`]: `ProfileExecutions`, passed to the guest as a flag of each entry.
#![warn(missing_docs)]

mod command_ctx;
pub mod engine_config;
mod guest;
mod host_calls;
mod image_file;
pub mod limits;
mod log_stream;
pub mod profiling;
pub mod services;
mod state;
mod wasi_time;

use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use wasmtime::{Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, PoolingAllocationConfig};

pub use guest::{EntrySetup, Guest, ScriptOutcome};
pub use services::{HostServices, LogLevel, RedisCaller};
pub use state::{AfterEntry, CommandCtx, Created, CreatedExecution, CreatedRegistration, HostState};

/// Why an entry into the guest did not complete. After any of these the guest is poisoned:
/// its Python state was cut off mid-flight and cannot be trusted again.
#[derive(Debug, Error, Clone)]
pub enum SandboxError {
    /// The entry ran past its deadline (the limit in ms, and the setting that sets it).
    #[error("Execution was stopped: time limit of {0} ms exceeded ({1})")]
    TimeLimit(u64, &'static str),
    /// The wasm code trapped.
    #[error("Execution was stopped: the sandbox trapped ({0})")]
    Trap(String),
    /// `RG.ABORTEXECUTION` (or an unregister) stopped it.
    #[error("Execution was aborted (forced stop)")]
    Aborted,
    /// The host failed while serving the entry.
    #[error("Sandbox error: {0}")]
    Host(String),
    /// The instance could not be created.
    #[error("Could not create a session: {0}")]
    Create(String),
    /// An earlier entry failed; the instance is not entered again.
    #[error("Session is unusable after an earlier failure: {0}")]
    Poisoned(String),
}

/// Everything sessions share: the engine, the pre-linked guest, where its stdlib is, and the
/// host's services.
pub struct Runtime {
    engine: Engine,
    pre: InstancePre<HostState>,
    stdlib_dir: PathBuf,
    services: Arc<dyn HostServices>,
}

impl Runtime {
    /// Loads the guest from `guest_dir` (`gears.cwasm`, else compiles `gears.wasm`) and
    /// starts the epoch ticker. `max_sessions` sizes the instance pool.
    pub fn new(guest_dir: &Path, max_sessions: u32, services: Arc<dyn HostServices>) -> Result<Runtime> {
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
        let module = load_guest(&engine, guest_dir, services.as_ref())?;
        let mut linker = Linker::new(&engine);
        host_calls::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let pre = linker.instantiate_pre(&module).map_err(|e| anyhow::anyhow!("linking the guest: {e:#}"))?;
        start_epoch_ticker(engine.clone())?;
        Ok(Runtime { engine, pre, stdlib_dir: guest_dir.join("lib"), services })
    }
}

fn load_guest(engine: &Engine, guest_dir: &Path, services: &dyn HostServices) -> Result<Module> {
    let cwasm = guest_dir.join("gears.cwasm");
    match image_file::untrusted_writers(&cwasm) {
        Some(why) => services.log(
            LogLevel::Warning,
            &format!(
                "wasmgears: refusing to load {}: {why}, so others could run native code in Redis; \
                 compiling gears.wasm instead (takes a few seconds)",
                cwasm.display()
            ),
        ),
        None => {
            // SAFETY: `gears.cwasm` is native code produced by our own build (tools/snapshot)
            // with this engine configuration, in a file and directory only this process's user
            // (or root) can write (checked just above). wasmtime verifies the engine
            // compatibility header and refuses a mismatch; then the snapshot is compiled below.
            match unsafe { Module::deserialize_file(engine, &cwasm) } {
                Ok(module) => return Ok(module),
                Err(e) => services.log(
                    LogLevel::Warning,
                    &format!(
                        "wasmgears: {} not usable ({e}); compiling gears.wasm (takes a few seconds)",
                        cwasm.display()
                    ),
                ),
            }
        }
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
