//! The execution commands: RG.DUMPEXECUTIONS, RG.GETEXECUTION, RG.GETRESULTS,
//! RG.GETRESULTSBLOCKING, RG.DROPEXECUTION, RG.ABORTEXECUTION (spec §1.1, §1.4).

use crate::gears::cluster_query;
use crate::gears::executions::{self, Execution, Status};
use crate::gears::topology;
use crate::redis::flags::{blocking_denied, BLOCKING_NOT_ALLOWED};
use crate::redis::reply::{bulk, send};
use crate::redis::worker_context::WorkerContext;
use crate::runtime::registry::Finished;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use wasmgears_abi::Reply;

const NO_PLAN: &str = "execution plan does not exist";

fn one_id(args: &[RedisString]) -> Result<String, RedisError> {
    match args {
        [_, id] => Ok(id.to_string_lossy()),
        _ => Err(RedisError::WrongArity),
    }
}

fn done(ctx: &Context, reply: Reply) -> RedisResult {
    send(ctx, &reply);
    Ok(RedisValue::NoReply)
}

/// The questions other shards may ask this one (gears::cluster_query).
pub fn install() {
    cluster_query::on("dumpexecutions", |_, _| executions_list());
    cluster_query::on("getexecution", |_, id| execution_entry(&String::from_utf8_lossy(id)));
}

fn executions_list() -> Reply {
    let list = executions::registry()
        .iter()
        .map(|(id, e)| {
            Reply::Array(vec![
                bulk("executionId"),
                bulk(id.as_str()),
                bulk("status"),
                bulk(e.status.name()),
                bulk("registered"),
                Reply::Int(e.registered as i64),
            ])
        })
        .collect();
    Reply::Array(list)
}

/// RG.DUMPEXECUTIONS [CLUSTER]: this shard's executions, or (an argument beyond 1.2, which
/// its users asked for: RedisGears issue #691) every shard's.
pub fn dump_executions(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    match args.len() {
        1 => done(ctx, executions_list()),
        2 if args[1].to_string_lossy().eq_ignore_ascii_case("cluster") => {
            if !cluster_query::in_cluster(ctx) {
                return done(ctx, executions_list());
            }
            let client = Arc::new(WorkerContext::block(ctx));
            cluster_query::ask_all("dumpexecutions", b"", executions_list(), client, cluster_query::concatenated);
            Ok(RedisValue::NoReply)
        }
        _ => Err(RedisError::WrongArity),
    }
}

/// `["shard_id", id, "execution_plan", [...]]` of execution `id` here (an error if missing).
fn execution_entry(id: &str) -> Reply {
    match executions::registry().get(id).map(plan_reply) {
        Some(plan) => Reply::Array(vec![bulk("shard_id"), bulk(topology::shard_id()), bulk("execution_plan"), plan]),
        None => Reply::Error(format!("ERR {NO_PLAN}").into_bytes()),
    }
}

fn plan_reply(e: &Execution) -> Reply {
    let finished = e.finished();
    let mut steps: Vec<&[String]> = e.plan.chunks(3).collect();
    // RedisGears lists the flat steps only (`array_len(ep->fep->steps)`), not the reader: a
    // trailing reader step (the guest describes one) is not listed.
    if steps.last().is_some_and(|last| last.first().is_some_and(|t| t == "reader")) {
        steps.pop();
    }
    // The guest times every described step in plan order, then the reader.
    let read_ms = e.step_ms.get(steps.len()).copied().unwrap_or(0) as i64;
    let steps = steps
        .into_iter()
        .enumerate()
        .map(|(i, step)| {
            let field = |i: usize| bulk(step.get(i).cloned().unwrap_or_default());
            let ms = e.step_ms.get(i).copied().unwrap_or(0) as i64;
            Reply::Array(vec![
                bulk("type"),
                field(0),
                bulk("duration"),
                Reply::Int(ms),
                bulk("name"),
                field(1),
                bulk("arg"),
                field(2),
            ])
        })
        .collect();
    let errors = if finished { e.errors.iter().map(|x| bulk(x.as_str())).collect() } else { Vec::new() };
    Reply::Array(vec![
        bulk("status"),
        bulk(e.status.name()),
        // ep->totalShardsRecieved / totalShardsCompleted: only counted in cluster mode.
        bulk("shards_received"),
        Reply::Int(0),
        bulk("shards_completed"),
        Reply::Int(0),
        bulk("results"),
        Reply::Int(if finished { e.results.len() as i64 } else { -1 }),
        bulk("errors"),
        Reply::Array(errors),
        bulk("total_duration"),
        Reply::Int(e.total_ms as i64),
        bulk("read_duration"),
        Reply::Int(read_ms),
        bulk("steps"),
        Reply::Array(steps),
    ])
}

/// RG.GETEXECUTION <id> [SHARD|CLUSTER]: the id is looked up before the subcommand is read.
pub fn get_execution(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if !(2..=3).contains(&args.len()) {
        return Err(RedisError::WrongArity);
    }
    let id = args[1].to_string_lossy();
    if executions::registry().get(&id).is_none() {
        return Err(RedisError::Str(NO_PLAN));
    }
    let in_cluster = cluster_query::in_cluster(ctx);
    let cluster_wide = match args.get(2).map(|a| a.to_string_lossy().to_ascii_uppercase()) {
        None => in_cluster, // 1.2: CLUSTER is the default in cluster mode
        Some(mode) if mode == "SHARD" => false,
        Some(mode) if mode == "CLUSTER" => {
            if !in_cluster {
                return Err(RedisError::Str("no cluster detected - use `RG.GETEXECUTION <id> [SHARD]` instead"));
            }
            true
        }
        Some(_) => return Err(RedisError::Str("unknown subcommand")),
    };
    let mine = execution_entry(&id);
    if !cluster_wide {
        return done(ctx, Reply::Array(vec![mine]));
    }
    // Each shard's entry: this one first, then the others (1.2: a ShardsIDReader run + collect).
    let client = Arc::new(WorkerContext::block(ctx));
    cluster_query::ask_all("getexecution", id.as_bytes(), mine, client, Reply::Array);
    Ok(RedisValue::NoReply)
}

/// RG.GETRESULTS <id> [...]: `argc < 2` is the only arity check, extra arguments are ignored.
pub fn get_results(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let Some(id) = args.get(1).map(RedisString::to_string_lossy) else {
        return Err(RedisError::WrongArity);
    };
    let reply = {
        let reg = executions::registry();
        let e = reg.get(&id).ok_or(RedisError::Str(NO_PLAN))?;
        if !e.finished() {
            return Err(RedisError::Str("execution is still running"));
        }
        e.results_reply()
    };
    done(ctx, reply)
}

pub fn get_results_blocking(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let id = one_id(&args)?;
    let mut reg = executions::registry();
    let e = reg.get_mut(&id).ok_or(RedisError::Str(NO_PLAN))?;
    if e.finished() {
        let reply = e.results_reply();
        drop(reg);
        return done(ctx, reply);
    }
    if blocking_denied(ctx) {
        return Err(RedisError::Str(BLOCKING_NOT_ALLOWED));
    }
    // Registered under the registry lock, so the finishing worker cannot miss this client.
    e.waiters.push(Arc::new(WorkerContext::block_waiting(ctx)));
    Ok(RedisValue::NoReply)
}

pub fn drop_execution(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let id = one_id(&args)?;
    let removed = {
        let mut reg = executions::registry();
        let e = reg.get(&id).ok_or(RedisError::Str(NO_PLAN))?;
        if !e.finished() {
            return Err(RedisError::Str("can not drop a not yet finished execution, abort it first."));
        }
        reg.remove(&id)
    };
    drop(removed); // outside the lock: this may free the session
    crate::gears::distributed::dropped(&id); // a distributed run's copies on the peers too
    done(ctx, Reply::Status(b"OK".to_vec()))
}

pub fn abort_execution(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let id = one_id(&args)?;
    {
        let reg = executions::registry();
        let e = reg.get(&id).ok_or(RedisError::Str("execution does not exist"))?;
        if matches!(e.status, Status::Created | Status::Running) {
            // The worker sees it within one epoch tick and stops the guest.
            e.abort.store(true, Ordering::Relaxed);
        }
    }
    // One waiting for async records is in no guest call to stop: it ends here.
    crate::gears::flows::abort_waiting(&id);
    // A distributed run waiting for other shards ends here too, and on every shard.
    crate::gears::distributed::abort(&id);
    done(ctx, Reply::Status(b"OK".to_vec()))
}
