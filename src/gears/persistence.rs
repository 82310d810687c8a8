//! Sessions that outlive the process: each linked session is saved as its script, `ID`,
//! description and registration ids — in the RDB (an aux field after the keys), and as an
//! `RG.INNERREGISTER` command sent to replicas and the AOF when it is registered. Loading
//! re-runs the script in a fresh instance with `execute()` skipped (its writes are already in
//! the data) and its registrations re-bound to their saved ids, in order; `onRegistered`
//! runs again, unkeyed time events start again, keyed ones re-attach to their keys.
//! A session still alive with the same registrations (e.g. across `DEBUG RELOAD`) is kept
//! as it is: its globals carry on. A session that cannot be re-created is listed, and saved
//! again as it was, until it is unregistered or replaced. The RDB's blob is built by
//! saved_state.rs; StreamReader positions are saved beside it (stream_positions.rs).

use crate::gears::linked_sessions;
use crate::gears::registrations;
use crate::redis::run_as::RunAs;
use crate::session::Session;
use redis_module::Context;
use std::sync::{Arc, Mutex};
use wasmgears_abi::{decode_args, encode_args, Reply};
use wasmgears_sandbox::{RedisCaller, ScriptOutcome};

const FORMAT: &[u8] = b"wasmgears-sessions-1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSession {
    pub id: String,
    pub description: Option<String>,
    pub script: Vec<u8>,
    pub registration_ids: Vec<String>,
    /// The session this one replaced (UPGRADE / REPLACE_WITH), for replicas and the AOF.
    pub replaces: Option<String>,
    /// Its `REQUIREMENTS` as given (resolved again in the wheelhouse when loading).
    pub requirements: Vec<String>,
    /// The ACL user it runs as (None: the module, RedisGears 1.2's way, and every session
    /// saved before users were).
    pub user: Option<String>,
}

/// Marks the fields of a session saved with its user (the first layout had none).
const WITH_USER: &[u8] = b"wasmgears-session-2";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl SavedSession {
    pub fn of(session: &Arc<Session>, replaces: Option<String>) -> SavedSession {
        SavedSession {
            id: session.id.clone(),
            description: session.description.clone(),
            script: session.script.clone(),
            registration_ids: registrations::ids_of(session),
            replaces,
            requirements: session.requirements.iter().map(|r| r.spec.clone()).collect(),
            user: session.run_as.user_name().map(str::to_string),
        }
    }

    /// `[WITH_USER, id, description, has_description, replaces, requirements (one per line),
    /// script, user, has_user, ids...]`; without the marker (older saves, RG.INNERREGISTER
    /// from an older AOF) there is no user pair.
    pub fn fields(&self) -> Vec<Vec<u8>> {
        let mut out = vec![
            WITH_USER.to_vec(),
            self.id.clone().into_bytes(),
            self.description.clone().unwrap_or_default().into_bytes(),
            if self.description.is_some() { b"1".to_vec() } else { b"0".to_vec() },
            self.replaces.clone().unwrap_or_default().into_bytes(),
            self.requirements.join("\n").into_bytes(),
            self.script.clone(),
            self.user.clone().unwrap_or_default().into_bytes(),
            if self.user.is_some() { b"1".to_vec() } else { b"0".to_vec() },
        ];
        out.extend(self.registration_ids.iter().map(|i| i.clone().into_bytes()));
        out
    }

    pub fn from_fields(fields: &[&[u8]]) -> Option<SavedSession> {
        let (fields, user) = match fields {
            [marker, id, desc, has_desc, replaces, requirements, script, user, has_user, ids @ ..]
                if *marker == WITH_USER =>
            {
                let user = (*has_user == b"1").then(|| text(user));
                let mut rest = vec![*id, *desc, *has_desc, *replaces, *requirements, *script];
                rest.extend_from_slice(ids);
                (rest, user)
            }
            _ => (fields.to_vec(), None),
        };
        let [id, desc, has_desc, replaces, requirements, script, ids @ ..] = fields.as_slice() else { return None };
        Some(SavedSession {
            user,
            id: text(id),
            description: (*has_desc == b"1").then(|| text(desc)),
            script: script.to_vec(),
            registration_ids: ids.iter().map(|i| text(i)).collect(),
            replaces: (!replaces.is_empty()).then(|| text(replaces)),
            requirements: text(requirements).lines().map(str::to_string).collect(),
        })
    }
}

/// All sessions as one blob: the format tag, then each session's fields (encoded).
pub fn encode(sessions: &[SavedSession]) -> Vec<u8> {
    let mut parts = vec![FORMAT.to_vec()];
    parts.extend(sessions.iter().map(|s| encode_args(&s.fields())));
    encode_args(&parts)
}

pub fn decode(blob: &[u8]) -> Result<Vec<SavedSession>, String> {
    let parts = decode_args(blob).map_err(|e| e.to_string())?;
    let (tag, sessions) = parts.split_first().ok_or("empty")?;
    if *tag != FORMAT {
        return Err(format!("unknown format {}", text(tag)));
    }
    sessions
        .iter()
        .map(|s| {
            let fields = decode_args(s).map_err(|e| e.to_string())?;
            SavedSession::from_fields(&fields).ok_or_else(|| "truncated session".to_string())
        })
        .collect()
}

/// `execute()` while a saved session's script re-runs: skipped (None), except read-only
/// introspection (`COMMAND INFO`, which `hook=` and `commands=` ask) when a context is at
/// hand; keys can still be opened directly (keyed time events re-attach to theirs).
struct RestoreCaller {
    ctx: Option<*mut redis_module::raw::RedisModuleCtx>,
}

// SAFETY: used only within the restoring entry, on the thread that owns `ctx` (the main
// thread, loading or running RG.INNERREGISTER); never kept past it.
unsafe impl Send for RestoreCaller {}

impl RedisCaller for RestoreCaller {
    fn call(&mut self, args: &[&[u8]]) -> Reply {
        let ctx = self.ctx.map(Context::new);
        ctx.and_then(|ctx| crate::redis::caller::run_introspection(&ctx, args)).unwrap_or(Reply::Null)
    }

    fn atomic(&mut self, _enter: bool) {}

    fn with_host_handle(&mut self, f: &mut dyn FnMut(&dyn std::any::Any)) {
        if let Some(ctx) = self.ctx {
            f(&Context::new(ctx))
        }
    }
}

/// Sessions that could not be re-created, with why: listed by RG.PYDUMPSESSIONS and saved
/// again (a later start may manage) until unregistered or replaced. Lock order: level 3,
/// taken alone.
static FAILED: Mutex<Vec<(SavedSession, String)>> = Mutex::new(Vec::new());

fn failed_list() -> std::sync::MutexGuard<'static, Vec<(SavedSession, String)>> {
    FAILED.lock().unwrap_or_else(|p| p.into_inner())
}

/// (id, why) of each session that failed to restore.
pub fn failed() -> Vec<(String, String)> {
    failed_list().iter().map(|(s, e)| (s.id.clone(), e.clone())).collect()
}

/// The sessions that failed to restore, as they were saved.
pub fn failed_sessions() -> Vec<SavedSession> {
    failed_list().iter().map(|(s, _)| s.clone()).collect()
}

/// A session with this id was registered anew: the failed one it replaces is dropped.
pub fn forget_failed(id: &str) {
    failed_list().retain(|(s, _)| s.id != id);
}

/// Unregisters `registration` of a failed session (the session goes with its last one);
/// false if no failed session has it.
pub fn forget_failed_registration(registration: &str) -> bool {
    let mut failed = failed_list();
    let Some(i) = failed.iter().position(|(s, _)| s.registration_ids.iter().any(|r| r == registration)) else {
        return false;
    };
    failed[i].0.registration_ids.retain(|r| r != registration);
    if failed[i].0.registration_ids.is_empty() {
        failed.remove(i);
    }
    true
}

/// Re-creates `saved` unless a session with its id and registrations is alive; if it cannot,
/// it is listed as failed (and kept as it is).
pub fn restore(saved: SavedSession, ctx: Option<*mut redis_module::raw::RedisModuleCtx>) {
    // Its ids stay taken, whether it comes back now or later.
    for id in &saved.registration_ids {
        registrations::seen_id(id);
    }
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| try_restore(&saved, ctx)));
    let error = match attempt {
        Ok(Ok(())) => return forget_failed(&saved.id),
        Ok(Err(e)) => e,
        Err(_) => "internal error (panic)".to_string(),
    };
    crate::redis::log::warning(&format!("wasmgears: could not restore session {}: {error}", saved.id));
    let mut failed = failed_list();
    failed.retain(|(s, _)| s.id != saved.id);
    failed.push((saved, error));
}

/// Creates `saved` as a session another shard of the cluster registered (on the main thread:
/// `ctx` holds the Redis lock); its error, if it could not.
pub fn install(saved: &SavedSession, ctx: &Context) -> Result<(), String> {
    for id in &saved.registration_ids {
        registrations::seen_id(id);
    }
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| try_restore(saved, Some(ctx.ctx))));
    attempt.unwrap_or_else(|_| Err("internal error (panic)".to_string()))
}

fn try_restore(saved: &SavedSession, ctx: Option<*mut redis_module::raw::RedisModuleCtx>) -> Result<(), String> {
    let existing = linked_sessions::find(&saved.id);
    if existing.as_ref().is_some_and(|s| registrations::ids_of(s) == saved.registration_ids) {
        return Ok(()); // still alive as saved
    }
    let replacing = existing.or_else(|| saved.replaces.as_deref().and_then(linked_sessions::find));
    let requirements = crate::runtime::wheelhouse::resolve(
        crate::runtime::settings::wheelhouse_dir().as_deref(),
        &saved.requirements,
    )?;
    let session = Session::create_for(
        Some(saved.id.clone()),
        saved.description.clone(),
        saved.script.clone(),
        requirements,
        RunAs::from_name(saved.user.as_deref()),
    )
    .map_err(|e| e.to_string())?;
    let caller = Box::new(RestoreCaller { ctx });
    let (outcome, created) =
        session.exec_script(&saved.script, caller, saved.registration_ids.clone()).map_err(|e| e.to_string())?;
    if let ScriptOutcome::PythonError(e) = outcome {
        return Err(e);
    }
    registrations::apply(created.registrations, &session, replacing.as_ref())?;
    if let Some(old) = &replacing {
        linked_sessions::kill(old);
    }
    linked_sessions::link(&session);
    crate::gears::streams::scan_session(&session);
    Ok(())
}

/// Sends a newly registered session to replicas and the AOF (`ctx` holds the Redis lock):
/// as `RG.INNERREGISTER`, which only the replication link and AOF loading may run.
pub fn propagate(ctx: &Context, saved: &SavedSession) {
    let fields = saved.fields();
    let parts: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    ctx.replicate("rg.innerregister", parts.as_slice());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_saved_before_users_read_as_the_modules() {
        let old: Vec<&[u8]> = vec![b"id", b"", b"0", b"", b"", b"script", b"0-1"];
        let saved = SavedSession::from_fields(&old).unwrap();
        assert_eq!((saved.user, saved.registration_ids), (None, vec!["0-1".to_string()]));
    }

    #[test]
    fn sessions_round_trip_through_the_blob() {
        let sessions = vec![
            SavedSession {
                id: "app".into(),
                description: Some("d".into()),
                script: b"GB().register()\n\x00\xff".to_vec(),
                registration_ids: vec!["0-1".into(), "0-2".into()],
                replaces: None,
                requirements: vec!["a==1".into(), "b".into()],
                user: Some("app-user".into()),
            },
            SavedSession {
                id: "b".into(),
                description: None,
                script: Vec::new(),
                registration_ids: vec![],
                replaces: Some("a".into()),
                requirements: vec![],
                user: None,
            },
        ];
        assert_eq!(decode(&encode(&sessions)).unwrap(), sessions);
        assert!(decode(b"garbage").is_err());
        assert!(decode(&encode_args(&[b"other-format".to_vec()])).is_err());
    }
}
