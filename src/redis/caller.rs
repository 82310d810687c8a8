//! `execute()` from a sandbox: runs the command through RM_Call and converts its reply.
//! The sandbox's `RedisCaller` implementations; their host handle is a `redis_module::Context`
//! with the Redis GIL held.

use crate::redis::acl;
use crate::redis::reply_convert::{convert, past_cap, OverBudget, ReplyBudget};
use crate::redis::run_as::RunAs;
use crate::redis::worker_context::WorkerContext;
use redis_module::{CallOptionResp, CallOptions, CallOptionsBuilder, CallResult, Context};
use std::sync::Arc;
use wasmgears_abi::Reply;
use wasmgears_sandbox::RedisCaller;

/// Replicated like RedisGears' `!v` calls, with errors returned as replies.
fn guest_call_options() -> CallOptions {
    CallOptionsBuilder::new().replicate().errors_as_replies().resp(CallOptionResp::Resp2).build()
}

/// A client's own command run for it (the command a `commands=` registration wraps): checked
/// as that client's would be against `maxmemory` and a read-only replica (its ACL was checked
/// before, commands/hooks.rs: RM_Call's own `C` check needs a user this Redis cannot attach).
fn client_options() -> CallOptions {
    CallOptionsBuilder::new()
        .replicate()
        .errors_as_replies()
        .resp(CallOptionResp::Resp2)
        .verify_oom()
        .script_mode()
        .build()
}

/// Runs the command `args` that the client of `ctx` sent, as that client; its whole reply.
pub fn run_client_command(ctx: &Context, args: &[&[u8]]) -> Reply {
    run_within(ctx, args, &client_options(), &mut ReplyBudget::unlimited()).unwrap_or_else(|OverBudget| past_cap())
}

/// Runs one command in `ctx` (the Redis GIL must be held); its whole reply (for the host's
/// own use).
pub fn run_command(ctx: &Context, args: &[&[u8]]) -> Reply {
    run_within(ctx, args, &guest_call_options(), &mut ReplyBudget::unlimited()).unwrap_or_else(|OverBudget| past_cap())
}

/// Runs one command of a session for the guest: checked first against the ACL of the user
/// the session runs as, its reply converted within `budget`.
fn run_for_guest(ctx: &Context, run_as: &RunAs, args: &[&[u8]], budget: &mut ReplyBudget) -> Result<Reply, OverBudget> {
    if let RunAs::User(name) = run_as {
        if let Some(denied) = acl::denied_for_user(ctx, name, args) {
            return Ok(Reply::Error(denied.into_bytes()));
        }
    }
    run_within(ctx, args, &guest_call_options(), budget)
}

/// One command for the guest: its reply, or the refusal once it passes the guest's cap.
fn run_one_for_guest(ctx: &Context, run_as: &RunAs, args: &[&[u8]]) -> Reply {
    run_for_guest(ctx, run_as, args, &mut ReplyBudget::for_guest()).unwrap_or_else(|OverBudget| past_cap())
}

/// Several commands for the guest, their replies sharing one cap: past it, the rest still
/// run but the batch's reply is the refusal.
fn run_batch_for_guest(ctx: &Context, run_as: &RunAs, commands: &[Vec<&[u8]>]) -> Reply {
    let mut budget = ReplyBudget::for_guest();
    let mut replies = Vec::new();
    let mut over = false;
    for command in commands {
        match run_for_guest(ctx, run_as, command, &mut budget) {
            Ok(reply) if !over => replies.push(reply),
            Ok(_) => {}
            Err(OverBudget) => {
                over = true;
                replies.clear();
            }
        }
    }
    if over {
        past_cap()
    } else {
        Reply::Array(replies)
    }
}

fn run_within(
    ctx: &Context,
    args: &[&[u8]],
    options: &CallOptions,
    budget: &mut ReplyBudget,
) -> Result<Reply, OverBudget> {
    let Ok(command) = std::str::from_utf8(args[0]) else {
        return Ok(Reply::Error(b"ERR unknown command".to_vec()));
    };
    if command.contains('\0') {
        return Ok(Reply::Error(b"ERR unknown command".to_vec()));
    }
    let result: CallResult = ctx.call_ext(command, options, &args[1..]);
    convert(&result, budget)
}

/// `COMMAND` subcommands that only describe the server: safe to run anywhere, even while a
/// saved session's script re-runs (loading, or a replicated RG.INNERREGISTER).
const INTROSPECTION: &[&str] = &["info", "count", "list", "docs", "getkeys", "getkeysandflags"];

/// Runs `args` in `ctx` if it is read-only introspection (`COMMAND INFO ...` and the like),
/// not replicated; None for any other command.
pub fn run_introspection(ctx: &Context, args: &[&[u8]]) -> Option<Reply> {
    let (sub, rest) = introspection(args)?;
    let options = CallOptionsBuilder::new().errors_as_replies().resp(CallOptionResp::Resp2).build();
    let mut call_args: Vec<&[u8]> = vec![sub.as_bytes()];
    call_args.extend_from_slice(rest);
    let result = ctx.call_ext("command", &options, call_args.as_slice());
    Some(convert(&result, &mut ReplyBudget::for_guest()).unwrap_or_else(|OverBudget| past_cap()))
}

/// `COMMAND <sub> rest...` with an allowed `sub` (lower-cased), else None.
fn introspection<'a>(args: &'a [&'a [u8]]) -> Option<(String, &'a [&'a [u8]])> {
    let [command, sub, rest @ ..] = args else { return None };
    let sub = std::str::from_utf8(sub).ok()?.to_ascii_lowercase();
    (command.eq_ignore_ascii_case(b"command") && INTROSPECTION.contains(&sub.as_str())).then_some((sub, rest))
}

/// `execute()` from a worker: takes the Redis GIL for each call (or batch), or keeps it
/// for an `atomic()` block (re-entrant; released at the latest when the entry ends).
pub struct WorkerCaller {
    ctx: Arc<WorkerContext>,
    atomic_depth: u32,
    run_as: RunAs,
}

impl WorkerCaller {
    fn with_ctx<R>(&self, f: impl FnOnce(&Context) -> R) -> R {
        if self.atomic_depth > 0 {
            f(&self.ctx.context())
        } else {
            f(&self.ctx.lock())
        }
    }
}

impl RedisCaller for WorkerCaller {
    fn call(&mut self, args: &[&[u8]]) -> Reply {
        self.with_ctx(|ctx| run_one_for_guest(ctx, &self.run_as, args))
    }

    fn call_batch(&mut self, commands: &[Vec<&[u8]>]) -> Reply {
        self.with_ctx(|ctx| run_batch_for_guest(ctx, &self.run_as, commands))
    }

    fn read_keys(&mut self, keys: &[&[u8]]) -> Reply {
        self.with_ctx(|ctx| crate::redis::key_reader::read_keys(ctx, &self.run_as, keys))
    }

    fn with_host_handle(&mut self, f: &mut dyn FnMut(&dyn std::any::Any)) {
        self.with_ctx(|ctx| f(ctx))
    }

    fn atomic(&mut self, enter: bool) {
        if enter {
            if self.atomic_depth == 0 {
                self.ctx.hold();
            }
            self.atomic_depth += 1;
        } else if self.atomic_depth > 0 {
            self.atomic_depth -= 1;
            if self.atomic_depth == 0 {
                self.ctx.release();
            }
        }
    }
}

impl Drop for WorkerCaller {
    fn drop(&mut self) {
        if self.atomic_depth > 0 {
            self.ctx.release();
        }
    }
}

/// `execute()` inline on a thread that already holds the Redis GIL (the main thread inside
/// a command or keyspace notification): calls go straight to that context.
pub struct InlineCaller {
    ctx: *mut redis_module::raw::RedisModuleCtx,
    run_as: RunAs,
}

// SAFETY: an InlineCaller is created and used within one entry into the guest on the thread
// that owns `ctx` (and holds the Redis GIL); it never outlives that call. `Send` is needed
// only because the entry stores callers behind `Box<dyn RedisCaller + Send>`.
unsafe impl Send for InlineCaller {}

impl RedisCaller for InlineCaller {
    fn call(&mut self, args: &[&[u8]]) -> Reply {
        run_one_for_guest(&Context::new(self.ctx), &self.run_as, args)
    }

    fn call_batch(&mut self, commands: &[Vec<&[u8]>]) -> Reply {
        run_batch_for_guest(&Context::new(self.ctx), &self.run_as, commands)
    }

    fn read_keys(&mut self, keys: &[&[u8]]) -> Reply {
        crate::redis::key_reader::read_keys(&Context::new(self.ctx), &self.run_as, keys)
    }

    fn atomic(&mut self, _enter: bool) {} // the GIL is held for the whole entry anyway

    fn with_host_handle(&mut self, f: &mut dyn FnMut(&dyn std::any::Any)) {
        f(&Context::new(self.ctx))
    }
}

/// For inline work within `ctx` (see `InlineCaller`), as `run_as`.
pub fn inline(ctx: &Context, run_as: &RunAs) -> Box<dyn RedisCaller> {
    Box::new(InlineCaller { ctx: ctx.ctx, run_as: run_as.clone() })
}

/// For work no client waits on (an UNBLOCKING execution after its id was sent), as `run_as`.
pub fn detached(run_as: &RunAs) -> Box<dyn RedisCaller> {
    Box::new(WorkerCaller { ctx: Arc::new(WorkerContext::detached()), atomic_depth: 0, run_as: run_as.clone() })
}

/// For work on a worker whose results go to a blocked client, as `run_as`.
pub fn for_client(client: &Arc<WorkerContext>, run_as: &RunAs) -> Box<dyn RedisCaller> {
    Box::new(WorkerCaller { ctx: Arc::clone(client), atomic_depth: 0, run_as: run_as.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_command_introspection_runs_while_restoring() {
        let (sub, rest) = introspection(&[b"COMMAND", b"Info", b"set"]).unwrap();
        assert_eq!((sub.as_str(), rest), ("info", &[&b"set"[..]][..]));
        assert!(introspection(&[b"command", b"count"]).is_some());
        for refused in [&[&b"set"[..], b"k", b"v"][..], &[b"command"], &[b"command", b"nosuch"], &[b"config", b"info"]]
        {
            assert!(introspection(refused).is_none(), "{refused:?}");
        }
    }
}
