//! Time events (`registerTE`): a callback every N seconds in its session, on a worker. Each
//! event holds its session. With a key name, the event lives in that key as a value of the
//! module type `rg_timeev`: deleting (or overwriting) the key stops it.

use crate::codec::encode_args;
use crate::flows::split_results;
use crate::sandbox::{EntrySetup, RedisCaller};
use crate::session::{Callback, Session};
use crate::worker_context::WorkerContext;
use crate::{redis_call, timers, workers};
use redis_module::native_types::RedisType;
use redis_module::{raw, KeyType, RedisString};
use std::collections::HashMap;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

struct TimeEvent {
    seconds: u64,
    /// Set when the entry that created the event ends (until then it cannot tick).
    session: Option<Arc<Session>>,
    timer: Option<u64>,
    /// The key it lives in, if any: checked before each tick.
    key: Option<Vec<u8>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
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
        redis.with_context(&mut |ctx| {
            let name = RedisString::create_from_slice(ctx.ctx, key);
            let handle = ctx.open_key_writable(&name);
            if handle.key_type() == KeyType::Empty {
                stored = handle.set_value(&TIME_EVENT_TYPE, KeyedEvent { id }).is_ok();
            } else if let Ok(Some(saved)) = handle.get_value::<KeyedEvent>(&TIME_EVENT_TYPE) {
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
    let payload = encode_args(&[b"timer".as_slice(), id.to_string().as_bytes()]);
    let error = match session.callback(Callback::Dispatch, &payload, EntrySetup::new(redis_call::detached())) {
        Ok(out) => split_results(out.reply).errors.into_iter().next(),
        Err(e) => Some(e.to_string()),
    };
    if let Some(error) = error {
        crate::redis_log::warning(&format!("wasmgears: time event {id} of session {} stopped: {error}", session.id));
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

/// The value a keyed time event leaves in its key.
struct KeyedEvent {
    id: u64,
}

pub static TIME_EVENT_TYPE: RedisType = RedisType::new(
    "rg_timeev",
    0,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: None,
        digest: None,
        free: Some(free),
        // The saved sessions ride on this type's aux field (see persistence.rs).
        aux_load: Some(crate::persistence::aux_load),
        aux_save: Some(crate::persistence::aux_save),
        aux_save_triggers: raw::REDISMODULE_AUX_AFTER_RDB as i32,
        free_effort: None,
        unlink: None,
        copy: None,
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    },
);

/// Deleting, overwriting or expiring the key frees the value; the event notices at its next
/// tick and stops (it does not stop here: DEBUG RELOAD frees and reloads the same value).
unsafe extern "C" fn free(value: *mut c_void) {
    if !value.is_null() {
        // SAFETY: Redis hands back the pointer `set_value` stored: a Box<KeyedEvent>.
        drop(unsafe { Box::from_raw(value.cast::<KeyedEvent>()) });
    }
}

/// The value is the event's id: the callback lives in its session, which is saved (and
/// re-created) with the sessions (persistence.rs).
unsafe extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    // SAFETY: `value` is the Box<KeyedEvent> stored by `reserve` or `rdb_load`.
    let id = unsafe { (*value.cast::<KeyedEvent>()).id };
    raw::save_unsigned(rdb, id);
}

unsafe extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, _encver: c_int) -> *mut c_void {
    let id = raw::load_unsigned(rdb).unwrap_or(0);
    Box::into_raw(Box::new(KeyedEvent { id })).cast()
}

unsafe extern "C" fn aof_rewrite(
    _aof: *mut raw::RedisModuleIO,
    _key: *mut raw::RedisModuleString,
    _value: *mut c_void,
) {
}
