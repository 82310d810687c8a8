//! `INFO rg`: the counters RedisGears clients read, and the sandbox's own.

use crate::sandbox::limits;
use crate::{executions, registrations, session};
use redis_module::{InfoContext, RedisResult};
use redis_module_macros::info_command_handler;

#[info_command_handler]
fn rg_info(ctx: &InfoContext, _for_crash_report: bool) -> RedisResult<()> {
    ctx.builder()
        .add_section("stats")
        .field("nexecutions", executions::count() as i64)?
        .field("nregistrations", registrations::count() as i64)?
        .field("nsessions", session::live_sessions() as i64)?
        .field("guest_memory_bytes", limits::guest_memory_bytes() as i64)?
        .build_section()?
        .build_info()?;
    Ok(())
}
