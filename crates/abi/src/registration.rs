//! What `register()` stages with the host, as named fields. On the wire a spec is a list of
//! `name, value` pairs (an argument encoding): `reader`, `mode`, optionally `desc`, then the
//! reader's own fields. Name lists (`eventTypes`, `keyTypes`, `commands`) are comma-joined;
//! an absent list means "all", an empty value means "none".

use std::fmt;

/// The longest interval a script may ask for, in seconds (`registerTE`'s period, a
/// StreamReader's `onFailedRetryInterval`; its `duration` may be this many seconds in ms):
/// 2^31 - 1, about 68 years. Anything longer cannot be meant, and every interval up to it
/// fits in a deadline (`Instant + Duration`) on every platform.
pub const MAX_INTERVAL_SECS: u64 = i32::MAX as u64;

/// A registration as a script staged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationSpec {
    /// `async`, `async_local` or `sync`.
    pub mode: String,
    /// `desc=`, if given.
    pub desc: Option<String>,
    /// What it reacts to.
    pub reader: ReaderSpec,
}

/// The reader-specific part of a [`RegistrationSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderSpec {
    /// `KeysReader`: keyspace events.
    Keys {
        /// Key prefix (`*` = all, `p*` = prefix, else the exact key).
        prefix: String,
        /// Events to react to (None: all).
        event_types: Option<Vec<String>>,
        /// Key types to react to (None: all).
        key_types: Option<Vec<String>>,
        /// Whether records carry the key's value.
        read_value: bool,
        /// `commands=`: only events these commands cause (the client waits).
        commands: Option<Vec<String>>,
    },
    /// `CommandReader`: `trigger=` (RG.TRIGGER) or `hook=` (a command it replaces).
    Command {
        /// `trigger=`.
        trigger: Option<String>,
        /// `hook=` (lower case).
        hook: Option<String>,
        /// `keyprefix=` of a hook.
        key_prefix: Option<String>,
        /// `inorder=True`.
        in_order: bool,
    },
    /// `StreamReader`: entries added to streams.
    Stream {
        /// Stream key prefix.
        prefix: String,
        /// Entries per batch.
        batch: u64,
        /// Longest wait for a batch to fill, in ms.
        duration_ms: u64,
        /// `trimStream`: delete processed entries.
        trim: bool,
        /// `onFailedPolicy`: `continue`, `abort` or `retry`.
        on_failed: String,
        /// `onFailedRetryInterval`, in seconds.
        retry_secs: u64,
    },
}

/// Why a staged spec is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecError {
    /// The fields are not `name, value` pairs.
    OddFields,
    /// A name the reader does not have.
    Unknown(String),
    /// A required field is absent.
    Missing(&'static str),
    /// A field's value is not valid.
    Invalid(&'static str),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::OddFields => write!(f, "registration fields must be name/value pairs"),
            SpecError::Unknown(name) => write!(f, "unknown registration field {name:?}"),
            SpecError::Missing(name) => write!(f, "registration field {name} is missing"),
            SpecError::Invalid(name) => write!(f, "registration field {name} is not valid"),
        }
    }
}

impl std::error::Error for SpecError {}

/// `"a,b"` -> [a, b]; `""` -> an empty list.
fn split_names(value: &str) -> Vec<String> {
    value.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

struct Fields<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    used: Vec<bool>,
}

impl<'a> Fields<'a> {
    fn take(&mut self, name: &'static str) -> Option<&'a str> {
        let i = self.pairs.iter().position(|(n, _)| *n == name)?;
        self.used[i] = true;
        Some(self.pairs[i].1)
    }

    fn required(&mut self, name: &'static str) -> Result<&'a str, SpecError> {
        self.take(name).ok_or(SpecError::Missing(name))
    }

    fn flag(&mut self, name: &'static str) -> Result<bool, SpecError> {
        match self.take(name) {
            None | Some("0") => Ok(false),
            Some("1") => Ok(true),
            Some(_) => Err(SpecError::Invalid(name)),
        }
    }

    fn number(&mut self, name: &'static str) -> Result<u64, SpecError> {
        self.required(name)?.parse().map_err(|_| SpecError::Invalid(name))
    }

    /// A number of at most `max`.
    fn at_most(&mut self, name: &'static str, max: u64) -> Result<u64, SpecError> {
        self.number(name).and_then(|n| if n <= max { Ok(n) } else { Err(SpecError::Invalid(name)) })
    }

    fn names(&mut self, name: &'static str) -> Option<Vec<String>> {
        self.take(name).map(split_names)
    }

    fn text(&mut self, name: &'static str) -> Option<String> {
        self.take(name).map(str::to_string)
    }

    fn finish(self) -> Result<(), SpecError> {
        match self.used.iter().position(|used| !used) {
            Some(i) => Err(SpecError::Unknown(self.pairs[i].0.to_string())),
            None => Ok(()),
        }
    }
}

impl RegistrationSpec {
    /// The reader's name, as RedisGears shows it.
    pub fn reader_name(&self) -> &'static str {
        match self.reader {
            ReaderSpec::Keys { .. } => "KeysReader",
            ReaderSpec::Command { .. } => "CommandReader",
            ReaderSpec::Stream { .. } => "StreamReader",
        }
    }

    /// Reads a spec from its `name, value` pairs (the guest is not trusted).
    pub fn decode(fields: &[&[u8]]) -> Result<RegistrationSpec, SpecError> {
        if !fields.len().is_multiple_of(2) {
            return Err(SpecError::OddFields);
        }
        fn text(b: &[u8]) -> Result<&str, SpecError> {
            std::str::from_utf8(b).map_err(|_| SpecError::Invalid("utf-8"))
        }
        let pairs = fields.chunks(2).map(|p| Ok((text(p[0])?, text(p[1])?))).collect::<Result<Vec<_>, _>>()?;
        let mut f = Fields { used: vec![false; pairs.len()], pairs };
        let reader_name = f.required("reader")?;
        let mode = f.required("mode")?.to_string();
        if !matches!(mode.as_str(), "async" | "async_local" | "sync") {
            return Err(SpecError::Invalid("mode"));
        }
        let desc = f.text("desc");
        let reader = match reader_name {
            "KeysReader" => ReaderSpec::Keys {
                prefix: f.required("prefix")?.to_string(),
                event_types: f.names("eventTypes"),
                key_types: f.names("keyTypes"),
                read_value: f.flag("readValue")?,
                commands: f.names("commands"),
            },
            "CommandReader" => {
                let spec = ReaderSpec::Command {
                    trigger: f.text("trigger"),
                    hook: f.text("hook"),
                    key_prefix: f.text("keyprefix"),
                    in_order: f.flag("inorder")?,
                };
                match &spec {
                    ReaderSpec::Command { trigger: None, hook: None, .. } => return Err(SpecError::Missing("trigger")),
                    ReaderSpec::Command { trigger: Some(_), hook: Some(_), .. } => {
                        return Err(SpecError::Invalid("hook"))
                    }
                    _ => spec,
                }
            }
            "StreamReader" => ReaderSpec::Stream {
                prefix: f.required("prefix")?.to_string(),
                batch: f.number("batch")?,
                duration_ms: f.at_most("duration", MAX_INTERVAL_SECS * 1000)?,
                trim: f.flag("trimStream")?,
                on_failed: match f.required("onFailedPolicy")? {
                    p @ ("continue" | "abort" | "retry") => p.to_string(),
                    _ => return Err(SpecError::Invalid("onFailedPolicy")),
                },
                retry_secs: f.at_most("onFailedRetryInterval", MAX_INTERVAL_SECS)?,
            },
            _ => return Err(SpecError::Invalid("reader")),
        };
        f.finish()?;
        Ok(RegistrationSpec { mode, desc, reader })
    }

    /// Its `name, value` pairs (the inverse of [`RegistrationSpec::decode`]).
    pub fn encode(&self) -> Vec<String> {
        let mut out: Vec<(&str, String)> = vec![("reader", self.reader_name().into()), ("mode", self.mode.clone())];
        if let Some(desc) = &self.desc {
            out.push(("desc", desc.clone()));
        }
        let flag = |b: bool| if b { "1" } else { "0" }.to_string();
        match &self.reader {
            ReaderSpec::Keys { prefix, event_types, key_types, read_value, commands } => {
                out.push(("prefix", prefix.clone()));
                for (name, list) in [("eventTypes", event_types), ("keyTypes", key_types), ("commands", commands)] {
                    if let Some(list) = list {
                        out.push((name, list.join(",")));
                    }
                }
                out.push(("readValue", flag(*read_value)));
            }
            ReaderSpec::Command { trigger, hook, key_prefix, in_order } => {
                for (name, value) in [("trigger", trigger), ("hook", hook), ("keyprefix", key_prefix)] {
                    if let Some(value) = value {
                        out.push((name, value.clone()));
                    }
                }
                out.push(("inorder", flag(*in_order)));
            }
            ReaderSpec::Stream { prefix, batch, duration_ms, trim, on_failed, retry_secs } => {
                out.push(("prefix", prefix.clone()));
                out.push(("batch", batch.to_string()));
                out.push(("duration", duration_ms.to_string()));
                out.push(("trimStream", flag(*trim)));
                out.push(("onFailedPolicy", on_failed.clone()));
                out.push(("onFailedRetryInterval", retry_secs.to_string()));
            }
        }
        out.into_iter().flat_map(|(n, v)| [n.to_string(), v]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(fields: &[&str]) -> Result<RegistrationSpec, SpecError> {
        let bytes: Vec<&[u8]> = fields.iter().map(|f| f.as_bytes()).collect();
        RegistrationSpec::decode(&bytes)
    }

    #[test]
    fn keys_spec_by_name_in_any_order() {
        let spec =
            decode(&["mode", "sync", "reader", "KeysReader", "eventTypes", "set,hset", "prefix", "g:*"]).unwrap();
        assert_eq!(
            spec,
            RegistrationSpec {
                mode: "sync".into(),
                desc: None,
                reader: ReaderSpec::Keys {
                    prefix: "g:*".into(),
                    event_types: Some(vec!["set".into(), "hset".into()]),
                    key_types: None,
                    read_value: false,
                    commands: None,
                },
            }
        );
        let bytes: Vec<Vec<u8>> = spec.encode().into_iter().map(String::into_bytes).collect();
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        assert_eq!(RegistrationSpec::decode(&refs).unwrap(), spec);
    }

    #[test]
    fn an_empty_list_is_none_of_them() {
        let spec = decode(&["reader", "KeysReader", "mode", "async", "prefix", "*", "keyTypes", ""]).unwrap();
        assert!(matches!(spec.reader, ReaderSpec::Keys { key_types: Some(ref t), .. } if t.is_empty()));
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(decode(&["reader"]), Err(SpecError::OddFields));
        assert_eq!(decode(&["reader", "StreamReader", "mode", "async"]), Err(SpecError::Missing("prefix")));
        assert_eq!(decode(&["reader", "CommandReader", "mode", "async"]), Err(SpecError::Missing("trigger")));
        assert_eq!(
            decode(&["reader", "CommandReader", "mode", "async", "trigger", "t", "bogus", "1"]),
            Err(SpecError::Unknown("bogus".into()))
        );
        assert_eq!(decode(&["reader", "KeysReader", "mode", "later", "prefix", "*"]), Err(SpecError::Invalid("mode")));
        let stream = ["reader", "StreamReader", "mode", "async", "prefix", "s", "batch", "x"];
        assert_eq!(decode(&stream), Err(SpecError::Invalid("batch")));
    }

    #[test]
    fn intervals_past_the_maximum_are_refused() {
        let stream = |duration: &str, retry: &str| {
            let mut fields = vec!["reader", "StreamReader", "mode", "async", "prefix", "s", "batch", "1"];
            fields.extend(["trimStream", "1", "onFailedPolicy", "retry", "duration"]);
            fields.extend([duration, "onFailedRetryInterval", retry]);
            decode(&fields)
        };
        let (max_ms, max_s) = ((MAX_INTERVAL_SECS * 1000).to_string(), MAX_INTERVAL_SECS.to_string());
        assert!(stream(&max_ms, &max_s).is_ok());
        let past = (MAX_INTERVAL_SECS + 1).to_string();
        assert_eq!(stream("0", &past), Err(SpecError::Invalid("onFailedRetryInterval")));
        assert_eq!(stream("0", "10000000000000000000"), Err(SpecError::Invalid("onFailedRetryInterval")));
        assert_eq!(stream(&(MAX_INTERVAL_SECS * 1000 + 1).to_string(), "1"), Err(SpecError::Invalid("duration")));
    }
}
