//! Time events (`registerTE`): a callback every N seconds in its session, on a worker. Each
//! event holds its session. With a key name, the event lives in that key as a value of the
//! module type `rg_timeev`: deleting (or overwriting) the key stops it.

use crate::gears::flows::split_results;
use crate::gears::rdb::{KeyedEvent, TIME_EVENT_TYPE};
use crate::redis::caller;
use crate::redis::worker_context::WorkerContext;
use crate::runtime::timers;
use crate::runtime::workers;
use crate::session::Session;
use redis_module::{KeyType, RedisString};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use wasmgears_abi::payload;
use wasmgears_abi::GuestEntry;
use wasmgears_sandbox::{EntrySetup, RedisCaller};

struct TimeEvent {
    seconds: u64,
    /// Set when the entry that created the event ends (until then it cannot tick).
    session: Option<Arc<Session>>,
    timer: Option<u64>,
    /// The key it lives in, if any: checked before each tick.
    key: Option<Vec<u8>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Live time events. Lock order: level 4: held while scheduling or cancelling a timer, never
/// while entering a session.
static EVENTS: OnceLock<Mutex<HashMap<u64, TimeEvent>>> = OnceLock::new();

fn events() -> MutexGuard<'static, HashMap<u64, TimeEvent>> {
    EVENTS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// Time events alive.
pub fn count() -> usize {
    events().len()
}

/// Creates an event (not yet ticking). With `key`, stores it there first: None if the key
/// exists.
pub fn reserve(seconds: u64, key: Option<Vec<u8>>, redis: &mut dyn RedisCaller) -> Option<u64> {
    // Ids stay unique across restarts (a key keeps its event's id in the RDB): they start
    // from the clock in microseconds.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_micros() as u64);
    NEXT_ID.fetch_max(now, Ordering::Relaxed);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if let Some(key) = &key {
        let mut stored = false;
        redis.with_host_handle(&mut |handle| {
            let Some(ctx) = handle.downcast_ref::<redis_module::Context>() else { return };
            let name = RedisString::create_from_slice(ctx.ctx, key);
            let key = ctx.open_key_writable(&name);
            if key.key_type() == KeyType::Empty {
                stored = key.set_value(&TIME_EVENT_TYPE, KeyedEvent { id }).is_ok();
            } else if let Ok(Some(saved)) = key.get_value::<KeyedEvent>(&TIME_EVENT_TYPE) {
                // A key loaded from an RDB whose event is gone (a restart): its session is
                // being re-created and the event re-attaches to it.
                if !events().contains_key(&saved.id) {
                    saved.id = id;
                    stored = true;
                }
            }
        });
        if !stored {
            return None;
        }
    }
    events().insert(id, TimeEvent { seconds, session: None, timer: None, key });
    Some(id)
}

/// Starts a reserved event's ticks (unless its key was deleted meanwhile).
pub fn start(id: u64, session: Arc<Session>) {
    let mut all = events();
    if let Some(event) = all.get_mut(&id) {
        event.session = Some(session);
        event.timer = Some(schedule(id, event.seconds));
    }
}

fn schedule(id: u64, seconds: u64) -> u64 {
    timers::after(Duration::from_secs(seconds), move || {
        workers::submit(move || tick(id));
    })
}

/// One tick: runs the callback; an error (or a failed session) stops the event.
fn tick(id: u64) {
    let Some((session, key)) = events().get(&id).and_then(|e| Some((e.session.clone()?, e.key.clone()))) else {
        return;
    };
    if let Some(key) = key {
        if !still_in_key(id, &key) {
            stop(id); // the key was deleted or overwritten
            return;
        }
    }
    let payload = payload::one_id(&id.to_string());
    let error =
        match session.callback(GuestEntry::TimeEvent, &payload, EntrySetup::new(caller::detached(&session.run_as))) {
            Ok(out) => split_results(out.reply).errors.into_iter().next(),
            Err(e) => Some(e.to_string()),
        };
    if let Some(error) = error {
        crate::redis::log::warning(&format!("wasmgears: time event {id} of session {} stopped: {error}", session.id));
        stop(id);
        return;
    }
    let mut all = events();
    if let Some(event) = all.get_mut(&id) {
        event.timer = Some(schedule(id, event.seconds));
    }
}

/// Whether `key` still holds event `id` (a key survives DEBUG RELOAD with its event's id).
fn still_in_key(id: u64, key: &[u8]) -> bool {
    let worker = WorkerContext::detached();
    let ctx = worker.lock();
    let name = RedisString::create_from_slice(ctx.ctx, key);
    let handle = ctx.open_key(&name);
    matches!(handle.get_value::<KeyedEvent>(&TIME_EVENT_TYPE), Ok(Some(v)) if v.id == id)
}

/// Stops an event; its session is released outside the lock.
pub fn stop(id: u64) {
    let removed = events().remove(&id);
    if let Some(TimeEvent { timer: Some(timer), .. }) = &removed {
        timers::cancel(*timer);
    }
    drop(removed);
}
