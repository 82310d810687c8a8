//! Keyspace events -> KeysReader registrations. The handler runs inside the command that
//! changed the key (main thread, or a worker's `execute()`), so it only picks the matching
//! registrations and queues their executions on the workers. Not fired on replicas or while
//! loading.

use crate::codec::encode_args;
use crate::flows::split_results;
use crate::{redis_call, registrations, workers};
use redis_module::{Context, ContextFlags, KeyType, NotifyEvent, RedisString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn type_name(ctx: &Context, key: &[u8]) -> String {
    let name = RedisString::create_from_slice(ctx.ctx, key);
    let kind = ctx.open_key(&name).key_type();
    match kind {
        KeyType::Empty => "empty",
        KeyType::String => "string",
        KeyType::List => "list",
        KeyType::Hash => "hash",
        KeyType::Set => "set",
        KeyType::ZSet => "zset",
        KeyType::Module => "module",
        KeyType::Stream => "stream",
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
    let matches = registrations::matching_key_registrations(key, event, || type_name(ctx, key));
    let max_pending = registrations::max_pending();
    for (id, session, pending) in matches {
        if pending.fetch_add(1, Ordering::AcqRel) >= max_pending {
            pending.fetch_sub(1, Ordering::AcqRel);
            registrations::record_dropped(&id);
            continue;
        }
        let slot = PendingSlot(pending);
        let payload = encode_args(&[id.as_bytes(), key, event.as_bytes()]);
        workers::submit(move || {
            let _slot = slot; // released however the job ends
            let started = Instant::now();
            let first_error = match session.run_key_event(&payload, redis_call::detached()) {
                Ok(reply) => split_results(reply).errors.into_iter().next(),
                Err(e) => Some(e.to_string()),
            };
            registrations::record_run(&id, started.elapsed().as_millis() as u64, first_error.as_deref());
        });
    }
}
