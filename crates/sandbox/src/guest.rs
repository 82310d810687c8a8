//! One session's instance of the guest: its own store, linear memory and WASI fd table.
//! Every entry goes through [`Guest::enter`], which sets the entry up, always resets it after,
//! and poisons the instance when the entry did not complete (a trap, a deadline, an abort, or
//! a panic of the host while serving it).

use crate::limits::{self, MemoryLimiter};
use crate::log_stream::LogStream;
use crate::services::RedisCaller;
use crate::state::{AfterEntry, CommandCtx, Created, Entry, HostState, ReplySpace, Stopped};
use crate::{Runtime, SandboxError};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmgears_abi::{FlowResults, GuestEntry, Reply};
use wasmtime::{Instance, Memory, Store, Trap, TypedFunc, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// The guest's exports: memory plumbing and the one entry point.
#[derive(Clone)]
struct Exports {
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    enter: TypedFunc<(u32, u32, u32), i32>,
    /// Where the guest keeps its last output: `{u32 address, u32 length}` (asked of
    /// `gears_out` in the instance's first entry).
    out: usize,
    out_at: TypedFunc<(), u32>,
}

impl Exports {
    fn get(store: &mut Store<HostState>, instance: &Instance) -> wasmtime::Result<Exports> {
        Ok(Exports {
            memory: instance
                .get_memory(&mut *store, "memory")
                .ok_or_else(|| wasmtime::format_err!("guest exports no memory"))?,
            alloc: instance.get_typed_func(&mut *store, "gears_alloc")?,
            enter: instance.get_typed_func(&mut *store, "gears_enter")?,
            out: 0,
            out_at: instance.get_typed_func(&mut *store, "gears_out")?,
        })
    }

    /// Copies `bytes` into a fresh guest allocation (the entry frees it); None when the guest
    /// cannot allocate that much.
    fn write_input(&self, store: &mut Store<HostState>, bytes: &[u8]) -> wasmtime::Result<Option<(u32, u32)>> {
        let len = u32::try_from(bytes.len()).map_err(|_| wasmtime::format_err!("input larger than 4 GiB"))?;
        let ptr = self.alloc.call(&mut *store, len)?;
        if ptr == 0 {
            return Ok(None);
        }
        self.memory.write(&mut *store, ptr as usize, bytes)?;
        Ok(Some((ptr, len)))
    }

    /// Where the last output is: (address, length), read from the guest's memory.
    fn output_at(&self, store: &Store<HostState>) -> wasmtime::Result<(usize, usize)> {
        let mut field = [0u8; 8];
        self.memory.read(store, self.out, &mut field)?;
        let word = |i: usize| u32::from_le_bytes([field[i], field[i + 1], field[i + 2], field[i + 3]]) as usize;
        Ok((word(0), word(4)))
    }

    fn output_len(&self, store: &mut Store<HostState>) -> wasmtime::Result<usize> {
        Ok(self.output_at(store)?.1)
    }

    fn read_output(&self, store: &mut Store<HostState>) -> wasmtime::Result<Vec<u8>> {
        let (p, n) = self.output_at(store)?;
        Ok(self.memory.data(&*store).get(p..p.saturating_add(n)).map(<[u8]>::to_vec).unwrap_or_default())
    }

    /// `gears_enter(op, input)`: its return code (0 done, 1 failed with the text in the
    /// output), or None when the input does not fit in the guest.
    fn call(&self, store: &mut Store<HostState>, op: GuestEntry, input: &[u8]) -> wasmtime::Result<Option<i32>> {
        let Some((ptr, len)) = self.write_input(store, input)? else {
            return Ok(None);
        };
        Ok(Some(self.enter.call(&mut *store, (crate::profiling::entry_code(op), ptr, len))?))
    }
}

/// What a script's top level did.
#[derive(Debug, PartialEq, Eq)]
pub enum ScriptOutcome {
    /// It ran to the end.
    Ok,
    /// The Python error, formatted as RedisGears formats it.
    PythonError(String),
}

/// A session's instance of the guest.
pub struct Guest {
    store: Store<HostState>,
    /// Shared, not cloned, by each entry: a `TypedFunc` clone clones its function type.
    exports: Arc<Exports>,
    poisoned: Option<SandboxError>,
}

/// How an entry into the guest is made: who answers its `execute()`, what can abort it,
/// the command it runs within, and whether it runs on Redis's main thread (shorter limit).
pub struct EntrySetup {
    /// Answers the entry's `execute()` calls.
    pub redis: Box<dyn RedisCaller>,
    /// Set to stop the entry (`RG.ABORTEXECUTION`).
    pub abort: Option<Arc<AtomicBool>>,
    /// The command a hook or `commands=` registration runs within.
    pub command: Option<CommandCtx>,
    /// On Redis's main thread: the shorter time limit applies.
    pub main_thread: bool,
    /// Records may wait for async steps (false inside MULTI/Lua: `Creating async record is
    /// not allow`).
    pub async_allowed: bool,
}

impl EntrySetup {
    /// A worker's entry: general time limit, records may wait.
    pub fn new(redis: Box<dyn RedisCaller>) -> EntrySetup {
        EntrySetup { redis, abort: None, command: None, main_thread: false, async_allowed: true }
    }
}

/// Resets the entry when [`Guest::enter`] ends, whether `f` returned or unwound.
struct EntryReset<'a> {
    store: &'a mut Store<HostState>,
}

impl Drop for EntryReset<'_> {
    fn drop(&mut self) {
        let entry = &mut self.store.data_mut().entry;
        // Dropping the caller ends whatever it held (an `atomic()` block's Redis lock).
        entry.redis = None;
        entry.abort = None;
    }
}

impl Guest {
    /// A fresh instance of the pre-initialised guest, with its own `random` state.
    pub fn new(rt: &Runtime) -> Result<Guest, SandboxError> {
        let create = |e: wasmtime::Error| SandboxError::Create(format!("{e:#}"));
        let services = Arc::clone(&rt.services);
        // The preopens must be exactly those of the snapshot, in the same order (`/lib` = fd 3).
        let wasi = WasiCtxBuilder::new()
            .allow_blocking_current_thread(true)
            .stdout(LogStream { warning: false, services: Arc::clone(&services) })
            .stderr(LogStream { warning: true, services: Arc::clone(&services) })
            .preopened_dir(&rt.stdlib_dir, "/lib", FsPerms::ReadOnly)
            .map_err(create)?
            .build_p1();
        let state =
            HostState { wasi, limiter: MemoryLimiter::default(), services, entry: Entry::idle(), reply_space: None };
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(check_entry);
        let instance = rt.pre.instantiate(&mut store).map_err(create)?;
        let mut exports = Exports::get(&mut store, &instance).map_err(create)?;
        store.data_mut().reply_space =
            Some(Arc::new(ReplySpace { memory: exports.memory, alloc: exports.alloc.clone() }));
        let mut guest = Guest { store, exports: Arc::new(exports.clone()), poisoned: None };
        exports.out = guest.enter(None, |store| {
            exports.call(store, GuestEntry::Reseed, &[])?;
            Ok(exports.out_at.call(&mut *store, ())? as usize)
        })?;
        guest.exports = Arc::new(exports);
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
            (limits::main_thread_time_limit_ms(), limits::MAIN_THREAD_TIME_LIMIT_KEY)
        } else {
            (limits::time_limit_ms(), limits::TIME_LIMIT_KEY)
        };
        let deadline = Instant::now() + Duration::from_millis(limit.0);
        // What earlier entries left for the host stays until the host takes it.
        let after = std::mem::take(&mut self.store.data_mut().entry.after);
        self.store.data_mut().entry =
            Entry { redis, abort, deadline, command, main_thread, async_allowed, after, ..Entry::idle() };
        // Every tick runs `check_entry`, which stops the call once aborted or past its deadline.
        self.store.set_epoch_deadline(1);
        let reset = EntryReset { store: &mut self.store };
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut *reset.store)));
        drop(reset);
        let err = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => classify(e, limit),
            Err(panic) => {
                SandboxError::Host(format!("internal error while serving the sandbox: {}", panic_text(&panic)))
            }
        };
        self.poisoned = Some(err.clone());
        Err(err)
    }

    /// What the last entries left to do after them (deferred results, completions, a
    /// wake-up, time events to start).
    pub fn take_after(&mut self) -> AfterEntry {
        std::mem::take(&mut self.store.data_mut().entry.after)
    }

    /// Why an earlier entry failed, if one did (the instance is not entered again).
    pub fn poisoned(&self) -> Option<SandboxError> {
        self.poisoned.clone()
    }

    /// The command context the last entry ran with (its `override_reply`, if any).
    pub fn take_command(&mut self) -> Option<CommandCtx> {
        self.store.data_mut().entry.command.take()
    }

    /// Runs a script's top level; also returns what it created. Its registrations take
    /// `restore_ids` first (re-creating a saved session).
    pub fn exec_script(
        &mut self,
        script: &[u8],
        redis: Box<dyn RedisCaller>,
        restore_ids: Vec<String>,
        wheels: Vec<(String, Arc<Vec<u8>>)>,
    ) -> Result<(ScriptOutcome, Created), SandboxError> {
        let exports = Arc::clone(&self.exports);
        let outcome = self.enter(Some(EntrySetup::new(redis)), |store| {
            store.data_mut().entry.restore_ids = restore_ids.into();
            store.data_mut().entry.wheels = wheels;
            match exports.call(store, GuestEntry::ExecScript, script)? {
                None => Ok(ScriptOutcome::PythonError("MemoryError: the script does not fit in the sandbox".into())),
                Some(0) => Ok(ScriptOutcome::Ok),
                Some(_) => {
                    let text = exports.read_output(store)?;
                    Ok(ScriptOutcome::PythonError(String::from_utf8_lossy(&text).into_owned()))
                }
            }
        })?;
        let entry = &mut self.store.data_mut().entry;
        let created = Created {
            executions: std::mem::take(&mut entry.created),
            registrations: std::mem::take(&mut entry.registrations),
        };
        Ok((outcome, created))
    }

    /// Runs a flow entry (`op`, with its payload) and decodes its results: for flows
    /// `[[results...], [errors...]]`.
    pub fn run(&mut self, op: GuestEntry, payload: &[u8], setup: EntrySetup) -> Result<Reply, SandboxError> {
        let exports = Arc::clone(&self.exports);
        let encoded = self.enter(Some(setup), |store| {
            let Some(rc) = exports.call(store, op, payload)? else {
                wasmtime::bail!("the sandbox is out of memory");
            };
            if let Some(refusal) = limits::reply_too_large(exports.output_len(store)?) {
                return Ok(refused_results(refusal));
            }
            let out = exports.read_output(store)?;
            if rc != 0 {
                wasmtime::bail!("the flow failed: {}", String::from_utf8_lossy(&out));
            }
            Ok(out)
        })?;
        Reply::decode(&encoded).map_err(|e| SandboxError::Host(format!("malformed results from the sandbox: {e}")))
    }

    /// Runs the guest's self-test of the wire format against `vectors` (the JSON of
    /// `wasmgears_abi::VECTORS_JSON`): the failures, one per line; empty when all pass.
    pub fn self_test(&mut self, vectors: &str, redis: Box<dyn RedisCaller>) -> Result<String, SandboxError> {
        let exports = Arc::clone(&self.exports);
        self.enter(Some(EntrySetup::new(redis)), |store| {
            let rc = exports.call(store, GuestEntry::SelfTest, vectors.as_bytes())?;
            let out = String::from_utf8_lossy(&exports.read_output(store)?).into_owned();
            Ok(match rc {
                Some(0) => out,
                Some(_) => format!("self-test failed to run: {out}"),
                None => "self-test input does not fit".into(),
            })
        })
    }
}

/// `[[], [why]]`: the results a flow gets instead of ones too large to hand out.
fn refused_results(why: String) -> Vec<u8> {
    FlowResults { errors: vec![why], ..FlowResults::default() }.to_reply().to_bytes()
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_string(),
        (None, Some(s)) => s.clone(),
        (None, None) => "panic".into(),
    }
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
