//! RG.INFOCLUSTER, RG.REFRESHCLUSTER and RG.HELLO (RedisGears 1.2: src/cluster.c). The links
//! between shards are not built yet (issue #15): a peer's run id is unknown (nil) and no message
//! is ever pending.

use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

use crate::gears::topology::{self, Topology};

fn bulk(s: &str) -> RedisValue {
    RedisValue::BulkString(s.to_string())
}

/// Cluster_GetClusterInfo: `no cluster mode` (also for a cluster of one shard), else
/// `["MyId", id, "MyRunId", run id, [shard...]]`, each shard `id, ip, port, unixSocket, runid,
/// minHslot, maxHslot, pendingMessages` (own run id for this shard; nil for a peer not yet
/// greeted).
pub fn info_cluster(ctx: &Context, _args: Vec<RedisString>) -> RedisResult {
    let topology = refreshed(ctx, false)?;
    let run_id = topology::run_id();
    if !topology.is_cluster_mode() {
        return Ok(bulk("no cluster mode"));
    }
    Ok(RedisValue::Array(vec![
        bulk("MyId"),
        bulk(&topology.my_id),
        bulk("MyRunId"),
        bulk(&run_id),
        RedisValue::Array(topology.shards.iter().map(|shard| shard_info(&topology, shard, &run_id)).collect()),
    ]))
}

fn shard_info(topology: &Topology, shard: &topology::Shard, run_id: &str) -> RedisValue {
    let runid = if shard.id == topology.my_id { bulk(run_id) } else { RedisValue::Null };
    RedisValue::Array(vec![
        bulk("id"),
        bulk(&shard.id),
        bulk("ip"),
        bulk(&shard.ip),
        bulk("port"),
        RedisValue::Integer(shard.port),
        bulk("unixSocket"),
        bulk("None"),
        bulk("runid"),
        runid,
        bulk("minHslot"),
        RedisValue::Integer(shard.min_slot),
        bulk("maxHslot"),
        RedisValue::Integer(shard.max_slot),
        bulk("pendingMessages"),
        RedisValue::Integer(0),
    ])
}

/// RG.REFRESHCLUSTER: reloads the topology and takes a new run id; `OK` (standalone too:
/// clients send it to every node).
pub fn refresh_cluster(ctx: &Context, _args: Vec<RedisString>) -> RedisResult {
    refreshed(ctx, true)?;
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// RG.HELLO (Cluster_RedisGearsHello): this shard's run id, by which a peer tells a restart.
pub fn hello(ctx: &Context, _args: Vec<RedisString>) -> RedisResult {
    refreshed(ctx, false)?;
    Ok(bulk(&topology::run_id()))
}

fn refreshed(ctx: &Context, new_run_id: bool) -> Result<Topology, RedisError> {
    topology::refresh(ctx, new_run_id).map_err(|e| RedisError::String(format!("ERR {e}")))
}
