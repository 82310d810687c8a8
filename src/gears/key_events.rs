//! Keyspace events -> KeysReader and StreamReader registrations. The handler runs inside the
//! command that changed the key (main thread, or a worker's `execute()`): `sync`
//! registrations run right there, `commands=` ones after the command, the others are queued
//! on the workers. Not fired on replicas or while loading.

use crate::gears::command_scope;
use crate::gears::flows::split_results;
use crate::gears::registration_stats;
use crate::gears::registrations;
use crate::gears::registrations::Target;
use crate::gears::streams;
use crate::redis::caller;
use crate::redis::key_reader;
use crate::runtime::workers;
use crate::session::CallbackOutput;
use redis_module::{Context, ContextFlags, KeyType, NotifyEvent, RedisString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use wasmgears_abi::payload::{self, KeyRead};
use wasmgears_abi::GuestEntry;
use wasmgears_abi::Reply;
use wasmgears_sandbox::{EntrySetup, SandboxError};

/// The key's type as RedisGears 1.2's `keyTypes` name it (a vanished key is `empty`).
fn type_name(ctx: &Context, key: &[u8]) -> String {
    let name = RedisString::create_from_slice(ctx.ctx, key);
    match ctx.open_key(&name).key_type() {
        KeyType::Empty => "empty",
        kind => key_reader::type_reply_name(kind),
    }
    .to_string()
}

/// One place in a registration's bounded backlog, given back when dropped.
struct PendingSlot(Arc<AtomicUsize>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub fn on_event(ctx: &Context, _class: NotifyEvent, event: &str, key: &[u8]) {
    if ctx.get_flags().intersects(ContextFlags::LOADING | ContextFlags::SLAVE | ContextFlags::REPLICATED) {
        return;
    }
    let command = command_scope::wrapped_command();
    let matches = registrations::matching_key_registrations(key, event, command.as_deref(), || type_name(ctx, key));
    for target in matches {
        if command.is_some() && command_scope::defer(&target, &payload::key_event(&target.id, key, event, None)) {
            continue; // a `commands=` registration: run once the command is done
        }
        if target.sync && run_inline(ctx, &target, &inline_payload(ctx, &target, key, event)) {
            continue;
        }
        // Read when it runs (as 1.2's async registrations read the key).
        let payload = payload::key_event(&target.id, key, event, None);
        queue(target, payload);
    }
}

/// The payload of a `sync` run right here: with the key's type and a string's value, read
/// now as the guest's first commands would read them (and as 1.2 reads them, with
/// RM_OpenKey) when the session's user may (`TYPE` and `GET` of the key). Otherwise, or for
/// a value over the reply cap, without: the guest reads them itself and meets what its
/// commands meet.
fn inline_payload(ctx: &Context, target: &Target, key: &[u8], event: &str) -> Vec<u8> {
    let read = target.reads_value.then(|| key_reader::type_and_string(ctx, &target.session.run_as, key)).flatten();
    let read = read.as_ref().map(|(type_name, value)| KeyRead { type_name, value: value.as_deref() });
    payload::key_event(&target.id, key, event, read)
}

/// A stream's notifications, for StreamReader registrations. Redis does not call a subscriber
/// again for the events its own callback causes: this one is separate from the keys' (as in
/// RedisGears 1.2), so an `XADD` made by a KeysReader registration's `sync` run still reaches
/// the stream's registrations.
pub fn on_stream_event(ctx: &Context, _class: NotifyEvent, event: &str, key: &[u8]) {
    if event != "xadd"
        || ctx.get_flags().intersects(ContextFlags::LOADING | ContextFlags::SLAVE | ContextFlags::REPLICATED)
    {
        return;
    }
    for (target, stream) in registrations::matching_stream_registrations(key) {
        streams::on_entry_added(ctx, &target, &stream, key);
    }
}

/// A `sync` registration runs right here, within the command that changed the key, if its
/// session is free; false if it is busy on a worker (which may be waiting for the Redis lock
/// this thread holds), and the event is queued like an async one instead.
fn run_inline(ctx: &Context, target: &Target, payload: &[u8]) -> bool {
    let setup = EntrySetup {
        main_thread: true,
        async_allowed: !crate::redis::flags::blocking_denied(ctx),
        ..EntrySetup::new(caller::inline(ctx, &target.session.run_as))
    };
    let started = Instant::now();
    let Some(result) = target.session.try_callback(GuestEntry::KeyEvent, payload, setup) else {
        return false;
    };
    record_when_done(target.clone(), started, result);
    true
}

/// Records the run once its results are in (now, or when its waiting records finish: the
/// continuation holds the registration's session meanwhile).
pub fn record_when_done(target: Target, started: Instant, result: Result<CallbackOutput, SandboxError>) {
    registration_stats::record_trigger(&target.id);
    match result {
        Ok(out) => out.then(move |result| record(&target.id, started, result)),
        Err(e) => record(&target.id, started, Err(e)),
    }
}

pub fn record(id: &str, started: Instant, result: Result<Reply, SandboxError>) {
    let (results, errors) = match result {
        Ok(reply) => {
            let outcome = split_results(reply);
            (outcome.results, outcome.errors)
        }
        Err(e) => (Vec::new(), vec![e.to_string()]),
    };
    registration_stats::record_run(id, started.elapsed().as_millis() as u64, results, errors);
}

/// Runs the event's flow on a worker, within the registration's bounded backlog.
pub fn queue(target: Target, payload: Vec<u8>) {
    if target.pending.fetch_add(1, Ordering::AcqRel) >= registrations::max_pending() {
        target.pending.fetch_sub(1, Ordering::AcqRel);
        registration_stats::record_dropped(&target.id);
        return;
    }
    let slot = PendingSlot(Arc::clone(&target.pending));
    workers::submit(move || {
        let _slot = slot; // released however the job ends
        let started = Instant::now();
        let setup = EntrySetup::new(caller::detached(&target.session.run_as));
        let result = target.session.callback(GuestEntry::KeyEvent, &payload, setup);
        record_when_done(target, started, result);
    });
}
