//! `hook=` and `commands=`: a command filter rewrites a wrapped command `C args...` into
//! `RG.INNERHOOK C args...`, whose handler either runs the hook's flow (its single result is
//! the reply; `call_next` runs `C` itself) or runs `C` and then the `commands=`
//! registrations its keyspace events fired, the client waiting for them (`override_reply`).
//! Commands this module runs (`execute()`, `call_next`) bypass the filter; so do replicated
//! and loading traffic.

use crate::codec::{encode_args, Reply};
use crate::commands::blocking_denied;
use crate::flows::split_results;
use crate::registrations::{self, Target};
use crate::reply::send;
use crate::sandbox::{CommandCtx, EntrySetup, SandboxError};
use crate::session::{Callback, CallbackOutput};
use crate::worker_context::WorkerContext;
use crate::{key_events, redis_call, workers};
use redis_module::{raw, Context, ContextFlags, RedisError, RedisResult, RedisString, RedisValue};
use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

const INNER_COMMAND: &str = "rg.innerhook";

static ANY_WRAPPED: AtomicBool = AtomicBool::new(false);
static WRAPPED: OnceLock<Mutex<HashSet<Vec<u8>>>> = OnceLock::new();

fn wrapped() -> std::sync::MutexGuard<'static, HashSet<Vec<u8>>> {
    WRAPPED.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// Re-reads which commands are wrapped (after registrations change).
pub fn refresh() {
    let names: HashSet<Vec<u8>> = registrations::wrapped_commands().into_iter().map(String::into_bytes).collect();
    ANY_WRAPPED.store(!names.is_empty(), Ordering::Release);
    *wrapped() = names;
}

/// Installs the filter (at load).
pub fn install(ctx: &Context) {
    // SAFETY: called from the module's OnLoad with its context; `filter` lives as long as the .so.
    unsafe {
        raw::RedisModule_RegisterCommandFilter.expect("Redis API")(
            ctx.ctx,
            Some(filter),
            raw::REDISMODULE_CMDFILTER_NOSELF as i32,
        )
    };
}

/// Runs for every command Redis executes: must be cheap when nothing is wrapped.
extern "C" fn filter(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    if !ANY_WRAPPED.load(Ordering::Acquire) {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `fctx` is the live filter context Redis passed in; argument 0 exists when
        // the count is positive; the string it returns stays valid during this callback.
        let name = unsafe {
            if raw::RedisModule_CommandFilterArgsCount.expect("Redis API")(fctx) < 1 {
                return;
            }
            let arg = raw::RedisModule_CommandFilterArgGet.expect("Redis API")(fctx, 0);
            let mut len = 0usize;
            let ptr = raw::RedisModule_StringPtrLen.expect("Redis API")(arg, &mut len);
            std::slice::from_raw_parts(ptr.cast::<u8>(), len).to_ascii_lowercase()
        };
        if !wrapped().contains(&name) {
            return;
        }
        // SAFETY: a string created without a context is owned by us until ArgInsert takes it.
        unsafe {
            let inner = raw::RedisModule_CreateString.expect("Redis API")(
                std::ptr::null_mut(),
                INNER_COMMAND.as_ptr().cast(),
                INNER_COMMAND.len(),
            );
            raw::RedisModule_CommandFilterArgInsert.expect("Redis API")(fctx, 0, inner);
        }
    });
}

/// The `commands=` registrations fired while a wrapped command runs on this thread.
struct Capture {
    command: String,
    deferred: Vec<(Target, Vec<u8>)>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// The wrapped command running on this thread, if any (lower case).
pub fn wrapped_command() -> Option<String> {
    CAPTURE.with(|c| c.borrow().as_ref().map(|c| c.command.clone()))
}

/// Keeps a `commands=` registration's event for after the command; false for others.
pub fn defer(target: &Target, payload: &[u8]) -> bool {
    if !target.waits {
        return false;
    }
    CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(capture) => {
            capture.deferred.push((target.clone(), payload.to_vec()));
            true
        }
        None => false,
    })
}

/// RG.INNERHOOK <command> [args...]: what the filter turned a wrapped command into.
pub fn inner_hook(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() < 2 {
        return Err(RedisError::WrongArity);
    }
    let command: Vec<Vec<u8>> = args[1..].iter().map(|a| a.as_slice().to_vec()).collect();
    let name = String::from_utf8_lossy(&command[0]).to_ascii_lowercase();
    let bypass = ctx.get_flags().intersects(ContextFlags::REPLICATED | ContextFlags::LOADING);
    if !bypass {
        if let Some(target) = registrations::find_hook(&name, command.get(1).map(Vec::as_slice)) {
            return run_hook(ctx, target, command);
        }
    }
    CAPTURE.with(|c| *c.borrow_mut() = Some(Capture { command: name, deferred: Vec::new() }));
    let parts: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
    let reply = redis_call::run_command(ctx, &parts);
    let deferred = CAPTURE.with(|c| c.borrow_mut().take()).map(|c| c.deferred).unwrap_or_default();
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
    registrations::record_unlisted_run(id, started.elapsed().as_millis() as u64, error.as_deref());
    reply
}

fn run_hook(ctx: &Context, target: Target, command: Vec<Vec<u8>>) -> RedisResult {
    let mut payload: Vec<&[u8]> = vec![target.id.as_bytes()];
    payload.extend(command.iter().map(Vec::as_slice));
    let payload = encode_args(&payload);
    let hook = Some(CommandCtx { args: command, hook: true, override_reply: None });
    // Inside MULTI/Lua a hook cannot wait for a worker: it runs inline there too.
    let inline = target.sync || blocking_denied(ctx);
    crate::client_callbacks::run_and_answer(ctx, target, payload, hook, inline, hook_reply)
        .map_err(|()| RedisError::Str("ERR the hook's session is busy, try again"))?;
    Ok(RedisValue::NoReply)
}

/// Runs the `commands=` registrations a command fired, then replies: the last
/// `override_reply` given, else the command's own reply. Inline when they are all `sync`
/// (or the client cannot block) and their sessions are free, else on a worker. The client
/// also waits for records that wait for async steps.
fn run_deferred(ctx: &Context, deferred: Vec<(Target, Vec<u8>)>, args: Vec<Vec<u8>>, reply: Reply) -> RedisResult {
    let denied = blocking_denied(ctx);
    let mut command = CommandCtx { args, hook: false, override_reply: None };
    let mut remaining = VecDeque::new();
    let inline = denied || deferred.iter().all(|(t, _)| t.sync);
    let mut fired = deferred.into_iter();
    while let Some((target, payload)) = if inline { fired.next() } else { None } {
        let setup = EntrySetup {
            command: Some(command.clone()),
            main_thread: true,
            async_allowed: !denied,
            ..EntrySetup::new(redis_call::inline(ctx))
        };
        let started = Instant::now();
        match target.session.try_callback(Callback::KeyEvent, &payload, setup) {
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
                ..EntrySetup::new(redis_call::for_client(&self.client))
            };
            let started = Instant::now();
            match target.session.callback(Callback::KeyEvent, &payload, setup) {
                Ok(out) if out.deferred.is_some() => return self.after_waiting(target, started, out),
                result => self.command = finish_one(&target.id, started, result, self.command),
            }
        }
        self.client.reply(self.command.override_reply.as_ref().unwrap_or(&self.reply));
    }

    /// `target`'s records wait: the chain goes on once they are done.
    fn after_waiting(mut self, target: Target, started: Instant, out: CallbackOutput) {
        registrations::record_trigger(&target.id);
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
    registrations::record_trigger(id);
    key_events::record(id, started, result.map(|out| out.reply));
    command.unwrap_or(before)
}
