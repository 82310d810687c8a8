//! RG.PYEXECUTE: runs a script in a new session, on a worker, with the client blocked.

use crate::gears::distributed;
use crate::gears::executions::{self, Status};
use crate::gears::flows;
use crate::gears::linked_sessions;
use crate::gears::persistence;
use crate::gears::registrations;
use crate::gears::saved_state;
use crate::gears::shard_registrations;
use crate::redis::caller;
use crate::redis::flags::{blocking_denied, BLOCKING_NOT_ALLOWED};
use crate::redis::run_as::RunAs;
use crate::redis::worker_context::WorkerContext;
use crate::runtime::pyexecute_args::{self, ArgsError, PyExecuteArgs};
use crate::runtime::settings;
use crate::runtime::wheelhouse;
use crate::runtime::workers;
use crate::session::Session;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use wasmgears_abi::Reply;
use wasmgears_sandbox::{RedisCaller, ScriptOutcome};

pub fn pyexecute(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let raw: Vec<&[u8]> = args.iter().skip(1).map(|a| a.as_slice()).collect();
    if raw.is_empty() {
        return Err(RedisError::WrongArity);
    }
    if blocking_denied(ctx) {
        return Err(RedisError::Str(BLOCKING_NOT_ALLOWED));
    }
    let parsed = pyexecute_args::parse(&raw).map_err(|e| match e {
        ArgsError::WrongArity => RedisError::WrongArity,
        other => RedisError::String(other.to_string()),
    })?;
    check_session_options(&parsed)?;
    if crate::redis::cluster_api::cluster_enabled(ctx) {
        // The ids this script's executions and registrations get carry the node id once the
        // cluster has more than one shard: read the topology as it is now.
        let _ = crate::gears::topology::refresh(ctx, false);
    }

    // The session acts with the authority of whoever sent the script (RunScriptsAs).
    let run_as = if settings::scripts_run_as_module() {
        RunAs::Module
    } else {
        RunAs::User(ctx.get_current_user().to_string_lossy().into())
    };
    let client = Arc::new(WorkerContext::block(ctx));
    workers::submit(move || {
        let answered = catch_unwind(AssertUnwindSafe(|| run_script(parsed, run_as, &client)));
        if answered.is_err() {
            client.reply(&Reply::Error(b"ERR wasmgears internal error; see the Redis log".to_vec()));
        }
    });
    Ok(RedisValue::NoReply)
}

/// The session table's checks on `ID` / `UPGRADE` / `REPLACE_WITH` (spec §1.2).
fn session_conflict(args: &PyExecuteArgs) -> Option<String> {
    let existing = args.id.as_deref().and_then(linked_sessions::find);
    if let Some(old) = &args.replace_with {
        if let Some(existing) = existing {
            return Some(format!("Can not replace an existing session {} with {old}", existing.id));
        }
        if linked_sessions::find(old).is_none() {
            return Some(format!("Can not replace with {old}, session does not exists."));
        }
    } else if let (Some(existing), false) = (existing, args.upgrade) {
        return Some(format!("Session {} already exists", existing.id));
    }
    None
}

/// The session an UPGRADE or REPLACE_WITH replaces, if it exists.
fn replaced_session(args: &PyExecuteArgs) -> Option<Arc<Session>> {
    match (&args.replace_with, args.upgrade, &args.id) {
        (Some(old), _, _) => linked_sessions::find(old),
        (None, true, Some(id)) => linked_sessions::find(id),
        _ => None,
    }
}

fn check_session_options(args: &PyExecuteArgs) -> Result<(), RedisError> {
    if let Some(conflict) = session_conflict(args) {
        return Err(RedisError::String(conflict));
    }
    Ok(())
}

type Client = Arc<WorkerContext>;

fn send(client: &Client, reply: &Reply) {
    client.reply(reply);
}

/// Runs the script, then the execution its `run()` created, if any; answers the client.
fn run_script(args: PyExecuteArgs, run_as: RunAs, tsc: &Client) {
    let specs = args.requirements.clone().unwrap_or_default();
    let requirements = match wheelhouse::resolve(settings::wheelhouse_dir().as_deref(), &specs) {
        Ok(found) => found,
        Err(e) => return send(tsc, &Reply::Error(e.into_bytes())),
    };
    let created =
        Session::create_for(args.id.clone(), args.description.clone(), args.script.clone(), requirements, run_as);
    let session = match created {
        Ok(session) => session,
        Err(e) => return send(tsc, &Reply::Error(e.to_string().into_bytes())),
    };
    let (outcome, created) =
        match session.exec_script(&args.script, caller::for_client(tsc, &session.run_as), Vec::new()) {
            Ok(done) => done,
            Err(e) => {
                crate::redis::log::warning(&format!("wasmgears: session {}: {e}", session.id));
                return send(tsc, &Reply::Error(e.to_string().into_bytes()));
            }
        };
    if let ScriptOutcome::PythonError(msg) = outcome {
        return send(tsc, &Reply::Error(msg.into_bytes()));
    }
    let registered = !created.registrations.is_empty();
    let mut distributing = false;
    let replacing = replaced_session(&args);
    // In cluster mode the other shards get the registrations too: shipped before anything is
    // applied here, so a callback that cannot be shipped fails the whole script (as in 1.2).
    let ids: Vec<String> = created.registrations.iter().map(|r| r.id.clone()).collect();
    let for_peers = if registered {
        match shard_registrations::export(&session, &ids) {
            Ok(script) => script,
            Err(e) => return send(tsc, &Reply::Error(e.into_bytes())),
        }
    } else {
        None
    };
    if registered || replacing.is_some() {
        // Checked again here: another script may have taken the id while this one ran.
        if let Some(conflict) = session_conflict(&args).filter(|_| replacing.is_none()) {
            return send(tsc, &Reply::Error(conflict.into_bytes()));
        }
        if let Err(e) = registrations::apply(created.registrations, &session, replacing.as_ref()) {
            return send(tsc, &Reply::Error(e.into_bytes()));
        }
        if let Some(old) = &replacing {
            linked_sessions::kill(old);
        }
        if registered {
            linked_sessions::link(&session);
            persistence::forget_failed(&session.id); // a session that failed to restore, replaced
            crate::gears::streams::scan_session(&session);
        }
        let saved =
            registered.then(|| persistence::SavedSession::of(&session, replacing.as_ref().map(|s| s.id.clone())));
        {
            let locked = tsc.lock();
            saved_state::publish(); // before propagating: an RDB forked meanwhile has it or gets it
            if let Some(saved) = &saved {
                persistence::propagate(&locked, saved);
            }
        }
        if let (Some(script), Some(saved)) = (for_peers, saved) {
            // The client's OK (or the shards' errors) comes once every shard answered.
            let for_peers = persistence::SavedSession { script, ..saved };
            shard_registrations::distribute(&for_peers, &session.requirements, Arc::clone(tsc));
            distributing = true;
        }
    }
    let Some(execution) = created.executions.into_iter().next() else {
        if !distributing {
            send(tsc, &Reply::Status(b"OK".to_vec()));
        }
        return;
    };
    let abort = executions::add(&execution.id, execution.plan, Arc::clone(&session));
    // In cluster mode the flow goes to every shard now (1.2 ships it as run() returns: a
    // callback that cannot be shipped is the script's error).
    let local = match distributed::start(&execution.id, &session, &abort) {
        distributed::Start::Local => true,
        distributed::Start::Distributed => false,
        distributed::Start::Refused(error) => {
            let removed = executions::registry().remove(&execution.id);
            drop(removed);
            return send(tsc, &Reply::Error(error.into_bytes()));
        }
    };
    let run_here = |redis: Box<dyn RedisCaller>| {
        if local {
            flows::run(&execution.id, &session, Arc::clone(&abort), redis);
        }
    };
    if registered {
        // A script that registers replies OK; its run() still happens, listed by its id.
        if !distributing {
            send(tsc, &Reply::Status(b"OK".to_vec()));
            tsc.unblock();
        }
        run_here(caller::detached(&session.run_as));
    } else if args.unblocking {
        send(tsc, &Reply::Bulk(execution.id.clone().into_bytes()));
        tsc.unblock(); // the client has its id; the flow runs without it
        run_here(caller::detached(&session.run_as));
    } else {
        run_here(caller::for_client(tsc, &session.run_as));
        // A blocking run's execution is dropped once its client has the results; if its
        // records wait for async steps (or other shards), the client waits with them.
        let finished = {
            let mut reg = executions::registry();
            match reg.get_mut(&execution.id) {
                Some(e) if e.waiting.is_some() || matches!(e.status, Status::Created | Status::Running) => {
                    e.waiters.push(Arc::clone(tsc));
                    e.drop_when_answered = true;
                    return;
                }
                _ => reg.remove(&execution.id),
            }
        };
        let reply = finished.map(|e| e.results_reply());
        send(tsc, &reply.unwrap_or_else(|| Reply::Error(b"execution was dropped while running".to_vec())));
    }
}
