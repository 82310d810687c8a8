//! Redis command handlers. Each runs behind `guarded`, so a bug answers with an error
//! instead of unwinding into Redis (a panic across the FFI boundary aborts the server).

pub mod cluster;
pub mod config;
pub mod executions;
pub mod hooks;
pub mod info;
pub mod inner;
pub mod inner_stream;
pub mod pyexecute;
pub mod python;
pub mod registrations;
pub mod requirements;
pub mod sessions;

use redis_module::{Context, RedisError, RedisResult, RedisString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The refusal of an internal command (RG.INNERREGISTER, RG.INNERUNREGISTER,
/// RG.INNERSTREAMPOS) that did not come from the replication link or the AOF being loaded.
pub fn internal_only(ctx: &Context) -> Result<(), RedisError> {
    if crate::redis::flags::replicated_or_loading(ctx) {
        return Ok(());
    }
    Err(RedisError::Str(
        "ERR this command is internal to RedisGears: accepted only from the replication link or the AOF",
    ))
}

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
