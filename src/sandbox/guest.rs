//! One session's instance of the guest: its own store, linear memory and WASI fd table.

use super::host_calls::{
    AfterEntry, CommandCtx, CreatedExecution, CreatedRegistration, Entry, HostState, RedisCaller, Stopped,
};
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
    dispatch: TypedFunc<(u32, u32), i32>,
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
            dispatch: instance.get_typed_func(&mut *store, "gears_dispatch")?,
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

/// How an entry into the guest is made: who answers its `execute()`, what can abort it,
/// the command it runs within, and whether it runs on Redis's main thread (shorter limit).
pub struct EntrySetup {
    pub redis: Box<dyn RedisCaller>,
    pub abort: Option<Arc<AtomicBool>>,
    pub command: Option<CommandCtx>,
    pub main_thread: bool,
    /// Records may wait for async steps (false inside MULTI/Lua: `Creating async record is
    /// not allow`).
    pub async_allowed: bool,
}

impl EntrySetup {
    pub fn new(redis: Box<dyn RedisCaller>) -> EntrySetup {
        EntrySetup { redis, abort: None, command: None, main_thread: false, async_allowed: true }
    }
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
        guest.enter(None, |store| reseed.call(store, ()))?;
        Ok(guest)
    }

    /// Runs `f` inside the guest under the current time limit, with `setup.redis` answering
    /// its `execute()` calls and `setup.abort` able to stop it. A failure poisons the guest.
    fn enter<R>(
        &mut self,
        setup: Option<EntrySetup>,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, SandboxError> {
        if let Some(err) = &self.poisoned {
            return Err(SandboxError::Poisoned(err.to_string()));
        }
        let (redis, abort, command, main_thread, async_allowed) = match setup {
            Some(s) => (Some(s.redis), s.abort, s.command, s.main_thread, s.async_allowed),
            None => (None, None, None, false, false),
        };
        let limit = if main_thread {
            (limits::main_thread_time_limit_ms(), crate::config::MAIN_THREAD_TIME_LIMIT_MS)
        } else {
            (limits::time_limit_ms(), crate::config::SANDBOX_TIME_LIMIT_MS)
        };
        let deadline = Instant::now() + Duration::from_millis(limit.0);
        let time_events = std::mem::take(&mut self.store.data_mut().entry.time_events);
        self.store.data_mut().entry =
            Entry { redis, abort, deadline, command, time_events, main_thread, async_allowed, ..Entry::idle() };
        // Every tick runs `check_entry`, which stops the call once aborted or past its deadline.
        self.store.set_epoch_deadline(1);
        let result = f(&mut self.store);
        self.store.data_mut().entry.redis = None;
        result.map_err(|e| {
            let err = classify(e, limit);
            self.poisoned = Some(err.clone());
            err
        })
    }

    /// The time events the last entries reserved (to be started by the session).
    pub fn take_time_events(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.store.data_mut().entry.time_events)
    }

    /// What the last entry left to do after it (deferred results, completions, a wake-up).
    pub fn take_after(&mut self) -> AfterEntry {
        self.store.data_mut().entry.take_after()
    }

    /// Why an earlier entry failed, if one did (the instance is not entered again).
    pub fn poisoned(&self) -> Option<SandboxError> {
        self.poisoned.clone()
    }

    /// The command context the last entry ran with (its `override_reply`, if any).
    pub fn take_command(&mut self) -> Option<CommandCtx> {
        self.store.data_mut().entry.command.take()
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

    /// Runs a script's top level; also returns the executions its `run()` created. Its
    /// registrations take `restore_ids` first (re-creating a saved session).
    pub fn exec_script(
        &mut self,
        script: &[u8],
        redis: Box<dyn RedisCaller>,
        restore_ids: Vec<String>,
        wheels: Vec<(String, Arc<Vec<u8>>)>,
    ) -> Result<(ScriptOutcome, Created), SandboxError> {
        let (fns, exec) = (self.fns(), self.exports.exec_script.clone());
        let outcome = self.enter(Some(EntrySetup::new(redis)), |store| {
            store.data_mut().entry.restore_ids = restore_ids.into();
            store.data_mut().entry.wheels = wheels;
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
        self.run_flow(run, id.as_bytes(), EntrySetup { abort: Some(abort), ..EntrySetup::new(redis) })
    }

    /// Runs a registration's flow for one trigger (`payload`: encoded [id, trigger, args...]).
    pub fn run_trigger(&mut self, payload: &[u8], setup: EntrySetup) -> Result<Reply, SandboxError> {
        let run = self.exports.run_trigger.clone();
        self.run_flow(run, payload, setup)
    }

    /// Runs a KeysReader registration's flow for one event (`payload`: encoded [id, key, event]).
    pub fn run_key_event(&mut self, payload: &[u8], setup: EntrySetup) -> Result<Reply, SandboxError> {
        let run = self.exports.run_key_event.clone();
        self.run_flow(run, payload, setup)
    }

    /// Any other callback (`payload`: encoded [kind, fields...]: a stream batch, a time event).
    pub fn dispatch(&mut self, payload: &[u8], setup: EntrySetup) -> Result<Reply, SandboxError> {
        let run = self.exports.dispatch.clone();
        self.run_flow(run, payload, setup)
    }

    fn run_flow(
        &mut self,
        export: TypedFunc<(u32, u32), i32>,
        input: &[u8],
        setup: EntrySetup,
    ) -> Result<Reply, SandboxError> {
        let fns = self.fns();
        let encoded = self.enter(Some(setup), |store| {
            let Some((ptr, len)) = Self::write_input(store, &fns, input)? else {
                wasmtime::bail!("the sandbox is out of memory");
            };
            let rc = export.call(&mut *store, (ptr, len))?;
            fns.free.call(&mut *store, ptr)?;
            let out_len = fns.out_len.call(&mut *store, ())? as usize;
            if let Some(refusal) = limits::reply_too_large(out_len) {
                return Ok(refused_results(refusal));
            }
            let out = Self::read_output(store, &fns)?;
            if rc != 0 {
                wasmtime::bail!("the flow failed: {}", String::from_utf8_lossy(&out));
            }
            Ok(out)
        })?;
        Reply::decode(&encoded).map_err(|e| SandboxError::Host(format!("malformed results from the sandbox: {e}")))
    }
}

/// `[[], [why]]`: the results a flow gets instead of ones too large to hand out.
fn refused_results(why: String) -> Vec<u8> {
    Reply::Array(vec![Reply::Array(Vec::new()), Reply::Array(vec![Reply::Bulk(why.into_bytes())])]).to_bytes()
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

fn classify(e: wasmtime::Error, (limit_ms, key): (u64, &'static str)) -> SandboxError {
    match e.downcast_ref::<Stopped>() {
        Some(Stopped::Aborted) => return SandboxError::Aborted,
        Some(Stopped::Deadline) => return SandboxError::TimeLimit(limit_ms, key),
        None => {}
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => SandboxError::TimeLimit(limit_ms, key),
        Some(trap) => SandboxError::Trap(trap.to_string()),
        None => SandboxError::Host(format!("{e:#}")),
    }
}
