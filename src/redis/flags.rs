//! What the context a command or event runs in allows.

use redis_module::{Context, ContextFlags};

/// The error RedisGears gives where a client cannot wait for a worker.
pub const BLOCKING_NOT_ALLOWED: &str = "Can not run gears inside a multi exec, lua, or when blocking is not allowed";

/// Inside MULTI, Lua or any context that may not block, a client cannot wait for a worker:
/// Redis would refuse the block yet the worker would still run the script.
pub fn blocking_denied(ctx: &Context) -> bool {
    ctx.get_flags().intersects(ContextFlags::MULTI | ContextFlags::LUA | ContextFlags::DENY_BLOCKING)
}

/// Replicated or loading traffic: it is never hooked (the primary already ran the hook).
pub fn replicated_or_loading(ctx: &Context) -> bool {
    ctx.get_flags().intersects(ContextFlags::REPLICATED | ContextFlags::LOADING)
}
