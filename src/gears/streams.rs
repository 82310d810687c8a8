//! StreamReader registrations, run as RedisGears 1.2 runs them (streams_reader.c; reading
//! notes in docs/streamreader-registration-1.2.md). Where a registration is in a stream is
//! the stream's consumer group `__gears_consumer_group__` (read, acknowledged and trimmed by
//! the guest, gears_runtime.py), so it is saved, replicated and failed over with the stream.
//!
//! Per (registration, stream) at most one batch runs. A stream is found by a scan (at
//! registration, after loading, on promotion, on unpause and after a retry interval) or by
//! its first XADD: its state is made with the stream's length as the count of entries to
//! process, and its first run re-reads what was delivered and never acknowledged. After
//! that, a run starts when `batch` entries wait, or `duration` ms after the first of a
//! partial batch; entries found by a scan run at once. A failed batch under `abort` or
//! `retry`, or an error starting with `PAUSE`, forgets every stream of the registration.

use crate::gears::flows::split_results;
use crate::gears::registration_stats;
use crate::gears::registrations::{self, Target};
use crate::gears::stream_registration::{KeyState, Policy, State, Status, StreamRegistration};
use crate::redis::caller;
use crate::redis::worker_context::WorkerContext;
use crate::runtime::{timers, workers};
use crate::session::Session;
use redis_module::{Context, ContextFlags};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmgears_abi::{GuestEntry, Reply, StreamBatch};
use wasmgears_sandbox::EntrySetup;

/// How many keys one SCAN call of a registration's scan asks for (1.2's COUNT).
const SCAN_COUNT: &str = "10000";

/// An XADD on `key` (main thread, Redis lock held).
pub fn on_entry_added(ctx: &Context, target: &Target, stream: &Arc<StreamRegistration>, key: &[u8]) {
    let mut state = stream.state();
    if state.status != Status::Ok {
        return; // 1.2 ignores a paused, aborted or retrying registration's events
    }
    let known = state.keys.get_mut(key).map(|ks| {
        ks.pending += 1;
        ks.added_while_running += 1;
    });
    if known.is_some() {
        return consider(target, stream, &mut state, key);
    }
    drop(state);
    let length = stream_length(ctx, key); // this XADD's entry included
    found(target, stream, key, length, false);
}

/// XLEN of `key` (Redis lock held); 0 if it is not a stream.
fn stream_length(ctx: &Context, key: &[u8]) -> u64 {
    match caller::run_command(ctx, &[b"XLEN", key]) {
        Reply::Int(n) => n.max(0) as u64,
        _ => 0,
    }
}

/// A stream the registration has no state for: its state, and a run that first re-reads
/// what was delivered and never acknowledged (1.2 does this "to keep the read order").
fn found(target: &Target, stream: &Arc<StreamRegistration>, key: &[u8], length: u64, by_scan: bool) {
    let mut state = stream.state();
    if state.status != Status::Ok || state.keys.contains_key(key) {
        return;
    }
    state.keys.insert(key.to_vec(), KeyState { pending: length, backlog: by_scan && length > 0, ..Default::default() });
    start(target, stream, &mut state, key, true);
}

/// Starts a run when one is due (a full batch, or a backlog found by a scan), else makes sure a
/// `duration` timer will run what waits.
fn consider(target: &Target, stream: &Arc<StreamRegistration>, state: &mut State, key: &[u8]) {
    if state.status != Status::Ok {
        return;
    }
    let Some(ks) = state.keys.get_mut(key) else { return };
    if ks.running || ks.pending == 0 {
        return;
    }
    if ks.pending >= stream.batch as u64 || ks.backlog {
        ks.backlog = false;
        start(target, stream, state, key, false);
    } else if stream.duration_ms > 0 && ks.timer.is_none() {
        let (t, s, k) = (target.clone(), Arc::clone(stream), key.to_vec());
        ks.timer = Some(timers::after(Duration::from_millis(stream.duration_ms), move || {
            let mut state = s.state();
            let Some(ks) = state.keys.get_mut(&k) else { return };
            ks.timer = None;
            if !ks.running && ks.pending > 0 {
                start(&t, &s, &mut state, &k, false);
            }
        }));
    }
}

/// Marks `key` running and runs its batches on a worker.
fn start(target: &Target, stream: &Arc<StreamRegistration>, state: &mut State, key: &[u8], read_pending: bool) {
    let generation = state.generation;
    let Some(ks) = state.keys.get_mut(key) else { return };
    ks.running = true;
    ks.added_while_running = 0;
    if let Some(timer) = ks.timer.take() {
        timers::cancel(timer);
    }
    let (t, s, k) = (target.clone(), Arc::clone(stream), key.to_vec());
    if !workers::submit(move || run_batches(&t, &s, &k, read_pending, generation)) {
        ks.running = false; // shutting down
    }
}

/// Milliseconds since an entry id's time part (`<ms>-<seq>`) was written.
fn lag_ms(entry_id: &str) -> u64 {
    let written: u64 = entry_id.split('-').next().and_then(|ms| ms.parse().ok()).unwrap_or(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    now.saturating_sub(written)
}

/// What one batch did.
struct BatchOutcome {
    read: u64,
    last_id: String,
    error: Option<String>,
}

fn run_one_batch(target: &Target, stream: &StreamRegistration, key: &[u8], read_pending: bool) -> BatchOutcome {
    let payload = StreamBatch {
        registration: &target.id,
        key,
        read_pending,
        count: if read_pending { 0 } else { stream.batch },
        trim: stream.trim,
        policy: stream.policy.name(),
    }
    .encode();
    let result = target.session.callback(
        GuestEntry::StreamBatch,
        &payload,
        EntrySetup::new(caller::detached(&target.session.run_as)),
    );
    match result {
        Ok(out) => {
            let outcome = split_results(out.reply);
            let mut results = outcome.results.into_iter();
            let read = match results.next() {
                Some(Reply::Int(n)) => n.max(0) as u64,
                _ => 0,
            };
            let last_id = match results.next() {
                Some(Reply::Bulk(b)) => String::from_utf8_lossy(&b).into_owned(),
                _ => String::new(),
            };
            BatchOutcome { read, last_id, error: outcome.errors.into_iter().next() }
        }
        Err(e) => BatchOutcome { read: 0, last_id: String::new(), error: Some(e.to_string()) },
    }
}

/// Runs batches of `key` on a worker until none is due.
fn run_batches(target: &Target, stream: &Arc<StreamRegistration>, key: &[u8], mut read_pending: bool, generation: u64) {
    loop {
        if !registrations::exists(&target.id) {
            return;
        }
        let started = Instant::now();
        let batch = run_one_batch(target, stream, key, read_pending);
        // As 1.2: every run counts, an empty re-read of pending entries too.
        registration_stats::record_trigger(&target.id);
        let errors = batch.error.iter().cloned().collect();
        registration_stats::record_run(&target.id, started.elapsed().as_millis() as u64, Vec::new(), errors);
        if !batch.last_id.is_empty() {
            registration_stats::record_lag(&target.id, lag_ms(&batch.last_id));
        }
        let mut state = stream.state();
        if state.generation != generation {
            return; // forgotten meanwhile (paused, failed elsewhere): a scan finds it again
        }
        if let Some(error) = &batch.error {
            if error.starts_with("PAUSE") {
                StreamRegistration::forget_streams(&mut state);
                state.status = Status::Paused;
                return;
            }
            if stream.policy != Policy::Continue {
                failed(target, stream, &mut state);
                return;
            }
        }
        let status = state.status;
        let Some(ks) = state.keys.get_mut(key) else { return };
        ks.pending = ks.pending.saturating_sub(batch.read);
        let asked = stream.batch as u64;
        if !read_pending && batch.read < asked {
            // Drained when it read: what waits now is what was added since (a few of those
            // may have been read already: one more run finds out). Corrects a count made
            // high by entries acknowledged and kept before the state was made.
            ks.pending = ks.added_while_running;
        }
        read_pending = false;
        let next = status == Status::Ok && ks.pending > 0 && (ks.pending >= asked || ks.backlog);
        if next {
            ks.backlog = false;
            ks.added_while_running = 0;
            continue;
        }
        ks.running = false;
        consider(target, stream, &mut state, key);
        return;
    }
}

/// A failed batch under `abort` or `retry`: every stream forgotten (the next scan re-reads
/// what was not acknowledged), then aborted, or retried after the interval.
fn failed(target: &Target, stream: &Arc<StreamRegistration>, state: &mut State) {
    StreamRegistration::forget_streams(state);
    if stream.policy == Policy::Abort {
        state.status = Status::Aborted;
        return;
    }
    state.status = Status::WaitingForRetry;
    let (t, s) = (target.clone(), Arc::clone(stream));
    timers::after(Duration::from_secs(stream.retry_secs), move || {
        let mut state = s.state();
        if state.status == Status::WaitingForRetry {
            state.status = Status::Ok;
            drop(state);
            scan_later(&t, &s);
        }
    });
}

/// Escapes a glob pattern's special characters, but for a trailing `*` (a prefix).
fn scan_pattern(prefix: &str) -> Vec<u8> {
    let (body, star) = match prefix.strip_suffix('*') {
        Some(body) => (body, true),
        None => (prefix, false),
    };
    let mut out = Vec::with_capacity(prefix.len() + 2);
    for b in body.bytes() {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    if star {
        out.push(b'*');
    }
    out
}

/// Finds the registration's streams on a worker (a scan of the keyspace, one SCAN call at a
/// time under the Redis lock), each with a run. Only on a primary that is not loading: the
/// end of loading and a promotion scan again (`scan_all`).
pub fn scan_later(target: &Target, stream: &Arc<StreamRegistration>) {
    let (target, stream) = (target.clone(), Arc::clone(stream));
    workers::submit(move || scan(&target, &stream));
}

fn scan(target: &Target, stream: &Arc<StreamRegistration>) {
    let redis = WorkerContext::detached();
    let pattern = scan_pattern(&stream.prefix);
    let mut cursor = b"0".to_vec();
    loop {
        if !registrations::exists(&target.id) || stream.state().status != Status::Ok {
            return;
        }
        let locked = redis.lock();
        if !locked.get_flags().contains(ContextFlags::MASTER) || locked.get_flags().contains(ContextFlags::LOADING) {
            return;
        }
        let reply = caller::run_command(
            &locked,
            &[b"SCAN", &cursor, b"MATCH", &pattern, b"COUNT", SCAN_COUNT.as_bytes(), b"TYPE", b"stream"],
        );
        let Reply::Array(mut parts) = reply else { return };
        let (Some(Reply::Array(keys)), Some(Reply::Bulk(next))) = (parts.pop(), parts.pop()) else { return };
        for key in keys {
            let Reply::Bulk(key) = key else { continue };
            if registrations::prefix_matches(&stream.prefix, &key) && !stream.state().keys.contains_key(&key) {
                let length = stream_length(&locked, &key);
                found(target, stream, &key, length, true);
            }
        }
        drop(locked);
        if next == b"0" {
            return;
        }
        cursor = next;
    }
}

/// The new StreamReader registrations of `session` look for their streams.
pub fn scan_session(session: &Arc<Session>) {
    for (target, stream) in registrations::stream_registrations_of(session) {
        scan_later(&target, &stream);
    }
}

/// Every StreamReader registration scans again: after loading, and when this server became
/// a primary (1.2 logs the same line on promotion).
pub fn scan_all(promoted: bool) {
    let streams = registrations::stream_registrations();
    if promoted && !streams.is_empty() {
        crate::redis::log::notice("Become master, trigger a scan on each stream registration.");
    }
    for (target, stream) in streams {
        scan_later(&target, &stream);
    }
}

pub fn set_paused(target: &Target, stream: &Arc<StreamRegistration>, paused: bool) {
    let mut state = stream.state();
    if paused {
        // 1.2 pauses an OK registration only (a retrying one too: its retry then finds it
        // paused), and forgets its streams.
        if matches!(state.status, Status::Ok | Status::WaitingForRetry) {
            StreamRegistration::forget_streams(&mut state);
            state.status = Status::Paused;
        }
    } else {
        // Unpausing always starts again, even an aborted registration (1.2 does the same).
        state.status = Status::Ok;
        drop(state);
        scan_later(target, stream);
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

    #[test]
    fn scan_patterns_match_the_prefix_literally() {
        assert_eq!(scan_pattern("s:*"), b"s:*");
        assert_eq!(scan_pattern("s"), b"s");
        assert_eq!(scan_pattern("a?[b]*"), b"a\\?\\[b\\]*");
        assert_eq!(scan_pattern("x*y"), b"x\\*y");
    }
}
