//! The stages of a distributed run on one shard: a stage's input gathered from every shard,
//! the stage run in the session, its records sent on, the run's end, and the idle limit.

use std::sync::Arc;
use std::time::Instant;

use wasmgears_abi::{encode_args, FlowResults, GuestEntry, Reply};
use wasmgears_sandbox::{EntrySetup, SandboxError};

use super::part::{as_bytes, as_int, dropped, max_idle, parts, Blobs, Part, MAX_IDLE_REACHED, PART};
use crate::gears::executions::{self, Status};
use crate::gears::flows::{self, Outcome};
use crate::redis::caller;
use crate::runtime::{timers, workers};
use crate::transport;

pub fn deliver(id: String, stage: usize, from: usize, blobs: Blobs) {
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
pub fn take_ready(part: &mut Part) -> Option<(usize, Blobs)> {
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

pub fn run_stage(id: String, stage: usize, input: Blobs) {
    let found = parts().get_mut(&id).map(|p| {
        p.running = true;
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
pub fn conclude(id: &str, part: Part, outcome: Outcome) {
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

pub fn stage_done(id: &str, stage: usize, result: Result<Reply, SandboxError>) {
    let found = parts().get_mut(id).map(|p| {
        p.running = false;
        p.last_progress = Instant::now();
        (p.moves, p.me, p.initiator, p.shards.clone(), p.idle)
    });
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

pub fn watch_idle(id: String) {
    timers::after(max_idle(), move || check_idle(id));
}

pub fn check_idle(id: String) {
    let limit = max_idle();
    let expired = {
        let mut parts = parts();
        let Some(part) = parts.get_mut(&id) else { return };
        let quiet = part.last_progress.elapsed();
        if part.running || quiet < limit {
            let again = if part.running { limit } else { limit - quiet };
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

pub fn abort_here(id: &str) -> bool {
    let Some(part) = parts().remove(id) else { return false };
    part.abort.store(true, std::sync::atomic::Ordering::Relaxed);
    part.session.enter_on_worker(GuestEntry::ForgetPlan, &[id.as_bytes()]);
    conclude(id, part, Outcome::failed(Status::Aborted, SandboxError::Aborted.to_string()));
    true
}
