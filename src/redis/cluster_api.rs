//! What Redis says about its cluster: whether it runs in cluster mode, this node's id, the
//! slot ranges (`CLUSTER SLOTS`), and random hex for run ids.

use redis_module::{raw, Context, ContextFlags, RedisResult};

/// True when the server was started with `cluster-enabled yes`.
pub fn cluster_enabled(ctx: &Context) -> bool {
    ctx.get_flags().contains(ContextFlags::CLUSTER)
}

/// Redis's CLUSTER_NAMELEN: a node id is 40 hex characters.
const CLUSTER_NAME_LEN: usize = 40;

/// This node's 40-character cluster id (None outside cluster mode).
pub fn my_cluster_id() -> Option<String> {
    // SAFETY: the API table is filled once when the module loads and never written again.
    let get = unsafe { raw::RedisModule_GetMyClusterID }?;
    // SAFETY: Redis returns null outside cluster mode, otherwise its node name: exactly
    // CLUSTER_NAMELEN (40) bytes, not NUL-terminated, owned by the server and valid while the
    // node exists; they are copied before returning (1.2 copies 40 bytes too).
    let id = unsafe {
        let ptr = get();
        if ptr.is_null() {
            return None;
        }
        std::slice::from_raw_parts(ptr.cast::<u8>(), CLUSTER_NAME_LEN).to_vec()
    };
    Some(String::from_utf8_lossy(&id).into_owned())
}

/// `CLUSTER SLOTS` as Redis answers it.
pub fn cluster_slots(ctx: &Context) -> RedisResult {
    ctx.call("CLUSTER", &["SLOTS"])
}

/// `len` random hexadecimal characters from Redis's own generator (`RM_GetRandomHexChars`).
pub fn random_hex(len: usize) -> String {
    let mut buf = vec![0u8; len];
    // SAFETY: the API table is filled once when the module loads and never written again.
    if let Some(fill) = unsafe { raw::RedisModule_GetRandomHexChars } {
        // SAFETY: `buf` holds exactly `len` writable bytes; Redis writes `len` ASCII hex digits.
        unsafe { fill(buf.as_mut_ptr().cast(), len) };
    }
    buf.iter().map(|&b| if b.is_ascii_hexdigit() { b as char } else { '0' }).collect()
}

/// Redis's own `masteruser` and `masterauth` (None when unset): what a shard logs in to its
/// peers with, as its replicas do to it.
pub fn replication_credentials(ctx: &Context) -> (Option<String>, Option<String>) {
    let get = |name: &str| -> Option<String> {
        match ctx.call("CONFIG", &["GET", name]) {
            Ok(redis_module::RedisValue::Array(pair)) => match pair.get(1) {
                Some(redis_module::RedisValue::BulkString(v)) if !v.is_empty() => Some(v.clone()),
                Some(redis_module::RedisValue::SimpleString(v)) if !v.is_empty() => Some(v.clone()),
                _ => None,
            },
            _ => None,
        }
    };
    (get("masteruser"), get("masterauth"))
}
