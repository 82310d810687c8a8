//! Running a CommandReader flow (RG.TRIGGER, a hook) for the client that asked, and
//! answering it: inline on this thread when wanted and the session is free, else on a worker
//! with the client blocked.

use crate::gears::in_order::Turn;
use crate::gears::registrations::Target;
use crate::redis::caller;
use crate::redis::flags::blocking_denied;
use crate::redis::reply::send;
use crate::redis::worker_context::WorkerContext;
use crate::runtime::workers;
use crate::session::CallbackOutput;
use redis_module::Context;
use std::sync::Arc;
use std::time::Instant;
use wasmgears_abi::GuestEntry;
use wasmgears_abi::Reply;
use wasmgears_sandbox::{CommandCtx, EntrySetup, SandboxError};

/// Turns a run's outcome into the client's reply (and records it).
pub type Answer = fn(&str, Instant, Result<CallbackOutput, SandboxError>) -> wasmgears_abi::Reply;

/// Runs `target`'s flow on `payload` and answers the client of `ctx`. Inline when `inline`
/// (then within `ctx`, also inside MULTI/Lua). Err(()) when that was not possible and the
/// client cannot block either (the caller words the error).
pub fn run_and_answer(
    ctx: &Context,
    target: Target,
    payload: Vec<u8>,
    command: Option<CommandCtx>,
    inline: bool,
    answer: Answer,
) -> Result<(), ()> {
    let started = Instant::now();
    let denied = blocking_denied(ctx);
    if inline {
        let setup = EntrySetup {
            command: command.clone(),
            main_thread: true,
            async_allowed: !denied,
            ..EntrySetup::new(caller::inline(ctx, &target.session.run_as))
        };
        match target.session.try_callback(GuestEntry::RunTrigger, &payload, setup) {
            // Its records wait for async steps: the client waits for them.
            Some(Ok(out)) if out.deferred.is_some() => {
                out.then(answer_later(Arc::new(WorkerContext::block(ctx)), target, started, answer));
                return Ok(());
            }
            Some(result) => {
                crate::gears::registration_stats::record_trigger(&target.id);
                send(ctx, &answer(&target.id, started, result));
                return Ok(());
            }
            None => {}
        }
    }
    if denied {
        return Err(());
    }
    let in_order = target.in_order.clone();
    let client = Arc::new(WorkerContext::block(ctx));
    let run = move |turn: Option<Turn>| {
        let setup = EntrySetup { command, ..EntrySetup::new(caller::for_client(&client, &target.session.run_as)) };
        let result = target.session.callback(GuestEntry::RunTrigger, &payload, setup);
        let then = answer_later(client, target, started, answer);
        match result {
            // The turn ends with the answer: an `inorder` registration's next run starts then.
            Ok(out) => out.then(move |r| {
                then(r);
                drop(turn);
            }),
            Err(e) => then(Err(e)),
        }
    };
    match in_order {
        Some(order) => order.submit(move |turn| run(Some(turn))),
        None => {
            workers::submit(move || run(None));
        }
    }
    Ok(())
}

/// Answers the blocked client with the run's results, whenever they come.
fn answer_later(
    client: Arc<WorkerContext>,
    target: Target,
    started: Instant,
    answer: Answer,
) -> impl FnOnce(Result<Reply, SandboxError>) + Send + 'static {
    crate::gears::registration_stats::record_trigger(&target.id); // now: its records may still wait
    move |result| {
        let result = result.map(|reply| CallbackOutput { reply, command: None, deferred: None });
        let reply = answer(&target.id, started, result);
        drop(target); // before the client hears back: its session's refcount is exact then
        client.reply(&reply);
        client.unblock();
    }
}
