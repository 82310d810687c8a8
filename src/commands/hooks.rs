//! RG.INNERHOOK <command> [args...]: what the command filter turned a wrapped command into.

use crate::gears::command_hooks;
use redis_module::{Context, RedisError, RedisResult, RedisString};

pub fn inner_hook(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() < 2 {
        return Err(RedisError::WrongArity);
    }
    let command: Vec<Vec<u8>> = args[1..].iter().map(|a| a.as_slice().to_vec()).collect();
    command_hooks::run_wrapped(ctx, command)
}
