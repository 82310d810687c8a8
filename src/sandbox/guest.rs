//! One session's instance of the guest: its own store, linear memory and WASI fd table.

use super::host_calls::{HostState, RedisCaller};
use super::limits::{self, MemoryLimiter};
use super::log_stream::LogStream;
use super::{Runtime, SandboxError};
use wasmtime::{Instance, Memory, Store, Trap, TypedFunc};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

struct Exports {
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    free: TypedFunc<u32, ()>,
    exec_script: TypedFunc<(u32, u32), i32>,
    out_ptr: TypedFunc<(), u32>,
    out_len: TypedFunc<(), u32>,
    reseed: TypedFunc<(), i32>,
}

impl Exports {
    fn get(store: &mut Store<HostState>, instance: &Instance) -> wasmtime::Result<Exports> {
        Ok(Exports {
            memory: instance
                .get_memory(&mut *store, "memory")
                .ok_or_else(|| wasmtime::format_err!("guest exports no memory"))?,
            alloc: instance.get_typed_func(&mut *store, "gears_alloc")?,
            free: instance.get_typed_func(&mut *store, "gears_free")?,
            exec_script: instance.get_typed_func(&mut *store, "gears_exec_script")?,
            out_ptr: instance.get_typed_func(&mut *store, "gears_out_ptr")?,
            out_len: instance.get_typed_func(&mut *store, "gears_out_len")?,
            reseed: instance.get_typed_func(&mut *store, "gears_reseed")?,
        })
    }
}

/// What a script's top level did.
#[derive(Debug, PartialEq, Eq)]
pub enum ScriptOutcome {
    Ok,
    /// The Python error, formatted as spec §2.9 says.
    PythonError(String),
}

pub struct Guest {
    store: Store<HostState>,
    exports: Exports,
    poisoned: Option<SandboxError>,
}

impl Guest {
    /// A fresh instance of the pre-initialised guest, with its own `random` state.
    pub fn new(rt: &Runtime) -> Result<Guest, SandboxError> {
        let create = |e: wasmtime::Error| SandboxError::Create(format!("{e:#}"));
        // The preopens must be exactly those of the snapshot, in the same order (`/lib` = fd 3).
        let wasi = WasiCtxBuilder::new()
            .allow_blocking_current_thread(true)
            .stdout(LogStream { warning: false })
            .stderr(LogStream { warning: true })
            .preopened_dir(&rt.stdlib_dir, "/lib", FsPerms::ReadOnly)
            .map_err(create)?
            .build_p1();
        let state = HostState {
            wasi,
            limiter: MemoryLimiter::default(),
            redis: None,
        };
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| &mut s.limiter);
        let instance = rt.pre.instantiate(&mut store).map_err(create)?;
        let exports = Exports::get(&mut store, &instance).map_err(create)?;
        let mut guest = Guest {
            store,
            exports,
            poisoned: None,
        };
        let reseed = guest.exports.reseed.clone();
        guest.enter(None, |store| reseed.call(store, ()))?;
        Ok(guest)
    }

    /// Runs `f` inside the guest under the current time limit, with `redis` answering its
    /// `execute()` calls. A failure poisons the guest.
    fn enter<R>(
        &mut self,
        redis: Option<Box<dyn RedisCaller>>,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, SandboxError> {
        if let Some(err) = &self.poisoned {
            return Err(SandboxError::Poisoned(err.to_string()));
        }
        self.store.data_mut().redis = redis;
        self.store.set_epoch_deadline(limits::deadline_ticks());
        let result = f(&mut self.store);
        self.store.data_mut().redis = None;
        result.map_err(|e| {
            let err = classify(e);
            self.poisoned = Some(err.clone());
            err
        })
    }

    /// Runs a script's top level.
    pub fn exec_script(
        &mut self,
        script: &[u8],
        redis: Box<dyn RedisCaller>,
    ) -> Result<ScriptOutcome, SandboxError> {
        let ex = &self.exports;
        let (alloc, free, exec, out_ptr, out_len, memory) = (
            ex.alloc.clone(),
            ex.free.clone(),
            ex.exec_script.clone(),
            ex.out_ptr.clone(),
            ex.out_len.clone(),
            ex.memory,
        );
        self.enter(Some(redis), |store| {
            let len = u32::try_from(script.len())
                .map_err(|_| wasmtime::format_err!("script larger than 4 GiB"))?;
            let ptr = alloc.call(&mut *store, len)?;
            if ptr == 0 {
                return Ok(ScriptOutcome::PythonError(
                    "MemoryError: the script does not fit in the sandbox".into(),
                ));
            }
            memory.write(&mut *store, ptr as usize, script)?;
            let rc = exec.call(&mut *store, (ptr, len))?;
            free.call(&mut *store, ptr)?;
            if rc == 0 {
                return Ok(ScriptOutcome::Ok);
            }
            let (p, n) = (
                out_ptr.call(&mut *store, ())?,
                out_len.call(&mut *store, ())?,
            );
            let text = memory
                .data(&*store)
                .get(p as usize..p as usize + n as usize)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_else(|| "unknown Python error".into());
            Ok(ScriptOutcome::PythonError(text))
        })
    }
}

fn classify(e: wasmtime::Error) -> SandboxError {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => SandboxError::TimeLimit(limits::time_limit_ms()),
        Some(trap) => SandboxError::Trap(trap.to_string()),
        None => SandboxError::Host(format!("{e:#}")),
    }
}
