//! What a shard does with the messages of a distributed run (on its main thread).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use redis_module::Context;
use wasmgears_abi::{decode_args, encode_args, FlowResults, GuestEntry};
use wasmgears_sandbox::EntrySetup;

use super::part::{
    as_bytes, as_int, forget, parts, set_status, text, Part, ABORT, DROP, PART, PLAN, PLAN_REGISTERED, RECEIVED, RUN,
};
use super::stages::{abort_here, conclude, deliver, run_stage, watch_idle};
use crate::gears::executions::{self, Status};
use crate::gears::flows::Outcome;
use crate::gears::topology;
use crate::redis::caller;
use crate::redis::run_as::RunAs;
use crate::runtime::workers;
use crate::session::Session;
use crate::transport;

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

pub fn answer(initiator: &str, id: &str, error: &str) {
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

/// The session's part of a registration's run: its number of moves.
pub fn plan_registered(session: &Arc<Session>, payload: &[u8]) -> Result<usize, String> {
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
