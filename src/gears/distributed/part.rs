//! One shard's side of a distributed run (its `Part`), the registry of them, and the message
//! names the shards exchange (see `distributed/mod.rs`).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use wasmgears_abi::{GuestEntry, Reply};

use crate::gears::executions::{self, Status};
use crate::gears::flows::Outcome;
use crate::gears::topology;
use crate::runtime::{config, settings};
use crate::session::Session;
use crate::transport;

pub const PLAN: &str = "wg.plan";
pub const PLAN_REGISTERED: &str = "wg.planreg";
pub const RECEIVED: &str = "wg.received";
pub const RUN: &str = "wg.run";
pub const PART: &str = "wg.part";
pub const DROP: &str = "wg.drop";
pub const ABORT: &str = "wg.abort";
pub const MAX_IDLE_REACHED: &str = "Execution max idle reached";

/// What a registration's distributed run does with its outcome on the initiator (answer the
/// client of RG.TRIGGER); called on a worker.
pub type OnDone = Box<dyn FnOnce(Outcome) + Send>;

/// One shard's part of a stage's input: the packed records it sent (bytes of the guest).
pub type Blobs = Vec<Vec<u8>>;

/// This shard's side of one distributed run.
pub struct Part {
    pub session: Arc<Session>,
    pub abort: Arc<AtomicBool>,
    /// Every shard's id, in the order of the run's routing indexes.
    pub shards: Vec<String>,
    pub me: usize,
    pub initiator: usize,
    pub routing: String,
    /// Stages after the first (the moves of records between shards).
    pub moves: usize,
    /// Initiator: the peers that loaded the flow.
    pub received: usize,
    /// Input parts of the stages to come: stage -> (from shard, parts) in arrival order.
    pub inbox: HashMap<usize, Vec<(usize, Blobs)>>,
    /// The stage that waits for its input (1..=moves), past `moves` once the last started.
    pub waiting_stage: usize,
    pub last_progress: Instant,
    pub started: Instant,
    /// Ended by the idle limit: the last stage runs with what arrived.
    pub idle: bool,
    /// A stage of it runs in the session now: the idle limit counts only waiting (as 1.2 arms
    /// its timer only while an execution is paused).
    pub running: bool,
    /// A registration's run (not listed as an execution): who gets the outcome.
    pub on_done: Option<OnDone>,
}

impl Part {
    pub fn new(
        session: Arc<Session>,
        abort: Arc<AtomicBool>,
        shards: Vec<String>,
        me: usize,
        initiator: usize,
    ) -> Part {
        Part {
            session,
            abort,
            shards,
            me,
            initiator,
            routing: String::new(),
            moves: 0,
            received: 0,
            inbox: HashMap::new(),
            waiting_stage: 1,
            last_progress: Instant::now(),
            started: Instant::now(),
            idle: false,
            running: false,
            on_done: None,
        }
    }
}

/// Lock order: level 3, taken alone (never while calling into a session, Redis or a link).
static PARTS: OnceLock<Mutex<HashMap<String, Part>>> = OnceLock::new();

pub fn parts() -> MutexGuard<'static, HashMap<String, Part>> {
    PARTS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn max_idle() -> Duration {
    Duration::from_millis(settings::int(config::EXECUTION_MAX_IDLE_TIME).max(1) as u64)
}

pub fn as_int(r: &Reply) -> Option<i64> {
    match r {
        Reply::Int(n) => Some(*n),
        _ => None,
    }
}

pub fn as_bytes(r: &Reply) -> Option<Vec<u8>> {
    match r {
        Reply::Bulk(b) | Reply::Status(b) => Some(b.clone()),
        _ => None,
    }
}

pub fn set_status(id: &str, status: Status) {
    if let Some(e) = executions::registry().get_mut(id) {
        e.status = status;
    }
}

/// The initiator's execution `id` is gone (answered and dropped, or RG.DROPEXECUTION): so are
/// its copies on the peers. Any run this shard started may have them (a peer that has none
/// ignores the message).
pub fn dropped(id: &str) {
    forget(id);
    let topology = topology::current();
    if topology.is_cluster_mode() && id.starts_with(&topology.my_id) {
        let _ = transport::broadcast(DROP, id.as_bytes());
    }
}

/// Removes this shard's part of run `id` (and the session's); whether there was one.
pub fn forget(id: &str) -> bool {
    let part = parts().remove(id);
    match part {
        Some(part) => {
            part.session.enter_on_worker(GuestEntry::ForgetPlan, &[id.as_bytes()]);
            true
        }
        None => false,
    }
}
