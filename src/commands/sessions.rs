//! RG.PYDUMPSESSIONS [VERBOSE] [DEAD] [SESSIONS s1 s2 ...] (spec §4.3).

use crate::gears::linked_sessions;
use crate::gears::persistence;
use crate::gears::registration_dump;
use crate::redis::reply::{bulk, send};
use crate::session::Session;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};
use std::sync::Arc;
use wasmgears_abi::Reply;

fn entry(session: &Arc<Session>, verbose: bool) -> Reply {
    // Not counting the reference this listing holds.
    let ref_count = Arc::strong_count(session).saturating_sub(1) as i64;
    let linked = if linked_sessions::is_linked(session) { "primary" } else { "None" };
    Reply::Array(vec![
        bulk("ID"),
        bulk(session.id.as_str()),
        bulk("sessionDescription"),
        session.description.as_deref().map_or(Reply::Null, bulk),
        bulk("refCount"),
        Reply::Int(ref_count),
        bulk("linked"),
        bulk(linked),
        bulk("dead"),
        bulk(if session.is_dead() { "true" } else { "false" }),
        bulk("requirementInstallationNeeded"),
        Reply::Int(0),
        bulk("requirements"),
        Reply::Array(session.requirements.iter().map(|r| bulk(r.name.as_str())).collect()),
        bulk("registrations"),
        registration_dump::of_session(session, verbose),
    ])
}

/// A saved session that could not be re-created: listed with its error, nothing registered.
fn failed_entry(id: &str, error: &str) -> Reply {
    Reply::Array(vec![
        bulk("ID"),
        bulk(id),
        bulk("sessionDescription"),
        bulk(format!("could not be restored: {error}")),
        bulk("refCount"),
        Reply::Int(0),
        bulk("linked"),
        bulk("None"),
        bulk("dead"),
        bulk("true"),
        bulk("requirementInstallationNeeded"),
        Reply::Int(0),
        bulk("requirements"),
        Reply::Array(Vec::new()),
        bulk("registrations"),
        Reply::Array(Vec::new()),
    ])
}

pub fn dump_sessions(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let (mut verbose, mut dead, mut names) = (false, false, None);
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        match arg.to_string_lossy().to_ascii_uppercase().as_str() {
            "VERBOSE" => verbose = true,
            "DEAD" => dead = true,
            "SESSIONS" => names = Some(it.by_ref().map(|a| a.to_string_lossy()).collect::<Vec<_>>()),
            _ => return Err(RedisError::String(format!("Unknown option {}", arg.to_string_lossy()))),
        }
    }
    let reply = match names {
        Some(names) => Reply::Array(
            names
                .iter()
                .map(|name| match linked_sessions::find(name) {
                    Some(s) => entry(&s, verbose),
                    None => bulk(format!("Session {name} does not exists")),
                })
                .collect(),
        ),
        None if dead => Reply::Array(linked_sessions::dead().iter().map(|s| entry(s, verbose)).collect()),
        None => {
            let mut list: Vec<Reply> = linked_sessions::linked().iter().map(|s| entry(s, verbose)).collect();
            list.extend(persistence::failed().iter().map(|(id, e)| failed_entry(id, e)));
            Reply::Array(list)
        }
    };
    send(ctx, &reply);
    Ok(RedisValue::NoReply)
}
