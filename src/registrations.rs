//! Registrations: flows bound to a trigger, each holding its session. Applied only when the
//! script that made them succeeds, all of them or none.

use crate::codec::Reply;
use crate::executions::SHARD_ID;
use crate::reply::bulk;
use crate::sandbox::CreatedRegistration;
use crate::session::Session;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

#[derive(Default, Clone)]
pub struct Stats {
    pub triggered: u64,
    pub success: u64,
    pub failures: u64,
    pub aborted: u64,
    pub last_ms: u64,
    pub total_ms: u64,
    pub last_error: Option<String>,
}

/// What a registration reacts to.
pub enum Source {
    Trigger { name: String, inorder: bool },
    Keys { prefix: String, event_types: Option<Vec<String>>, key_types: Option<Vec<String>> },
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
}

impl Registration {
    fn trigger(&self) -> Option<&str> {
        match &self.source {
            Source::Trigger { name, .. } => Some(name),
            Source::Keys { .. } => None,
        }
    }
}

/// `"a,b"` -> [a, b]; `""` -> None (all); `","` -> an empty list (none).
fn name_list(field: &str) -> Option<Vec<String>> {
    (!field.is_empty()).then(|| field.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
}

/// RedisGears' prefix match: `*` matches all, `p*` a prefix, anything else the exact key.
pub fn prefix_matches(prefix: &str, key: &[u8]) -> bool {
    match prefix.strip_suffix('*') {
        Some(start) => key.starts_with(start.as_bytes()),
        None => key == prefix.as_bytes(),
    }
}

/// The KeysReader registrations an event fires: (id, session, pending counter). `key_type` is asked
/// only when some registration filters on key types.
pub fn matching_key_registrations(
    key: &[u8],
    event: &str,
    key_type: impl Fn() -> String,
) -> Vec<(String, Arc<Session>, Arc<AtomicUsize>)> {
    let reg = registry();
    let mut kind: Option<String> = None;
    let mut out = Vec::new();
    for (id, r) in reg.values() {
        let Source::Keys { prefix, event_types, key_types, .. } = &r.source else { continue };
        if !prefix_matches(prefix, key) {
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
        out.push((id.clone(), Arc::clone(&r.session), Arc::clone(&r.pending)));
    }
    out
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static REGISTRATIONS: OnceLock<Mutex<BTreeMap<u64, (String, Registration)>>> = OnceLock::new();

pub fn registry() -> MutexGuard<'static, BTreeMap<u64, (String, Registration)>> {
    REGISTRATIONS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

pub fn next_id() -> String {
    format!("{SHARD_ID}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

fn seq(id: &str) -> Option<u64> {
    id.strip_prefix(SHARD_ID)?.strip_prefix('-')?.parse().ok()
}

/// Applies a script's staged registrations, all or none.
pub fn apply(staged: Vec<CreatedRegistration>, session: &Arc<Session>) -> Result<(), String> {
    let mut reg = registry();
    for s in &staged {
        let trigger = s.fields.get(2).map(String::as_str).unwrap_or("");
        if s.fields.first().is_some_and(|r| r == "CommandReader")
            && reg.values().any(|(_, r)| r.trigger() == Some(trigger))
        {
            return Err(format!("trigger {trigger} already registered"));
        }
    }
    for s in staged {
        let field = |i: usize| s.fields.get(i).cloned().unwrap_or_default();
        let Some(key) = seq(&s.id) else { continue };
        let (source, desc_at) = match field(0).as_str() {
            "KeysReader" => (
                Source::Keys { prefix: field(2), event_types: name_list(&field(3)), key_types: name_list(&field(4)) },
                6,
            ),
            _ => (Source::Trigger { name: field(2), inorder: field(3) == "1" }, 4),
        };
        let registration = Registration {
            pending: Arc::new(AtomicUsize::new(0)),
            reader: field(0),
            mode: field(1),
            source,
            desc: (field(desc_at + 1) == "1").then(|| field(desc_at)),
            stats: Stats::default(),
            session: Arc::clone(session),
        };
        reg.insert(key, (s.id, registration));
    }
    Ok(())
}

/// The registration behind `trigger`: its id and session.
pub fn find_trigger(trigger: &str) -> Option<(String, Arc<Session>)> {
    registry().values().find(|(_, r)| r.trigger() == Some(trigger)).map(|(id, r)| (id.clone(), Arc::clone(&r.session)))
}

pub fn record_run(id: &str, ms: u64, first_error: Option<&str>) {
    let mut reg = registry();
    let Some((_, r)) = seq(id).and_then(|k| reg.get_mut(&k)) else { return };
    let st = &mut r.stats;
    st.triggered += 1;
    st.last_ms = ms;
    st.total_ms += ms;
    match first_error {
        Some(e) => {
            st.failures += 1;
            st.last_error = Some(e.to_string());
        }
        None => st.success += 1,
    }
}

/// Removes a registration; its session is freed with its last holder (outside the lock).
pub fn unregister(id: &str) -> bool {
    let removed = seq(id).and_then(|k| registry().remove(&k));
    removed.is_some()
}

/// An event dropped because the registration's backlog is full: counted as aborted.
pub fn record_dropped(id: &str) {
    let mut reg = registry();
    if let Some((_, r)) = seq(id).and_then(|k| reg.get_mut(&k)) {
        r.stats.triggered += 1;
        r.stats.aborted += 1;
        r.stats.last_error = Some(format!("event dropped: more than {} pending (MaxPendingEvents)", max_pending()));
    }
}

pub fn max_pending() -> usize {
    crate::settings::int(crate::config::MAX_PENDING_EVENTS).max(1) as usize
}

pub fn clear_stats() {
    registry().values_mut().for_each(|(_, r)| r.stats = Stats::default());
}

pub fn count() -> usize {
    registry().len()
}

fn args_reply(source: &Source) -> Reply {
    let names = |list: &Option<Vec<String>>| {
        list.as_ref().map_or(Reply::Null, |l| Reply::Array(l.iter().map(|s| bulk(s.as_str())).collect()))
    };
    match source {
        Source::Trigger { name, inorder } => {
            Reply::Array(vec![bulk("trigger"), bulk(name.as_str()), bulk("inorder"), Reply::Int(*inorder as i64)])
        }
        Source::Keys { prefix, event_types, key_types, .. } => Reply::Array(vec![
            bulk("regex"),
            bulk(prefix.as_str()),
            bulk("eventTypes"),
            names(event_types),
            bulk("keyTypes"),
            names(key_types),
            bulk("hookCommands"),
            Reply::Null,
        ]),
    }
}

fn pd_string(r: &Registration, ids: &[String]) -> String {
    let list = ids.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(", ");
    format!(
        "{{'sessionName':'{}', 'sessionDescription':'null', 'refCount': {}, 'linkedTo': primary, 'dead': false, \
         'isInstallationNeeded':0, 'registrationsList':[{list}], 'depsList':[]}}",
        r.session.id,
        Arc::strong_count(&r.session)
    )
}

/// RG.DUMPREGISTRATIONS: one 12-item entry per registration (spec §1.5).
pub fn dump() -> Reply {
    let reg = registry();
    let entries = reg
        .values()
        .map(|(id, r)| {
            let st = &r.stats;
            let avg = if st.triggered > 0 { st.total_ms as f64 / st.triggered as f64 } else { 0.0 };
            let data = Reply::Array(vec![
                bulk("mode"),
                bulk(r.mode.as_str()),
                bulk("numTriggered"),
                Reply::Int(st.triggered as i64),
                bulk("numSuccess"),
                Reply::Int(st.success as i64),
                bulk("numFailures"),
                Reply::Int(st.failures as i64),
                bulk("numAborted"),
                Reply::Int(st.aborted as i64),
                bulk("lastRunDurationMS"),
                Reply::Int(st.last_ms as i64),
                bulk("totalRunDurationMS"),
                Reply::Int(st.total_ms as i64),
                bulk("avgRunDurationMS"),
                bulk(format!("{avg:?}")),
                bulk("lastError"),
                st.last_error.as_ref().map_or(Reply::Null, |e| bulk(e.as_str())),
                bulk("args"),
                args_reply(&r.source),
            ]);
            let session_ids: Vec<String> =
                reg.values().filter(|(_, o)| Arc::ptr_eq(&o.session, &r.session)).map(|(i, _)| i.clone()).collect();
            Reply::Array(vec![
                bulk("id"),
                bulk(id.as_str()),
                bulk("reader"),
                bulk(r.reader.as_str()),
                bulk("desc"),
                r.desc.as_ref().map_or(Reply::Null, |d| bulk(d.as_str())),
                bulk("RegistrationData"),
                data,
                bulk("PD"),
                bulk(pd_string(r, &session_ids)),
                bulk("ExecutionThreadPool"),
                bulk("DefaultPool"),
            ])
        })
        .collect();
    Reply::Array(entries)
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

    #[test]
    fn name_lists_distinguish_all_from_none() {
        assert_eq!(name_list(""), None);
        assert_eq!(name_list(","), Some(vec![]));
        assert_eq!(name_list("set,hset"), Some(vec!["set".to_string(), "hset".to_string()]));
    }
}
