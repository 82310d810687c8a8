//! Executions: one run of a flow, listed under `<shard id>-<n>` until dropped or evicted.
//! Each holds its session, so a script that only runs is freed with its executions.

use crate::redis::worker_context::WorkerContext;
use crate::runtime::registry::{Finished, Registry};
use crate::session::Session;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use wasmgears_abi::Reply;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Done,
    Aborted,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Done => "done",
            Status::Aborted => "aborted",
        }
    }
}

pub struct Execution {
    pub status: Status,
    /// Flat `[type, name, arg]` per step, last step first (RG.GETEXECUTION).
    pub plan: Vec<String>,
    /// The results array and the errors, once finished.
    pub results: Vec<Reply>,
    pub errors: Vec<String>,
    pub total_ms: u64,
    /// Per step in plan order, with ProfileExecutions (else empty: durations show as 0).
    pub step_ms: Vec<u64>,
    pub abort: Arc<AtomicBool>,
    pub waiters: Vec<Arc<WorkerContext>>,
    /// A blocking RG.PYEXECUTE waits for it: dropped once its client has the results.
    pub drop_when_answered: bool,
    /// Created by a registration's event (listed with `registered` 1).
    pub registered: bool,
    /// Its records wait for async steps: the token its results will come with.
    pub waiting: Option<u64>,
    /// The session lives as long as its executions (not the finished records a
    /// registration leaves: those must not keep an unregistered session alive).
    session: Option<Arc<Session>>,
}

impl Finished for Execution {
    fn finished(&self) -> bool {
        matches!(self.status, Status::Done | Status::Aborted)
    }
}

impl Execution {
    pub fn session(&self) -> Option<Arc<Session>> {
        self.session.clone()
    }

    /// `[[results...], [errors...]]`.
    pub fn results_reply(&self) -> Reply {
        let errors = self.errors.iter().map(|e| Reply::Bulk(e.clone().into_bytes())).collect();
        Reply::Array(vec![Reply::Array(self.results.clone()), Reply::Array(errors)])
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Executions by id. Lock order: level 3, taken alone; never held while calling into Python or
/// replying.
static EXECUTIONS: OnceLock<Mutex<Registry<Execution>>> = OnceLock::new();

pub fn registry() -> MutexGuard<'static, Registry<Execution>> {
    EXECUTIONS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

pub fn next_id() -> String {
    format!("{}-{}", crate::gears::topology::shard_id(), NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Lists a new execution of `session`, evicting the oldest finished ones past `MaxExecutions`.
pub fn add(id: &str, plan: Vec<String>, session: Arc<Session>) -> Arc<AtomicBool> {
    let abort = Arc::new(AtomicBool::new(false));
    let execution = Execution {
        status: Status::Created,
        plan,
        results: Vec::new(),
        errors: Vec::new(),
        total_ms: 0,
        step_ms: Vec::new(),
        abort: Arc::clone(&abort),
        waiters: Vec::new(),
        drop_when_answered: false,
        registered: false,
        waiting: None,
        session: Some(session),
    };
    let evicted = {
        let mut reg = registry();
        reg.insert(id.to_string(), execution);
        reg.evict_to(max_executions())
    };
    drop(evicted); // outside the lock: this may free sessions
    abort
}

/// Lists a finished execution of a registration (its results and errors) and drops the ones
/// in `evict` (that registration's oldest, past `MaxExecutionsPerRegistration`).
pub fn add_registered(id: String, total_ms: u64, results: Vec<Reply>, errors: Vec<String>, evict: Vec<String>) {
    let execution = Execution {
        status: Status::Done,
        plan: Vec::new(),
        results,
        errors,
        total_ms,
        step_ms: Vec::new(),
        abort: Arc::new(AtomicBool::new(false)),
        waiters: Vec::new(),
        drop_when_answered: false,
        registered: true,
        waiting: None,
        session: None,
    };
    let evicted = {
        let mut reg = registry();
        for old in &evict {
            reg.remove(old);
        }
        reg.insert(id, execution);
        reg.evict_to(max_executions())
    };
    drop(evicted);
}

fn max_executions() -> usize {
    crate::runtime::settings::int(crate::runtime::config::MAX_EXECUTIONS).max(1) as usize
}

pub fn count() -> usize {
    registry().len()
}
