//! RG.INFOCLUSTER, RG.REFRESHCLUSTER, RG.HELLO, RG.INNERMSGCOMMAND and RG.NETWORKTEST
//! (RedisGears 1.2: src/cluster.c, src/module.c).

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
    let (runid, pending) = if shard.id == topology.my_id {
        (bulk(run_id), 0)
    } else {
        match crate::transport::peer_status(&shard.id) {
            Some((Some(peer_run_id), pending)) => (bulk(&peer_run_id), pending),
            Some((None, pending)) => (RedisValue::Null, pending),
            None => (RedisValue::Null, 0),
        }
    };
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
        RedisValue::Integer(pending as i64),
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

/// RG.INNERMSGCOMMAND <sender id> <sender run id> <function> <payload> <message id>: a message
/// from a peer, run here on the main thread once (a repeat is acknowledged, not run again).
pub fn inner_msg_command(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 6 {
        return Err(RedisError::WrongArity);
    }
    // Only the links between shards send it: they log in as `masteruser` (or `default`). A
    // message may create sessions and registrations, so no other user may send one.
    let user = ctx.get_current_user().to_string_lossy();
    let link_user = crate::redis::cluster_api::replication_credentials(ctx).0.unwrap_or_else(|| "default".into());
    if user != link_user {
        return Err(RedisError::String(format!(
            "ERR RG.INNERMSGCOMMAND is for the links between shards (user {link_user}), not for user {user}"
        )));
    }
    let text = |i: usize| String::from_utf8_lossy(args[i].as_slice()).into_owned();
    let ran = crate::transport::receive(ctx, &text(1), &text(2), &text(3), args[4].as_slice(), &text(5))
        .map_err(|e| RedisError::String(e.to_string()))?;
    Ok(RedisValue::SimpleStringStatic(if ran { "OK" } else { "duplicate message ignored" }))
}

/// RG.NETWORKTEST: a `RG_NetworkTest` message to every peer (each logs it); `OK` at once.
pub fn network_test(ctx: &Context, _args: Vec<RedisString>) -> RedisResult {
    refreshed(ctx, false)?;
    crate::gears::network_test::send().map_err(RedisError::String)?;
    Ok(RedisValue::SimpleStringStatic("OK"))
}
