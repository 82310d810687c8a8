//! RedisGears configuration: module arguments, RG.CONFIGGET and RG.CONFIGSET (spec §1.6),
//! plus the sandbox's own limits. Pure logic: no Redis calls here.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Str(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// Who may change a key, and how a refusal is worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settable {
    Runtime,
    /// Core key fixed at load: "Config value X not modifiable at runtime".
    LoadOnly,
    /// Python-plugin key fixed at load: "X is not configurable at runtime".
    PythonLoadOnly,
}

struct Key {
    name: &'static str,
    default: fn() -> Value,
    settable: Settable,
    /// Smallest accepted integer value (`None` for string keys).
    min: Option<i64>,
}

const fn int_key(name: &'static str, default: fn() -> Value, settable: Settable, min: i64) -> Key {
    Key { name, default, settable, min: Some(min) }
}

const fn str_key(name: &'static str, default: fn() -> Value, settable: Settable) -> Key {
    Key { name, default, settable, min: None }
}

/// Built-in keys, with their defaults. Names are matched case-sensitively by CONFIGGET and
/// case-insensitively by CONFIGSET and module arguments, as RedisGears does.
const KEYS: &[Key] = &[
    int_key(MAX_EXECUTIONS, || Value::Int(1000), Settable::Runtime, 1),
    int_key(MAX_EXECUTIONS_PER_REGISTRATION, || Value::Int(100), Settable::Runtime, 0),
    int_key("ProfileExecutions", || Value::Int(0), Settable::Runtime, 0),
    int_key("PythonAttemptTraceback", || Value::Int(1), Settable::Runtime, 0),
    int_key("ExecutionThreads", || Value::Int(3), Settable::LoadOnly, 1),
    int_key("ExecutionMaxIdleTime", || Value::Int(5000), Settable::Runtime, 0),
    int_key("PythonInstallReqMaxIdleTime", || Value::Int(30000), Settable::Runtime, 0),
    int_key("SendMsgRetries", || Value::Int(3), Settable::Runtime, 0),
    int_key("CreateVenv", || Value::Int(0), Settable::PythonLoadOnly, 0),
    int_key("DownloadDeps", || Value::Int(0), Settable::PythonLoadOnly, 0),
    int_key("ForceDownloadDepsOnEnterprise", || Value::Int(0), Settable::PythonLoadOnly, 0),
    int_key("OverridePythonAllocators", || Value::Int(1), Settable::PythonLoadOnly, 0),
    str_key("DependenciesUrl", || Value::Str(String::new()), Settable::PythonLoadOnly),
    str_key("DependenciesSha256", || Value::Str(String::new()), Settable::PythonLoadOnly),
    str_key("PythonInstallationDir", || Value::Str("/var/opt/redislabs/modules/rg".into()), Settable::PythonLoadOnly),
    // The sandbox's own limits.
    int_key(SANDBOX_TIME_LIMIT_MS, || Value::Int(5000), Settable::Runtime, 1),
    int_key(SANDBOX_MEMORY_MB, || Value::Int(256), Settable::Runtime, 32),
    int_key(MAIN_THREAD_TIME_LIMIT_MS, || Value::Int(500), Settable::Runtime, 1),
    int_key(MAX_SESSIONS, || Value::Int(1024), Settable::LoadOnly, 1),
    int_key(MAX_REPLY_MB, || Value::Int(128), Settable::Runtime, 1),
    int_key(MAX_PENDING_EVENTS, || Value::Int(1000), Settable::Runtime, 1),
    str_key(GUEST_DIR, || Value::Str(String::new()), Settable::LoadOnly),
    str_key(WHEELHOUSE_DIR, || Value::Str(String::new()), Settable::LoadOnly),
    // Whose ACL a session's execute() runs under: `creator` (the client's user that sent
    // RG.PYEXECUTE) or `module` (unchecked, as RedisGears 1.2).
    str_key(RUN_SCRIPTS_AS, || Value::Str("creator".into()), Settable::LoadOnly),
];

pub const RUN_SCRIPTS_AS: &str = "RunScriptsAs";

pub const MAX_EXECUTIONS: &str = "MaxExecutions";
pub const MAX_PENDING_EVENTS: &str = "MaxPendingEvents";
pub const MAX_EXECUTIONS_PER_REGISTRATION: &str = "MaxExecutionsPerRegistration";
pub const SANDBOX_TIME_LIMIT_MS: &str = "SandboxTimeLimitMS";
pub const SANDBOX_MEMORY_MB: &str = "SandboxMemoryMB";
pub const MAIN_THREAD_TIME_LIMIT_MS: &str = "SandboxMainThreadTimeLimitMS";
pub const MAX_SESSIONS: &str = "MaxSessions";
pub const MAX_REPLY_MB: &str = "SandboxMaxReplyMB";
pub const EXECUTION_THREADS: &str = "ExecutionThreads";
pub const GUEST_DIR: &str = "GuestDir";
pub const WHEELHOUSE_DIR: &str = "WheelhouseDir";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("Unsupported config parameter: {0}")]
    Unsupported(String),
    #[error("Config value {0} not modifiable at runtime")]
    NotModifiable(String),
    #[error("{0} is not configurable at runtime")]
    PythonNotConfigurable(String),
    #[error("Failed setting config value {0}")]
    BadValue(String),
    #[error("module arguments must be <key> <value> pairs; '{0}' has no value")]
    MissingValue(String),
}

/// What a successful set did, for the CONFIGSET reply.
#[derive(Debug, PartialEq, Eq)]
pub enum SetOutcome {
    Builtin,
    Extra,
}

#[derive(Debug, Clone)]
pub struct Config {
    values: Vec<Value>,
    extra: Vec<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Config { values: KEYS.iter().map(|k| (k.default)()).collect(), extra: Vec::new() }
    }
}

fn parse_value(key: &Key, raw: &str) -> Option<Value> {
    match key.min {
        None => Some(Value::Str(raw.to_string())),
        Some(min) => raw.trim().parse::<i64>().ok().filter(|v| *v >= min).map(Value::Int),
    }
}

impl Config {
    /// Parses `loadmodule ... <Key> <Value> ...`. `Plugin <path>` is accepted and ignored.
    pub fn from_module_args<S: AsRef<str>>(args: &[S]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut it = args.iter().map(AsRef::as_ref);
        while let Some(key) = it.next() {
            let value = it.next().ok_or_else(|| ConfigError::MissingValue(key.to_string()))?;
            if key.eq_ignore_ascii_case("Plugin") {
                continue;
            }
            config.set(key, value, true)?;
        }
        Ok(config)
    }

    /// RG.CONFIGGET: built-in names are case-sensitive; extra keys are returned as strings.
    pub fn get(&self, name: &str) -> Result<Value, ConfigError> {
        if let Some(i) = KEYS.iter().position(|k| k.name == name) {
            return Ok(self.values[i].clone());
        }
        self.extra
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| Value::Str(v.clone()))
            .ok_or_else(|| ConfigError::Unsupported(name.to_string()))
    }

    /// An integer key's value (built-in keys only; panics on a typo, which tests catch).
    pub fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Ok(Value::Int(i)) => i,
            other => panic!("{name} is not an integer config key: {other:?}"),
        }
    }

    /// A value for a script's `configGet`: built-ins (any case) or extra keys, as text.
    pub fn lookup_for_script(&self, name: &str) -> Option<String> {
        if let Some(i) = KEYS.iter().position(|k| k.name.eq_ignore_ascii_case(name)) {
            return Some(self.values[i].to_string());
        }
        self.extra.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// RG.CONFIGSET and module arguments (`at_load` lifts the runtime restriction).
    pub fn set(&mut self, name: &str, raw: &str, at_load: bool) -> Result<SetOutcome, ConfigError> {
        let Some(i) = KEYS.iter().position(|k| k.name.eq_ignore_ascii_case(name)) else {
            match self.extra.iter_mut().find(|(k, _)| k == name) {
                Some((_, v)) => *v = raw.to_string(),
                None => self.extra.push((name.to_string(), raw.to_string())),
            }
            return Ok(SetOutcome::Extra);
        };
        let key = &KEYS[i];
        if !at_load {
            match key.settable {
                Settable::Runtime => {}
                Settable::LoadOnly => return Err(ConfigError::NotModifiable(key.name.into())),
                Settable::PythonLoadOnly => return Err(ConfigError::PythonNotConfigurable(key.name.into())),
            }
        }
        self.values[i] = parse_value(key, raw).ok_or_else(|| ConfigError::BadValue(key.name.into()))?;
        Ok(SetOutcome::Builtin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::default();
        assert_eq!(c.get("MaxExecutions"), Ok(Value::Int(1000)));
        assert_eq!(c.get("ExecutionThreads"), Ok(Value::Int(3)));
        assert_eq!(c.int(SANDBOX_TIME_LIMIT_MS), 5000);
        assert_eq!(c.int(SANDBOX_MEMORY_MB), 256);
    }

    #[test]
    fn module_args_are_case_insensitive_ignore_plugin_and_keep_extras() {
        let c =
            Config::from_module_args(&["executionThreads", "1", "Plugin", "/x.so", "TestConfig", "TestVal"]).unwrap();
        assert_eq!(c.int(EXECUTION_THREADS), 1);
        assert_eq!(c.get("TestConfig"), Ok(Value::Str("TestVal".into())));
        assert_eq!(c.lookup_for_script("TestConfig").as_deref(), Some("TestVal"));
        assert_eq!(c.lookup_for_script("maxexecutions").as_deref(), Some("1000"));
    }

    #[test]
    fn module_args_refuse_a_dangling_key_and_bad_numbers() {
        assert_eq!(
            Config::from_module_args(&["MaxExecutions"]).unwrap_err(),
            ConfigError::MissingValue("MaxExecutions".into())
        );
        assert_eq!(
            Config::from_module_args(&["MaxExecutions", "many"]).unwrap_err(),
            ConfigError::BadValue("MaxExecutions".into())
        );
        assert!(Config::from_module_args(&["SandboxMemoryMB", "1"]).is_err());
    }

    #[test]
    fn configget_is_case_sensitive_for_builtins() {
        let c = Config::default();
        assert_eq!(c.get("maxexecutions"), Err(ConfigError::Unsupported("maxexecutions".into())));
        assert_eq!(ConfigError::Unsupported("x".into()).to_string(), "Unsupported config parameter: x");
    }

    #[test]
    fn configset_rules() {
        let mut c = Config::default();
        assert_eq!(c.set("maxexecutions", "10", false), Ok(SetOutcome::Builtin));
        assert_eq!(c.int("MaxExecutions"), 10);
        assert_eq!(c.set("Foo", "bar", false), Ok(SetOutcome::Extra));
        assert_eq!(c.set("Foo", "baz", false), Ok(SetOutcome::Extra));
        assert_eq!(c.get("Foo"), Ok(Value::Str("baz".into())));
        assert_eq!(
            c.set("ExecutionThreads", "2", false).unwrap_err().to_string(),
            "Config value ExecutionThreads not modifiable at runtime"
        );
        assert_eq!(
            c.set("CreateVenv", "1", false).unwrap_err().to_string(),
            "CreateVenv is not configurable at runtime"
        );
        assert_eq!(
            c.set("MaxExecutions", "x", false).unwrap_err().to_string(),
            "Failed setting config value MaxExecutions"
        );
    }
}
