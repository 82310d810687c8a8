//! RG.PYEXECUTE: runs a script in a new session, on a worker, with the client blocked.

use super::{blocking_denied, BLOCKING_NOT_ALLOWED};
use crate::codec::Reply;
use crate::pyexecute_args::{self, ArgsError, PyExecuteArgs};
use crate::sandbox::ScriptOutcome;
use crate::session::Session;
use crate::worker_context::WorkerContext;
use crate::{executions, flows, redis_call, registrations, workers};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

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

    let client = Arc::new(WorkerContext::block(ctx));
    workers::submit(move || {
        let answered = catch_unwind(AssertUnwindSafe(|| run_script(parsed, &client)));
        if answered.is_err() {
            client.reply(&Reply::Error(b"ERR wasmgears internal error; see the Redis log".to_vec()));
        }
    });
    Ok(RedisValue::NoReply)
}

/// Options that need registered sessions. None can exist until registrations do, so an
/// `ID` never collides and a `REPLACE_WITH` target never exists.
fn check_session_options(args: &PyExecuteArgs) -> Result<(), RedisError> {
    if let Some(old) = &args.replace_with {
        return Err(RedisError::String(format!("Can not replace with {old}, session does not exists.")));
    }
    match &args.requirements {
        Some(reqs) if !reqs.is_empty() => Err(RedisError::String(format!(
            "Could not satisfy requirements (no wheelhouse is configured): {}",
            reqs.join(" ")
        ))),
        _ => Ok(()),
    }
}

type Client = Arc<WorkerContext>;

fn send(client: &Client, reply: &Reply) {
    client.reply(reply);
}

/// Runs the script, then the execution its `run()` created, if any; answers the client.
fn run_script(args: PyExecuteArgs, tsc: &Client) {
    let session = match Session::create(args.id) {
        Ok(session) => session,
        Err(e) => return send(tsc, &Reply::Error(e.to_string().into_bytes())),
    };
    let (outcome, created) = match session.exec_script(&args.script, redis_call::for_client(tsc)) {
        Ok(done) => done,
        Err(e) => {
            crate::redis_log::warning(&format!("wasmgears: session {}: {e}", session.id));
            return send(tsc, &Reply::Error(e.to_string().into_bytes()));
        }
    };
    if let ScriptOutcome::PythonError(msg) = outcome {
        return send(tsc, &Reply::Error(msg.into_bytes()));
    }
    let registered = !created.registrations.is_empty();
    if registered {
        if let Err(e) = registrations::apply(created.registrations, &session) {
            return send(tsc, &Reply::Error(e.into_bytes()));
        }
    }
    let Some(execution) = created.executions.into_iter().next() else {
        return send(tsc, &Reply::Status(b"OK".to_vec()));
    };
    let abort = executions::add(&execution.id, execution.plan, Arc::clone(&session));
    if registered {
        // A script that registers replies OK; its run() still happens, listed by its id.
        send(tsc, &Reply::Status(b"OK".to_vec()));
        tsc.unblock();
        flows::run(&execution.id, &session, abort, redis_call::detached());
    } else if args.unblocking {
        send(tsc, &Reply::Bulk(execution.id.clone().into_bytes()));
        tsc.unblock(); // the client has its id; the flow runs without it
        flows::run(&execution.id, &session, abort, redis_call::detached());
    } else {
        flows::run(&execution.id, &session, abort, redis_call::for_client(tsc));
        // A blocking run's execution is dropped once its client has the results.
        let finished = executions::registry().remove(&execution.id);
        let reply = finished.map(|e| e.results_reply());
        send(tsc, &reply.unwrap_or_else(|| Reply::Error(b"execution was dropped while running".to_vec())));
    }
}
