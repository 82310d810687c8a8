//! Redis command handlers. Each runs behind `guarded`, so a bug answers with an error
//! instead of unwinding into Redis (a panic across the FFI boundary aborts the server).

pub mod config;
pub mod executions;
pub mod inner;
pub mod pyexecute;
pub mod python;
pub mod registrations;
pub mod sessions;

use redis_module::{Context, ContextFlags, RedisError, RedisResult, RedisString};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub const BLOCKING_NOT_ALLOWED: &str = "Can not run gears inside a multi exec, lua, or when blocking is not allowed";

/// Calls `handler`, turning a panic into an error reply.
pub fn guarded(
    ctx: &Context,
    args: Vec<RedisString>,
    handler: fn(&Context, Vec<RedisString>) -> RedisResult,
) -> RedisResult {
    catch_unwind(AssertUnwindSafe(|| handler(ctx, args))).unwrap_or_else(|_| {
        crate::redis_log::warning("wasmgears: internal error (panic) in a command handler");
        Err(RedisError::Str("ERR wasmgears internal error; see the Redis log"))
    })
}

/// Inside MULTI, Lua or any context that may not block, a client cannot wait for a worker:
/// Redis would refuse the block yet the worker would still run the script.
pub fn blocking_denied(ctx: &Context) -> bool {
    ctx.get_flags().intersects(ContextFlags::MULTI | ContextFlags::LUA | ContextFlags::DENY_BLOCKING)
}
