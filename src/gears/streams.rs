//! StreamReader registrations: per stream key, entries go through the flow in batches of
//! `batch`, or whatever is there once `duration` ms passed since the first waiting entry.
//! The last processed id is remembered per key; `onFailedPolicy` decides what a failed batch
//! does (continue past it, abort the registration, or retry it after an interval). The last
//! id is saved with the session and sent to replicas and the AOF (`RG.INNERSTREAMPOS`).

use crate::gears::flows::split_results;
use crate::gears::registrations::{self, Target};
use crate::gears::saved_state;
use crate::gears::stream_registration::{KeyState, Policy, State, Status, StreamRegistration};
use crate::redis::caller;
use crate::redis::worker_context::WorkerContext;
use crate::runtime::{timers, workers};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmgears_abi::{GuestEntry, Reply, StreamBatch};
use wasmgears_sandbox::EntrySetup;

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
        let payload = StreamBatch {
            registration: &target.id,
            key,
            after_id: &after,
            count: stream.batch,
            trim: stream.trim,
            policy: stream.policy.name(),
        }
        .encode();
        let started = Instant::now();
        let (last, read, error) = match target.session.callback(
            GuestEntry::StreamBatch,
            &payload,
            EntrySetup::new(caller::detached(&target.session.run_as)),
        ) {
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
            let errors = error.iter().cloned().collect();
            registrations::record_run(&target.id, started.elapsed().as_millis() as u64, Vec::new(), errors);
            registrations::record_lag(&target.id, lag_ms(&last));
        }
        let failed = error.is_some() && stream.policy != Policy::Continue;
        // A batch that moved on is saved and sent to replicas and the AOF under the Redis
        // lock (taken before the state: lock order), so that an RDB and the replication
        // stream agree on where the registration is.
        let redis = (!failed && last != after).then(WorkerContext::detached);
        let locked = redis.as_ref().map(WorkerContext::lock);
        let mut state = stream.state();
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
        ks.last_id = last.clone();
        ks.pending = if read == 0 { 0 } else { ks.pending.saturating_sub(read) };
        let more = status == Status::Ok && (ks.pending >= stream.batch || (flush && ks.pending > 0 && read > 0));
        if !more {
            ks.running = false;
            // What is left waits for more entries or for the duration timer.
            consider(target, stream, &mut state, key, false);
        }
        drop(state);
        if let Some(ctx) = &locked {
            saved_state::publish_positions();
            ctx.replicate("rg.innerstreampos", &[target.id.as_bytes(), key, last.as_bytes()][..]);
        }
        drop(locked);
        if !more {
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

/// Pauses (`true`) or resumes StreamReader registration `id`; false if `id` is not one.
pub fn set_paused_by_id(id: &str, paused: bool) -> bool {
    match registrations::stream_registration(id) {
        Some((target, stream)) => {
            set_paused(&target, &stream, paused);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_from_the_spec() {
        let s = StreamRegistration::new("s:*", 3, 500, true, "retry", 2);
        assert_eq!((s.batch, s.duration_ms, s.trim, s.policy, s.retry_secs), (3, 500, true, Policy::Retry, 2));
        assert_eq!(StreamRegistration::new("s", 0, 0, false, "abort", 0).batch, 1);
    }

    #[test]
    fn lag_is_measured_from_the_entry_id() {
        assert!(lag_ms("0-1") > 1_000_000);
        assert!(lag_ms("99999999999999-0") == 0);
    }
}
