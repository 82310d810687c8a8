//! wasmgears: the RedisGears 1.x Python engine for Redis, every script in its own wasm
//! sandbox. Registered with Redis as `rg`.

// Under `cargo test` the Redis entry points are compiled out (see `entry`), so what only they
// use is unused there.
#![cfg_attr(test, allow(dead_code))]

//! Layers, lowest first (docs/architecture.md; `tools/check-layers.py` keeps them):
//! `wasmgears_abi` (wire format) <- `wasmgears_sandbox` (wasmtime, no Redis) <- [`redis`]
//! (the module API adapter) <- [`runtime`] (config, workers, timers) <- [`session`] <-
//! [`gears`] (the domain) <- [`commands`] <- this file (the module's entry points).

mod commands;
mod gears;
mod redis;
mod runtime;
mod session;
mod transport;

#[cfg(test)]
mod fuzz_tests;

use gears::host_services::GearsHost;
use gears::key_events;
use redis_module::{Context, RedisResult, RedisString, Status};
use runtime::config::{self, Config, EXECUTION_THREADS, GUEST_DIR, MAX_SESSIONS};
use runtime::{settings, workers};
use std::path::PathBuf;
use std::sync::Arc;

/// Where `make` put the guest when this module was built; `GuestDir` overrides it.
const BUILT_GUEST_DIR: Option<&str> = option_env!("WASMGEARS_GUEST_DIR");

fn guest_dir(config: &Config) -> Option<PathBuf> {
    match config.get(GUEST_DIR) {
        Ok(config::Value::Str(dir)) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => BUILT_GUEST_DIR.map(PathBuf::from),
    }
}

fn load(args: &[RedisString]) -> anyhow::Result<()> {
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy()).collect();
    let config = Config::from_module_args(&args)?;
    match config.get(config::RUN_SCRIPTS_AS) {
        Ok(config::Value::Str(v)) if v.eq_ignore_ascii_case("creator") || v.eq_ignore_ascii_case("module") => {}
        other => anyhow::bail!("RunScriptsAs must be `creator` or `module`, not {other:?}"),
    }
    let dir = guest_dir(&config).ok_or_else(|| anyhow::anyhow!("no guest: pass `GuestDir <dir>` (see README)"))?;
    let runtime = wasmgears_sandbox::Runtime::new(&dir, config.int(MAX_SESSIONS) as u32, Arc::new(GearsHost))?;
    session::install(runtime, Box::new(GearsHost));
    workers::start(config.int(EXECUTION_THREADS) as usize)?;
    crate::redis::log::notice(&format!("wasmgears: guest loaded from {}", dir.display()));
    settings::install(config);
    gears::network_test::install();
    gears::distributed::install();
    gears::shard_registrations::install();
    gears::cluster_query::install();
    commands::executions::install();
    commands::registrations::install();
    Ok(())
}

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    match std::panic::catch_unwind(|| load(args)) {
        Ok(Ok(())) => {
            redis::command_filter::install(ctx);
            Status::Ok
        }
        Ok(Err(e)) => {
            crate::redis::log::warning(&format!("wasmgears: failed to load: {e:#}"));
            Status::Err
        }
        Err(_) => {
            crate::redis::log::warning("wasmgears: failed to load (internal error)");
            Status::Err
        }
    }
}

/// Unloading is refused: worker and ticker threads and the engine cannot be torn down
/// safely while Redis keeps the .so mapped.
fn deinit(_ctx: &Context) -> Status {
    Status::Err
}

/// Keyspace notifications; a panic must not unwind into Redis.
fn on_keyspace_event(ctx: &Context, class: redis_module::NotifyEvent, event: &str, key: &[u8]) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| key_events::on_event(ctx, class, event, key))).is_err()
    {
        crate::redis::log::warning("wasmgears: internal error (panic) in the keyspace event handler");
    }
}

/// Stream notifications (a subscriber of their own: see key_events::on_stream_event).
fn on_stream_event(ctx: &Context, class: redis_module::NotifyEvent, event: &str, key: &[u8]) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| key_events::on_stream_event(ctx, class, event, key)))
        .is_err()
    {
        crate::redis::log::warning("wasmgears: internal error (panic) in the stream event handler");
    }
}

/// Server events for StreamReader registrations: they find their streams again once loading
/// ended and when this server became a primary (1.2 polls for the promotion every second).
#[cfg(not(test))]
mod server_events {
    use redis_module::server_events::{LoadingSubevent, ServerRole};
    use redis_module::Context;
    use redis_module_macros::{loading_event_handler, role_changed_event_handler};

    #[role_changed_event_handler]
    fn on_role_changed(_ctx: &Context, role: ServerRole) {
        if role == ServerRole::Primary {
            guarded_event(|| crate::gears::streams::scan_all(true));
        }
    }

    #[loading_event_handler]
    fn on_loading(_ctx: &Context, event: LoadingSubevent) {
        if event == LoadingSubevent::Ended {
            guarded_event(|| crate::gears::streams::scan_all(false));
        }
    }

    /// A panic must not unwind into Redis.
    fn guarded_event(f: impl FnOnce()) {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
            crate::redis::log::warning("wasmgears: internal error (panic) in a server event handler");
        }
    }
}

/// Redis-facing wrappers: each runs its handler behind `commands::guarded`.
macro_rules! guarded_commands {
    ($($name:ident => $handler:path),* $(,)?) => {
        $(fn $name(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
            commands::guarded(ctx, args, $handler)
        })*
    };
}

guarded_commands! {
    pyexecute => commands::pyexecute::pyexecute,
    config_get => commands::config::config_get,
    config_set => commands::config::config_set,
    dump_executions => commands::executions::dump_executions,
    get_execution => commands::executions::get_execution,
    get_results => commands::executions::get_results,
    get_results_blocking => commands::executions::get_results_blocking,
    drop_execution => commands::executions::drop_execution,
    abort_execution => commands::executions::abort_execution,
    trigger => commands::registrations::trigger,
    trigger_on_key => commands::registrations::trigger_on_key,
    dump_registrations => commands::registrations::dump_registrations,
    unregister => commands::registrations::unregister,
    clear_registrations_stats => commands::registrations::clear_registrations_stats,
    pause_registrations => commands::registrations::pause_registrations,
    unpause_registrations => commands::registrations::unpause_registrations,
    inner_hook => commands::hooks::inner_hook,
    dump_sessions => commands::sessions::dump_sessions,
    inner_register => commands::inner::inner_register,
    inner_unregister => commands::inner::inner_unregister,
    inner_stream_pos => commands::inner_stream::inner_stream_pos,
    py_stats => commands::python::py_stats,
    py_profile => commands::python::py_profile,
    py_dump_reqs => commands::requirements::py_dump_reqs,
    py_export_req => commands::requirements::py_export_req,
    py_import_req => commands::requirements::py_import_req,
    py_execute_remote => commands::python::py_execute_remote,
    py_free_interpreter => commands::python::py_free_interpreter,
    dump_plugins => commands::python::dump_plugins,
    info_cluster => commands::cluster::info_cluster,
    refresh_cluster => commands::cluster::refresh_cluster,
    hello => commands::cluster::hello,
    inner_msg_command => commands::cluster::inner_msg_command,
    network_test => commands::cluster::network_test,
}

// Outside `cargo test`: the Redis allocator aborts when no Redis is around.
#[cfg(not(test))]
mod entry {
    use super::*;
    use gears::rdb::TIME_EVENT_TYPE;
    use redis_module::redis_module;

    redis_module! {
        name: "rg",
        version: 1,
        allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
        data_types: [TIME_EVENT_TYPE],
        init: init,
        deinit: deinit,
        commands: [
            ["rg.pyexecute", pyexecute, "write", 0, 0, 0, ""],
            ["rg.configget", config_get, "readonly", 0, 0, 0, ""],
            ["rg.configset", config_set, "readonly", 0, 0, 0, ""],
            ["rg.dumpexecutions", dump_executions, "readonly", 0, 0, 0, ""],
            ["rg.getexecution", get_execution, "readonly", 0, 0, 0, ""],
            ["rg.getresults", get_results, "readonly", 0, 0, 0, ""],
            ["rg.getresultsblocking", get_results_blocking, "readonly", 0, 0, 0, ""],
            ["rg.dropexecution", drop_execution, "readonly", 0, 0, 0, ""],
            ["rg.abortexecution", abort_execution, "readonly", 0, 0, 0, ""],
            ["rg.trigger", trigger, "write", 0, 0, 0, ""],
            ["rg.triggeronkey", trigger_on_key, "write", 2, 2, 1, ""],
            ["rg.dumpregistrations", dump_registrations, "readonly", 0, 0, 0, ""],
            ["rg.unregister", unregister, "readonly", 0, 0, 0, ""],
            ["rg.clearregistrationsstats", clear_registrations_stats, "readonly", 0, 0, 0, ""],
            ["rg.pauseregistrations", pause_registrations, "readonly", 0, 0, 0, ""],
            ["rg.unpauseregistrations", unpause_registrations, "readonly", 0, 0, 0, ""],
            ["rg.innerhook", inner_hook, "may-replicate getkeys-api", 0, 0, 0, ""],
            ["rg.pydumpsessions", dump_sessions, "readonly", 0, 0, 0, ""],
            ["rg.innerregister", inner_register, "write", 0, 0, 0, ""],
            ["rg.pystats", py_stats, "readonly", 0, 0, 0, ""],
            ["rg.pyprofile", py_profile, "readonly", 0, 0, 0, ""],
            ["rg.pydumpreqs", py_dump_reqs, "readonly", 0, 0, 0, ""],
            ["rg.pyexportreq", py_export_req, "readonly", 0, 0, 0, ""],
            ["rg.pyimportreq", py_import_req, "readonly", 0, 0, 0, ""],
            ["rg.innerunregister", inner_unregister, "write", 0, 0, 0, ""],
            ["rg.innerstreampos", inner_stream_pos, "write", 0, 0, 0, ""],
            ["rg.pyexecuteremote", py_execute_remote, "readonly", 0, 0, 0, ""],
            ["rg.pyfreeinterpreter", py_free_interpreter, "readonly", 0, 0, 0, ""],
            ["rg.dumpplugins", dump_plugins, "readonly", 0, 0, 0, ""],
            ["rg.infocluster", info_cluster, "readonly", 0, 0, 0, ""],
            ["rg.refreshcluster", refresh_cluster, "readonly", 0, 0, 0, ""],
            ["rg.hello", hello, "readonly", 0, 0, 0, ""],
            ["rg.innermsgcommand", inner_msg_command, "readonly", 0, 0, 0, ""],
            ["rg.networktest", network_test, "readonly", 0, 0, 0, ""],
        ],
        event_handlers: [
            [@GENERIC @STRING @LIST @SET @HASH @ZSET @EXPIRED @EVICTED @STREAM @MISSED: on_keyspace_event],
            [@STREAM: on_stream_event],
        ],
    }
}
