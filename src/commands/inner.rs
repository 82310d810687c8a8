//! Commands replicas and the AOF receive: RG.INNERREGISTER (a session and its registrations)
//! and RG.INNERUNREGISTER. They are accepted only from the replication link or while loading
//! (the AOF): from a client they would create sessions past RG.PYEXECUTE's ACL.

use crate::gears::persistence::{self, SavedSession};
use crate::gears::registrations;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn inner_register(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    super::internal_only(ctx)?;
    let fields: Vec<&[u8]> = args.iter().skip(1).map(|a| a.as_slice()).collect();
    let saved = SavedSession::from_fields(&fields).ok_or(RedisError::WrongArity)?;
    persistence::restore(saved, Some(ctx.ctx));
    crate::gears::saved_state::publish();
    // Changing no key, it would not be propagated by itself: replicas, their replicas and
    // the AOF must all see it.
    ctx.replicate_verbatim();
    Ok(RedisValue::SimpleStringStatic("OK"))
}

pub fn inner_unregister(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    super::internal_only(ctx)?;
    let [_, id] = args.as_slice() else {
        return Err(RedisError::WrongArity);
    };
    let id = id.to_string_lossy();
    if !registrations::unregister(&id) {
        persistence::forget_failed_registration(&id);
    }
    crate::gears::saved_state::publish();
    ctx.replicate_verbatim();
    Ok(RedisValue::SimpleStringStatic("OK"))
}
