//! How a worker thread reaches Redis: a thread-safe context, either tied to a client blocked
//! while the worker serves it (replies go to that client) or detached (work nobody waits on).
//! Calls into Redis happen under the Redis GIL (`lock`, or `hold`/`release` for `atomic()`).
//!
//! redis-module's `ThreadSafeContext::lock()` hands out a *detached* context, on which
//! replies go nowhere; this keeps the one context tied to the client for both.

use redis_module::{raw, Context};
use std::ops::Deref;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmgears_abi::Reply;

pub struct WorkerContext {
    client: *mut raw::RedisModuleBlockedClient,
    ctx: *mut raw::RedisModuleCtx,
    /// Set once the client was unblocked: later replies and unblocks are no-ops.
    released: AtomicBool,
    /// Set once a reply was queued: a client dropped without one gets an error instead.
    replied: AtomicBool,
    /// The blocked time counts as the command's own (SLOWLOG, command stats).
    measured: bool,
}

// SAFETY: Redis allows a blocked-client handle and its thread-safe context to be used from
// any thread; calls that touch the keyspace happen only under `lock()` (the Redis GIL).
unsafe impl Send for WorkerContext {}
unsafe impl Sync for WorkerContext {}

impl WorkerContext {
    /// Blocks the client of `ctx` while work is done for it (no timeout; answered by `reply`,
    /// released on drop). The time until `unblock` counts as the command's own, so a long
    /// RG.PYEXECUTE or run() shows in SLOWLOG and the command stats.
    pub fn block(ctx: &Context) -> WorkerContext {
        Self::block_client(ctx, true)
    }

    /// Blocks the client of `ctx` while it waits for work it did not start
    /// (RG.GETRESULTSBLOCKING): like BLPOP, the wait is not the command's time.
    pub fn block_waiting(ctx: &Context) -> WorkerContext {
        Self::block_client(ctx, false)
    }

    fn block_client(ctx: &Context, measured: bool) -> WorkerContext {
        // SAFETY: `ctx` is a live command context on the main thread; the callbacks are
        // optional and a zero timeout means none.
        let client = unsafe { raw::RedisModule_BlockClient.expect("Redis API")(ctx.ctx, None, None, None, 0) };
        // SAFETY: `client` was just returned by RedisModule_BlockClient; the API may be
        // missing on an older Redis, then nothing is measured (Redis adds the measured time
        // to the command's when unblocking).
        let measured = measured
            && unsafe {
                match raw::RedisModule_BlockedClientMeasureTimeStart {
                    Some(start) => start(client) == raw::REDISMODULE_OK as i32,
                    None => false,
                }
            };
        // SAFETY: `client` was just returned by RedisModule_BlockClient.
        let ctx = unsafe { raw::RedisModule_GetThreadSafeContext.expect("Redis API")(client) };
        WorkerContext { client, ctx, released: AtomicBool::new(false), replied: AtomicBool::new(false), measured }
    }

    /// A context for work no client waits on.
    pub fn detached() -> WorkerContext {
        // SAFETY: a null blocked client asks Redis for a detached thread-safe context.
        let ctx = unsafe { raw::RedisModule_GetThreadSafeContext.expect("Redis API")(ptr::null_mut()) };
        WorkerContext {
            client: ptr::null_mut(),
            ctx,
            released: AtomicBool::new(false),
            replied: AtomicBool::new(false),
            measured: false,
        }
    }

    /// Takes the Redis GIL until `release` (for `atomic()` blocks; see `context`).
    pub fn hold(&self) {
        // SAFETY: `self.ctx` is a live thread-safe context; the caller pairs this with `release`.
        unsafe { raw::RedisModule_ThreadSafeContextLock.expect("Redis API")(self.ctx) };
    }

    pub fn release(&self) {
        // SAFETY: paired with a previous `hold` on this same context.
        unsafe { raw::RedisModule_ThreadSafeContextUnlock.expect("Redis API")(self.ctx) };
    }

    /// The context, for calls made while `hold` is in effect.
    pub fn context(&self) -> Context {
        Context::new(self.ctx)
    }

    /// Queues `reply` for the client (sent when it is unblocked). Needs no lock.
    pub fn reply(&self, reply: &Reply) {
        if !self.client.is_null() && !self.released.load(Ordering::Acquire) {
            self.replied.store(true, Ordering::Release);
            crate::redis::reply::send(&Context::new(self.ctx), reply);
        }
    }

    /// Unblocks the client now: it gets what was replied so far. Idempotent.
    pub fn unblock(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        // SAFETY: both pointers came from BlockClient/GetThreadSafeContext; the `released`
        // flag makes this run once, and `lock`/`reply` are not used after it by our callers;
        // the measure is ended only where it was started.
        unsafe {
            raw::RedisModule_FreeThreadSafeContext.expect("Redis API")(self.ctx);
            if !self.client.is_null() {
                if let (true, Some(end)) = (self.measured, raw::RedisModule_BlockedClientMeasureTimeEnd) {
                    end(self.client);
                }
                raw::RedisModule_UnblockClient.expect("Redis API")(self.client, ptr::null_mut());
            }
        }
    }

    /// Takes the Redis GIL; the guard is a context for RM_Call.
    pub fn lock(&self) -> Locked<'_> {
        // SAFETY: `self.ctx` is a live thread-safe context; unlocked by `Locked::drop`.
        unsafe { raw::RedisModule_ThreadSafeContextLock.expect("Redis API")(self.ctx) };
        Locked { ctx: Context::new(self.ctx), _client: self }
    }
}

impl Drop for WorkerContext {
    /// A client must never wait for a reply that cannot come: one whose work ended without
    /// answering (a panic in a worker job, a job that could not be queued) gets an error.
    fn drop(&mut self) {
        if !self.replied.load(Ordering::Acquire) {
            self.reply(&Reply::Error(b"ERR wasmgears internal error: the request ended without an answer".to_vec()));
        }
        self.unblock();
    }
}

pub struct Locked<'a> {
    ctx: Context,
    _client: &'a WorkerContext,
}

impl Deref for Locked<'_> {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: locked in `WorkerContext::lock` on this same context.
        unsafe { raw::RedisModule_ThreadSafeContextUnlock.expect("Redis API")(self.ctx.ctx) };
    }
}
