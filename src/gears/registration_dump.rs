//! What RG.DUMPREGISTRATIONS, RG.PYDUMPSESSIONS and `INFO rg` show of the registrations
//! (spec §1.5, §4.3, §1.7).

use crate::gears::registrations::{registry, Registration, Source};
use crate::redis::reply::bulk;
use crate::session::Session;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmgears_abi::Reply;

fn args_reply(source: &Source) -> Reply {
    let names = |list: &Option<Vec<String>>| {
        list.as_ref().map_or(Reply::Null, |l| Reply::Array(l.iter().map(|s| bulk(s.as_str())).collect()))
    };
    match source {
        Source::Trigger { name, inorder } => {
            Reply::Array(vec![bulk("trigger"), bulk(name.as_str()), bulk("inorder"), Reply::Int(*inorder as i64)])
        }
        // CommandReader_DumpRegistrationData: `args` is always `trigger, <name>, inorder, n`;
        // for a hook the args union holds the hooked command where the trigger name is.
        Source::Hook { command, inorder, .. } => {
            Reply::Array(vec![bulk("trigger"), bulk(command.as_str()), bulk("inorder"), Reply::Int(*inorder as i64)])
        }
        Source::Keys { prefix, event_types, key_types, commands, .. } => Reply::Array(vec![
            bulk("regex"),
            bulk(prefix.as_str()),
            bulk("eventTypes"),
            names(event_types),
            bulk("keyTypes"),
            names(key_types),
            bulk("hookCommands"),
            names(commands),
        ]),
        Source::Stream(s) => s.args_reply(),
    }
}

/// PythonSessionCtx_ToString: `'sessionDescription':'%s'` with `"null"` when there is none
/// (so quoted either way), and the lists built by ArrToStr (items joined by `,`, no space);
/// `depsList` holds PythonRequirementCtx_ToStr of each requirement. Unlike 1.2 (`'linkedTo':
/// primary, 'dead': false`), the whole string is a Python literal: gears-cli `eval()`s it and
/// redgrease `literal_eval()`s it.
fn pd_string(r: &Registration, ids: &[String]) -> String {
    let list = ids.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(",");
    let desc = r.session.description.as_deref().unwrap_or("null");
    let linked = if crate::gears::linked_sessions::is_linked(&r.session) { "'primary'" } else { "None" };
    let dead = if r.session.is_dead() { "True" } else { "False" };
    let base = crate::runtime::settings::wheelhouse_dir().map(|d| d.display().to_string()).unwrap_or_default();
    let deps = r
        .session
        .requirements
        .iter()
        .map(|req| format!("{{'name':'{}', 'basePath':'{base}', 'wheels':['{}']}}", req.spec, req.file))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "{{'sessionName':'{}', 'sessionDescription':'{desc}', 'refCount': {}, 'linkedTo': {linked}, 'dead': {dead}, \
         'isInstallationNeeded':0, 'registrationsList':[{list}], 'depsList':[{deps}]}}",
        r.session.id,
        Arc::strong_count(&r.session),
    )
}

/// `INFO rg`: one field per registration, a flat summary (commas would split the field).
pub fn info_fields() -> Vec<(String, String)> {
    registry()
        .values()
        .map(|(id, r)| {
            let st = &r.stats;
            let summary = format!(
                "desc={}|reader={}|mode={}|numTriggered={}|numSuccess={}|numFailures={}|numAborted={}|lastError={}|session={}",
                r.desc.as_deref().unwrap_or("None"),
                r.reader,
                r.mode,
                st.triggered,
                st.success,
                st.failures,
                st.aborted,
                st.last_error.as_deref().unwrap_or("None").replace([',', '\r', '\n'], " "),
                r.session.id
            );
            (id.clone(), summary)
        })
        .collect()
}

/// RG.DUMPREGISTRATIONS: one 12-item entry per registration (spec §1.5).
pub fn dump() -> Reply {
    let reg = registry();
    Reply::Array(reg.values().map(|(id, r)| entry(&reg, id, r, true)).collect())
}

/// `session`'s registrations for RG.PYDUMPSESSIONS: their ids, or (verbose) their entries
/// without the PD pair.
pub fn of_session(session: &Arc<Session>, verbose: bool) -> Reply {
    let reg = registry();
    let mine = reg.values().filter(|(_, r)| Arc::ptr_eq(&r.session, session));
    Reply::Array(mine.map(|(id, r)| if verbose { entry(&reg, id, r, false) } else { bulk(id.as_str()) }).collect())
}

type Map = BTreeMap<u64, (String, Registration)>;

fn entry(reg: &Map, id: &str, r: &Registration, with_pd: bool) -> Reply {
    let st = &r.stats;
    // readers_common.h avgDurationMS: over the runs that ended (success + failures + aborted),
    // 0 before any; sent with RedisModule_ReplyWithDouble (RESP2: `"0"`, `"2.5"`).
    let ended = st.success + st.failures + st.aborted;
    let avg = if ended > 0 { st.total_ms as f64 / ended as f64 } else { 0.0 };
    let mut data = vec![
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
        Reply::Double(avg),
    ];
    if let Source::Stream(stream) = &r.source {
        let avg_lag = if ended > 0 { st.total_lag_ms as f64 / ended as f64 } else { 0.0 };
        data.extend([
            bulk("lastEstimatedLagMS"),
            Reply::Int(st.last_lag_ms as i64),
            bulk("avgEstimatedLagMS"),
            Reply::Double(avg_lag),
            bulk("lastError"),
            st.last_error.as_ref().map_or(Reply::Null, |e| bulk(e.as_str())),
            bulk("args"),
            args_reply(&r.source),
            bulk("status"),
            bulk(stream.status_name()),
        ]);
    } else {
        data.extend([
            bulk("lastError"),
            st.last_error.as_ref().map_or(Reply::Null, |e| bulk(e.as_str())),
            bulk("args"),
            args_reply(&r.source),
        ]);
    }
    let data = Reply::Array(data);
    let mut out = vec![
        bulk("id"),
        bulk(id),
        bulk("reader"),
        bulk(r.reader.as_str()),
        bulk("desc"),
        r.desc.as_ref().map_or(Reply::Null, |d| bulk(d.as_str())),
        bulk("RegistrationData"),
        data,
    ];
    if with_pd {
        let session_ids: Vec<String> =
            reg.values().filter(|(_, o)| Arc::ptr_eq(&o.session, &r.session)).map(|(i, _)| i.clone()).collect();
        out.extend([bulk("PD"), bulk(pd_string(r, &session_ids))]);
    }
    out.extend([bulk("ExecutionThreadPool"), bulk("DefaultPool")]);
    Reply::Array(out)
}
