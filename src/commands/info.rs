//! `INFO rg`: the counters RedisGears clients read, and the sandbox's own.

use crate::gears::executions;
use crate::gears::registrations;
use crate::gears::time_events;
use crate::session;
use redis_module::{InfoContext, RedisResult};
use redis_module_macros::info_command_handler;
use wasmgears_sandbox::limits;

#[info_command_handler]
fn rg_info(ctx: &InfoContext, for_crash_report: bool) -> RedisResult<()> {
    let builder = ctx
        .builder()
        .add_section("stats")
        .field("nexecutions", executions::count() as i64)?
        .field("nregistrations", registrations::count() as i64)?
        .field("nsessions", session::live_sessions() as i64)?
        .field("ntimeevents", time_events::count() as i64)?
        .field("guest_memory_bytes", limits::guest_memory_bytes() as i64)?
        .build_section()?;
    let (total, peak, current) = limits::guest_memory_stats();
    let builder = builder
        .add_section("python_stats")
        .field("TotalAllocated", total as i64)?
        .field("PeakAllocated", peak as i64)?
        .field("CurrAllocated", current as i64)?
        .build_section()?;
    if for_crash_report {
        // A crash report must not wait for a lock a crashed thread may hold.
        return builder.build_info().map(|_| ());
    }
    // RedisGears' own spelling of the section name.
    let mut section = builder.add_section("regisrations");
    for (id, summary) in crate::gears::registration_dump::info_fields() {
        section = section.field(&id, summary)?;
    }
    section.build_section()?.build_info()?;
    Ok(())
}
