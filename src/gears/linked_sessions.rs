//! Which sessions are "linked" (own registrations, listed by RG.PYDUMPSESSIONS, reachable by
//! `ID` for UPGRADE/REPLACE_WITH) and which are "dead" (replaced, yet still held by running
//! executions or time events). Both lists hold weak references: a session is freed with its
//! last holder, and then simply disappears from them.

use crate::session::Session;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

#[derive(Default)]
struct Lists {
    linked: BTreeMap<String, Weak<Session>>,
    dead: Vec<Weak<Session>>,
}

/// Linked and dead sessions. Lock order: level 3, taken alone (callers get a copy).
static LISTS: OnceLock<Mutex<Lists>> = OnceLock::new();

fn lists() -> MutexGuard<'static, Lists> {
    let mut l = LISTS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    l.linked.retain(|_, s| s.strong_count() > 0);
    l.dead.retain(|s| s.strong_count() > 0);
    l
}

/// The linked session `id`, if alive.
pub fn find(id: &str) -> Option<Arc<Session>> {
    lists().linked.get(id).and_then(Weak::upgrade)
}

pub fn link(session: &Arc<Session>) {
    lists().linked.insert(session.id.clone(), Arc::downgrade(session));
}

/// Unlinks a replaced session; it stays listed as dead while something still holds it.
pub fn kill(session: &Arc<Session>) {
    let mut l = lists();
    if l.linked.get(&session.id).is_some_and(|s| std::ptr::eq(s.as_ptr(), Arc::as_ptr(session))) {
        l.linked.remove(&session.id);
    }
    session.mark_dead();
    l.dead.push(Arc::downgrade(session));
}

pub fn is_linked(session: &Arc<Session>) -> bool {
    lists().linked.get(&session.id).is_some_and(|s| std::ptr::eq(s.as_ptr(), Arc::as_ptr(session)))
}

pub fn linked() -> Vec<Arc<Session>> {
    lists().linked.values().filter_map(Weak::upgrade).collect()
}

pub fn dead() -> Vec<Arc<Session>> {
    lists().dead.iter().filter_map(Weak::upgrade).collect()
}
