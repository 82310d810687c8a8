//! What a store holds: the WASI context, the memory limiter, the host services and the entry
//! into the guest in progress.

pub use crate::command_ctx::CommandCtx;
use crate::limits::MemoryLimiter;
use crate::services::{HostServices, RedisCaller};
use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use wasmgears_abi::RegistrationSpec;
use wasmtime::{Memory, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;

/// An execution a script created with `run()`: its id and plan.
pub struct CreatedExecution {
    /// Its id.
    pub id: String,
    /// The flow's steps, as the guest described them (for RG.DUMPEXECUTIONS).
    pub plan: Vec<String>,
}

/// A registration a script staged with `register()`.
pub struct CreatedRegistration {
    /// Its id.
    pub id: String,
    /// What it reacts to.
    pub spec: RegistrationSpec,
}

/// What a script created, to be applied only because it succeeded.
pub struct Created {
    /// Its `run()`.
    pub executions: Vec<CreatedExecution>,
    /// Its `register()` calls, in order.
    pub registrations: Vec<CreatedRegistration>,
}

/// What the host knows about the entry into the guest in progress.
pub(crate) struct Entry {
    pub redis: Option<Box<dyn RedisCaller>>,
    pub created: Vec<CreatedExecution>,
    pub registrations: Vec<CreatedRegistration>,
    pub abort: Option<Arc<AtomicBool>>,
    pub deadline: Instant,
    pub command: Option<CommandCtx>,
    /// Re-creating a session: its registrations get these ids back, in order.
    pub restore_ids: VecDeque<String>,
    /// A script's requirements: (name, wheel bytes) it imports from.
    pub wheels: Vec<(String, Arc<Vec<u8>>)>,
    /// On Redis's main thread (the session's loop then continues on a worker).
    pub main_thread: bool,
    /// Records may wait (not inside MULTI/Lua, nor for a client that cannot block).
    pub async_allowed: bool,
    /// What the entry leaves for the host to do after it.
    pub after: AfterEntry,
}

/// What entries left for the host to do once the session is free again.
#[derive(Default)]
pub struct AfterEntry {
    /// The entry's own results come later, with this token.
    pub deferred: Option<u64>,
    /// Earlier deferred results that this entry completed: (token, encoded results).
    pub completions: Vec<(u64, Vec<u8>)>,
    /// When the session's event loop wants to run again (ms from now).
    pub wake_ms: Option<u64>,
    /// Time events `registerTE` reserved, to be started now that the entry is over.
    pub time_events: Vec<u64>,
}

impl Entry {
    pub fn idle() -> Entry {
        Entry {
            redis: None,
            created: Vec::new(),
            registrations: Vec::new(),
            abort: None,
            deadline: Instant::now(),
            command: None,
            restore_ids: VecDeque::new(),
            wheels: Vec::new(),
            main_thread: false,
            async_allowed: false,
            after: AfterEntry::default(),
        }
    }
}

/// Why an entry was stopped (by the epoch check or a sleep that reached the deadline).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Stopped {
    #[error("aborted")]
    Aborted,
    #[error("deadline")]
    Deadline,
}

/// Where the host writes its replies to the guest: the guest's memory and allocator, looked
/// up once per instance (not by name on every host call).
#[derive(Clone)]
pub(crate) struct ReplySpace {
    pub memory: Memory,
    pub alloc: TypedFunc<u32, u32>,
}

/// A store's data.
pub struct HostState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) services: Arc<dyn HostServices>,
    pub(crate) entry: Entry,
    /// Set once the instance exists.
    pub(crate) reply_space: Option<Arc<ReplySpace>>,
}
