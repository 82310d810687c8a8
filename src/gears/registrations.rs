//! Registrations: flows bound to a trigger, each holding its session. Applied only when the
//! script that made them succeeds, all of them or none (a spec the guest staged was checked
//! when it was staged: the script got an error then).

use crate::gears::key_index::KeyIndex;
use crate::gears::stream_registration::StreamRegistration;
use crate::session::Session;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use wasmgears_abi::ReaderSpec;
use wasmgears_sandbox::CreatedRegistration;

#[derive(Default, Clone)]
pub struct Stats {
    pub triggered: u64,
    pub success: u64,
    pub failures: u64,
    pub aborted: u64,
    pub last_ms: u64,
    pub total_ms: u64,
    pub last_error: Option<String>,
    /// StreamReader: how old the last batch's newest entry was when processed.
    pub last_lag_ms: u64,
    pub total_lag_ms: u64,
}

/// What a registration reacts to.
pub enum Source {
    Trigger {
        name: String,
        inorder: bool,
    },
    /// `hook=`: the command (lower case) it replaces, for keys starting with `keyprefix`.
    Hook {
        command: String,
        keyprefix: Option<String>,
        inorder: bool,
    },
    Keys {
        prefix: String,
        event_types: Option<Vec<String>>,
        key_types: Option<Vec<String>>,
        /// `commands=`: fire only for events these commands cause; the client waits.
        commands: Option<Vec<String>>,
        /// `readValue`: its records carry the key's type and value.
        read_value: bool,
    },
    Stream(Arc<StreamRegistration>),
}

pub struct Registration {
    /// Executions queued or running for this registration's events (bounded: a flow that
    /// writes keys it also listens to would otherwise queue work without end).
    pub pending: Arc<AtomicUsize>,
    pub reader: String,
    pub mode: String,
    pub source: Source,
    pub desc: Option<String>,
    pub stats: Stats,
    pub session: Arc<Session>,
    /// Ids of its newest executions, listed by RG.DUMPEXECUTIONS.
    pub executions: std::collections::VecDeque<String>,
    /// `inorder=True`: its runs on workers start one after the other, in arrival order.
    pub in_order: Option<Arc<crate::gears::in_order::InOrder>>,
}

impl Registration {
    fn trigger(&self) -> Option<&str> {
        match &self.source {
            Source::Trigger { name, .. } => Some(name),
            _ => None,
        }
    }

    pub fn is_sync(&self) -> bool {
        self.mode == "sync"
    }
}

/// A registration's flow to run: its id, session and mode.
#[derive(Clone)]
pub struct Target {
    pub id: String,
    pub session: Arc<Session>,
    pub sync: bool,
    /// The registration's backlog counter (KeysReader events).
    pub pending: Arc<AtomicUsize>,
    /// A `commands=` registration: the command's client waits for it.
    pub waits: bool,
    pub in_order: Option<Arc<crate::gears::in_order::InOrder>>,
    /// A KeysReader registration whose records carry the key's value (`readValue`).
    pub reads_value: bool,
}

impl Target {
    fn of(id: &str, r: &Registration) -> Target {
        Target {
            id: id.to_string(),
            session: Arc::clone(&r.session),
            sync: r.is_sync(),
            pending: Arc::clone(&r.pending),
            waits: matches!(r.source, Source::Keys { commands: Some(_), .. }),
            in_order: r.in_order.clone(),
            reads_value: matches!(r.source, Source::Keys { read_value: true, .. }),
        }
    }
}

pub use crate::gears::key_index::prefix_matches;

/// The KeysReader registrations an event fires. `command` is the command a `commands=`
/// wrapper is running (None outside one): registrations with `commands=` fire only within
/// one of theirs, and only those. `key_type` is asked only when some registration filters on
/// key types.
pub fn matching_key_registrations(
    key: &[u8],
    event: &str,
    command: Option<&str>,
    key_type: impl Fn() -> String,
) -> Vec<Target> {
    let reg = registry();
    let mut kind: Option<String> = None;
    let mut out = Vec::new();
    for seq in reg.keys.candidates(key) {
        let Some((id, r)) = reg.get(&seq) else { continue };
        let Source::Keys { event_types, key_types, commands, .. } = &r.source else { continue };
        let wanted = match (commands, command) {
            (None, _) => true,
            (Some(list), Some(cmd)) => list.iter().any(|c| c == cmd),
            (Some(_), None) => false,
        };
        if !wanted {
            continue;
        }
        if event_types.as_ref().is_some_and(|types| !types.iter().any(|t| t.eq_ignore_ascii_case(event))) {
            continue;
        }
        if let Some(types) = key_types {
            let kind = kind.get_or_insert_with(&key_type);
            if !types.iter().any(|t| t == kind) {
                continue;
            }
        }
        out.push(Target::of(id, r));
    }
    out
}

/// The StreamReader registrations watching stream `key`.
pub fn matching_stream_registrations(key: &[u8]) -> Vec<(Target, Arc<StreamRegistration>)> {
    registry()
        .values()
        .filter_map(|(id, r)| match &r.source {
            Source::Stream(s) if prefix_matches(&s.prefix, key) => Some((Target::of(id, r), Arc::clone(s))),
            _ => None,
        })
        .collect()
}

/// The StreamReader registration `id`.
pub fn stream_registration(id: &str) -> Option<(Target, Arc<StreamRegistration>)> {
    let reg = registry();
    let (rid, r) = seq(id).and_then(|k| reg.get(&k))?;
    match &r.source {
        Source::Stream(s) => Some((Target::of(rid, r), Arc::clone(s))),
        _ => None,
    }
}

pub fn exists(id: &str) -> bool {
    seq(id).is_some_and(|k| registry().contains_key(&k))
}

/// The hook that replaces `command` for `first_key`: the newest registered one.
pub fn find_hook(command: &str, first_key: Option<&[u8]>) -> Option<Target> {
    let reg = registry();
    reg.values().rev().find_map(|(id, r)| match &r.source {
        Source::Hook { command: c, keyprefix, .. } if c == command => {
            let key_ok = match keyprefix {
                None => true,
                Some(p) => first_key.is_some_and(|k| k.starts_with(p.as_bytes())),
            };
            key_ok.then(|| Target::of(id, r))
        }
        _ => None,
    })
}

/// The next older hook of `command` after the hook `below` (for its `call_next`), if any.
pub fn find_hook_below(command: &str, first_key: Option<&[u8]>, below: &str) -> Option<Target> {
    let reg = registry();
    let mut older = reg.values().rev().skip_while(|(id, _)| id != below).skip(1);
    older.find_map(|(id, r)| match &r.source {
        Source::Hook { command: c, keyprefix, .. } if c == command => {
            let key_ok = keyprefix.as_ref().is_none_or(|p| first_key.is_some_and(|k| k.starts_with(p.as_bytes())));
            key_ok.then(|| Target::of(id, r))
        }
        _ => None,
    })
}

/// Every command a hook or a `commands=` registration wraps (for the command filter).
pub fn wrapped_commands() -> Vec<String> {
    let reg = registry();
    let mut out = Vec::new();
    for (_, r) in reg.values() {
        match &r.source {
            Source::Hook { command, .. } => out.push(command.clone()),
            Source::Keys { commands: Some(list), .. } => out.extend(list.iter().cloned()),
            _ => {}
        }
    }
    out
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// All registrations, by id. Lock order: level 3, taken alone; held neither while entering a
/// session nor while the command filter is updated.
static REGISTRATIONS: OnceLock<Mutex<Registry>> = OnceLock::new();

/// The registrations by seq (the number of their id), and the KeysReader ones by prefix. Read
/// through `Deref`; changed only through its methods, which keep the index in step.
#[derive(Default)]
pub struct Registry {
    by_seq: BTreeMap<u64, (String, Registration)>,
    keys: KeyIndex,
}

impl std::ops::Deref for Registry {
    type Target = BTreeMap<u64, (String, Registration)>;

    fn deref(&self) -> &Self::Target {
        &self.by_seq
    }
}

impl Registry {
    fn insert(&mut self, seq: u64, entry: (String, Registration)) {
        if let Source::Keys { prefix, .. } = &entry.1.source {
            self.keys.add(seq, prefix);
        }
        if let Some((_, old)) = self.by_seq.insert(seq, entry) {
            self.unindex(seq, &old);
        }
    }

    fn remove(&mut self, seq: &u64) -> Option<(String, Registration)> {
        let removed = self.by_seq.remove(seq)?;
        self.unindex(*seq, &removed.1);
        Some(removed)
    }

    fn unindex(&mut self, seq: u64, r: &Registration) {
        if let Source::Keys { prefix, .. } = &r.source {
            self.keys.remove(seq, prefix);
        }
    }

    fn get_mut(&mut self, seq: &u64) -> Option<&mut (String, Registration)> {
        self.by_seq.get_mut(seq)
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut (String, Registration)> {
        self.by_seq.values_mut()
    }
}

pub fn registry() -> MutexGuard<'static, Registry> {
    REGISTRATIONS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

pub fn next_id() -> String {
    format!("{}-{}", crate::gears::topology::shard_id(), NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// After restoring registration `id`: new ids come after it.
pub fn seen_id(id: &str) {
    if let Some(n) = seq(id) {
        NEXT_ID.fetch_max(n + 1, Ordering::Relaxed);
    }
}

fn seq(id: &str) -> Option<u64> {
    // `<40-character shard id>-<n>`: the shard id is 40 zeros, or a cluster node's id.
    let (shard, n) = id.split_once('-')?;
    if shard.len() != 40 {
        return None;
    }
    n.parse().ok()
}

/// Applies a script's staged registrations, all or none; with `replacing` (UPGRADE,
/// REPLACE_WITH) that session's registrations are removed in the same step.
pub fn apply(
    staged: Vec<CreatedRegistration>,
    session: &Arc<Session>,
    replacing: Option<&Arc<Session>>,
) -> Result<(), String> {
    let mut reg = registry();
    let replaced = |r: &Registration| replacing.is_some_and(|old| Arc::ptr_eq(old, &r.session));
    let staged_triggers = staged.iter().filter_map(|s| match &s.spec.reader {
        ReaderSpec::Command { trigger: Some(trigger), hook: None, .. } => Some(trigger.as_str()),
        _ => None,
    });
    let mut taken: Option<std::collections::HashSet<&str>> = None; // built once, if needed
    for trigger in staged_triggers {
        let taken = taken.get_or_insert_with(|| {
            reg.values().filter(|(_, r)| !replaced(r)).filter_map(|(_, r)| r.trigger()).collect()
        });
        if taken.contains(trigger) {
            // RedisGears 1.2's words (command_reader.c), without the name.
            return Err("trigger already registered".to_string());
        }
    }
    let old_keys: Vec<u64> = reg.iter().filter(|(_, (_, r))| replaced(r)).map(|(k, _)| *k).collect();
    let removed: Vec<_> = old_keys.iter().filter_map(|k| reg.remove(k)).collect();
    for s in staged {
        let Some(key) = seq(&s.id) else { continue };
        let source = source_of(&s.spec.reader);
        let in_order = matches!(source, Source::Trigger { inorder: true, .. } | Source::Hook { inorder: true, .. })
            .then(crate::gears::in_order::InOrder::on_workers);
        let registration = Registration {
            pending: Arc::new(AtomicUsize::new(0)),
            reader: s.spec.reader_name().to_string(),
            mode: s.spec.mode.clone(),
            source,
            desc: s.spec.desc.clone(),
            stats: Stats::default(),
            session: Arc::clone(session),
            executions: Default::default(),
            in_order,
        };
        reg.insert(key, (s.id, registration));
    }
    drop(reg);
    drop(removed); // outside the lock: this may free the old session
    crate::redis::command_filter::set_wrapped(wrapped_commands());
    Ok(())
}

/// Ids of `session`'s registrations, in registration order.
pub fn ids_of(session: &Arc<Session>) -> Vec<String> {
    registry().values().filter(|(_, r)| Arc::ptr_eq(&r.session, session)).map(|(id, _)| id.clone()).collect()
}

/// Every StreamReader registration.
pub fn stream_registrations() -> Vec<(Target, Arc<StreamRegistration>)> {
    registry()
        .values()
        .filter_map(|(id, r)| match &r.source {
            Source::Stream(s) => Some((Target::of(id, r), Arc::clone(s))),
            _ => None,
        })
        .collect()
}

/// The StreamReader registrations of `session`.
pub fn stream_registrations_of(session: &Arc<Session>) -> Vec<(Target, Arc<StreamRegistration>)> {
    registry()
        .values()
        .filter(|(_, r)| Arc::ptr_eq(&r.session, session))
        .filter_map(|(id, r)| match &r.source {
            Source::Stream(s) => Some((Target::of(id, r), Arc::clone(s))),
            _ => None,
        })
        .collect()
}

/// What a staged spec reacts to, as the registry keeps it.
fn source_of(spec: &ReaderSpec) -> Source {
    match spec {
        ReaderSpec::Keys { prefix, event_types, key_types, commands, read_value } => Source::Keys {
            prefix: prefix.clone(),
            event_types: event_types.clone(),
            key_types: key_types.clone(),
            commands: commands.clone(),
            read_value: *read_value,
        },
        ReaderSpec::Command { hook: Some(hook), key_prefix, in_order, .. } => {
            Source::Hook { command: hook.clone(), keyprefix: key_prefix.clone(), inorder: *in_order }
        }
        ReaderSpec::Command { trigger, in_order, .. } => {
            Source::Trigger { name: trigger.clone().unwrap_or_default(), inorder: *in_order }
        }
        ReaderSpec::Stream { prefix, batch, duration_ms, trim, on_failed, retry_secs } => Source::Stream(Arc::new(
            StreamRegistration::new(prefix, *batch, *duration_ms, *trim, on_failed, *retry_secs),
        )),
    }
}

/// The registration behind `trigger`: its id and session.
pub fn find_trigger(trigger: &str) -> Option<Target> {
    registry().values().find(|(_, r)| r.trigger() == Some(trigger)).map(|(id, r)| Target::of(id, r))
}

/// Runs `f` on registration `id` under the registry's lock (its `source` must stay as it is:
/// the key index is built from it); None when there is no such registration.
pub fn with_registration<R>(id: &str, f: impl FnOnce(&mut Registration) -> R) -> Option<R> {
    let mut reg = registry();
    let (_, r) = seq(id).and_then(|k| reg.get_mut(&k))?;
    Some(f(r))
}

/// Runs `f` on every registration (as `with_registration`).
pub fn for_each_registration(mut f: impl FnMut(&mut Registration)) {
    registry().values_mut().for_each(|(_, r)| f(r));
}

/// The reader a registration reads with (`KeysReader`, `StreamReader`, ...).
pub fn reader_of(id: &str) -> Option<String> {
    seq(id).and_then(|k| registry().get(&k).map(|(_, r)| r.reader.clone()))
}

/// The session a registration runs in.
pub fn session_of(id: &str) -> Option<Arc<Session>> {
    seq(id).and_then(|k| registry().get(&k).map(|(_, r)| Arc::clone(&r.session)))
}

/// Removes a registration; its session is freed with its last holder (outside the lock).
pub fn unregister(id: &str) -> bool {
    let removed = seq(id).and_then(|k| registry().remove(&k));
    if removed.is_some() {
        crate::redis::command_filter::set_wrapped(wrapped_commands());
    }
    removed.is_some()
}

pub fn max_pending() -> usize {
    crate::runtime::settings::int(crate::runtime::config::MAX_PENDING_EVENTS).max(1) as usize
}

pub fn count() -> usize {
    registry().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_like_redisgears() {
        assert!(prefix_matches("*", b"anything"));
        assert!(prefix_matches("user:*", b"user:1"));
        assert!(!prefix_matches("user:*", b"order:1"));
        assert!(prefix_matches("exact", b"exact"));
        assert!(!prefix_matches("exact", b"exactly"));
    }
}
