//! Registrations: flows bound to a trigger, each holding its session. Applied only when the
//! script that made them succeeds, all of them or none.

use crate::codec::Reply;
use crate::executions::SHARD_ID;
use crate::reply::bulk;
use crate::sandbox::CreatedRegistration;
use crate::session::Session;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
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

pub struct Registration {
    pub reader: String,
    pub mode: String,
    pub trigger: String,
    pub inorder: bool,
    pub desc: Option<String>,
    pub stats: Stats,
    pub session: Arc<Session>,
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
        if reg.values().any(|(_, r)| r.trigger == trigger) {
            return Err(format!("trigger {trigger} already registered"));
        }
    }
    for s in staged {
        let field = |i: usize| s.fields.get(i).cloned().unwrap_or_default();
        let Some(key) = seq(&s.id) else { continue };
        let registration = Registration {
            reader: field(0),
            mode: field(1),
            trigger: field(2),
            inorder: field(3) == "1",
            desc: (field(5) == "1").then(|| field(4)),
            stats: Stats::default(),
            session: Arc::clone(session),
        };
        reg.insert(key, (s.id, registration));
    }
    Ok(())
}

/// The registration behind `trigger`: its id and session.
pub fn find_trigger(trigger: &str) -> Option<(String, Arc<Session>)> {
    registry().values().find(|(_, r)| r.trigger == trigger).map(|(id, r)| (id.clone(), Arc::clone(&r.session)))
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

pub fn clear_stats() {
    registry().values_mut().for_each(|(_, r)| r.stats = Stats::default());
}

pub fn count() -> usize {
    registry().len()
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
                Reply::Array(vec![
                    bulk("trigger"),
                    bulk(r.trigger.as_str()),
                    bulk("inorder"),
                    Reply::Int(r.inorder as i64),
                ]),
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
