//! RG.INNERHOOK <token> <command> [args...]: what the command filter turned a wrapped command
//! into. Only the filter knows the token (redis/command_filter.rs); the wrapped command is
//! ACL-checked as the calling user before anything runs, and its keys are reported as
//! RG.INNERHOOK's own (`getkeys-api`), so key patterns, cluster redirection and the rest
//! apply as if the client had sent the command itself.

use crate::gears::command_hooks;
use crate::redis::flags::replicated_or_loading;
use crate::redis::{acl, command_filter};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

const NOT_FOR_CLIENTS: &str = "ERR RG.INNERHOOK is internal to RedisGears and cannot be called directly";

pub fn inner_hook(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let from_filter = args.len() >= 3 && command_filter::is_token(args[1].as_slice());
    if ctx.is_keys_position_request() {
        if from_filter {
            for position in acl::key_positions(ctx, &args[2..]) {
                ctx.key_at_pos((position + 2) as i32);
            }
        }
        return Ok(RedisValue::NoReply);
    }
    if !from_filter {
        return Err(RedisError::Str(NOT_FOR_CLIENTS));
    }
    // The primary checked its client already; replicated and loading traffic has no user.
    let bypass = replicated_or_loading(ctx);
    if !bypass {
        if let Some(denied) = acl::denied(ctx, &args[2..]) {
            return Err(RedisError::String(denied));
        }
    }
    let command: Vec<Vec<u8>> = args[2..].iter().map(|a| a.as_slice().to_vec()).collect();
    command_hooks::run_wrapped(ctx, command, bypass)
}
