//! RedisGears configuration: module arguments, RG.CONFIGGET and RG.CONFIGSET (spec §1.6),
//! plus the sandbox's own limits. Pure logic: no Redis calls here.
//!
//! RedisGears 1.2 has three kinds of keys, and this module keeps them apart because each
//! answers differently (src/config.c and plugins/python/redisgears_python.c):
//! - core keys (`Gears_ConfigVals`): CONFIGSET matches them with strcasecmp and answers `OK`;
//! - Python-plugin keys (`configDefs`): not core keys, so CONFIGSET handles them as extra
//!   keys, after the plugin's `Python_BeforeConfigChange` hook (strcmp) checked the value;
//!   the value is then also saved in the extra dictionary, and the answer is
//!   `OK - value was saved in extra config dictionary`;
//! - extra keys: any other name, saved in the extra dictionary.
//!
//! The sandbox's own keys behave as core keys. A script's `configGet()` sees the extra
//! dictionary only, as `RG_GetConfig` (`GearsConfig_GetExtraConfigVals`) does.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Str(String),
    /// `Plugin`: every plugin path given at load.
    List(Vec<String>),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => f.write_str(s),
            Value::List(l) => f.write_str(&l.join(",")),
        }
    }
}

/// How a key's value is parsed and who may change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A RedisGears core key, or one of the sandbox's: CONFIGSET answers `OK`.
    Core,
    /// A Python-plugin key: set through the extra dictionary.
    Python,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    /// An integer (RedisModule_StringToLongLong) of at least this much.
    Int(i64),
    /// The plugin's `PythonConfigType_Bool`: any integer, stored as `value != 0`.
    Bool,
    Str,
}

struct Key {
    name: &'static str,
    default: fn() -> Value,
    kind: Kind,
    /// `configurableAtRunTime` / `configurableAtRuntime`.
    runtime: bool,
    parse: Parse,
}

const fn core(name: &'static str, default: fn() -> Value, runtime: bool, parse: Parse) -> Key {
    Key { name, default, kind: Kind::Core, runtime, parse }
}

const fn python(name: &'static str, default: fn() -> Value, runtime: bool, parse: Parse) -> Key {
    Key { name, default, kind: Kind::Python, runtime, parse }
}

const ANY: Parse = Parse::Int(i64::MIN);

/// The keys, with their defaults.
const KEYS: &[Key] = &[
    // RedisGears core (config.c `Gears_ConfigVals`; MaxExecutions, MaxExecutionsPerRegistration
    // and ProfileExecutions take any integer, ExecutionThreads and ExecutionMaxIdleTime `n > 0`,
    // SendMsgRetries `n >= 0`). `Plugin` is handled apart (a list).
    core(MAX_EXECUTIONS, || Value::Int(1000), true, ANY),
    core(MAX_EXECUTIONS_PER_REGISTRATION, || Value::Int(100), true, ANY),
    core(PROFILE_EXECUTIONS, || Value::Int(0), true, ANY),
    core(EXECUTION_THREADS, || Value::Int(3), false, Parse::Int(1)),
    core("ExecutionMaxIdleTime", || Value::Int(5000), true, Parse::Int(1)),
    core("SendMsgRetries", || Value::Int(3), true, Parse::Int(0)),
    // The Python plugin (redisgears_python.c `configDefs`).
    python("CreateVenv", || Value::Int(0), false, Parse::Bool),
    python("DownloadDeps", || Value::Int(0), false, Parse::Bool),
    // sic: RedisGears spells it so (`ForeceDownloadDepsOnEnterpriseConfigName`).
    python("ForeceDownloadDepsOnEnterprise", || Value::Int(0), false, Parse::Bool),
    python(PYTHON_ATTEMPT_TRACEBACK, || Value::Int(1), true, Parse::Bool),
    python("OverridePythonAllocators", || Value::Int(1), false, Parse::Bool),
    // CONFIG_FLAG_GT_ZERO
    python("PythonInstallReqMaxIdleTime", || Value::Int(30000), true, Parse::Int(1)),
    python("DependenciesUrl", || Value::Str(String::new()), false, Parse::Str),
    python("DependenciesSha256", || Value::Str(String::new()), false, Parse::Str),
    python("PythonInstallationDir", || Value::Str("/var/opt/redislabs/modules/rg".into()), false, Parse::Str),
    // The sandbox's own limits.
    core(SANDBOX_TIME_LIMIT_MS, || Value::Int(5000), true, Parse::Int(1)),
    core(SANDBOX_MEMORY_MB, || Value::Int(256), true, Parse::Int(32)),
    core(MAIN_THREAD_TIME_LIMIT_MS, || Value::Int(500), true, Parse::Int(1)),
    core(MAX_SESSIONS, || Value::Int(1024), false, Parse::Int(1)),
    core(MAX_REPLY_MB, || Value::Int(128), true, Parse::Int(1)),
    core(MAX_PENDING_EVENTS, || Value::Int(1000), true, Parse::Int(1)),
    core(GUEST_DIR, || Value::Str(String::new()), false, Parse::Str),
    core(WHEELHOUSE_DIR, || Value::Str(String::new()), false, Parse::Str),
    // Whose ACL a session's execute() runs under: `creator` (the client's user that sent
    // RG.PYEXECUTE) or `module` (unchecked, as RedisGears 1.2).
    core(RUN_SCRIPTS_AS, || Value::Str("creator".into()), false, Parse::Str),
];

/// RedisGears' `Plugin` core key: the plugin paths given at load (ignored here: the Python
/// engine is built in).
pub const PLUGIN: &str = "Plugin";
pub const RUN_SCRIPTS_AS: &str = "RunScriptsAs";

pub const MAX_EXECUTIONS: &str = "MaxExecutions";
pub const EXECUTION_MAX_IDLE_TIME: &str = "ExecutionMaxIdleTime";
pub const PYTHON_INSTALL_REQ_MAX_IDLE_TIME: &str = "PythonInstallReqMaxIdleTime";
pub const MAX_PENDING_EVENTS: &str = "MaxPendingEvents";
pub const MAX_EXECUTIONS_PER_REGISTRATION: &str = "MaxExecutionsPerRegistration";
pub const PROFILE_EXECUTIONS: &str = "ProfileExecutions";
pub const PYTHON_ATTEMPT_TRACEBACK: &str = "PythonAttemptTraceback";
pub const SANDBOX_TIME_LIMIT_MS: &str = "SandboxTimeLimitMS";
pub const SANDBOX_MEMORY_MB: &str = "SandboxMemoryMB";
pub const MAIN_THREAD_TIME_LIMIT_MS: &str = "SandboxMainThreadTimeLimitMS";
pub const MAX_SESSIONS: &str = "MaxSessions";
pub const MAX_REPLY_MB: &str = "SandboxMaxReplyMB";
pub const EXECUTION_THREADS: &str = "ExecutionThreads";
pub const GUEST_DIR: &str = "GuestDir";
pub const WHEELHOUSE_DIR: &str = "WheelhouseDir";

/// Names the guest runtime reads for itself through `configGet`'s host request: a built-in
/// value under this prefix (`wasmgears.ProfileExecutions`), since the script-facing
/// `configGet` only sees the extra dictionary.
pub const INTERNAL_PREFIX: &str = "wasmgears.";

/// The texts are RedisGears': `config_error` prefixes `(error) ` to its own; the Python
/// plugin's hook words its errors itself.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("(error) Unsupported config parameter: {0}")]
    Unsupported(String),
    #[error("(error) Config value {0} not modifiable at runtime")]
    NotModifiable(String),
    #[error("(error) {0} is not configurable at runtime")]
    PythonNotConfigurable(String),
    #[error("(error) Failed setting config value {0}")]
    BadValue(String),
    #[error("Failed setting config value for key '{0}' with value '{1}'")]
    PythonBadValue(String, String),
    #[error("(error) Value was not given to {0}")]
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
    plugins: Vec<String>,
    extra: Vec<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Config { values: KEYS.iter().map(|k| (k.default)()).collect(), plugins: Vec::new(), extra: Vec::new() }
    }
}

/// Redis' `string2ll` (RedisModule_StringToLongLong): an optional `-`, no leading zeros, no
/// spaces or `+`.
fn string_to_long_long(raw: &str) -> Option<i64> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let canonical = raw == "0" || (!digits.is_empty() && !digits.starts_with('0'));
    if !canonical || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>().ok()
}

fn parse_value(key: &Key, raw: &str) -> Option<Value> {
    match key.parse {
        Parse::Str => Some(Value::Str(raw.to_string())),
        Parse::Bool => string_to_long_long(raw).map(|v| Value::Int((v != 0) as i64)),
        Parse::Int(min) => string_to_long_long(raw).filter(|v| *v >= min).map(Value::Int),
    }
}

impl Config {
    /// Parses `loadmodule ... <Key> <Value> ...` the way RedisGears' first initialisation
    /// does (`GearsConfig_Set_with_iterator(.., true)`), failing where it fails.
    pub fn from_module_args<S: AsRef<str>>(args: &[S]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut it = args.iter().map(AsRef::as_ref);
        while let Some(key) = it.next() {
            config.set_one(key, it.next(), true)?;
        }
        Ok(config)
    }

    fn save_extra(&mut self, name: &str, raw: &str) {
        match self.extra.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = raw.to_string(),
            None => self.extra.push((name.to_string(), raw.to_string())),
        }
    }

    /// RG.CONFIGGET: every key's exact name (strcmp: core keys, then the plugin's), then the
    /// extra dictionary.
    pub fn get(&self, name: &str) -> Result<Value, ConfigError> {
        if name == PLUGIN {
            return Ok(Value::List(self.plugins.clone()));
        }
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

    /// A value for a script's `configGet`: the extra dictionary only, as RedisGears'
    /// `RG_GetConfig` (`configGet('MaxExecutions')` is None). The guest runtime's own reads
    /// use `wasmgears.<Key>` for a built-in value.
    pub fn lookup_for_script(&self, name: &str) -> Option<String> {
        if let Some(key) = name.strip_prefix(INTERNAL_PREFIX) {
            if let Some(i) = KEYS.iter().position(|k| k.name == key) {
                return Some(self.values[i].to_string());
            }
        }
        self.extra.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// One RG.CONFIGSET pair, whose value may be missing (an odd argument count).
    pub fn set_pair(&mut self, name: &str, raw: Option<&str>) -> Result<SetOutcome, ConfigError> {
        self.set_one(name, raw, false)
    }

    /// A set with a value (`at_load` lifts the runtime restriction).
    #[cfg(test)]
    pub fn set(&mut self, name: &str, raw: &str, at_load: bool) -> Result<SetOutcome, ConfigError> {
        self.set_one(name, Some(raw), at_load)
    }

    fn set_one(&mut self, name: &str, raw: Option<&str>, at_load: bool) -> Result<SetOutcome, ConfigError> {
        // Core keys: strcasecmp; a refusal names the key as it was typed.
        if name.eq_ignore_ascii_case(PLUGIN) {
            if !at_load {
                return Err(ConfigError::NotModifiable(name.into()));
            }
            let raw = raw.ok_or_else(|| ConfigError::BadValue(name.into()))?;
            self.plugins.push(raw.to_string());
            return Ok(SetOutcome::Builtin);
        }
        if let Some(i) = KEYS.iter().position(|k| k.kind == Kind::Core && k.name.eq_ignore_ascii_case(name)) {
            let key = &KEYS[i];
            if !key.runtime && !at_load {
                return Err(ConfigError::NotModifiable(name.into()));
            }
            let value = raw.and_then(|raw| parse_value(key, raw)).ok_or_else(|| ConfigError::BadValue(name.into()))?;
            self.values[i] = value;
            return Ok(SetOutcome::Builtin);
        }
        // Everything else goes to the extra dictionary, after the plugin's check (strcmp).
        let raw = raw.ok_or_else(|| ConfigError::MissingValue(name.into()))?;
        if let Some(i) = KEYS.iter().position(|k| k.kind == Kind::Python && k.name == name) {
            let key = &KEYS[i];
            if !key.runtime && !at_load {
                return Err(ConfigError::PythonNotConfigurable(name.into()));
            }
            self.values[i] =
                parse_value(key, raw).ok_or_else(|| ConfigError::PythonBadValue(name.into(), raw.into()))?;
        }
        self.save_extra(name, raw);
        Ok(SetOutcome::Extra)
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
        assert_eq!(c.get("Plugin"), Ok(Value::List(vec![])));
        assert_eq!(c.int(SANDBOX_TIME_LIMIT_MS), 5000);
        assert_eq!(c.int(SANDBOX_MEMORY_MB), 256);
    }

    #[test]
    fn module_args_are_case_insensitive_keep_plugins_and_extras() {
        let c =
            Config::from_module_args(&["executionThreads", "1", "Plugin", "/x.so", "TestConfig", "TestVal"]).unwrap();
        assert_eq!(c.int(EXECUTION_THREADS), 1);
        assert_eq!(c.get("Plugin"), Ok(Value::List(vec!["/x.so".into()])));
        assert_eq!(c.get("TestConfig"), Ok(Value::Str("TestVal".into())));
        assert_eq!(c.lookup_for_script("TestConfig").as_deref(), Some("TestVal"));
    }

    #[test]
    fn module_args_refuse_a_dangling_key_and_bad_numbers() {
        assert_eq!(
            Config::from_module_args(&["NoSuchKey"]).unwrap_err(),
            ConfigError::MissingValue("NoSuchKey".into())
        );
        assert_eq!(
            Config::from_module_args(&["MaxExecutions"]).unwrap_err(),
            ConfigError::BadValue("MaxExecutions".into())
        );
        assert_eq!(
            Config::from_module_args(&["MaxExecutions", "many"]).unwrap_err(),
            ConfigError::BadValue("MaxExecutions".into())
        );
        assert!(Config::from_module_args(&["SandboxMemoryMB", "1"]).is_err());
        assert!(Config::from_module_args(&["PythonInstallReqMaxIdleTime", "0"]).is_err());
    }

    #[test]
    fn python_module_args_also_land_in_the_extra_dictionary() {
        let c = Config::from_module_args(&["PythonAttemptTraceback", "0", "CreateVenv", "1"]).unwrap();
        assert_eq!(c.get("PythonAttemptTraceback"), Ok(Value::Int(0)));
        assert_eq!(c.lookup_for_script("PythonAttemptTraceback").as_deref(), Some("0"));
        assert_eq!(c.get("CreateVenv"), Ok(Value::Int(1)));
    }

    #[test]
    fn configget_is_case_sensitive() {
        let c = Config::default();
        assert_eq!(c.get("maxexecutions"), Err(ConfigError::Unsupported("maxexecutions".into())));
        assert_eq!(ConfigError::Unsupported("x".into()).to_string(), "(error) Unsupported config parameter: x");
    }

    #[test]
    fn numbers_are_parsed_as_redis_does() {
        for bad in ["", "-", "+5", " 5", "5 ", "05", "-0", "1.5", "99999999999999999999"] {
            assert_eq!(string_to_long_long(bad), None, "{bad:?}");
        }
        assert_eq!(string_to_long_long("0"), Some(0));
        assert_eq!(string_to_long_long("-12"), Some(-12));
    }

    #[test]
    fn configset_core_keys() {
        let mut c = Config::default();
        assert_eq!(c.set("maxexecutions", "10", false), Ok(SetOutcome::Builtin));
        assert_eq!(c.int("MaxExecutions"), 10);
        assert_eq!(c.set("MaxExecutions", "0", false), Ok(SetOutcome::Builtin));
        assert_eq!(c.set("MaxExecutions", "-5", false), Ok(SetOutcome::Builtin));
        assert_eq!(
            c.set("executionThreads", "2", false).unwrap_err().to_string(),
            "(error) Config value executionThreads not modifiable at runtime"
        );
        assert_eq!(
            c.set("Plugin", "/x.so", false).unwrap_err().to_string(),
            "(error) Config value Plugin not modifiable at runtime"
        );
        assert_eq!(
            c.set("MaxExecutions", "x", false).unwrap_err().to_string(),
            "(error) Failed setting config value MaxExecutions"
        );
        assert_eq!(
            c.set_pair("ExecutionMaxIdleTime", None).unwrap_err().to_string(),
            "(error) Failed setting config value ExecutionMaxIdleTime"
        );
        assert_eq!(
            c.set("ExecutionMaxIdleTime", "0", false),
            Err(ConfigError::BadValue("ExecutionMaxIdleTime".into()))
        );
    }

    #[test]
    fn configset_extra_and_python_keys() {
        let mut c = Config::default();
        assert_eq!(c.set("Foo", "bar", false), Ok(SetOutcome::Extra));
        assert_eq!(c.set("Foo", "baz", false), Ok(SetOutcome::Extra));
        assert_eq!(c.get("Foo"), Ok(Value::Str("baz".into())));
        assert_eq!(c.lookup_for_script("Foo").as_deref(), Some("baz"));
        assert_eq!(c.set_pair("Foo", None).unwrap_err().to_string(), "(error) Value was not given to Foo");
        assert_eq!(
            c.set("CreateVenv", "1", false).unwrap_err().to_string(),
            "(error) CreateVenv is not configurable at runtime"
        );
        assert_eq!(
            c.set("PythonInstallReqMaxIdleTime", "0", false).unwrap_err().to_string(),
            "Failed setting config value for key 'PythonInstallReqMaxIdleTime' with value '0'"
        );
        assert_eq!(c.lookup_for_script("PythonAttemptTraceback"), None);
        assert_eq!(c.set("PythonAttemptTraceback", "5", false), Ok(SetOutcome::Extra));
        assert_eq!(c.get("PythonAttemptTraceback"), Ok(Value::Int(1)));
        assert_eq!(c.lookup_for_script("PythonAttemptTraceback").as_deref(), Some("5"));
        // The plugin matches its keys with strcmp: another spelling is just an extra key.
        assert_eq!(c.set("createvenv", "1", false), Ok(SetOutcome::Extra));
        assert_eq!(c.get("CreateVenv"), Ok(Value::Int(0)));
    }

    #[test]
    fn scripts_see_only_the_extra_dictionary() {
        let mut c = Config::default();
        assert_eq!(c.lookup_for_script("MaxExecutions"), None);
        assert_eq!(c.lookup_for_script("maxexecutions"), None);
        assert_eq!(c.lookup_for_script("wasmgears.MaxExecutions").as_deref(), Some("1000"));
        c.set("ProfileExecutions", "1", false).unwrap();
        assert_eq!(c.lookup_for_script("wasmgears.ProfileExecutions").as_deref(), Some("1"));
        assert_eq!(c.lookup_for_script("ProfileExecutions"), None);
    }
}
