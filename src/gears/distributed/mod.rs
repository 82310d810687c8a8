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

mod part;
mod receivers;
mod stages;

pub use part::{dropped, OnDone, MAX_IDLE_REACHED};
pub use receivers::install;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use wasmgears_abi::{encode_args, FlowResults, GuestEntry};
use wasmgears_sandbox::EntrySetup;

use crate::gears::executions::{self, Status};
use crate::gears::flows::{self, Outcome};
use crate::gears::topology;
use crate::redis::caller;
use crate::redis::run_as::RunAs;
use crate::session::Session;
use crate::transport;
use part::{as_bytes, as_int, forget, parts, set_status, Part, ABORT, PLAN, PLAN_REGISTERED};
use receivers::plan_registered;
use stages::{abort_here, conclude, watch_idle};

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

fn fail(id: &str, error: String) -> Start {
    flows::finish(id, Outcome::failed(Status::Done, error), 0);
    Start::Distributed
}

/// RG.ABORTEXECUTION of a distributed run: it ends as aborted here and on every shard
/// (a stage running now stops through the abort flag the command set).
pub fn abort(id: &str) {
    if abort_here(id) {
        let _ = transport::broadcast(ABORT, id.as_bytes());
    }
}
