//! One session's instance of the guest: its own store, linear memory and WASI fd table.

use super::host_calls::{CreatedExecution, CreatedRegistration, Entry, HostState, RedisCaller};
use super::limits::{self, MemoryLimiter};
use super::log_stream::LogStream;
use super::{Runtime, SandboxError};
use crate::codec::Reply;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Instance, Memory, Store, Trap, TypedFunc, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

struct Exports {
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    free: TypedFunc<u32, ()>,
    exec_script: TypedFunc<(u32, u32), i32>,
    run_execution: TypedFunc<(u32, u32), i32>,
    run_trigger: TypedFunc<(u32, u32), i32>,
    run_key_event: TypedFunc<(u32, u32), i32>,
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
            run_execution: instance.get_typed_func(&mut *store, "gears_run_execution")?,
            run_trigger: instance.get_typed_func(&mut *store, "gears_run_trigger")?,
            run_key_event: instance.get_typed_func(&mut *store, "gears_run_key_event")?,
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
        let state = HostState { wasi, limiter: MemoryLimiter::default(), entry: Entry::idle() };
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(check_entry);
        let instance = rt.pre.instantiate(&mut store).map_err(create)?;
        let exports = Exports::get(&mut store, &instance).map_err(create)?;
        let mut guest = Guest { store, exports, poisoned: None };
        let reseed = guest.exports.reseed.clone();
        guest.enter(None, None, |store| reseed.call(store, ()))?;
        Ok(guest)
    }

    /// Runs `f` inside the guest under the current time limit, with `redis` answering its
    /// `execute()` calls and `abort` able to stop it. A failure poisons the guest.
    fn enter<R>(
        &mut self,
        redis: Option<Box<dyn RedisCaller>>,
        abort: Option<Arc<AtomicBool>>,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, SandboxError> {
        if let Some(err) = &self.poisoned {
            return Err(SandboxError::Poisoned(err.to_string()));
        }
        let deadline = Instant::now() + Duration::from_millis(limits::time_limit_ms());
        self.store.data_mut().entry = Entry { redis, abort, deadline, ..Entry::idle() };
        // Every tick runs `check_entry`, which stops the call once aborted or past its deadline.
        self.store.set_epoch_deadline(1);
        let result = f(&mut self.store);
        self.store.data_mut().entry.redis = None;
        result.map_err(|e| {
            let err = classify(e);
            self.poisoned = Some(err.clone());
            err
        })
    }

    /// Copies `bytes` into a fresh guest allocation (freed by the caller).
    fn write_input(store: &mut Store<HostState>, ex: &GuestFns, bytes: &[u8]) -> wasmtime::Result<Option<(u32, u32)>> {
        let len = u32::try_from(bytes.len()).map_err(|_| wasmtime::format_err!("input larger than 4 GiB"))?;
        let ptr = ex.alloc.call(&mut *store, len)?;
        if ptr == 0 {
            return Ok(None);
        }
        ex.memory.write(&mut *store, ptr as usize, bytes)?;
        Ok(Some((ptr, len)))
    }

    fn read_output(store: &mut Store<HostState>, ex: &GuestFns) -> wasmtime::Result<Vec<u8>> {
        let (p, n) = (ex.out_ptr.call(&mut *store, ())?, ex.out_len.call(&mut *store, ())?);
        Ok(ex.memory.data(&*store).get(p as usize..p as usize + n as usize).map(<[u8]>::to_vec).unwrap_or_default())
    }

    fn fns(&self) -> GuestFns {
        let ex = &self.exports;
        GuestFns {
            memory: ex.memory,
            alloc: ex.alloc.clone(),
            free: ex.free.clone(),
            out_ptr: ex.out_ptr.clone(),
            out_len: ex.out_len.clone(),
        }
    }

    /// Runs a script's top level; also returns the executions its `run()` created.
    pub fn exec_script(
        &mut self,
        script: &[u8],
        redis: Box<dyn RedisCaller>,
    ) -> Result<(ScriptOutcome, Created), SandboxError> {
        let (fns, exec) = (self.fns(), self.exports.exec_script.clone());
        let outcome = self.enter(Some(redis), None, |store| {
            let Some((ptr, len)) = Self::write_input(store, &fns, script)? else {
                return Ok(ScriptOutcome::PythonError("MemoryError: the script does not fit in the sandbox".into()));
            };
            let rc = exec.call(&mut *store, (ptr, len))?;
            fns.free.call(&mut *store, ptr)?;
            if rc == 0 {
                return Ok(ScriptOutcome::Ok);
            }
            let text = Self::read_output(store, &fns)?;
            Ok(ScriptOutcome::PythonError(String::from_utf8_lossy(&text).into_owned()))
        })?;
        let entry = &mut self.store.data_mut().entry;
        let created = Created {
            executions: std::mem::take(&mut entry.created),
            registrations: std::mem::take(&mut entry.registrations),
        };
        Ok((outcome, created))
    }

    /// Runs a created execution's flow: the decoded `[[results...], [errors...]]`.
    pub fn run_execution(
        &mut self,
        id: &str,
        redis: Box<dyn RedisCaller>,
        abort: Arc<AtomicBool>,
    ) -> Result<Reply, SandboxError> {
        let run = self.exports.run_execution.clone();
        self.run_flow(run, id.as_bytes(), redis, Some(abort))
    }

    /// Runs a registration's flow for one trigger (`payload`: encoded [id, trigger, args...]).
    pub fn run_trigger(&mut self, payload: &[u8], redis: Box<dyn RedisCaller>) -> Result<Reply, SandboxError> {
        let run = self.exports.run_trigger.clone();
        self.run_flow(run, payload, redis, None)
    }

    /// Runs a KeysReader registration's flow for one event (`payload`: encoded [id, key, event]).
    pub fn run_key_event(&mut self, payload: &[u8], redis: Box<dyn RedisCaller>) -> Result<Reply, SandboxError> {
        let run = self.exports.run_key_event.clone();
        self.run_flow(run, payload, redis, None)
    }

    fn run_flow(
        &mut self,
        export: TypedFunc<(u32, u32), i32>,
        input: &[u8],
        redis: Box<dyn RedisCaller>,
        abort: Option<Arc<AtomicBool>>,
    ) -> Result<Reply, SandboxError> {
        let fns = self.fns();
        let encoded = self.enter(Some(redis), abort, |store| {
            let Some((ptr, len)) = Self::write_input(store, &fns, input)? else {
                wasmtime::bail!("the sandbox is out of memory");
            };
            let rc = export.call(&mut *store, (ptr, len))?;
            fns.free.call(&mut *store, ptr)?;
            let out = Self::read_output(store, &fns)?;
            if rc != 0 {
                wasmtime::bail!("the flow failed: {}", String::from_utf8_lossy(&out));
            }
            Ok(out)
        })?;
        Reply::decode(&encoded).map_err(|e| SandboxError::Host(format!("malformed results from the sandbox: {e}")))
    }
}

/// What a script created, to be applied only because it succeeded.
pub struct Created {
    pub executions: Vec<CreatedExecution>,
    pub registrations: Vec<CreatedRegistration>,
}

/// The guest functions an entry needs, cloned out so the store can be borrowed mutably.
struct GuestFns {
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    free: TypedFunc<u32, ()>,
    out_ptr: TypedFunc<(), u32>,
    out_len: TypedFunc<(), u32>,
}

/// Why the epoch check stopped a call.
#[derive(Debug, thiserror::Error)]
enum Stopped {
    #[error("aborted")]
    Aborted,
    #[error("deadline")]
    Deadline,
}

fn check_entry(store: wasmtime::StoreContextMut<'_, HostState>) -> wasmtime::Result<UpdateDeadline> {
    let entry = &store.data().entry;
    if entry.abort.as_ref().is_some_and(|a| a.load(Ordering::Relaxed)) {
        return Err(wasmtime::Error::new(Stopped::Aborted));
    }
    if Instant::now() >= entry.deadline {
        return Err(wasmtime::Error::new(Stopped::Deadline));
    }
    Ok(UpdateDeadline::Continue(1))
}

fn classify(e: wasmtime::Error) -> SandboxError {
    match e.downcast_ref::<Stopped>() {
        Some(Stopped::Aborted) => return SandboxError::Aborted,
        Some(Stopped::Deadline) => return SandboxError::TimeLimit(limits::time_limit_ms()),
        None => {}
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => SandboxError::TimeLimit(limits::time_limit_ms()),
        Some(trap) => SandboxError::Trap(trap.to_string()),
        None => SandboxError::Host(format!("{e:#}")),
    }
}
