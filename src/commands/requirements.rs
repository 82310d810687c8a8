//! RG.PYDUMPREQS, RG.PYEXPORTREQ and RG.PYIMPORTREQ: the requirements installed from the
//! wheelhouse, in RedisGears 1.2's shapes (gears-cli's `export-requirements` and
//! `import-requirements` read and send them).

use crate::gears::linked_sessions;
use crate::redis::reply::{bulk, send};
use crate::runtime::{requirement_bundle, settings, wheelhouse};
use crate::session::Session;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};
use std::sync::Arc;
use wasmgears_abi::Reply;

/// 1.2 sends an export in bulks of at most 10 MB.
const EXPORT_BULK: usize = 10 * 1024 * 1024;

/// RedisGearsPy_SendReqMetaData: the 9 fields of a requirement (18 items).
fn metadata(name: &str, file: &str, sessions: usize) -> Reply {
    let dir = settings::wheelhouse_dir().map(|d| d.display().to_string()).unwrap_or_default();
    Reply::Array(vec![
        bulk("GearReqVersion"),
        Reply::Int(requirement_bundle::VERSION),
        bulk("Name"),
        bulk(name),
        bulk("IsDownloaded"),
        bulk("yes"),
        bulk("IsInstalled"),
        bulk("yes"),
        bulk("CompiledOs"),
        bulk(requirement_bundle::PURE_OS),
        bulk("Wheels"),
        Reply::Array(vec![bulk(file)]),
        bulk("Path"),
        bulk(dir),
        bulk("RefCount"),
        Reply::Int(sessions as i64),
        bulk("IsInReqDictionary"),
        bulk("yes"),
    ])
}

/// How many of `sessions` use requirement `name`.
fn users_of(sessions: &[Arc<Session>], name: &str) -> usize {
    sessions.iter().filter(|s| s.requirements.iter().any(|r| r.name == name)).count()
}

/// RG.PYDUMPREQS: every requirement installed so far (1.2 keeps them after their script
/// ended), with the number of live sessions that use it.
pub fn py_dump_reqs(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 1 {
        return Err(RedisError::WrongArity);
    }
    let sessions = linked_sessions::linked();
    let entries =
        wheelhouse::installed().iter().map(|(name, _, file)| metadata(name, file, users_of(&sessions, name))).collect();
    send(ctx, &Reply::Array(entries));
    Ok(RedisValue::NoReply)
}

/// RG.PYEXPORTREQ <name>: `[metadata, [bulks of the serialized requirement]]`.
pub fn py_export_req(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 2 {
        return Err(RedisError::WrongArity);
    }
    let (name, file, bundle) = wheelhouse::export(settings::wheelhouse_dir().as_deref(), &args[1].to_string_lossy())
        .map_err(RedisError::String)?;
    let data = requirement_bundle::encode(&bundle);
    let bulks = data.chunks(EXPORT_BULK).map(|chunk| Reply::Bulk(chunk.to_vec())).collect();
    send(
        ctx,
        &Reply::Array(vec![metadata(&name, &file, users_of(&linked_sessions::linked(), &name)), Reply::Array(bulks)]),
    );
    Ok(RedisValue::NoReply)
}

/// RG.PYIMPORTREQ <bulk>...: the bulks of an export, joined, into the wheelhouse; `OK`.
pub fn py_import_req(_ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let data: Vec<u8> = args.iter().skip(1).flat_map(|a| a.as_slice().iter().copied()).collect();
    let bundle = requirement_bundle::decode(&data).map_err(RedisError::String)?;
    wheelhouse::import(settings::wheelhouse_dir().as_deref(), &bundle).map_err(RedisError::String)?;
    Ok(RedisValue::SimpleStringStatic("OK"))
}
