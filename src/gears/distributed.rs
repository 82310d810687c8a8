//! Runs of `run()` on every shard of a cluster (RedisGears 1.2: execution_plan.c's distributed
//! plans), over the links of `transport`.
//!
//! The initiator (the shard that got `RG.PYEXECUTE`) asks its session for the flow as bytes
//! (`export_plan`) and sends it with the topology of this run to every peer (`wg.plan`); each
//! creates a session of its own, loads the flow (`import_plan`), lists the execution under the
//! same id and answers (`wg.received`). Once all have it, the initiator says `wg.run` (the two
//! phases of 1.2: no shard receives records of a run it does not know). The flow is cut into
//! stages where records move (`collect`, `repartition`, groupby's move); each shard runs a stage
//! (`run_stage`) and sends every peer its part of the next one (`wg.part`, possibly empty),
//! and runs the next stage once it has a part from every shard. The last stage's results are
//! the execution's on each shard (with the default `collect()`, all are on the initiator).
//! Parts are bytes made and read inside the sandboxes. A run that gets nothing for
//! `ExecutionMaxIdleTime` ends with what it has and `Execution max idle reached`.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use redis_module::Context;
use wasmgears_abi::{decode_args, encode_args, FlowResults, GuestEntry, Reply};
use wasmgears_sandbox::{EntrySetup, SandboxError};

use crate::gears::executions::{self, Status};
use crate::gears::flows::{self, Outcome};
use crate::gears::topology;
use crate::redis::caller;
use crate::redis::run_as::RunAs;
use crate::runtime::{config, settings, timers, workers};
use crate::session::Session;
use crate::transport;

const PLAN: &str = "wg.plan";
const PLAN_REGISTERED: &str = "wg.planreg";
const RECEIVED: &str = "wg.received";
const RUN: &str = "wg.run";
const PART: &str = "wg.part";
const DROP: &str = "wg.drop";
const ABORT: &str = "wg.abort";
pub const MAX_IDLE_REACHED: &str = "Execution max idle reached";

/// What a registration's distributed run does with its outcome on the initiator (answer the
/// client of RG.TRIGGER); called on a worker.
pub type OnDone = Box<dyn FnOnce(Outcome) + Send>;

/// One shard's part of a stage's input: the packed records it sent (bytes of the guest).
type Blobs = Vec<Vec<u8>>;

/// This shard's side of one distributed run.
struct Part {
    session: Arc<Session>,
    abort: Arc<AtomicBool>,
    /// Every shard's id, in the order of the run's routing indexes.
    shards: Vec<String>,
    me: usize,
    initiator: usize,
    routing: String,
    /// Stages after the first (the moves of records between shards).
    moves: usize,
    /// Initiator: the peers that loaded the flow.
    received: usize,
    /// Input parts of the stages to come: stage -> (from shard, parts) in arrival order.
    inbox: HashMap<usize, Vec<(usize, Blobs)>>,
    /// The stage that waits for its input (1..=moves), past `moves` once the last started.
    waiting_stage: usize,
    last_progress: Instant,
    started: Instant,
    /// Ended by the idle limit: the last stage runs with what arrived.
    idle: bool,
    /// A registration's run (not listed as an execution): who gets the outcome.
    on_done: Option<OnDone>,
}

impl Part {
    fn new(session: Arc<Session>, abort: Arc<AtomicBool>, shards: Vec<String>, me: usize, initiator: usize) -> Part {
        Part {
            session,
            abort,
            shards,
            me,
            initiator,
            routing: String::new(),
            moves: 0,
            received: 0,
            inbox: HashMap::new(),
            waiting_stage: 1,
            last_progress: Instant::now(),
            started: Instant::now(),
            idle: false,
            on_done: None,
        }
    }
}

/// Lock order: level 3, taken alone (never while calling into a session, Redis or a link).
static PARTS: OnceLock<Mutex<HashMap<String, Part>>> = OnceLock::new();

fn parts() -> MutexGuard<'static, HashMap<String, Part>> {
    PARTS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

pub fn install() {
    transport::on(PLAN, on_plan);
    transport::on(PLAN_REGISTERED, on_plan_registered);
    transport::on(RECEIVED, on_received);
    transport::on(RUN, on_run);
    transport::on(PART, on_part);
    transport::on(DROP, on_drop);
    transport::on(ABORT, |_, _, id| {
        abort_here(&text(id));
    });
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn max_idle() -> Duration {
    Duration::from_millis(settings::int(config::EXECUTION_MAX_IDLE_TIME).max(1) as u64)
}

/// How a created execution starts.
pub enum Start {
    /// Not cluster mode, or `async_local`: the caller runs it here.
    Local,
    /// Sent to the peers; it finishes through `flows::finish` like a local one.
    Distributed,
    /// It cannot be shipped (a callback cloudpickle cannot write): the script's error.
    Refused(String),
}

/// Called with the created execution `id` of `session` (on a worker, after the script): in
/// cluster mode the flow goes to every shard.
pub fn start(id: &str, session: &Arc<Session>, abort: &Arc<AtomicBool>) -> Start {
    let topology = topology::current();
    let Some(me) = topology.my_index().filter(|_| topology.is_cluster_mode()) else { return Start::Local };
    let setup = EntrySetup { abort: Some(Arc::clone(abort)), ..EntrySetup::new(caller::detached(&session.run_as)) };
    let exported =
        session.callback(GuestEntry::ExportPlan, id.as_bytes(), setup).map(|out| FlowResults::decode(out.reply));
    let (moves, plan) = match exported {
        Ok(Some(r)) if !r.errors.is_empty() => return Start::Refused(r.errors.join(" ")),
        Ok(Some(r)) if r.results.is_empty() => return Start::Local,
        Ok(Some(r)) => match (r.results.first().and_then(as_int), r.results.get(1).and_then(as_bytes)) {
            (Some(moves), Some(plan)) => (moves as usize, plan),
            _ => return fail(id, "malformed plan from the sandbox".into()),
        },
        Ok(None) => return fail(id, "malformed plan from the sandbox".into()),
        Err(e) => return fail(id, e.to_string()),
    };
    let shards: Vec<String> = topology.shards.iter().map(|s| s.id.clone()).collect();
    let routing = topology.routing();
    let user = match &session.run_as {
        RunAs::User(name) => name.to_string(),
        RunAs::Module => String::new(),
    };
    let payload = encode_args(&[
        id.as_bytes(),
        me.to_string().as_bytes(),
        shards.join(",").as_bytes(),
        routing.as_bytes(),
        user.as_bytes(),
        &plan,
    ]);
    let part = Part { routing, moves, ..Part::new(Arc::clone(session), Arc::clone(abort), shards, me, me) };
    parts().insert(id.to_string(), part);
    set_status(id, Status::Running);
    watch_idle(id.to_string());
    if let Err(e) = transport::broadcast(PLAN, &payload) {
        forget(id);
        return fail(id, e);
    }
    Start::Distributed
}

/// A registration's run on every shard (RG.TRIGGER of an `async` CommandReader registration in
/// cluster mode, as 1.2 runs it): each shard runs registration `registration` of its own, on
/// `record`; `on_done` gets the initiator's outcome. On a worker.
pub fn start_registered(registration: &str, session: Arc<Session>, record: Vec<Vec<u8>>, on_done: OnDone) {
    let topology = topology::current();
    let Some(me) = topology.my_index().filter(|_| topology.is_cluster_mode()) else {
        return on_done(Outcome::failed(Status::Done, "not in cluster mode".into()));
    };
    let id = executions::next_id();
    let mut fields: Vec<&[u8]> = vec![id.as_bytes(), registration.as_bytes()];
    fields.extend(record.iter().map(|a| a.as_slice()));
    let moves = match plan_registered(&session, &encode_args(&fields)) {
        Ok(moves) => moves,
        Err(e) => return on_done(Outcome::failed(Status::Done, e)),
    };
    let shards: Vec<String> = topology.shards.iter().map(|s| s.id.clone()).collect();
    let routing = topology.routing();
    let mut message: Vec<&[u8]> = vec![id.as_bytes()];
    let me_text = me.to_string();
    let shard_list = shards.join(",");
    message.extend([me_text.as_bytes(), shard_list.as_bytes(), routing.as_bytes()]);
    message.extend(&fields[1..]);
    let payload = encode_args(&message);
    let abort = Arc::new(AtomicBool::new(false));
    let part = Part { routing, moves, on_done: Some(on_done), ..Part::new(session, abort, shards, me, me) };
    parts().insert(id.clone(), part);
    watch_idle(id.clone());
    if let Err(e) = transport::broadcast(PLAN_REGISTERED, &payload) {
        if let Some(part) = parts().remove(&id) {
            conclude(&id, part, Outcome::failed(Status::Done, e));
        }
    }
}

/// The session's part of a registration's run: its number of moves.
fn plan_registered(session: &Arc<Session>, payload: &[u8]) -> Result<usize, String> {
    let setup = EntrySetup::new(caller::detached(&session.run_as));
    let out = session.callback(GuestEntry::PlanRegistered, payload, setup).map_err(|e| e.to_string())?;
    let planned = FlowResults::decode(out.reply).ok_or("malformed plan from the sandbox")?;
    if !planned.errors.is_empty() {
        return Err(planned.errors.join(" "));
    }
    Ok(planned.results.first().and_then(as_int).ok_or("malformed plan from the sandbox")? as usize)
}

/// A peer: [id, initiator index, shard ids, routing, registration id, record...].
fn on_plan_registered(ctx: &Context, sender: &str, payload: &[u8]) {
    let Ok(fields) = decode_args(payload) else { return };
    let [id, initiator, shards, routing, registration, record @ ..] = fields.as_slice() else { return };
    let _ = topology::refresh(ctx, false);
    let (id, routing, registration) = (text(id), text(routing), text(registration));
    let shards: Vec<String> = text(shards).split(',').map(str::to_string).collect();
    let initiator: usize = text(initiator).parse().unwrap_or(usize::MAX);
    let me = topology::current().my_id;
    let Some(me) = shards.iter().position(|s| *s == me) else {
        return answer(sender, &id, "this shard is not in the run's topology");
    };
    let Some(session) = crate::gears::registrations::session_of(&registration) else {
        return answer(sender, &id, &format!("registration {registration} is not on this shard"));
    };
    let mut guest_fields: Vec<Vec<u8>> = vec![id.clone().into_bytes(), registration.into_bytes()];
    guest_fields.extend(record.iter().map(|a| a.to_vec()));
    let sender = sender.to_string();
    workers::submit(move || match plan_registered(&session, &encode_args(&guest_fields)) {
        Ok(moves) => {
            let abort = Arc::new(AtomicBool::new(false));
            parts().insert(id.clone(), Part { routing, moves, ..Part::new(session, abort, shards, me, initiator) });
            watch_idle(id.clone());
            answer(&sender, &id, "");
        }
        Err(e) => answer(&sender, &id, &e),
    });
}

fn fail(id: &str, error: String) -> Start {
    flows::finish(id, Outcome::failed(Status::Done, error), 0);
    Start::Distributed
}

fn as_int(r: &Reply) -> Option<i64> {
    match r {
        Reply::Int(n) => Some(*n),
        _ => None,
    }
}

fn as_bytes(r: &Reply) -> Option<Vec<u8>> {
    match r {
        Reply::Bulk(b) | Reply::Status(b) => Some(b.clone()),
        _ => None,
    }
}

fn set_status(id: &str, status: Status) {
    if let Some(e) = executions::registry().get_mut(id) {
        e.status = status;
    }
}

/// The initiator's execution `id` is gone (answered and dropped, or RG.DROPEXECUTION): so are
/// its copies on the peers. Any run this shard started may have them (a peer that has none
/// ignores the message).
pub fn dropped(id: &str) {
    forget(id);
    let topology = topology::current();
    if topology.is_cluster_mode() && id.starts_with(&topology.my_id) {
        let _ = transport::broadcast(DROP, id.as_bytes());
    }
}

/// Removes this shard's part of run `id` (and the session's); whether there was one.
fn forget(id: &str) -> bool {
    let part = parts().remove(id);
    match part {
        Some(part) => {
            part.session.enter_on_worker(GuestEntry::ForgetPlan, &[id.as_bytes()]);
            true
        }
        None => false,
    }
}

/// RG.ABORTEXECUTION of a distributed run: it ends as aborted here and on every shard
/// (a stage running now stops through the abort flag the command set).
pub fn abort(id: &str) {
    if abort_here(id) {
        let _ = transport::broadcast(ABORT, id.as_bytes());
    }
}

fn abort_here(id: &str) -> bool {
    let Some(part) = parts().remove(id) else { return false };
    part.abort.store(true, std::sync::atomic::Ordering::Relaxed);
    part.session.enter_on_worker(GuestEntry::ForgetPlan, &[id.as_bytes()]);
    conclude(id, part, Outcome::failed(Status::Aborted, SandboxError::Aborted.to_string()));
    true
}

// ---- receivers (main thread) ------------------------------------------------------------

/// A peer: [id, initiator index, shard ids, routing, user, plan].
fn on_plan(ctx: &Context, sender: &str, payload: &[u8]) {
    let Ok(fields) = decode_args(payload) else { return };
    let [id, initiator, shards, routing, user, plan] = fields.as_slice() else { return };
    let _ = topology::refresh(ctx, false); // the links this shard answers through
    let (id, routing, plan) = (text(id), text(routing), plan.to_vec());
    let shards: Vec<String> = text(shards).split(',').map(str::to_string).collect();
    let initiator: usize = text(initiator).parse().unwrap_or(usize::MAX);
    let me = topology::current().my_id;
    let Some(me) = shards.iter().position(|s| *s == me) else {
        return answer(sender, &id, "this shard is not in the run's topology");
    };
    let run_as = if user.is_empty() { RunAs::Module } else { RunAs::User(text(user).into()) };
    let sender = sender.to_string();
    workers::submit(move || {
        if let Err(e) = load_plan(&id, run_as, shards, me, initiator, routing, &plan) {
            answer(&sender, &id, &e);
        } else {
            answer(&sender, &id, "");
        }
    });
}

fn load_plan(
    id: &str,
    run_as: RunAs,
    shards: Vec<String>,
    me: usize,
    initiator: usize,
    routing: String,
    plan: &[u8],
) -> Result<(), String> {
    let session = Session::create_for(None, None, Vec::new(), Vec::new(), run_as).map_err(|e| e.to_string())?;
    let setup = EntrySetup::new(caller::detached(&session.run_as));
    let out = session
        .callback(GuestEntry::ImportPlan, &encode_args(&[id.as_bytes(), plan]), setup)
        .map_err(|e| e.to_string())?;
    let loaded = FlowResults::decode(out.reply).ok_or("malformed plan from the sandbox")?;
    if !loaded.errors.is_empty() {
        return Err(loaded.errors.join(" "));
    }
    let moves = loaded.results.first().and_then(as_int).ok_or("malformed plan from the sandbox")? as usize;
    let plan_steps: Vec<String> =
        loaded.results[1..].iter().filter_map(as_bytes).map(|b| String::from_utf8_lossy(&b).into_owned()).collect();
    let abort = executions::add(id, plan_steps, Arc::clone(&session));
    parts().insert(id.to_string(), Part { routing, moves, ..Part::new(session, abort, shards, me, initiator) });
    watch_idle(id.to_string());
    Ok(())
}

fn answer(initiator: &str, id: &str, error: &str) {
    let _ = transport::send(initiator, RECEIVED, encode_args(&[id.as_bytes(), error.as_bytes()]));
}

/// The initiator: [id, error] from a peer that loaded (or could not load) the flow.
fn on_received(_ctx: &Context, sender: &str, payload: &[u8]) {
    let Ok(fields) = decode_args(payload) else { return };
    let [id, error] = fields.as_slice() else { return };
    let (id, error) = (text(id), text(error));
    if !error.is_empty() {
        let removed = parts().remove(&id);
        if let Some(part) = removed {
            part.session.enter_on_worker(GuestEntry::ForgetPlan, &[id.as_bytes()]);
            let _ = transport::broadcast(DROP, id.as_bytes());
            conclude(&id, part, Outcome::failed(Status::Done, format!("shard {sender}: {error}")));
        }
        return;
    }
    let all = {
        let mut parts = parts();
        let Some(part) = parts.get_mut(&id) else { return };
        part.received += 1;
        part.last_progress = Instant::now();
        part.received + 1 == part.shards.len()
    };
    if all {
        let _ = transport::broadcast(RUN, id.as_bytes());
        run_stage(id, 0, Vec::new());
    }
}

/// A peer: [id] every shard has the flow; stage 0 starts.
fn on_run(_ctx: &Context, _sender: &str, payload: &[u8]) {
    let id = text(payload);
    let known = {
        let mut parts = parts();
        parts.get_mut(&id).map(|p| p.last_progress = Instant::now()).is_some()
    };
    if known {
        set_status(&id, Status::Running);
        run_stage(id, 0, Vec::new());
    }
}

/// [id, stage, from index, parts...]: a shard's part of a stage's input.
fn on_part(_ctx: &Context, _sender: &str, payload: &[u8]) {
    let Ok(fields) = decode_args(payload) else { return };
    let [id, stage, from, blobs @ ..] = fields.as_slice() else { return };
    let (Ok(stage), Ok(from)) = (text(stage).parse::<usize>(), text(from).parse::<usize>()) else { return };
    deliver(text(id), stage, from, blobs.iter().map(|b| b.to_vec()).collect());
}

/// [id]: the initiator dropped the run; its copy here goes too.
fn on_drop(_ctx: &Context, _sender: &str, payload: &[u8]) {
    let id = text(payload);
    forget(&id);
    let removed = executions::registry().remove(&id);
    drop(removed); // outside the lock: this may free the session
}

// ---- stages --------------------------------------------------------------------------

fn deliver(id: String, stage: usize, from: usize, blobs: Blobs) {
    let ready = {
        let mut parts = parts();
        let Some(part) = parts.get_mut(&id) else { return };
        part.last_progress = Instant::now();
        part.inbox.entry(stage).or_default().push((from, blobs));
        take_ready(part)
    };
    if let Some((stage, input)) = ready {
        run_stage(id, stage, input);
    }
}

/// The next stage's input once every shard's part arrived: this shard's part first, then the
/// others, the last arrived first (1.2's collect pops the records it received).
fn take_ready(part: &mut Part) -> Option<(usize, Blobs)> {
    let stage = part.waiting_stage;
    let arrived = part.inbox.get(&stage)?;
    if arrived.len() < part.shards.len() && !part.idle {
        return None;
    }
    let mut arrived = part.inbox.remove(&stage).unwrap_or_default();
    part.waiting_stage += 1;
    let mine = arrived.iter().position(|(from, _)| *from == part.me).map(|i| arrived.remove(i));
    let mut input: Blobs = mine.map(|(_, b)| b).unwrap_or_default();
    for (_, blobs) in arrived.into_iter().rev() {
        input.extend(blobs);
    }
    Some((stage, input))
}

fn run_stage(id: String, stage: usize, input: Blobs) {
    let found = parts().get(&id).map(|p| {
        (Arc::clone(&p.session), Arc::clone(&p.abort), p.routing.clone(), p.me.to_string(), p.initiator.to_string())
    });
    let Some((session, abort, routing, me, initiator)) = found else { return };
    let stage_text = stage.to_string();
    let mut fields: Vec<&[u8]> =
        vec![id.as_bytes(), stage_text.as_bytes(), routing.as_bytes(), me.as_bytes(), initiator.as_bytes()];
    fields.extend(input.iter().map(|b| b.as_slice()));
    let payload = encode_args(&fields);
    workers::submit(move || {
        let setup = EntrySetup { abort: Some(abort), ..EntrySetup::new(caller::detached(&session.run_as)) };
        match session.callback(GuestEntry::RunStage, &payload, setup) {
            Ok(out) => out.then(move |result| stage_done(&id, stage, result)),
            Err(e) => stage_done(&id, stage, Err(e)),
        }
    });
}

/// The run ended here with `outcome`: a registration's goes to its `on_done`, an execution's
/// is stored (and answered) as a local one's.
fn conclude(id: &str, part: Part, outcome: Outcome) {
    let ms = part.started.elapsed().as_millis() as u64;
    if let Some(on_done) = part.on_done {
        workers::submit(move || on_done(outcome));
        return;
    }
    flows::finish(id, outcome, ms);
    if part.me == part.initiator && executions::registry().get(id).is_none() {
        dropped(id); // a blocking RG.PYEXECUTE's run, dropped once answered
    }
}

fn stage_done(id: &str, stage: usize, result: Result<Reply, SandboxError>) {
    let found = parts().get(id).map(|p| (p.moves, p.me, p.initiator, p.shards.clone(), p.idle));
    let Some((moves, me, initiator, shards, idle)) = found else { return };
    if stage == moves || result.is_err() {
        let Some(part) = parts().remove(id) else { return };
        let mut outcome = flows::outcome_of(id, result);
        if idle {
            outcome.status = Status::Aborted;
            outcome.errors.push(MAX_IDLE_REACHED.to_string());
        }
        return conclude(id, part, outcome);
    }
    let pairs = match result.map(FlowResults::decode) {
        Ok(Some(r)) => r.results,
        _ => Vec::new(),
    };
    let mut by_target: Vec<Blobs> = vec![Vec::new(); shards.len()];
    for pair in pairs {
        let Reply::Array(pair) = pair else { continue };
        let (Some(target), Some(blob)) = (pair.first().and_then(as_int), pair.get(1).and_then(as_bytes)) else {
            continue;
        };
        let target = if target < 0 { initiator } else { target as usize };
        if let Some(slot) = by_target.get_mut(target) {
            slot.push(blob);
        }
    }
    let next = (stage + 1).to_string();
    let me_text = me.to_string();
    let mut mine = Vec::new();
    for (index, blobs) in by_target.into_iter().enumerate() {
        if index == me {
            mine = blobs;
            continue;
        }
        let mut fields: Vec<&[u8]> = vec![id.as_bytes(), next.as_bytes(), me_text.as_bytes()];
        fields.extend(blobs.iter().map(|b| b.as_slice()));
        if let Err(e) = transport::send(&shards[index], PART, encode_args(&fields)) {
            crate::redis::log::warning(&format!("wasmgears: execution {id}: {e}"));
        }
    }
    deliver(id.to_string(), stage + 1, me, mine);
}

// ---- the idle limit ----------------------------------------------------------------

fn watch_idle(id: String) {
    timers::after(max_idle(), move || check_idle(id));
}

fn check_idle(id: String) {
    let limit = max_idle();
    let expired = {
        let mut parts = parts();
        let Some(part) = parts.get_mut(&id) else { return };
        let quiet = part.last_progress.elapsed();
        if quiet < limit {
            let again = limit - quiet;
            drop(parts);
            timers::after(again, move || check_idle(id));
            return;
        }
        part.idle = true;
        // The last stage runs with what arrived: a stalled collect still answers with the
        // records that reached the initiator.
        if part.waiting_stage == part.moves && part.waiting_stage > 0 {
            take_ready(part)
        } else {
            None
        }
    };
    crate::redis::log::notice(&format!("wasmgears: execution {id}: {MAX_IDLE_REACHED}"));
    match expired {
        Some((stage, input)) => run_stage(id, stage, input),
        None => {
            let removed = parts().remove(&id);
            if let Some(part) = removed {
                let outcome = Outcome {
                    status: Status::Aborted,
                    results: Vec::new(),
                    errors: vec![MAX_IDLE_REACHED.to_string()],
                    step_ms: Vec::new(),
                };
                conclude(&id, part, outcome);
            }
        }
    }
}
