//! RG.CONFIGGET and RG.CONFIGSET: one reply element per key, errors as elements.

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
    if args.len() < 2 {
        return Err(RedisError::WrongArity);
    }
    let items = args[1..]
        .iter()
        .map(|key| match settings::get(&key.to_string_lossy()) {
            Ok(Value::Int(i)) => Ok(RedisValue::Integer(i)),
            Ok(Value::Str(s)) => Ok(RedisValue::BulkString(s)),
            Err(e) => Err(RedisError::String(e.to_string())),
        })
        .collect();
    reply_array(ctx, items)
}

pub fn config_set(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() < 3 || args.len().is_multiple_of(2) {
        return Err(RedisError::WrongArity);
    }
    let items = args[1..]
        .chunks(2)
        .map(|pair| match settings::set(&pair[0].to_string_lossy(), &pair[1].to_string_lossy()) {
            Ok(SetOutcome::Builtin) => Ok(RedisValue::SimpleStringStatic("OK")),
            Ok(SetOutcome::Extra) => {
                Ok(RedisValue::SimpleStringStatic("OK - value was saved in extra config dictionary"))
            }
            Err(e) => Err(RedisError::String(e.to_string())),
        })
        .collect();
    reply_array(ctx, items)
}
