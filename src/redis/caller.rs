//! `execute()` from a sandbox: runs the command through RM_Call and converts its reply.
//! The sandbox's `RedisCaller` implementations; their host handle is a `redis_module::Context`
//! with the Redis GIL held.

use crate::redis::worker_context::WorkerContext;
use redis_module::{CallOptionResp, CallOptions, CallOptionsBuilder, CallReply, CallResult, Context};
use std::sync::Arc;
use wasmgears_abi::Reply;
use wasmgears_sandbox::RedisCaller;

/// Replicated like RedisGears' `!v` calls, with errors returned as replies.
fn call_options() -> CallOptions {
    CallOptionsBuilder::new().replicate().errors_as_replies().resp(CallOptionResp::Resp2).build()
}

/// How many more bytes the converted reply may take once encoded for the guest: converting
/// stops as soon as it would pass `SandboxMaxReplyMB`, so a huge reply is refused before it
/// is copied (its tree and its encoding are each larger than the cap), not after.
struct ReplyBudget {
    left: usize,
}

/// The reply passed its budget: what was converted so far is dropped.
struct OverBudget;

impl ReplyBudget {
    fn for_guest() -> ReplyBudget {
        ReplyBudget { left: wasmgears_sandbox::limits::max_reply_bytes() }
    }

    fn unlimited() -> ReplyBudget {
        ReplyBudget { left: usize::MAX }
    }

    /// Counts `n` more encoded bytes (the sizes of `wasmgears_abi::Reply::encode`).
    fn spend(&mut self, n: usize) -> Result<(), OverBudget> {
        self.left = self.left.checked_sub(n).ok_or(OverBudget)?;
        Ok(())
    }

    fn bytes(&mut self, b: &[u8]) -> Result<Vec<u8>, OverBudget> {
        self.spend(5usize.saturating_add(b.len()))?; // tag, u32 length, bytes
        Ok(b.to_vec())
    }
}

fn convert(result: &CallResult<'_>, budget: &mut ReplyBudget) -> Result<Reply, OverBudget> {
    match result {
        Ok(reply) => convert_reply(reply, budget),
        Err(err) => {
            let text = err.to_utf8_string().unwrap_or_else(|| "ERR unknown error".into());
            Ok(Reply::Error(budget.bytes(text.as_bytes())?))
        }
    }
}

fn convert_items<'a>(
    items: impl Iterator<Item = CallResult<'a>>,
    budget: &mut ReplyBudget,
) -> Result<Reply, OverBudget> {
    budget.spend(5)?; // tag, u32 count
    let mut out = Vec::new(); // grown as converted: a huge count reserves nothing up front
    for item in items {
        out.push(convert(&item, budget)?);
    }
    Ok(Reply::Array(out))
}

fn convert_reply(reply: &CallReply<'_>, budget: &mut ReplyBudget) -> Result<Reply, OverBudget> {
    Ok(match reply {
        CallReply::I64(i) => {
            budget.spend(9)?;
            Reply::Int(i.to_i64())
        }
        CallReply::String(s) => Reply::Bulk(budget.bytes(s.as_bytes())?),
        CallReply::Array(a) => convert_items(a.iter(), budget)?,
        CallReply::Null(_) | CallReply::Unknown => {
            budget.spend(1)?;
            Reply::Null
        }
        CallReply::Bool(b) => {
            budget.spend(9)?;
            Reply::Int(b.to_bool() as i64)
        }
        CallReply::Double(d) => {
            budget.spend(9)?;
            Reply::Double(d.to_double())
        }
        CallReply::Set(s) => convert_items(s.iter(), budget)?,
        CallReply::Map(m) => convert_items(m.iter().flat_map(|(k, v)| [k, v]), budget)?,
        CallReply::BigNumber(n) => Reply::Bulk(budget.bytes(n.to_string().unwrap_or_default().as_bytes())?),
        CallReply::VerbatimString(v) => Reply::Bulk(budget.bytes(v.as_parts().map(|(_, b)| b).unwrap_or_default())?),
    })
}

/// Runs one command in `ctx` (the Redis GIL must be held); its whole reply (for the host's
/// own use: a wrapped command's client gets it whatever its size).
pub fn run_command(ctx: &Context, args: &[&[u8]]) -> Reply {
    run_within(ctx, args, &mut ReplyBudget::unlimited()).unwrap_or_else(|OverBudget| past_cap())
}

/// Runs one command for the guest: its reply, or the refusal once it passes the guest's cap.
fn run_for_guest(ctx: &Context, args: &[&[u8]]) -> Reply {
    run_within(ctx, args, &mut ReplyBudget::for_guest()).unwrap_or_else(|OverBudget| past_cap())
}

/// Several commands for the guest, their replies sharing one cap: past it, the rest still
/// run but the batch's reply is the refusal.
fn run_batch_for_guest(ctx: &Context, commands: &[Vec<&[u8]>]) -> Reply {
    let mut budget = ReplyBudget::for_guest();
    let mut replies = Vec::new();
    let mut over = false;
    for command in commands {
        match run_within(ctx, command, &mut budget) {
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

fn past_cap() -> Reply {
    Reply::Error(format!("ERR {}", wasmgears_sandbox::limits::reply_past_cap()).into_bytes())
}

fn run_within(ctx: &Context, args: &[&[u8]], budget: &mut ReplyBudget) -> Result<Reply, OverBudget> {
    let Ok(command) = std::str::from_utf8(args[0]) else {
        return Ok(Reply::Error(b"ERR unknown command".to_vec()));
    };
    if command.contains('\0') {
        return Ok(Reply::Error(b"ERR unknown command".to_vec()));
    }
    let result: CallResult = ctx.call_ext(command, &call_options(), &args[1..]);
    convert(&result, budget)
}

/// `execute()` from a worker: takes the Redis GIL for each call (or batch), or keeps it
/// for an `atomic()` block (re-entrant; released at the latest when the entry ends).
pub struct WorkerCaller {
    ctx: Arc<WorkerContext>,
    atomic_depth: u32,
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
        self.with_ctx(|ctx| run_for_guest(ctx, args))
    }

    fn call_batch(&mut self, commands: &[Vec<&[u8]>]) -> Reply {
        self.with_ctx(|ctx| run_batch_for_guest(ctx, commands))
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
}

// SAFETY: an InlineCaller is created and used within one entry into the guest on the thread
// that owns `ctx` (and holds the Redis GIL); it never outlives that call. `Send` is needed
// only because the entry stores callers behind `Box<dyn RedisCaller + Send>`.
unsafe impl Send for InlineCaller {}

impl RedisCaller for InlineCaller {
    fn call(&mut self, args: &[&[u8]]) -> Reply {
        run_for_guest(&Context::new(self.ctx), args)
    }

    fn call_batch(&mut self, commands: &[Vec<&[u8]>]) -> Reply {
        run_batch_for_guest(&Context::new(self.ctx), commands)
    }

    fn atomic(&mut self, _enter: bool) {} // the GIL is held for the whole entry anyway

    fn with_host_handle(&mut self, f: &mut dyn FnMut(&dyn std::any::Any)) {
        f(&Context::new(self.ctx))
    }
}

/// For inline work within `ctx` (see `InlineCaller`).
pub fn inline(ctx: &Context) -> Box<dyn RedisCaller> {
    Box::new(InlineCaller { ctx: ctx.ctx })
}

/// For work no client waits on (an UNBLOCKING execution after its id was sent).
pub fn detached() -> Box<dyn RedisCaller> {
    Box::new(WorkerCaller { ctx: Arc::new(WorkerContext::detached()), atomic_depth: 0 })
}

pub fn for_client(client: &Arc<WorkerContext>) -> Box<dyn RedisCaller> {
    Box::new(WorkerCaller { ctx: Arc::clone(client), atomic_depth: 0 })
}
