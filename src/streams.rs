//! StreamReader registrations: per stream key, entries go through the flow in batches of
//! `batch`, or whatever is there once `duration` ms passed since the first waiting entry.
//! The last processed id is remembered per key; `onFailedPolicy` decides what a failed batch
//! does (continue past it, abort the registration, or retry it after an interval).

use crate::codec::{encode_args, Reply};
use crate::flows::split_results;
use crate::registrations::{self, Target};
use crate::reply::bulk;
use crate::sandbox::EntrySetup;
use crate::session::Callback;
use crate::{redis_call, timers, workers};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Policy {
    Continue,
    Abort,
    Retry,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Ok,
    WaitingForRetry,
    Aborted,
    Paused,
}

#[derive(Default)]
struct KeyState {
    last_id: String,
    /// Entries added (by XADD events) and not yet processed: a hint, the stream is the truth.
    pending: usize,
    running: bool,
    timer: Option<u64>,
}

struct State {
    status: Status,
    keys: HashMap<Vec<u8>, KeyState>,
}

pub struct StreamRegistration {
    pub prefix: String,
    batch: usize,
    duration_ms: u64,
    trim: bool,
    policy: Policy,
    retry_secs: u64,
    state: Mutex<State>,
}

impl StreamRegistration {
    /// From the staged fields `[prefix, batch, duration, trimStream, policy, retryInterval]`.
    pub fn parse(fields: &[String]) -> Option<StreamRegistration> {
        let num = |i: usize| fields.get(i)?.parse::<u64>().ok();
        let policy = match fields.get(4)?.as_str() {
            "continue" => Policy::Continue,
            "abort" => Policy::Abort,
            "retry" => Policy::Retry,
            _ => return None,
        };
        Some(StreamRegistration {
            prefix: fields.first()?.clone(),
            batch: num(1)?.max(1) as usize,
            duration_ms: num(2)?,
            trim: fields.get(3)? == "1",
            policy,
            retry_secs: num(5)?,
            state: Mutex::new(State { status: Status::Ok, keys: HashMap::new() }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
        let policy = match self.policy {
            Policy::Continue => "continue",
            Policy::Abort => "abort",
            Policy::Retry => "retry",
        };
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

/// An XADD on `key`: one more entry waiting.
pub fn on_entry_added(target: &Target, stream: &Arc<StreamRegistration>, key: &[u8]) {
    let mut state = stream.state();
    let ks = state.keys.entry(key.to_vec()).or_insert_with(|| KeyState { last_id: "0-0".into(), ..Default::default() });
    ks.pending += 1;
    consider(target, stream, &mut state, key, false);
}

/// Starts a batch when one is due (full, or `flush` and anything waiting), else makes sure a
/// `duration` timer will flush what waits.
fn consider(target: &Target, stream: &Arc<StreamRegistration>, state: &mut State, key: &[u8], flush: bool) {
    if state.status != Status::Ok {
        return;
    }
    let Some(ks) = state.keys.get_mut(key) else { return };
    if ks.running {
        return;
    }
    if ks.pending >= stream.batch || (flush && ks.pending > 0) {
        ks.running = true;
        if let Some(timer) = ks.timer.take() {
            timers::cancel(timer);
        }
        let (target, stream, key) = (target.clone(), Arc::clone(stream), key.to_vec());
        workers::submit(move || process(&target, &stream, &key, flush));
    } else if ks.pending > 0 && stream.duration_ms > 0 && ks.timer.is_none() {
        let (t, s, k) = (target.clone(), Arc::clone(stream), key.to_vec());
        ks.timer = Some(timers::after(Duration::from_millis(stream.duration_ms), move || {
            let mut state = s.state();
            if let Some(ks) = state.keys.get_mut(&k) {
                ks.timer = None;
            }
            consider(&t, &s, &mut state, &k, true);
        }));
    }
}

/// Milliseconds since an entry id's time part (`<ms>-<seq>`) was written.
fn lag_ms(entry_id: &str) -> u64 {
    let written: u64 = entry_id.split('-').next().and_then(|ms| ms.parse().ok()).unwrap_or(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    now.saturating_sub(written)
}

/// Runs batches for `key` on a worker until none is due.
fn process(target: &Target, stream: &Arc<StreamRegistration>, key: &[u8], flush: bool) {
    loop {
        let after = stream.state().keys.get(key).map(|k| k.last_id.clone()).unwrap_or_else(|| "0-0".into());
        if !registrations::exists(&target.id) {
            return;
        }
        let batch = stream.batch.to_string();
        let policy = match stream.policy {
            Policy::Continue => "continue",
            Policy::Abort => "abort",
            Policy::Retry => "retry",
        };
        let payload = encode_args(&[
            b"stream".as_slice(),
            target.id.as_bytes(),
            key,
            after.as_bytes(),
            batch.as_bytes(),
            if stream.trim { b"1" } else { b"0" },
            policy.as_bytes(),
        ]);
        let started = Instant::now();
        let (last, read, error) =
            match target.session.callback(Callback::Dispatch, &payload, EntrySetup::new(redis_call::detached())) {
                Ok(out) => {
                    let outcome = split_results(out.reply);
                    let mut results = outcome.results.into_iter();
                    let last = match results.next() {
                        Some(Reply::Bulk(b)) => String::from_utf8_lossy(&b).into_owned(),
                        _ => after.clone(),
                    };
                    let read = match results.next() {
                        Some(Reply::Int(n)) => n.max(0) as usize,
                        _ => 0,
                    };
                    (last, read, outcome.errors.into_iter().next())
                }
                Err(e) => (after.clone(), 0, Some(e.to_string())),
            };
        if read > 0 || error.is_some() {
            registrations::record_trigger(&target.id);
            registrations::record_run(&target.id, started.elapsed().as_millis() as u64, error.as_deref());
            registrations::record_lag(&target.id, lag_ms(&last));
        }
        let mut state = stream.state();
        let failed = error.is_some() && stream.policy != Policy::Continue;
        if failed {
            if let Some(ks) = state.keys.get_mut(key) {
                ks.running = false;
            }
            if stream.policy == Policy::Abort {
                state.status = Status::Aborted;
            } else {
                state.status = Status::WaitingForRetry;
                let (t, s) = (target.clone(), Arc::clone(stream));
                timers::after(Duration::from_secs(stream.retry_secs), move || resume(&t, &s, Status::WaitingForRetry));
            }
            return;
        }
        let status = state.status;
        let Some(ks) = state.keys.get_mut(key) else { return };
        ks.last_id = last;
        ks.pending = if read == 0 { 0 } else { ks.pending.saturating_sub(read) };
        let more = status == Status::Ok && (ks.pending >= stream.batch || (flush && ks.pending > 0 && read > 0));
        if !more {
            ks.running = false;
            // What is left waits for more entries or for the duration timer.
            consider(target, stream, &mut state, key, false);
            return;
        }
    }
}

/// Back to OK from `from` (retry interval over, or unpaused): everything waiting is flushed.
fn resume(target: &Target, stream: &Arc<StreamRegistration>, from: Status) {
    let mut state = stream.state();
    if state.status != from {
        return;
    }
    state.status = Status::Ok;
    let keys: Vec<Vec<u8>> = state.keys.keys().cloned().collect();
    for key in keys {
        // A retry re-reads the failed batch even if no new entry was announced.
        if let Some(ks) = state.keys.get_mut(&key) {
            ks.pending = ks.pending.max(1);
        }
        consider(target, stream, &mut state, &key, true);
    }
}

pub fn set_paused(target: &Target, stream: &Arc<StreamRegistration>, paused: bool) {
    if paused {
        let mut state = stream.state();
        if state.status != Status::Aborted {
            state.status = Status::Paused;
        }
    } else {
        resume(target, stream, Status::Paused);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_into_options() {
        let fields: Vec<String> = ["s:*", "3", "500", "1", "retry", "2"].iter().map(|s| s.to_string()).collect();
        let s = StreamRegistration::parse(&fields).unwrap();
        assert_eq!((s.batch, s.duration_ms, s.trim, s.policy, s.retry_secs), (3, 500, true, Policy::Retry, 2));
        assert!(StreamRegistration::parse(&fields[..4]).is_none());
    }

    #[test]
    fn lag_is_measured_from_the_entry_id() {
        assert!(lag_ms("0-1") > 1_000_000);
        assert!(lag_ms("99999999999999-0") == 0);
    }
}
