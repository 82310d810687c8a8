//! Writing to the Redis log from any thread (RedisModule_Log with no context is thread-safe).

use redis_module::logging::{log, RedisLogLevel};

pub fn debug(msg: &str) {
    log(RedisLogLevel::Debug, msg);
}

pub fn verbose(msg: &str) {
    log(RedisLogLevel::Verbose, msg);
}

pub fn notice(msg: &str) {
    log(RedisLogLevel::Notice, msg);
}

pub fn warning(msg: &str) {
    log(RedisLogLevel::Warning, msg);
}
