//! A StreamReader registration's options and its per-stream state (which streams.rs
//! drives). Its own file so that registrations can hold one without depending on the
//! batch engine.

use crate::redis::reply::bulk;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use wasmgears_abi::Reply;

/// `onFailedPolicy`: what a failed batch does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Policy {
    Continue,
    Abort,
    Retry,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Continue => "continue",
            Policy::Abort => "abort",
            Policy::Retry => "retry",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Status {
    Ok,
    WaitingForRetry,
    Aborted,
    Paused,
}

/// One stream of a registration, as RedisGears 1.2's `SingleStreamReaderCtx`.
#[derive(Default)]
pub(crate) struct KeyState {
    /// Entries not acknowledged yet: the stream's length when this state was made, plus the
    /// XADDs seen since, minus the entries processed. A hint (a short read resets it), the
    /// consumer group is the truth.
    pub pending: u64,
    /// The entries counted at creation were already there (found by a scan): a partial batch
    /// of them runs at once instead of waiting for `batch` entries or `duration`.
    pub backlog: bool,
    pub running: bool,
    /// XADDs seen since the running batch started.
    pub added_while_running: u64,
    pub timer: Option<u64>,
}

pub(crate) struct State {
    pub status: Status,
    pub keys: HashMap<Vec<u8>, KeyState>,
    /// Bumped whenever `keys` is emptied (pause, failure, unregister): a batch that started
    /// before does not start another.
    pub generation: u64,
}

pub struct StreamRegistration {
    pub prefix: String,
    pub(crate) batch: usize,
    pub(crate) duration_ms: u64,
    pub(crate) trim: bool,
    pub(crate) policy: Policy,
    pub(crate) retry_secs: u64,
    /// Lock order: level 4 (docs/architecture.md): held while timers are set or jobs submitted.
    state: Mutex<State>,
}

impl StreamRegistration {
    /// From a StreamReader spec's fields.
    pub fn new(prefix: &str, batch: u64, duration_ms: u64, trim: bool, on_failed: &str, retry_secs: u64) -> Self {
        let policy = match on_failed {
            "abort" => Policy::Abort,
            "retry" => Policy::Retry,
            _ => Policy::Continue,
        };
        StreamRegistration {
            prefix: prefix.to_string(),
            batch: batch.clamp(1, usize::MAX as u64) as usize,
            duration_ms,
            trim,
            policy,
            retry_secs,
            state: Mutex::new(State { status: Status::Ok, keys: HashMap::new(), generation: 0 }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets every stream (pause, failure): each is found again by the next scan, which
    /// first re-reads what was delivered and never acknowledged.
    pub(crate) fn forget_streams(state: &mut State) {
        for ks in state.keys.values_mut() {
            if let Some(timer) = ks.timer.take() {
                crate::runtime::timers::cancel(timer);
            }
        }
        state.keys.clear();
        state.generation += 1;
    }

    pub fn status_name(&self) -> &'static str {
        match self.state().status {
            Status::Ok => "OK",
            Status::WaitingForRetry => "WAITING_FOR_RETRY_ON_FAILURE",
            Status::Aborted => "ABORTED",
            Status::Paused => "PAUSED",
        }
    }

    pub fn args_reply(&self) -> Reply {
        let policy = self.policy.name();
        Reply::Array(vec![
            bulk("batchSize"),
            Reply::Int(self.batch as i64),
            bulk("durationMS"),
            Reply::Int(self.duration_ms as i64),
            bulk("stream"),
            bulk(self.prefix.as_str()),
            bulk("trimStream"),
            Reply::Int(self.trim as i64),
            bulk("onFailedPolicy"),
            bulk(policy),
            bulk("retryInterval"),
            Reply::Int(self.retry_secs as i64),
        ])
    }
}
