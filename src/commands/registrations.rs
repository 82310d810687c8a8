//! RG.TRIGGER, RG.TRIGGERONKEY, RG.DUMPREGISTRATIONS, RG.UNREGISTER, RG.CLEARREGISTRATIONSSTATS.

use crate::gears::cluster_query;
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
    if !target.sync && runs_on_every_shard(ctx, &target.id) {
        if crate::redis::flags::blocking_denied(ctx) {
            return Err(RedisError::Str(NO_BLOCKING));
        }
        trigger_on_every_shard(ctx, target, record);
        return Ok(RedisValue::NoReply);
    }
    let payload = payload::trigger(&target.id, &record);
    // A sync trigger runs right here, on the main thread (also inside MULTI and Lua).
    let inline = target.sync;
    crate::gears::client_callbacks::run_and_answer(ctx, target, payload, None, inline, trigger_reply)
        .map_err(|()| RedisError::Str(NO_BLOCKING))?;
    Ok(RedisValue::NoReply)
}

/// An `async` registration's run in cluster mode reads every shard, as in 1.2 (`async_local`
/// and `sync` ones stay here).
fn runs_on_every_shard(ctx: &Context, id: &str) -> bool {
    if !crate::redis::cluster_api::cluster_enabled(ctx) {
        return false;
    }
    let in_cluster = crate::gears::topology::current().is_cluster_mode()
        || crate::gears::topology::refresh(ctx, false).is_ok_and(|t| t.is_cluster_mode());
    in_cluster && registrations::with_registration(id, |r| r.mode == "async").unwrap_or(false)
}

/// RG.TRIGGER of such a registration: every shard runs its copy of it on the trigger's args;
/// the client gets the initiator's results (with the default collect: all of them).
fn trigger_on_every_shard(ctx: &Context, target: registrations::Target, record: Vec<Vec<u8>>) {
    let client = std::sync::Arc::new(crate::redis::worker_context::WorkerContext::block(ctx));
    let started = Instant::now();
    registration_stats::record_trigger(&target.id);
    let (id, session) = (target.id.clone(), target.session.clone());
    crate::runtime::workers::submit(move || {
        let on_done_id = id.clone();
        let on_done = Box::new(move |outcome: crate::gears::flows::Outcome| {
            let first_error = outcome.errors.first().cloned();
            let ms = started.elapsed().as_millis() as u64;
            registration_stats::record_unlisted_run(&on_done_id, ms, first_error.as_deref());
            let reply = match first_error {
                Some(e) => Reply::Error(e.into_bytes()),
                None => Reply::Array(outcome.results),
            };
            client.reply(&reply);
            client.unblock();
        });
        crate::gears::distributed::start_registered(&id, session, record, on_done);
    });
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

/// The questions other shards may ask this one (gears::cluster_query).
pub fn install() {
    cluster_query::on("dumpregistrations", |_, _| crate::gears::registration_dump::dump());
}

/// RG.DUMPREGISTRATIONS [CLUSTER]: this shard's, or (an argument beyond 1.2: its issue #759
/// asked for the statistics of every shard) one entry per registration and shard, this
/// shard's first.
pub fn dump_registrations(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let mine = crate::gears::registration_dump::dump();
    match args.len() {
        1 => send(ctx, &mine),
        2 if args[1].to_string_lossy().eq_ignore_ascii_case("cluster") => {
            if !cluster_query::in_cluster(ctx) {
                send(ctx, &mine);
                return Ok(RedisValue::NoReply);
            }
            let client = std::sync::Arc::new(crate::redis::worker_context::WorkerContext::block(ctx));
            cluster_query::ask_all("dumpregistrations", b"", mine, client, cluster_query::concatenated);
        }
        _ => return Err(RedisError::WrongArity),
    }
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

pub fn clear_registrations_stats(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 1 {
        return Err(RedisError::WrongArity);
    }
    registration_stats::clear_stats();
    crate::gears::shard_registrations::everywhere(ctx, "clear", "");
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
pub fn pause_registrations(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let words: Vec<String> = args.iter().skip(1).map(|a| a.to_string_lossy()).collect();
    let id = match words.as_slice() {
        [flag] if flag.eq_ignore_ascii_case("abortpending") => {
            return Err(RedisError::Str("ERR no registration to pause"))
        }
        [id] => id,
        [flag, id] if flag.eq_ignore_ascii_case("abortpending") => id,
        _ => return Err(RedisError::WrongArity),
    };
    let done = pause_or_unpause(id, true)?;
    crate::gears::shard_registrations::everywhere(ctx, "pause", id);
    Ok(done)
}

/// RG.UNPAUSEREGISTRATIONS <id>: resumes it; what waited is processed.
pub fn unpause_registrations(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, id] = args.as_slice() else {
        return Err(RedisError::WrongArity);
    };
    let id = id.to_string_lossy();
    let done = pause_or_unpause(&id, false)?;
    crate::gears::shard_registrations::everywhere(ctx, "unpause", &id);
    Ok(done)
}
