//! RG.PYEXECUTE: runs a script in a new session, on a worker, with the client blocked.

use super::{blocking_denied, BLOCKING_NOT_ALLOWED};
use crate::pyexecute_args::{self, ArgsError, PyExecuteArgs};
use crate::redis_call::WorkerCaller;
use crate::sandbox::ScriptOutcome;
use crate::session::Session;
use crate::workers;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue, ThreadSafeContext};
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

    let blocked = ctx.block_client();
    workers::submit(move || {
        let tsc = Arc::new(ThreadSafeContext::with_blocked_client(blocked));
        let reply = catch_unwind(AssertUnwindSafe(|| run_script(parsed, Arc::clone(&tsc))))
            .unwrap_or(Err(RedisError::Str(
                "ERR wasmgears internal error; see the Redis log",
            )));
        tsc.reply(reply);
    });
    Ok(RedisValue::NoReply)
}

/// Options that need registered sessions. None can exist until registrations do, so an
/// `ID` never collides and a `REPLACE_WITH` target never exists.
fn check_session_options(args: &PyExecuteArgs) -> Result<(), RedisError> {
    if let Some(old) = &args.replace_with {
        return Err(RedisError::String(format!(
            "Can not replace with {old}, session does not exists."
        )));
    }
    match &args.requirements {
        Some(reqs) if !reqs.is_empty() => Err(RedisError::String(format!(
            "Could not satisfy requirements (no wheelhouse is configured): {}",
            reqs.join(" ")
        ))),
        _ => Ok(()),
    }
}

fn run_script(
    args: PyExecuteArgs,
    tsc: Arc<ThreadSafeContext<redis_module::BlockedClient>>,
) -> RedisResult {
    let session = Session::create(args.id).map_err(|e| RedisError::String(e.to_string()))?;
    let outcome = session.exec_script(&args.script, Box::new(WorkerCaller(tsc)));
    match outcome {
        Ok(ScriptOutcome::Ok) => Ok(RedisValue::SimpleStringStatic("OK")),
        Ok(ScriptOutcome::PythonError(msg)) => Err(RedisError::String(msg)),
        Err(e) => {
            crate::redis_log::warning(&format!("wasmgears: session {}: {e}", session.id));
            Err(RedisError::String(e.to_string()))
        }
    }
}
