//! RG.TRIGGER, RG.TRIGGERONKEY, RG.DUMPREGISTRATIONS, RG.UNREGISTER, RG.CLEARREGISTRATIONSSTATS.

use crate::gears::flows::split_results;
use crate::gears::registration_stats;
use crate::gears::registrations;
use crate::redis::reply::send;
use crate::session::CallbackOutput;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};
use std::time::Instant;
use wasmgears_abi::{payload, Reply};
use wasmgears_sandbox::SandboxError;

const NO_BLOCKING: &str =
    "ERR can not run a non-sync execution inside a MULTI/LUA (blocking is not allowed) or on loading.";

/// RG.TRIGGER <trigger> [arg ...]: the flow's results, or its first error as an error reply.
pub fn trigger(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() < 2 {
        return Err(RedisError::WrongArity);
    }
    let record: Vec<Vec<u8>> = args[1..].iter().map(|a| a.as_slice().to_vec()).collect();
    let name = String::from_utf8_lossy(&record[0]).into_owned();
    let target = registrations::find_trigger(&name).ok_or(RedisError::Str("ERR subcommand not found"))?;
    let payload = payload::trigger(&target.id, &record);
    // A sync trigger runs right here, on the main thread (also inside MULTI and Lua).
    let inline = target.sync;
    crate::gears::client_callbacks::run_and_answer(ctx, target, payload, None, inline, trigger_reply)
        .map_err(|()| RedisError::Str(NO_BLOCKING))?;
    Ok(RedisValue::NoReply)
}

/// RG.TRIGGER's reply: the results, or the first error.
fn trigger_reply(id: &str, started: Instant, result: Result<CallbackOutput, SandboxError>) -> Reply {
    let ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(out) => {
            let outcome = split_results(out.reply);
            let first_error = outcome.errors.first().cloned();
            registration_stats::record_unlisted_run(id, ms, first_error.as_deref());
            match first_error {
                Some(e) => Reply::Error(e.into_bytes()),
                None => Reply::Array(outcome.results),
            }
        }
        Err(e) => {
            let msg = format!("ERR Could not trigger execution, {e}");
            registration_stats::record_unlisted_run(id, ms, Some(&msg));
            Reply::Error(msg.into_bytes())
        }
    }
}

/// RG.TRIGGERONKEY <trigger> <key> [arg ...]: the same, with the key for cluster routing.
pub fn trigger_on_key(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() < 3 {
        return Err(RedisError::WrongArity);
    }
    trigger(ctx, args)
}

pub fn dump_registrations(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 1 {
        return Err(RedisError::WrongArity);
    }
    send(ctx, &crate::gears::registration_dump::dump());
    Ok(RedisValue::NoReply)
}

pub fn unregister(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    // RedisGears: argc 2..3, and a third argument other than ABORTPENDING is ignored.
    let (id, abort_pending) = match args.as_slice() {
        [_, id] => (id.to_string_lossy(), false),
        [_, id, flag] => (id.to_string_lossy(), flag.to_string_lossy().eq_ignore_ascii_case("abortpending")),
        _ => return Err(RedisError::WrongArity),
    };
    if !crate::gears::shard_registrations::unregister_here(ctx, &id, abort_pending) {
        return Err(RedisError::Str("execution is not registered"));
    }
    crate::gears::shard_registrations::unregistered(ctx, &id, abort_pending);
    Ok(RedisValue::SimpleStringStatic("OK"))
}

pub fn clear_registrations_stats(_ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 1 {
        return Err(RedisError::WrongArity);
    }
    registration_stats::clear_stats();
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// RG.PAUSEREGISTRATIONS and RG.UNPAUSEREGISTRATIONS, as RedisGears'
/// `Command_PauseRegistrationsMap`: an unknown id or a reader that cannot pause is an error
/// named after it; RedisGears' error replies carry no `ERR` code.
fn pause_or_unpause(id: &str, pause: bool) -> RedisResult {
    let (verb, done) = if pause { ("pause", true) } else { ("unpause", false) };
    let Some(reader) = registrations::reader_of(id) else {
        // "Execution %s does not exists on shard %s" (Cluster_GetMyId: 40 zeros standalone)
        return Err(RedisError::String(format!(
            "Execution {id} does not exists on shard {}",
            crate::gears::topology::shard_id()
        )));
    };
    if !crate::gears::streams::set_paused_by_id(id, done) {
        return Err(RedisError::String(format!("Reader {reader} does not support {verb}")));
    }
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// RG.PAUSEREGISTRATIONS [ABORTPENDING] <id>: a StreamReader registration stops taking
/// batches (entries keep arriving and wait). RedisGears checks `argc != 2` before parsing
/// ABORTPENDING, so its ABORTPENDING form can only fail; ours takes the id after it.
pub fn pause_registrations(_ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let words: Vec<String> = args.iter().skip(1).map(|a| a.to_string_lossy()).collect();
    match words.as_slice() {
        [flag] if flag.eq_ignore_ascii_case("abortpending") => Err(RedisError::Str("ERR no registration to pause")),
        [id] => pause_or_unpause(id, true),
        [flag, id] if flag.eq_ignore_ascii_case("abortpending") => pause_or_unpause(id, true),
        _ => Err(RedisError::WrongArity),
    }
}

/// RG.UNPAUSEREGISTRATIONS <id>: resumes it; what waited is processed.
pub fn unpause_registrations(_ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, id] = args.as_slice() else {
        return Err(RedisError::WrongArity);
    };
    pause_or_unpause(&id.to_string_lossy(), false)
}
