//! A KeysReader's batch read straight from the keyspace (`HostRequest::ReadKeys`): each key's
//! type from RM_KeyType and a string's value from RM_StringDMA, instead of a `TYPE` and a
//! `GET` command per key; hashes and lists still through `HGETALL` / `LRANGE`. Every answer
//! is the one those commands would give the session: the ACL of its user is checked for each
//! of them (the user looked up once per batch), and the replies share the guest's reply cap.

use crate::redis::acl::AclUser;
use crate::redis::reply_convert::{convert, past_cap, OverBudget, ReplyBudget};
use crate::redis::run_as::RunAs;
use redis_module::{CallOptionResp, CallOptions, CallOptionsBuilder, Context, KeyType, RedisString};
use wasmgears_abi::Reply;
use wasmgears_sandbox::limits::max_reply_bytes;

/// The key's type as `TYPE` answers (module types all as `module`: the guest names every
/// module type so).
pub fn type_reply_name(kind: KeyType) -> &'static str {
    match kind {
        KeyType::Empty => "none",
        KeyType::String => "string",
        KeyType::List => "list",
        KeyType::Hash => "hash",
        KeyType::Set => "set",
        KeyType::ZSet => "zset",
        KeyType::Module => "module",
        KeyType::Stream => "stream",
    }
}

/// The ACL user whose authority `run_as` names (None: the module's own), or the refusal when
/// that user no longer exists or is disabled.
fn user_of(run_as: &RunAs) -> Result<Option<AclUser>, String> {
    match run_as {
        RunAs::Module => Ok(None),
        RunAs::User(name) => AclUser::lookup(name).map(Some),
    }
}

/// Per key `[type, value]`, read in `ctx` (the Redis lock held) as the session of `run_as`.
pub fn read_keys(ctx: &Context, run_as: &RunAs, keys: &[&[u8]]) -> Reply {
    let user = match user_of(run_as) {
        Ok(user) => user,
        Err(refusal) => {
            let refused = || Reply::Array(vec![Reply::Error(refusal.clone().into_bytes()), Reply::Null]);
            return Reply::Array(keys.iter().map(|_| refused()).collect());
        }
    };
    let reader = KeyReader { ctx, user: user.as_ref() };
    let mut budget = ReplyBudget::for_guest();
    let mut pairs = Vec::with_capacity(keys.len());
    for key in keys {
        match reader.read(key, &mut budget) {
            Ok(pair) => pairs.push(pair),
            Err(OverBudget) => return past_cap(),
        }
    }
    Reply::Array(pairs)
}

/// The key's type as `TYPE` names it and, for a string, its value: what `TYPE` and `GET` would
/// answer the session of `run_as` (a sync event's record). None when either is refused, or the
/// value is over the guest's reply cap: the guest then reads the key with its own commands.
pub fn type_and_string(ctx: &Context, run_as: &RunAs, key: &[u8]) -> Option<(&'static str, Option<Vec<u8>>)> {
    let user = user_of(run_as).ok()?;
    let reader = KeyReader { ctx, user: user.as_ref() };
    if reader.refusal(&[b"TYPE", key]).is_some() || reader.refusal(&[b"GET", key]).is_some() {
        return None;
    }
    let name = RedisString::create_from_slice(ctx.ctx, key);
    let opened = ctx.open_key(&name);
    match opened.key_type() {
        KeyType::String => {
            let value = opened.read().ok()??;
            (value.len() <= max_reply_bytes()).then(|| ("string", Some(value.to_vec())))
        }
        kind => Some((type_reply_name(kind), None)),
    }
}

struct KeyReader<'a> {
    ctx: &'a Context,
    /// None: the module's own authority (`RunScriptsAs module`).
    user: Option<&'a AclUser>,
}

impl KeyReader<'_> {
    fn refusal(&self, args: &[&[u8]]) -> Option<Reply> {
        let denied = self.user?.denied(self.ctx, args)?;
        Some(Reply::Error(denied.into_bytes()))
    }

    fn read(&self, key: &[u8], budget: &mut ReplyBudget) -> Result<Reply, OverBudget> {
        if let Some(refused) = self.refusal(&[b"TYPE", key]) {
            return Ok(Reply::Array(vec![refused, Reply::Null]));
        }
        let name = RedisString::create_from_slice(self.ctx.ctx, key);
        let kind = {
            let opened = self.ctx.open_key(&name);
            let kind = opened.key_type();
            if kind == KeyType::String {
                let value = match self.refusal(&[b"GET", key]) {
                    Some(refused) => refused,
                    None => match opened.read() {
                        Ok(Some(bytes)) => Reply::Bulk(budget.bytes(bytes)?),
                        _ => Reply::Null,
                    },
                };
                return Ok(pair(kind, value));
            }
            kind
        }; // the key is closed before a command reads it
        let command: &[&[u8]] = match kind {
            KeyType::Hash => &[b"HGETALL", key],
            KeyType::List => &[b"LRANGE", key, b"0", b"-1"],
            _ => return Ok(pair(kind, Reply::Null)),
        };
        let value = match self.refusal(command) {
            Some(refused) => refused,
            None => {
                let name = std::str::from_utf8(command[0]).expect("ASCII command name");
                convert(&self.ctx.call_ext(name, &read_options(), &command[1..]), budget)?
            }
        };
        Ok(pair(kind, value))
    }
}

/// `HGETALL` / `LRANGE` as the guest's own calls make them (RESP2, errors as replies).
fn read_options() -> CallOptions {
    CallOptionsBuilder::new().errors_as_replies().resp(CallOptionResp::Resp2).build()
}

fn pair(kind: KeyType, value: Reply) -> Reply {
    Reply::Array(vec![Reply::Status(type_reply_name(kind).as_bytes().to_vec()), value])
}
