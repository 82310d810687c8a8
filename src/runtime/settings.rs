//! The process-wide configuration, shared by commands and the sandbox.

use crate::runtime::config::{
    Config, ConfigError, SetOutcome, Value, MAIN_THREAD_TIME_LIMIT_MS, MAX_REPLY_MB, PROFILE_EXECUTIONS,
    SANDBOX_MEMORY_MB, SANDBOX_TIME_LIMIT_MS,
};
use std::sync::{Mutex, MutexGuard, OnceLock};
use wasmgears_sandbox::{limits, profiling};

/// The configuration. Lock order: level 3, taken alone (nothing is taken under it).
static SETTINGS: OnceLock<Mutex<Config>> = OnceLock::new();

fn settings() -> MutexGuard<'static, Config> {
    let lock = SETTINGS.get_or_init(|| Mutex::new(Config::default()));
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Pushes the limits and flags the sandbox reads on its hot paths.
fn apply_limits(config: &Config) {
    profiling::set_profile_executions(config.int(PROFILE_EXECUTIONS) != 0);
    limits::set_memory_cap_mb(config.int(SANDBOX_MEMORY_MB));
    limits::set_time_limit_ms(config.int(SANDBOX_TIME_LIMIT_MS));
    limits::set_main_thread_time_limit_ms(config.int(MAIN_THREAD_TIME_LIMIT_MS));
    limits::set_max_reply_mb(config.int(MAX_REPLY_MB));
}

/// Installs the configuration parsed from the module arguments.
pub fn install(config: Config) {
    apply_limits(&config);
    *settings() = config;
}

pub fn get(name: &str) -> Result<Value, ConfigError> {
    settings().get(name)
}

pub fn int(name: &str) -> i64 {
    settings().int(name)
}

/// One RG.CONFIGSET pair (`value` is missing when the pairs ran out).
pub fn set(name: &str, value: Option<&str>) -> Result<SetOutcome, ConfigError> {
    let mut config = settings();
    let outcome = config.set_pair(name, value)?;
    apply_limits(&config);
    Ok(outcome)
}

/// Whether sessions run their commands as the module (`RunScriptsAs module`, RedisGears 1.2)
/// rather than as the ACL user that created them.
pub fn scripts_run_as_module() -> bool {
    matches!(get(crate::runtime::config::RUN_SCRIPTS_AS), Ok(Value::Str(v)) if v.eq_ignore_ascii_case("module"))
}

/// Where `REQUIREMENTS` are looked up, if configured.
pub fn wheelhouse_dir() -> Option<std::path::PathBuf> {
    match get(crate::runtime::config::WHEELHOUSE_DIR) {
        Ok(Value::Str(dir)) if !dir.is_empty() => Some(dir.into()),
        _ => None,
    }
}

pub fn lookup_for_script(name: &str) -> Option<String> {
    settings().lookup_for_script(name)
}
