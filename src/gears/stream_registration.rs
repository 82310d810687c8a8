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

/// `KeyState::pending` when it is not known: more than any batch, less than an overflow.
const BACKLOG_UNKNOWN: usize = usize::MAX / 2;

#[derive(Default)]
pub(crate) struct KeyState {
    pub last_id: String,
    /// Entries added (by XADD events) and not yet processed: a hint, the stream is the truth.
    pub pending: usize,
    pub running: bool,
    pub timer: Option<u64>,
}

/// Where a registration is in one stream: the last entry id it processed there. Saved in the
/// RDB and sent to replicas and the AOF after each batch (gears/stream_positions.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    pub registration: String,
    pub key: Vec<u8>,
    pub last_id: String,
}

pub(crate) struct State {
    pub status: Status,
    pub keys: HashMap<Vec<u8>, KeyState>,
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
            state: Mutex::new(State { status: Status::Ok, keys: HashMap::new() }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last processed id per stream (streams it never processed are left out).
    pub fn positions(&self) -> Vec<(Vec<u8>, String)> {
        let state = self.state();
        let mut out: Vec<_> = state
            .keys
            .iter()
            .filter(|(_, ks)| ks.last_id != "0-0" && !ks.last_id.is_empty())
            .map(|(key, ks)| (key.clone(), ks.last_id.clone()))
            .collect();
        out.sort();
        out
    }

    /// Continues stream `key` after `last_id` (a restored or replicated position). How many
    /// entries wait after it is not known here (added before a restart, or on the primary),
    /// so the next batch reads on until the stream is drained instead of waiting for that
    /// many new entries.
    pub fn set_position(&self, key: &[u8], last_id: &str) {
        let mut state = self.state();
        let ks = state.keys.entry(key.to_vec()).or_default();
        ks.last_id = last_id.to_string();
        ks.pending = BACKLOG_UNKNOWN;
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
