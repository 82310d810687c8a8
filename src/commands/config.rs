//! RG.CONFIGGET and RG.CONFIGSET: one reply element per key, errors as elements (RedisGears'
//! `GearsConfig_Get` / `GearsConfig_Set`: no arity check, so no keys give `[]`).

use crate::runtime::config::{SetOutcome, Value};
use crate::runtime::settings;
use redis_module::{raw, Context, RedisError, RedisResult, RedisString, RedisValue};

fn reply_array(ctx: &Context, items: Vec<RedisResult>) -> RedisResult {
    raw::reply_with_array(ctx.ctx, items.len() as std::os::raw::c_long);
    for item in items {
        ctx.reply(item);
    }
    Ok(RedisValue::NoReply)
}

pub fn config_get(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let items = args[1..]
        .iter()
        .map(|key| match settings::get(&key.to_string_lossy()) {
            Ok(Value::Int(i)) => Ok(RedisValue::Integer(i)),
            Ok(Value::Str(s)) => Ok(RedisValue::BulkString(s)),
            Ok(Value::List(l)) => Ok(RedisValue::Array(l.into_iter().map(RedisValue::BulkString).collect())),
            Err(e) => Err(RedisError::String(e.to_string())),
        })
        .collect();
    reply_array(ctx, items)
}

pub fn config_set(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let words: Vec<String> = args[1..].iter().map(|a| a.to_string_lossy()).collect();
    let items = words
        .chunks(2)
        .map(|pair| match settings::set(&pair[0], pair.get(1).map(String::as_str)) {
            Ok(SetOutcome::Builtin) => Ok(RedisValue::SimpleStringStatic("OK")),
            Ok(SetOutcome::Extra) => {
                Ok(RedisValue::SimpleStringStatic("OK - value was saved in extra config dictionary"))
            }
            Err(e) => Err(RedisError::String(e.to_string())),
        })
        .collect();
    reply_array(ctx, items)
}
