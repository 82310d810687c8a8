//! The saved sessions as Redis persists them: the RDB aux field of `rg_timeev` (after the
//! keys), two strings: the sessions (persistence.rs) and, since the type's encoding version
//! 1, the StreamReader positions of older versions (stream_positions.rs: now always empty).
//!
//! `aux_save` also runs in the fork child of BGSAVE and AOF rewrites, where a mutex another
//! thread held at fork time stays locked forever. So both strings are built beforehand,
//! whenever what they hold changes (a session linked or replaced, a registration added or
//! removed, a session that failed to restore listed or dropped: `publish`), with the Redis lock held and before the change is propagated,
//! and `aux_save` only reads them (`ForkSafe`: no waiting). A part that cannot be built
//! leaves the last good one in place, loudly.
//!
//! With no sessions nothing is saved (aux_save2, Redis 7.2+), so such an RDB loads in a Redis
//! without the module; older Redis calls `aux_save`, which must write something: an empty set.
//! An unreadable field fails the load.

use crate::gears::linked_sessions;
use crate::gears::persistence::{self, SavedSession};
use crate::gears::registrations;
use crate::gears::stream_positions;
use crate::runtime::fork_safe::ForkSafe;
use redis_module::raw;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

/// The aux field's encoding version (the type's): 0 had only the sessions' string.
pub const ENCODING_VERSION: i32 = 1;

#[derive(Clone)]
struct Parts {
    /// The sessions' blob; None while there are none (nothing to save).
    sessions: Option<Arc<Vec<u8>>>,
    positions: Arc<Vec<u8>>,
}

impl Default for Parts {
    fn default() -> Self {
        Parts { sessions: None, positions: Arc::new(stream_positions::encode_none()) }
    }
}

/// What aux_save writes.
static SAVED: ForkSafe<Parts> = ForkSafe::new();
/// The same parts, for publishers (who change one at a time), held while they are rebuilt:
/// publishers take turns. Lock order: after the Redis lock, before the level-3 mutexes
/// (building the parts takes those, each alone); never taken by aux_save.
static LATEST: Mutex<Option<Parts>> = Mutex::new(None);

fn latest() -> MutexGuard<'static, Option<Parts>> {
    LATEST.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every session to save: the linked ones that have registrations, and those that failed to
/// restore (as they were loaded).
fn sessions() -> Vec<SavedSession> {
    let mut out: Vec<SavedSession> = linked_sessions::linked()
        .iter()
        .filter(|s| !registrations::ids_of(s).is_empty())
        .map(|s| SavedSession::of(s, None))
        .collect();
    let linked: Vec<String> = out.iter().map(|s| s.id.clone()).collect();
    out.extend(persistence::failed_sessions().into_iter().filter(|s| !linked.contains(&s.id)));
    out
}

fn build_sessions() -> Option<Arc<Vec<u8>>> {
    let sessions = sessions();
    (!sessions.is_empty()).then(|| Arc::new(persistence::encode(&sessions)))
}

/// Rebuilds the parts `update` changes and publishes them; false (the last good parts kept)
/// if it panicked.
fn publish_with(update: impl FnOnce(&mut Parts)) -> bool {
    let mut latest = latest();
    let mut parts = latest.clone().unwrap_or_default();
    if catch_unwind(AssertUnwindSafe(|| update(&mut parts))).is_err() {
        return false;
    }
    SAVED.publish(Arc::new(parts.clone()));
    *latest = Some(parts);
    true
}

fn warn_unless(published: bool) {
    if !published {
        crate::redis::log::warning(
            "wasmgears: internal error while preparing the saved sessions: RDBs keep the previous ones",
        );
    }
}

/// Rebuilds everything saved. Call it with the Redis lock held, after the change and before
/// propagating it (so an RDB forked in between agrees with the replication stream).
pub fn publish() {
    warn_unless(publish_with(|parts| {
        parts.sessions = build_sessions();
    }));
}

/// What to write; None when there is nothing to save.
fn to_save() -> Option<Parts> {
    match SAVED.current() {
        Ok(parts) => parts.filter(|p| p.sessions.is_some()).map(|p| (*p).clone()),
        Err(()) => {
            // Ruled out by ForkSafe's writers taking turns; never write a guess.
            crate::redis::log::warning("wasmgears: BUG: the saved sessions could not be read; none saved");
            None
        }
    }
}

fn after_keys(when: c_int) -> bool {
    when == raw::REDISMODULE_AUX_AFTER_RDB as c_int
}

/// Redis 7.2+: writes nothing when there is nothing to save (then there is no aux field).
///
/// # Safety
/// Called by Redis with a live RDB IO handle (maybe in a fork child: takes no lock).
pub unsafe extern "C" fn aux_save2(rdb: *mut raw::RedisModuleIO, when: c_int) {
    if !after_keys(when) {
        return;
    }
    if let Some(Parts { sessions: Some(sessions), positions }) = to_save() {
        raw::save_slice(rdb, &sessions);
        raw::save_slice(rdb, &positions);
    }
}

/// Redis before 7.2 (which ignores `aux_save2`): the field is written whatever it holds.
///
/// # Safety
/// Called by Redis with a live RDB IO handle (maybe in a fork child: takes no lock).
pub unsafe extern "C" fn aux_save(rdb: *mut raw::RedisModuleIO, when: c_int) {
    if !after_keys(when) {
        return;
    }
    match to_save() {
        Some(Parts { sessions: Some(sessions), positions }) => {
            raw::save_slice(rdb, &sessions);
            raw::save_slice(rdb, &positions);
        }
        _ => {
            raw::save_slice(rdb, &persistence::encode(&[]));
            raw::save_slice(rdb, &stream_positions::encode_none());
        }
    }
}

/// Re-creates the saved sessions.
/// An unreadable field fails the load (REDISMODULE_ERR) rather than losing them at the next
/// save; a session that cannot be re-created is listed and kept (persistence::restore).
///
/// # Safety
/// Called by Redis with a live RDB IO handle.
pub unsafe extern "C" fn aux_load(rdb: *mut raw::RedisModuleIO, encver: c_int, when: c_int) -> c_int {
    const OK: c_int = raw::REDISMODULE_OK as c_int;
    const ERR: c_int = raw::REDISMODULE_ERR as c_int;
    if !after_keys(when) {
        return OK;
    }
    let read = || -> Result<(Vec<SavedSession>, usize), String> {
        let sessions = raw::load_string_buffer(rdb).map_err(|e| e.to_string())?;
        let sessions = persistence::decode(sessions.as_ref())?;
        let positions = if encver >= 1 {
            let positions = raw::load_string_buffer(rdb).map_err(|e| e.to_string())?;
            stream_positions::count(positions.as_ref())?
        } else {
            0
        };
        Ok((sessions, positions))
    };
    let (sessions, positions) = match catch_unwind(AssertUnwindSafe(read)) {
        Ok(Ok(saved)) => saved,
        Ok(Err(e)) => {
            crate::redis::log::warning(&format!("wasmgears: unreadable saved sessions ({e}): refusing to load"));
            return ERR;
        }
        Err(_) => {
            crate::redis::log::warning("wasmgears: internal error reading the saved sessions: refusing to load");
            return ERR;
        }
    };
    // The IO's own context has no client (opening a key with it crashes); a detached
    // context has one. This is the main thread, which holds the Redis lock: no locking.
    let detached = crate::redis::worker_context::WorkerContext::detached();
    let ctx = detached.context().ctx;
    sessions.into_iter().for_each(|s| persistence::restore(s, Some(ctx)));
    if positions > 0 {
        crate::redis::log::notice(&format!(
            "wasmgears: {positions} StreamReader positions of an older version set aside: \
             each registration reads its streams from their consumer group"
        ));
    }
    publish();
    OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_build_keeps_the_last_good_parts() {
        let good = Arc::new(b"good".to_vec());
        assert!(publish_with(|p| p.sessions = Some(Arc::clone(&good))));
        assert!(!publish_with(|_| panic!("no")));
        assert_eq!(to_save().and_then(|p| p.sessions), Some(good));
        assert!(publish_with(|p| p.sessions = None));
        assert!(to_save().is_none()); // nothing to save: aux_save2 writes nothing
    }
}
