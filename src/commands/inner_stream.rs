//! RG.INNERSTREAMPOS <registration> <stream> <last id>: sent by older versions to replicas
//! and the AOF after each StreamReader batch. Positions are the streams' consumer group now
//! (gears/streams.rs), replicated with the stream itself; the command stays so that such an
//! AOF still loads, and does nothing. Accepted only from the master link or while loading.

use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn inner_stream_pos(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, _id, _key, _last_id] = args.as_slice() else {
        return Err(RedisError::WrongArity);
    };
    super::internal_only(ctx)?;
    Ok(RedisValue::SimpleStringStatic("OK"))
}
