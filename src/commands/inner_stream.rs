//! RG.INNERSTREAMPOS <registration> <stream> <last id>: where a StreamReader registration is
//! in a stream, sent by the primary to replicas and the AOF after each batch (streams.rs), so
//! that after a failover or a restart no entry is processed twice or skipped. Accepted only
//! from the master link or while loading: a client could otherwise move a position by hand.

use crate::gears::saved_state;
use crate::gears::stream_positions;
use crate::gears::stream_registration::StreamPosition;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn inner_stream_pos(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, id, key, last_id] = args.as_slice() else {
        return Err(RedisError::WrongArity);
    };
    super::internal_only(ctx)?;
    stream_positions::apply(StreamPosition {
        registration: id.to_string_lossy(),
        key: key.as_slice().to_vec(),
        last_id: last_id.to_string_lossy(),
    });
    saved_state::publish_positions();
    ctx.replicate_verbatim(); // to this replica's replicas and its AOF
    Ok(RedisValue::SimpleStringStatic("OK"))
}
