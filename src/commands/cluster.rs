//! RG.INFOCLUSTER and RG.REFRESHCLUSTER, standalone only (cluster mode is issue #15).

use redis_module::{Context, RedisResult, RedisString, RedisValue};

/// Cluster_GetClusterInfo: outside cluster mode, the bulk string `no cluster mode`.
pub fn info_cluster(_ctx: &Context, _args: Vec<RedisString>) -> RedisResult {
    Ok(RedisValue::BulkString("no cluster mode".into()))
}

/// RG.REFRESHCLUSTER: re-reads the cluster topology; standalone there is none to read.
pub fn refresh_cluster(_ctx: &Context, _args: Vec<RedisString>) -> RedisResult {
    Ok(RedisValue::SimpleStringStatic("OK"))
}
