//! The gears domain's side of the lower layers' traits: what the sandbox asks of its host
//! (`HostServices`) and what sessions ask of the domain (`SessionHooks`). Installed at load.

use crate::gears::{command_hooks, executions, registrations, time_events};
use crate::redis::log;
use crate::runtime::settings;
use crate::session::{deferred, Session, SessionHooks};
use redis_module::Context;
use std::sync::Arc;
use wasmgears_abi::Reply;
use wasmgears_sandbox::{CommandCtx, HostServices, LogLevel, RedisCaller};

/// The one implementation of both traits; stateless (the state is in the registries).
pub struct GearsHost;

impl HostServices for GearsHost {
    fn new_execution_id(&self) -> String {
        executions::next_id()
    }

    fn new_registration_id(&self) -> String {
        registrations::next_id()
    }

    fn reserve_time_event(&self, seconds: u64, key: Option<Vec<u8>>, redis: &mut dyn RedisCaller) -> Option<u64> {
        time_events::reserve(seconds, key, redis)
    }

    fn call_next(&self, redis: &mut dyn RedisCaller, command: &CommandCtx, args: &[&[u8]]) -> Reply {
        let next = command.hook_id.as_deref().and_then(|below| {
            let name = String::from_utf8_lossy(args[0]).to_ascii_lowercase();
            registrations::find_hook_below(&name, args.get(1).copied(), below)
        });
        let Some(next) = next else { return redis.call(args) };
        let mut reply = None;
        redis.with_host_handle(&mut |handle| {
            if let Some(ctx) = handle.downcast_ref::<Context>() {
                reply = Some(command_hooks::run_next_hook(ctx, next.clone(), args));
            }
        });
        reply.unwrap_or_else(|| redis.call(args))
    }

    fn open_deferred(&self) -> u64 {
        deferred::results().open()
    }

    fn config(&self, name: &str) -> Option<String> {
        settings::lookup_for_script(name)
    }

    fn log(&self, level: LogLevel, line: &str) {
        match level {
            LogLevel::Debug => log::debug(line),
            LogLevel::Verbose => log::verbose(line),
            LogLevel::Notice => log::notice(line),
            LogLevel::Warning => log::warning(line),
        }
    }
}

impl SessionHooks for GearsHost {
    fn start_time_events(&self, session: &Arc<Session>, ids: Vec<u64>) {
        for id in ids {
            time_events::start(id, Arc::clone(session));
        }
    }
}
