//! The module's Redis data type, `rg_timeev`: the value a keyed time event leaves in its key,
//! and the carrier of the saved sessions (its aux field, see saved_state.rs). Its own file so
//! that time_events and persistence do not depend on each other.

use redis_module::native_types::RedisType;
use redis_module::raw;
use std::os::raw::{c_int, c_void};

/// The value a keyed time event leaves in its key.
pub struct KeyedEvent {
    pub id: u64,
}

pub static TIME_EVENT_TYPE: RedisType = RedisType::new(
    "rg_timeev",
    // The aux field's version (a key's value is the same in all).
    crate::gears::saved_state::ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: None,
        digest: None,
        free: Some(free),
        // The saved sessions ride on this type's aux field (see saved_state.rs).
        aux_load: Some(crate::gears::saved_state::aux_load),
        aux_save: Some(crate::gears::saved_state::aux_save),
        aux_save_triggers: raw::REDISMODULE_AUX_AFTER_RDB as i32,
        free_effort: None,
        unlink: None,
        copy: None,
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        // Redis 7.2+ calls this one instead: it may write nothing.
        aux_save2: Some(crate::gears::saved_state::aux_save2),
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

/// # Safety
/// Called by Redis with a live RDB handle while loading a key of this type.
unsafe extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, _encver: c_int) -> *mut c_void {
    let id = raw::load_unsigned(rdb).unwrap_or(0);
    Box::into_raw(Box::new(KeyedEvent { id })).cast()
}

/// # Safety
/// Nothing is read: the event is re-created with its session, not from the AOF.
unsafe extern "C" fn aof_rewrite(
    _aof: *mut raw::RedisModuleIO,
    _key: *mut raw::RedisModuleString,
    _value: *mut c_void,
) {
}
