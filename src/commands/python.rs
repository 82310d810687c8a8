//! RG.PYSTATS (memory of all sessions' sandboxes) and RG.PYPROFILE STATS|RESET <session>.

use crate::gears::flows::split_results;
use crate::gears::linked_sessions;
use crate::redis::caller;
use crate::redis::reply::{bulk, send};
use crate::redis::worker_context::WorkerContext;
use crate::runtime::workers;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};
use std::sync::Arc;
use wasmgears_abi::GuestEntry;
use wasmgears_abi::{encode_args, Reply};
use wasmgears_sandbox::{limits, EntrySetup};

/// Linear memory of the sandboxes: what CPython allocated from them (RedisGears counted
/// Python's allocator; a sandbox's memory is the same figure, at page granularity).
pub fn py_stats(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 1 {
        return Err(RedisError::WrongArity);
    }
    let (total, peak, current) = limits::guest_memory_stats();
    send(
        ctx,
        &Reply::Array(vec![
            bulk("TotalAllocated"),
            Reply::Int(total as i64),
            bulk("PeakAllocated"),
            Reply::Int(peak as i64),
            bulk("CurrAllocated"),
            Reply::Int(current as i64),
        ]),
    );
    Ok(RedisValue::NoReply)
}

/// RG.PYPROFILE STATS <session> [order] | RESET <session>: the session's cProfile.
pub fn py_profile(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let words: Vec<String> = args.iter().skip(1).map(|a| a.to_string_lossy()).collect();
    let (op, session_id, order) = match words.as_slice() {
        [op, id] => (op.to_ascii_lowercase(), id.clone(), "tottime".to_string()),
        [op, id, order] if op.eq_ignore_ascii_case("stats") => ("stats".into(), id.clone(), order.clone()),
        _ => return Err(RedisError::Str("Wrong subcommand given to RG.PYPROFILE")),
    };
    if op != "stats" && op != "reset" {
        return Err(RedisError::Str("Wrong subcommand given to RG.PYPROFILE"));
    }
    let session = linked_sessions::find(&session_id).ok_or(RedisError::Str("session does not exists"))?;
    if crate::redis::flags::blocking_denied(ctx) {
        return Err(RedisError::Str(crate::redis::flags::BLOCKING_NOT_ALLOWED));
    }
    let payload = encode_args(&[op.as_bytes(), order.as_bytes()]);
    let client = Arc::new(WorkerContext::block(ctx));
    workers::submit(move || {
        let setup = EntrySetup::new(caller::for_client(&client, &session.run_as));
        let reply = match session.callback(GuestEntry::Profile, &payload, setup) {
            Ok(out) => {
                let outcome = split_results(out.reply);
                match (outcome.errors.into_iter().next(), outcome.results.into_iter().next()) {
                    (Some(e), _) => Reply::Error(e.into_bytes()),
                    (None, Some(Reply::Bulk(b))) if b == b"OK" => Reply::Status(b),
                    (None, Some(r)) => r,
                    (None, None) => Reply::Null,
                }
            }
            Err(e) => Reply::Error(e.to_string().into_bytes()),
        };
        client.reply(&reply);
    });
    Ok(RedisValue::NoReply)
}

/// RG.PYEXECUTEREMOTE: RedisGears 1.2 keeps the command and answers this bulk string.
pub fn py_execute_remote(_ctx: &Context, _args: Vec<RedisString>) -> RedisResult {
    Ok(RedisValue::BulkString("Execute remote is not longer supported".into()))
}

/// RG.PYFREEINTERPRETER: likewise.
pub fn py_free_interpreter(_ctx: &Context, _args: Vec<RedisString>) -> RedisResult {
    Ok(RedisValue::BulkString("Free interpreter is not longer supported".into()))
}

/// RG.DUMPPLUGINS (module.c Command_DumpPlugins): `[name, version]` per loaded plugin; here
/// the built-in Python engine, as REDISGEARSPYTHON_PLUGIN_NAME / _VERSION (1.0.0 -> 10000).
pub fn dump_plugins(ctx: &Context, _args: Vec<RedisString>) -> RedisResult {
    send(ctx, &Reply::Array(vec![Reply::Array(vec![bulk("GearsPythonPlugin"), Reply::Int(10000)])]));
    Ok(RedisValue::NoReply)
}
