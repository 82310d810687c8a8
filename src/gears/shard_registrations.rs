//! Registrations on every shard of a cluster (RedisGears 1.2: `Command_Register`, which applies
//! a session's registrations on every shard before the client gets `OK`, and
//! `ExecutionPlan_UnregisterExecutionReceived`). The script runs once, on the shard that got
//! `RG.PYEXECUTE`; the others receive a script of their own that registers the same flows
//! (cloudpickle bytes made in the sandbox) under the same ids, in a session with the same id.
//! They keep and save that script, so a restart, a replica or the AOF registers them again.
//! The client gets `OK` once every shard answered, or an array of `ERR shard-<id>: ...`
//! errors (no shard's change is undone, as in 1.2).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use redis_module::Context;
use wasmgears_abi::{decode_args, encode_args, FlowResults, GuestEntry, Reply};
use wasmgears_sandbox::EntrySetup;

use crate::gears::distributed::MAX_IDLE_REACHED;
use crate::gears::persistence::{self, SavedSession};
use crate::gears::{registrations, saved_state, topology};
use crate::redis::caller;
use crate::redis::worker_context::WorkerContext;
use crate::runtime::requirement_bundle::{self, Bundle};
use crate::runtime::wheelhouse::{self, Requirement};
use crate::runtime::{settings, timers, workers};
use crate::session::Session;
use crate::transport;

const REGISTER: &str = "wg.register";
const REGISTERED: &str = "wg.registered";
const UNREGISTER: &str = "wg.unregister";
const PAUSE: &str = "wg.pause";
const UNPAUSE: &str = "wg.unpause";
const CLEAR_STATS: &str = "wg.clearstats";

/// A client waiting for the other shards to apply its script's registrations.
struct Waiting {
    client: Arc<WorkerContext>,
    shards: HashSet<String>,
    errors: Vec<Reply>,
}

/// Lock order: level 3, taken alone.
static WAITING: OnceLock<Mutex<HashMap<u64, Waiting>>> = OnceLock::new();
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

fn waiting() -> MutexGuard<'static, HashMap<u64, Waiting>> {
    WAITING.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

pub fn install() {
    transport::on(REGISTER, on_register);
    transport::on(REGISTERED, on_registered);
    transport::on(UNREGISTER, on_unregister);
    transport::on(PAUSE, |_, _, id| {
        crate::gears::streams::set_paused_by_id(&text(id), true);
    });
    transport::on(UNPAUSE, |_, _, id| {
        crate::gears::streams::set_paused_by_id(&text(id), false);
    });
    transport::on(CLEAR_STATS, |_, _, _| crate::gears::registration_stats::clear_stats());
    transport::on_greeted(|peer| {
        let peer = peer.to_string();
        workers::submit(move || resend_to(&peer));
    });
}

/// A peer that (re)started gets every session whose registrations began on this shard: one
/// restarted with an empty data dir, or a new master, gets the registrations it lacks (one
/// that has them already keeps them: the same session with the same ids is left alone).
fn resend_to(peer: &str) {
    let me = topology::current().shard_id().to_string();
    for session in crate::gears::linked_sessions::linked() {
        let ids = registrations::ids_of(&session);
        if ids.is_empty() || !ids.iter().all(|id| id.starts_with(&me)) {
            continue; // none, or another shard's: that one sends it
        }
        let script = match export(&session, &ids) {
            Ok(Some(script)) => script,
            Ok(None) => return,
            Err(e) => {
                crate::redis::log::warning(&format!("wasmgears: session {} not sent to {peer}: {e}", session.id));
                continue;
            }
        };
        let saved = SavedSession { script, ..SavedSession::of(&session, None) };
        let _ = transport::send(peer, REGISTER, message(0, &saved, &session.requirements));
    }
}

/// In cluster mode, tells every other shard what RG.PAUSEREGISTRATIONS,
/// RG.UNPAUSEREGISTRATIONS or RG.CLEARREGISTRATIONSSTATS did here (1.2 runs them on every
/// shard). `what`: `pause`, `unpause` or `clear`.
pub fn everywhere(ctx: &Context, what: &str, id: &str) {
    let function = match what {
        "pause" => PAUSE,
        "unpause" => UNPAUSE,
        _ => CLEAR_STATS,
    };
    if in_cluster(ctx) {
        let _ = transport::broadcast(function, id.as_bytes());
    }
}

fn in_cluster(ctx: &Context) -> bool {
    crate::redis::cluster_api::cluster_enabled(ctx) && topology::refresh(ctx, false).is_ok_and(|t| t.is_cluster_mode())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// In cluster mode, the script the other shards run to register `ids` of `session` (None
/// outside it); the error when a callback cannot be shipped.
pub fn export(session: &Arc<Session>, ids: &[String]) -> Result<Option<Vec<u8>>, String> {
    if !topology::current().is_cluster_mode() {
        return Ok(None);
    }
    let setup = EntrySetup::new(caller::detached(&session.run_as));
    let out = session.callback(GuestEntry::ExportRegistrations, &encode_args(ids), setup).map_err(|e| e.to_string())?;
    let exported = FlowResults::decode(out.reply).ok_or("malformed registrations from the sandbox")?;
    if !exported.errors.is_empty() {
        return Err(exported.errors.join(" "));
    }
    match exported.results.first() {
        Some(Reply::Bulk(script)) => Ok(Some(script.clone())),
        _ => Err("malformed registrations from the sandbox".to_string()),
    }
}

/// Sends `saved` (the session as the other shards create it) to every peer; `client` gets
/// `OK` or the shards' errors once all answered (or `PythonInstallReqMaxIdleTime` passed).
pub fn distribute(saved: &SavedSession, wheels: &[Requirement], client: Arc<WorkerContext>) {
    let topology = topology::current();
    let peers: HashSet<String> =
        topology.shards.iter().map(|s| s.id.clone()).filter(|id| *id != topology.my_id).collect();
    let request = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed);
    let payload = message(request, saved, wheels);
    waiting().insert(request, Waiting { client, shards: peers.clone(), errors: Vec::new() });
    for peer in &peers {
        if let Err(e) = transport::send(peer, REGISTER, payload.clone()) {
            answered(request, peer, &e);
        }
    }
    let limit = settings::int(crate::runtime::config::PYTHON_INSTALL_REQ_MAX_IDLE_TIME).max(1) as u64;
    timers::after(Duration::from_millis(limit), move || expire(request));
    finish_if_done(request);
}

/// [request, the session's saved fields, its requirements' wheels (1.2 ships them with the
/// session: a master whose wheelhouse lacks one gets it)].
fn message(request: u64, saved: &SavedSession, wheels: &[Requirement]) -> Vec<u8> {
    let bundles: Vec<Vec<u8>> = wheels
        .iter()
        .map(|r| {
            requirement_bundle::encode(&Bundle {
                name: r.name.clone(),
                os: requirement_bundle::PURE_OS.to_string(),
                wheels: vec![(r.file.clone(), r.bytes.to_vec())],
            })
        })
        .collect();
    encode_args(&[request.to_string().into_bytes(), encode_args(&saved.fields()), encode_args(&bundles)])
}

/// Puts the shipped wheels this master's wheelhouse lacks into it (as RG.PYIMPORTREQ does).
fn import_wheels(bundles: &[u8]) {
    let Ok(bundles) = decode_args(bundles) else { return };
    let dir = settings::wheelhouse_dir();
    for data in bundles {
        let Ok(bundle) = requirement_bundle::decode(data) else { continue };
        let missing = bundle.wheels.iter().any(|(file, _)| dir.as_ref().is_some_and(|d| !d.join(file).exists()));
        if missing {
            if let Err(e) = wheelhouse::import(dir.as_deref(), &bundle) {
                crate::redis::log::warning(&format!("wasmgears: requirement {} not imported: {e}", bundle.name));
            }
        }
    }
}

fn shard_error(shard: &str, error: &str) -> Reply {
    Reply::Error(format!("ERR shard-{shard}: {error}").into_bytes())
}

/// Shard `shard` answered request `request` (an empty error: it applied them).
fn answered(request: u64, shard: &str, error: &str) {
    let mut waiting = waiting();
    let Some(w) = waiting.get_mut(&request) else { return };
    if w.shards.remove(shard) && !error.is_empty() {
        w.errors.push(shard_error(shard, error));
    }
}

fn expire(request: u64) {
    {
        let mut waiting = waiting();
        let Some(w) = waiting.get_mut(&request) else { return };
        let late: Vec<String> = w.shards.drain().collect();
        w.errors.extend(late.iter().map(|shard| shard_error(shard, MAX_IDLE_REACHED)));
    }
    finish_if_done(request);
}

/// Answers the client once no shard is missing (on a worker: the main thread cannot take the
/// Redis lock a reply to a blocked client needs).
fn finish_if_done(request: u64) {
    let done = {
        let mut waiting = waiting();
        match waiting.get(&request) {
            Some(w) if w.shards.is_empty() => waiting.remove(&request),
            _ => None,
        }
    };
    let Some(done) = done else { return };
    workers::submit(move || {
        let reply = if done.errors.is_empty() { Reply::Status(b"OK".to_vec()) } else { Reply::Array(done.errors) };
        done.client.reply(&reply);
        done.client.unblock();
    });
}

/// A peer: [request, the session's saved fields]; applied here, on the main thread, as
/// RG.INNERREGISTER applies a session, then sent to this shard's replicas and AOF.
fn on_register(ctx: &Context, sender: &str, payload: &[u8]) {
    let Ok(fields) = decode_args(payload) else { return };
    let [request, saved, wheels] = fields.as_slice() else { return };
    let _ = topology::refresh(ctx, false); // the link the answer goes back on
    import_wheels(wheels);
    let saved = decode_args(saved).ok().and_then(|f| SavedSession::from_fields(&f));
    let error = match saved {
        None => "malformed registration message".to_string(),
        Some(saved) => match persistence::install(&saved, ctx) {
            Ok(()) => {
                saved_state::publish();
                persistence::propagate(ctx, &saved);
                String::new()
            }
            Err(e) => e,
        },
    };
    let _ = transport::send(sender, REGISTERED, encode_args(&[*request, error.as_bytes()]));
}

/// The initiator: [request, error] from a peer.
fn on_registered(_ctx: &Context, sender: &str, payload: &[u8]) {
    let Ok(fields) = decode_args(payload) else { return };
    let [request, error] = fields.as_slice() else { return };
    let Ok(request) = text(request).parse::<u64>() else { return };
    if request == 0 && !error.is_empty() {
        // A session resent to a peer that (re)started: nobody waits for it.
        crate::redis::log::warning(&format!("wasmgears: shard {sender} could not register a session: {}", text(error)));
    }
    answered(request, sender, &text(error));
    finish_if_done(request);
}

/// Unregisters `id` on this shard (`RG.UNREGISTER`, or a peer's): false if it is not here.
pub fn unregister_here(ctx: &Context, id: &str, abort_pending: bool) -> bool {
    let session = registrations::session_of(id);
    // A registration of a session that failed to restore is still saved: unregistering it
    // drops it from what is saved.
    if !registrations::unregister(id) && !persistence::forget_failed_registration(id) {
        return false;
    }
    saved_state::publish();
    ctx.replicate("rg.innerunregister", &[id]);
    if let (true, Some(session)) = (abort_pending, session) {
        // Its records that wait for async steps end with the forced-stop error.
        session.enter_on_worker(GuestEntry::CancelRegistration, &[id.as_bytes()]);
    }
    true
}

/// `RG.UNREGISTER` succeeded here: the other shards unregister it too.
pub fn unregistered(ctx: &Context, id: &str, abort_pending: bool) {
    if in_cluster(ctx) {
        let flag: &[u8] = if abort_pending { b"1" } else { b"0" };
        let _ = transport::broadcast(UNREGISTER, &encode_args(&[id.as_bytes(), flag]));
    }
}

/// A peer: [id, abort pending].
fn on_unregister(ctx: &Context, _sender: &str, payload: &[u8]) {
    let Ok(fields) = decode_args(payload) else { return };
    let [id, abort] = fields.as_slice() else { return };
    unregister_here(ctx, &text(id), *abort == b"1");
}
