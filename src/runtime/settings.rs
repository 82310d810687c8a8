//! The process-wide configuration, shared by commands and the sandbox.

use crate::runtime::config::{
    Config, ConfigError, SetOutcome, Value, MAIN_THREAD_TIME_LIMIT_MS, MAX_EXECUTIONS, MAX_EXECUTIONS_PER_REGISTRATION,
    MAX_PENDING_EVENTS, MAX_REPLY_MB, PROFILE_EXECUTIONS, SANDBOX_MEMORY_MB, SANDBOX_TIME_LIMIT_MS,
};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use wasmgears_sandbox::{limits, profiling};

/// The configuration. Lock order: level 3, taken alone (nothing is taken under it).
static SETTINGS: OnceLock<Mutex<Config>> = OnceLock::new();

fn settings() -> MutexGuard<'static, Config> {
    let lock = SETTINGS.get_or_init(|| {
        let config = Config::default();
        apply_limits(&config);
        Mutex::new(config)
    });
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Integer settings read on every event (a lock and a lookup by name otherwise), kept as
/// atomics that follow the configuration.
static HOT_INTS: [AtomicI64; HOT_KEYS.len()] = [const { AtomicI64::new(0) }; HOT_KEYS.len()];
const HOT_KEYS: [&str; 3] = [MAX_EXECUTIONS, MAX_EXECUTIONS_PER_REGISTRATION, MAX_PENDING_EVENTS];

/// Pushes the limits and flags the sandbox reads on its hot paths.
fn apply_limits(config: &Config) {
    for (slot, key) in HOT_INTS.iter().zip(HOT_KEYS) {
        slot.store(config.int(key), Ordering::Relaxed);
    }
    profiling::set_profile_executions(config.int(PROFILE_EXECUTIONS) != 0);
    limits::set_memory_cap_mb(config.int(SANDBOX_MEMORY_MB));
    limits::set_time_limit_ms(config.int(SANDBOX_TIME_LIMIT_MS));
    limits::set_main_thread_time_limit_ms(config.int(MAIN_THREAD_TIME_LIMIT_MS));
    limits::set_max_reply_mb(config.int(MAX_REPLY_MB));
}

/// Installs the configuration parsed from the module arguments.
pub fn install(config: Config) {
    let mut current = settings();
    *current = config;
    apply_limits(&current);
}

pub fn get(name: &str) -> Result<Value, ConfigError> {
    settings().get(name)
}

pub fn int(name: &str) -> i64 {
    match HOT_KEYS.iter().position(|k| *k == name) {
        Some(i) if SETTINGS.get().is_some() => HOT_INTS[i].load(Ordering::Relaxed),
        _ => settings().int(name),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_integers_follow_every_change() {
        let default = int(MAX_EXECUTIONS_PER_REGISTRATION);
        assert_eq!(default, settings().int(MAX_EXECUTIONS_PER_REGISTRATION));
        set(MAX_EXECUTIONS_PER_REGISTRATION, Some("7")).unwrap();
        assert_eq!(int(MAX_EXECUTIONS_PER_REGISTRATION), 7);
        set(MAX_EXECUTIONS_PER_REGISTRATION, Some(&default.to_string())).unwrap();
        assert_eq!(int(MAX_EXECUTIONS_PER_REGISTRATION), default);
        assert_eq!(int(MAX_PENDING_EVENTS), settings().int(MAX_PENDING_EVENTS));
    }
}
