//! What the sandbox needs from its host, as traits the host implements. The sandbox knows
//! nothing of Redis: a [`RedisCaller`] runs commands for one entry, [`HostServices`] hands out
//! ids, tokens, configuration and the log for the whole process.

use crate::command_ctx::CommandCtx;
use std::any::Any;
use wasmgears_abi::Reply;

/// Runs Redis commands for the guest in whatever context the current entry has (a worker
/// holding a blocked client, the main thread, a fake in tests). Set before each entry,
/// dropped after it.
pub trait RedisCaller: Send {
    /// Runs one command (`args[0]` is its name); errors come back as `Reply::Error`.
    fn call(&mut self, args: &[&[u8]]) -> Reply;

    /// Several commands; implementations may run them under one lock acquisition.
    fn call_batch(&mut self, commands: &[Vec<&[u8]>]) -> Reply {
        Reply::Array(commands.iter().map(|c| self.call(c)).collect())
    }

    /// A KeysReader's batch: per key `[type, value]` as `TYPE` and then the value's command
    /// would answer ([`wasmgears_abi::HostRequest::ReadKeys`]). Implementations may read the
    /// keyspace directly, under one lock acquisition, as long as the answers are the same.
    fn read_keys(&mut self, keys: &[&[u8]]) -> Reply {
        let types: Vec<Vec<&[u8]>> = keys.iter().map(|k| vec![&b"TYPE"[..], k]).collect();
        let kinds = match self.call_batch(&types) {
            Reply::Array(kinds) => kinds,
            refused => return refused, // past the reply cap
        };
        let commands: Vec<Option<Vec<&[u8]>>> =
            keys.iter().zip(&kinds).map(|(key, kind)| value_command(kind, key)).collect();
        let wanted: Vec<Vec<&[u8]>> = commands.iter().flatten().cloned().collect();
        let values = match self.call_batch(&wanted) {
            Reply::Array(values) => values,
            refused => return refused, // past the reply cap
        };
        let mut values = values.into_iter();
        let pairs = kinds
            .into_iter()
            .zip(&commands)
            .map(|(kind, command)| {
                let value = if command.is_some() { values.next().unwrap_or(Reply::Null) } else { Reply::Null };
                Reply::Array(vec![kind, value])
            })
            .collect();
        Reply::Array(pairs)
    }

    /// Enters (`true`) or leaves an `atomic()` block: nothing else runs in Redis in between.
    fn atomic(&mut self, enter: bool);

    /// Runs `f` with the host's own handle to Redis, its lock held. The sandbox never looks
    /// inside: this is for [`HostServices`] that work on keys directly (a time event's key).
    fn with_host_handle(&mut self, f: &mut dyn FnMut(&dyn Any));
}

/// The command that reads a value of the type `TYPE` answered (RedisGears 1.2 reads these
/// three; other types have no value in a record).
fn value_command<'a>(kind: &Reply, key: &'a [u8]) -> Option<Vec<&'a [u8]>> {
    match kind {
        Reply::Status(t) | Reply::Bulk(t) => match t.as_slice() {
            b"string" => Some(vec![b"GET", key]),
            b"hash" => Some(vec![b"HGETALL", key]),
            b"list" => Some(vec![b"LRANGE", key, b"0", b"-1"]),
            _ => None,
        },
        _ => None,
    }
}

/// How loud a log line is (Redis's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `debug`.
    Debug,
    /// `verbose`.
    Verbose,
    /// `notice`.
    Notice,
    /// `warning`.
    Warning,
}

impl LogLevel {
    /// The level a script's `log(level=...)` maps to (0-3; anything else is notice).
    pub fn from_guest(level: i64) -> LogLevel {
        match level {
            0 => LogLevel::Debug,
            1 => LogLevel::Verbose,
            3 => LogLevel::Warning,
            _ => LogLevel::Notice,
        }
    }
}

/// Process-wide services of the host, shared by every session (RedisGears 2 hands its V8
/// backend the same kind of callbacks).
pub trait HostServices: Send + Sync {
    /// A hook's `call_next(args...)` (`args[0]` the command): by default the command itself;
    /// the host may run the next older hook of it first (`command.hook_id` is the one running).
    fn call_next(&self, redis: &mut dyn RedisCaller, command: &CommandCtx, args: &[&[u8]]) -> Reply {
        let _ = command;
        redis.call(args)
    }

    /// A fresh execution id (`run()` at a script's top level).
    fn new_execution_id(&self) -> String;

    /// A fresh registration id (`register()`).
    fn new_registration_id(&self) -> String;

    /// `registerTE(seconds, f, key)`: reserves a time event (and stores it in `key`, if
    /// given, through `redis`). Its id, or None when the key already exists. The event starts
    /// once the entry ends ([`crate::AfterEntry::time_events`]).
    fn reserve_time_event(&self, seconds: u64, key: Option<Vec<u8>>, redis: &mut dyn RedisCaller) -> Option<u64>;

    /// A token under which an entry's results will be delivered later (records that wait).
    fn open_deferred(&self) -> u64;

    /// A configuration value a script may read (`configGet`), if it exists.
    fn config(&self, name: &str) -> Option<String>;

    /// Writes one line to the host's log.
    fn log(&self, level: LogLevel, line: &str);
}
