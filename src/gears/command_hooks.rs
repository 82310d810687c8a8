//! `hook=` and `commands=`: the command filter (redis/command_filter.rs) rewrites a wrapped
//! command `C args...` into `RG.INNERHOOK C args...`, whose handler runs `run_wrapped`: either
//! the hook's flow (its single result is the reply; `call_next` runs `C` itself) or `C` and
//! then the `commands=` registrations its keyspace events fired, the client waiting for them
//! (`override_reply`). Commands this module runs (`execute()`, `call_next`) bypass the
//! filter; so do replicated and loading traffic.

use crate::gears::command_scope;
use crate::gears::flows::split_results;
use crate::gears::key_events;
use crate::gears::registration_stats;
use crate::gears::registrations::{self, Target};
use crate::redis::caller;
use crate::redis::flags::blocking_denied;
use crate::redis::reply::send;
use crate::redis::worker_context::WorkerContext;
use crate::runtime::workers;
use crate::session::CallbackOutput;
use redis_module::{Context, RedisError, RedisResult, RedisValue};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use wasmgears_abi::GuestEntry;
use wasmgears_abi::{payload, Reply};
use wasmgears_sandbox::{CommandCtx, EntrySetup, SandboxError};

/// What `RG.INNERHOOK <command> [args...]` runs: the newest hook of `command` (unless the
/// traffic is replicated or loading: `bypass`), else the command itself and then the
/// `commands=` registrations it fired.
pub fn run_wrapped(ctx: &Context, command: Vec<Vec<u8>>, bypass: bool) -> RedisResult {
    let name = String::from_utf8_lossy(&command[0]).to_ascii_lowercase();
    if !bypass {
        if let Some(target) = registrations::find_hook(&name, command.get(1).map(Vec::as_slice)) {
            return run_hook(ctx, target, command);
        }
    }
    let scope = command_scope::open(name);
    let parts: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
    let reply = if bypass { caller::run_command(ctx, &parts) } else { caller::run_client_command(ctx, &parts) };
    let deferred = scope.close();
    if deferred.is_empty() {
        send(ctx, &reply);
        return Ok(RedisValue::NoReply);
    }
    run_deferred(ctx, deferred, command, reply)
}

/// A hook's reply: the flow's one result (its first error, if any).
fn hook_reply(id: &str, started: Instant, result: Result<CallbackOutput, SandboxError>) -> Reply {
    let (reply, error) = match result {
        Ok(out) => {
            let outcome = split_results(out.reply);
            match (outcome.errors.into_iter().next(), outcome.results.len()) {
                (Some(e), _) => (Reply::Error(e.clone().into_bytes()), Some(e)),
                (None, 1) => (outcome.results.into_iter().next().unwrap_or(Reply::Null), None),
                (None, _) => {
                    let e = "Command hook must return exactly one result".to_string();
                    (Reply::Error(e.clone().into_bytes()), Some(e))
                }
            }
        }
        Err(e) => (Reply::Error(e.to_string().into_bytes()), Some(e.to_string())),
    };
    registration_stats::record_unlisted_run(id, started.elapsed().as_millis() as u64, error.as_deref());
    reply
}

fn run_hook(ctx: &Context, target: Target, command: Vec<Vec<u8>>) -> RedisResult {
    let payload = payload::trigger(&target.id, &command);
    let hook = Some(CommandCtx { args: command, hook: true, hook_id: Some(target.id.clone()), override_reply: None });
    // Inside MULTI/Lua a hook cannot wait for a worker: it runs inline there too.
    let inline = target.sync || blocking_denied(ctx);
    crate::gears::client_callbacks::run_and_answer(ctx, target, payload, hook, inline, hook_reply)
        .map_err(|()| RedisError::Str("ERR the hook's session is busy, try again"))?;
    Ok(RedisValue::NoReply)
}

/// A hook's `call_next` when an older hook of the command is there: that hook runs here and
/// now, within `ctx` (the Redis lock held), and its reply is `call_next`'s (as RedisGears 1.2
/// chains its hooks, newest first). It may not wait for async steps.
pub fn run_next_hook(ctx: &Context, target: Target, args: &[&[u8]]) -> Reply {
    let command: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    let payload = payload::trigger(&target.id, &command);
    let setup = EntrySetup {
        command: Some(CommandCtx { args: command, hook: true, hook_id: Some(target.id.clone()), override_reply: None }),
        main_thread: true,
        async_allowed: false,
        ..EntrySetup::new(caller::inline(ctx, &target.session.run_as))
    };
    let started = Instant::now();
    match target.session.try_callback(GuestEntry::RunTrigger, &payload, setup) {
        Some(result) => {
            registration_stats::record_trigger(&target.id);
            hook_reply(&target.id, started, result)
        }
        None => Reply::Error(b"ERR the next hook's session is busy, try again".to_vec()),
    }
}

/// Runs the `commands=` registrations a command fired, then replies: the last
/// `override_reply` given, else the command's own reply. Inline when they are all `sync`
/// (or the client cannot block) and their sessions are free, else on a worker. The client
/// also waits for records that wait for async steps.
fn run_deferred(ctx: &Context, deferred: Vec<(Target, Vec<u8>)>, args: Vec<Vec<u8>>, reply: Reply) -> RedisResult {
    let denied = blocking_denied(ctx);
    let mut command = CommandCtx { args, hook: false, hook_id: None, override_reply: None };
    let mut remaining = VecDeque::new();
    let inline = denied || deferred.iter().all(|(t, _)| t.sync);
    let mut fired = deferred.into_iter();
    while let Some((target, payload)) = if inline { fired.next() } else { None } {
        let setup = EntrySetup {
            command: Some(command.clone()),
            main_thread: true,
            async_allowed: !denied,
            ..EntrySetup::new(caller::inline(ctx, &target.session.run_as))
        };
        let started = Instant::now();
        match target.session.try_callback(GuestEntry::KeyEvent, &payload, setup) {
            Some(Ok(out)) if out.deferred.is_some() => {
                let client = Arc::new(WorkerContext::block(ctx));
                let chain = Chain { client, remaining: fired.collect(), command, reply };
                chain.after_waiting(target, started, out);
                return Ok(RedisValue::NoReply);
            }
            Some(result) => command = finish_one(&target.id, started, result, command),
            None if denied => key_events::queue(target, payload),
            None => {
                remaining.push_back((target, payload));
                break;
            }
        }
    }
    remaining.extend(fired);
    if remaining.is_empty() {
        send(ctx, command.override_reply.as_ref().unwrap_or(&reply));
        return Ok(RedisValue::NoReply);
    }
    let chain = Chain { client: Arc::new(WorkerContext::block(ctx)), remaining, command, reply };
    workers::submit(move || chain.run());
    Ok(RedisValue::NoReply)
}

/// The `commands=` registrations still to run for a blocked client, and its reply so far.
struct Chain {
    client: Arc<WorkerContext>,
    remaining: VecDeque<(Target, Vec<u8>)>,
    command: CommandCtx,
    reply: Reply,
}

impl Chain {
    /// Runs the remaining registrations one after the other (on a worker, or where the
    /// records of one that waited finished), then answers the client.
    fn run(mut self) {
        while let Some((target, payload)) = self.remaining.pop_front() {
            let setup = EntrySetup {
                command: Some(self.command.clone()),
                ..EntrySetup::new(caller::for_client(&self.client, &target.session.run_as))
            };
            let started = Instant::now();
            match target.session.callback(GuestEntry::KeyEvent, &payload, setup) {
                Ok(out) if out.deferred.is_some() => return self.after_waiting(target, started, out),
                result => self.command = finish_one(&target.id, started, result, self.command),
            }
        }
        self.client.reply(self.command.override_reply.as_ref().unwrap_or(&self.reply));
    }

    /// `target`'s records wait: the chain goes on once they are done.
    fn after_waiting(mut self, target: Target, started: Instant, out: CallbackOutput) {
        registration_stats::record_trigger(&target.id);
        if let Some(command) = out.command.clone() {
            self.command = command;
        }
        out.then(move |result| {
            key_events::record(&target.id, started, result);
            drop(target);
            self.run();
        });
    }
}

/// Records one `commands=` run; keeps the override it set, if any.
fn finish_one(
    id: &str,
    started: Instant,
    result: Result<CallbackOutput, SandboxError>,
    before: CommandCtx,
) -> CommandCtx {
    let command = result.as_ref().ok().and_then(|out| out.command.clone());
    registration_stats::record_trigger(id);
    key_events::record(id, started, result.map(|out| out.reply));
    command.unwrap_or(before)
}
