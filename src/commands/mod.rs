//! Redis command handlers. Each runs behind `guarded`, so a bug answers with an error
//! instead of unwinding into Redis (a panic across the FFI boundary aborts the server).

pub mod config;
pub mod executions;
pub mod hooks;
pub mod info;
pub mod inner;
pub mod inner_stream;
pub mod pyexecute;
pub mod python;
pub mod registrations;
pub mod sessions;

use redis_module::{Context, RedisError, RedisResult, RedisString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Calls `handler`, turning a panic into an error reply.
pub fn guarded(
    ctx: &Context,
    args: Vec<RedisString>,
    handler: fn(&Context, Vec<RedisString>) -> RedisResult,
) -> RedisResult {
    catch_unwind(AssertUnwindSafe(|| handler(ctx, args))).unwrap_or_else(|_| {
        crate::redis::log::warning("wasmgears: internal error (panic) in a command handler");
        Err(RedisError::Str("ERR wasmgears internal error; see the Redis log"))
    })
}
