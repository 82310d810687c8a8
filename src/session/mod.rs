//! Sessions: one script's sandboxed interpreter, shared by `Arc` among everything the
//! script created (the RG.PYEXECUTE call now; executions, registrations and time events
//! later). Dropping the last `Arc` drops the instance and returns its memory.
//!
//! This layer sits on the sandbox and below the gears domain. What it needs from the domain
//! (starting the time events an entry reserved) it asks through [`SessionHooks`], which the
//! domain installs at load together with the sandbox runtime.

pub mod deferred;

use crate::redis::run_as::RunAs;
use crate::runtime::wheelhouse::Requirement;
use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError, Weak};
use std::time::{Duration, Instant};
use wasmgears_abi::GuestEntry;
use wasmgears_abi::{encode_args, Reply};
use wasmgears_sandbox::{
    AfterEntry, CommandCtx, Created, EntrySetup, Guest, RedisCaller, Runtime, SandboxError, ScriptOutcome,
};

static LIVE_SESSIONS: AtomicUsize = AtomicUsize::new(0);

/// What sessions need from the layer above them.
pub trait SessionHooks: Send + Sync {
    /// Starts the time events an entry of `session` reserved (each holds the session).
    fn start_time_events(&self, session: &Arc<Session>, ids: Vec<u64>);
}

/// The sandbox runtime and the hooks, installed once at load (read-only afterwards: no lock).
static INSTALLED: OnceLock<(Runtime, Box<dyn SessionHooks>)> = OnceLock::new();

/// Installs the runtime every session is created in, and the domain's hooks.
pub fn install(runtime: Runtime, hooks: Box<dyn SessionHooks>) {
    let _ = INSTALLED.set((runtime, hooks));
}

pub struct Session {
    pub id: String,
    /// One thread at a time runs this session's Python (its "GIL"). Lock order: level 1, the
    /// first lock of a worker; the main thread only `try_lock`s it.
    guest: Mutex<Guest>,
    /// Itself, for the time events an entry creates (each holds the session).
    me: Weak<Session>,
    pub description: Option<String>,
    /// Whose authority its commands run with (the ACL user that created it, by default).
    pub run_as: RunAs,
    /// The script that made it (kept to re-create the session after a restart).
    pub script: Vec<u8>,
    /// Replaced by an UPGRADE / REPLACE_WITH.
    dead: AtomicBool,
    /// Its `REQUIREMENTS`, resolved in the wheelhouse.
    pub requirements: Vec<Requirement>,
    /// Deferred results (records waiting in this session) not yet completed.
    /// (Lock order: level 3, taken alone.)
    waiting: Mutex<HashSet<u64>>,
    /// The next run of its event loop: when, and the timer that will do it.
    /// (Lock order: level 4: held while its timer is set or cancelled.)
    wake: Mutex<Option<(Instant, u64)>>,
}

/// What a callback returned: its encoded results and the command context it ran with.
/// With `deferred`, the results come later through that token (deferred.rs): its records
/// wait for async steps.
pub struct CallbackOutput {
    pub reply: Reply,
    pub command: Option<CommandCtx>,
    pub deferred: Option<u64>,
}

impl CallbackOutput {
    /// Runs `then` with the results: now, or when the deferred ones arrive.
    pub fn then(self, then: impl FnOnce(Result<Reply, SandboxError>) + Send + 'static) {
        match self.deferred {
            Some(token) => deferred::results().attach(token, Box::new(then)),
            None => then(Ok(self.reply)),
        }
    }
}

/// Sessions currently alive in this process.
pub fn live_sessions() -> usize {
    LIVE_SESSIONS.load(Ordering::Relaxed)
}

/// 40 random hex characters, like RedisGears' session ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 20];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_err() {
        // Unique enough without entropy: time and a counter.
        static FALLBACK: AtomicUsize = AtomicUsize::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        bytes[..16].copy_from_slice(&nanos.to_le_bytes());
        bytes[16..].copy_from_slice(&(FALLBACK.fetch_add(1, Ordering::Relaxed) as u32).to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Session {
    /// A session for `script`, with its `ID` and `DESCRIPTION` if given.
    pub fn create_for(
        id: Option<String>,
        description: Option<String>,
        script: Vec<u8>,
        requirements: Vec<Requirement>,
        run_as: RunAs,
    ) -> Result<Arc<Session>, SandboxError> {
        let (rt, _) = INSTALLED.get().ok_or_else(|| SandboxError::Create("the sandbox is not initialised".into()))?;
        let guest = Guest::new(rt)?;
        LIVE_SESSIONS.fetch_add(1, Ordering::Relaxed);
        let id = id.unwrap_or_else(random_id);
        Ok(Arc::new_cyclic(|me| Session {
            id,
            guest: Mutex::new(guest),
            me: me.clone(),
            description,
            run_as,
            script,
            dead: AtomicBool::new(false),
            requirements,
            waiting: Mutex::new(HashSet::new()),
            wake: Mutex::new(None),
        }))
    }

    pub fn mark_dead(&self) {
        self.dead.store(true, Ordering::Relaxed);
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    fn guest(&self) -> MutexGuard<'_, Guest> {
        self.guest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The guest if no other thread is running this session right now.
    fn try_guest(&self) -> Option<MutexGuard<'_, Guest>> {
        match self.guest.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Starts the time events an entry reserved: each holds this session.
    fn start_time_events(&self, ids: Vec<u64>) {
        if let (false, Some(me), Some((_, hooks))) = (ids.is_empty(), self.me.upgrade(), INSTALLED.get()) {
            hooks.start_time_events(&me, ids);
        }
    }

    pub fn exec_script(
        &self,
        script: &[u8],
        redis: Box<dyn RedisCaller>,
        restore_ids: Vec<String>,
    ) -> Result<(ScriptOutcome, Created), SandboxError> {
        let mut guest = self.guest();
        let wheels = self.requirements.iter().map(|r| (r.name.clone(), Arc::clone(&r.bytes))).collect();
        let done = guest.exec_script(script, redis, restore_ids, wheels);
        self.leave(guest, done).map(|(done, _)| done)
    }

    /// Runs a registration's (or time event's) callback, waiting for the session if busy.
    pub fn callback(
        &self,
        kind: GuestEntry,
        payload: &[u8],
        setup: EntrySetup,
    ) -> Result<CallbackOutput, SandboxError> {
        let guest = self.guest();
        self.finish_callback(guest, kind, payload, setup)
    }

    /// The same, only if the session is free now (inline work on the main thread must not
    /// wait: the thread running this session may itself be waiting for the Redis lock).
    pub fn try_callback(
        &self,
        kind: GuestEntry,
        payload: &[u8],
        setup: EntrySetup,
    ) -> Option<Result<CallbackOutput, SandboxError>> {
        let guest = self.try_guest()?;
        Some(self.finish_callback(guest, kind, payload, setup))
    }

    fn finish_callback(
        &self,
        mut guest: MutexGuard<'_, Guest>,
        kind: GuestEntry,
        payload: &[u8],
        setup: EntrySetup,
    ) -> Result<CallbackOutput, SandboxError> {
        let result = guest.run(kind, payload, setup);
        let command = guest.take_command();
        self.leave(guest, result).map(|(reply, deferred)| CallbackOutput { reply, command, deferred })
    }

    pub fn run_execution(
        &self,
        id: &str,
        redis: Box<dyn RedisCaller>,
        abort: Arc<AtomicBool>,
    ) -> Result<CallbackOutput, SandboxError> {
        let mut guest = self.guest();
        let setup = EntrySetup { abort: Some(abort), ..EntrySetup::new(redis) };
        let result = guest.run(GuestEntry::RunExecution, id.as_bytes(), setup);
        self.leave(guest, result).map(|(reply, deferred)| CallbackOutput { reply, command: None, deferred })
    }

    /// Ends an entry: starts the time events it created, frees the session, then does what
    /// the entry left to do (`after_entry`). With the entry's deferred token, if any.
    fn leave<T>(
        &self,
        mut guest: MutexGuard<'_, Guest>,
        result: Result<T, SandboxError>,
    ) -> Result<(T, Option<u64>), SandboxError> {
        let mut after = guest.take_after();
        let poisoned = guest.poisoned();
        drop(guest);
        self.start_time_events(std::mem::take(&mut after.time_events));
        let deferred = if result.is_ok() { after.deferred } else { None };
        self.after_entry(after, poisoned, result.is_ok());
        result.map(|value| (value, deferred))
    }

    /// Runs entry `op` (with `fields` as its payload) on a worker; the job holds the
    /// session. Failures go to the log.
    pub fn enter_on_worker(self: &Arc<Self>, op: GuestEntry, fields: &[&[u8]]) {
        let payload = encode_args(fields);
        let me = Arc::clone(self);
        crate::runtime::workers::submit(move || {
            let setup = EntrySetup::new(crate::redis::caller::detached(&me.run_as));
            if let Err(e) = me.callback(op, &payload, setup) {
                crate::redis::log::warning(&format!("wasmgears: session {}: {e}", me.id));
            }
        });
    }

    /// With the session free again: notes the entry's deferred token, delivers the results
    /// it completed, fails every waiting token if the instance is now unusable, and
    /// schedules the next run of the event loop.
    fn after_entry(&self, after: AfterEntry, poisoned: Option<SandboxError>, succeeded: bool) {
        let table = deferred::results();
        let mut failed = Vec::new();
        {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            match after.deferred {
                Some(token) if succeeded => {
                    waiting.insert(token);
                }
                Some(token) => {
                    table.cancel(token);
                }
                None => {}
            }
            for (token, _) in &after.completions {
                waiting.remove(token);
            }
            if poisoned.is_some() {
                failed = waiting.drain().collect();
            }
        }
        for (token, encoded) in after.completions {
            let result = Reply::decode(&encoded)
                .map_err(|e| SandboxError::Host(format!("malformed results from the sandbox: {e}")));
            table.complete(token, result);
        }
        if let Some(why) = &poisoned {
            // Records that were waiting cannot go on in this instance: they end with its error.
            for token in failed {
                table.complete(token, Err(why.clone()));
            }
        }
        if let (Some(ms), None) = (after.wake_ms, &poisoned) {
            self.schedule_wake(ms);
        }
    }

    /// Runs the session's event loop in `ms` (unless a run is due sooner already).
    fn schedule_wake(&self, ms: u64) {
        let Some(me) = self.me.upgrade() else { return };
        let at = crate::runtime::timers::deadline_after(Duration::from_millis(ms));
        let mut wake = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((when, timer)) = *wake {
            if when <= at || !crate::runtime::timers::cancel(timer) {
                return; // due sooner, or firing now: that run will ask again
            }
        }
        // The timer holds the session: records waiting on a timer keep it alive. When due,
        // the loop runs in a `loop` entry.
        let timer = crate::runtime::timers::after(Duration::from_millis(ms), move || {
            *me.wake.lock().unwrap_or_else(|p| p.into_inner()) = None;
            me.enter_on_worker(GuestEntry::Loop, &[]);
        });
        *wake = Some((at, timer));
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        LIVE_SESSIONS.fetch_sub(1, Ordering::Relaxed);
    }
}
