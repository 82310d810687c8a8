//! Running an execution's flow in its session, and finishing it: results stored, waiting
//! clients (RG.GETRESULTSBLOCKING) answered.

use crate::gears::executions::{self, Status};
use crate::session::{CallbackOutput, Session};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use wasmgears_abi::{FlowResults, GuestEntry, Reply};
use wasmgears_sandbox::{RedisCaller, SandboxError};

/// How an execution ended.
pub struct Outcome {
    pub status: Status,
    pub results: Vec<Reply>,
    pub errors: Vec<String>,
    /// Per step, plan order (only with ProfileExecutions).
    pub step_ms: Vec<u64>,
}

impl Outcome {
    pub fn failed(status: Status, error: String) -> Outcome {
        Outcome { status, results: Vec::new(), errors: vec![error], step_ms: Vec::new() }
    }
}

/// Reads the guest's results (`wasmgears_abi::FlowResults`) as an outcome.
pub fn split_results(reply: Reply) -> Outcome {
    match FlowResults::decode(reply) {
        Some(r) => Outcome { status: Status::Done, results: r.results, errors: r.errors, step_ms: r.step_ms },
        None => Outcome::failed(Status::Done, "malformed results from the sandbox".into()),
    }
}

/// Runs execution `id` of `session` to its end (unless aborted before it starts).
pub fn run(id: &str, session: &Session, abort: Arc<AtomicBool>, redis: Box<dyn RedisCaller>) {
    let starting = {
        let mut reg = executions::registry();
        match reg.get_mut(id) {
            Some(e) if !abort.load(Ordering::Relaxed) => {
                e.status = Status::Running;
                true
            }
            _ => false,
        }
    };
    let started = Instant::now();
    if !starting {
        let outcome = Outcome::failed(Status::Aborted, SandboxError::Aborted.to_string());
        return finish(id, outcome, 0);
    }
    let result = session.run_execution(id, redis, Arc::clone(&abort));
    if let Ok(out @ CallbackOutput { deferred: Some(token), .. }) = result {
        // Its records wait (async steps): it finishes when the session completes the token,
        // unless RG.ABORTEXECUTION finishes it first.
        set_waiting(id, token);
        let aborted = abort.load(Ordering::Relaxed); // RG.ABORTEXECUTION came before `waiting` was set
        let owned_id = id.to_string();
        // `finish` clears `waiting` under the same lock that stores the results: a blocking
        // RG.PYEXECUTE sees either a waiting execution (and waits) or the finished one.
        out.then(move |result| {
            finish(&owned_id, outcome_of(&owned_id, result), started.elapsed().as_millis() as u64);
        });
        if aborted {
            abort_waiting(id);
        }
        return;
    }
    let outcome = outcome_of(id, result.map(|out| out.reply));
    finish(id, outcome, started.elapsed().as_millis() as u64);
}

pub fn outcome_of(id: &str, result: Result<Reply, SandboxError>) -> Outcome {
    match result {
        Ok(reply) => split_results(reply),
        Err(e @ SandboxError::Aborted) => Outcome::failed(Status::Aborted, e.to_string()),
        Err(e) => {
            crate::redis::log::warning(&format!("wasmgears: execution {id}: {e}"));
            Outcome::failed(Status::Done, e.to_string())
        }
    }
}

fn set_waiting(id: &str, token: u64) {
    if let Some(e) = executions::registry().get_mut(id) {
        e.waiting = Some(token);
    }
}

/// RG.ABORTEXECUTION of an execution whose records wait: it ends now, as aborted, and its
/// session drops the waiting records. False if it is not waiting.
pub fn abort_waiting(id: &str) -> bool {
    let (token, session) = {
        let mut reg = executions::registry();
        match reg.get_mut(id) {
            Some(e) if e.status == Status::Running && e.waiting.is_some() => (e.waiting.take(), e.session()),
            _ => return false,
        }
    };
    let Some(token) = token else { return false };
    if !crate::session::deferred::results().cancel(token) {
        return false; // completing right now: it finishes by itself
    }
    finish(id, Outcome::failed(Status::Aborted, SandboxError::Aborted.to_string()), 0);
    if let Some(session) = session {
        session.enter_on_worker(GuestEntry::Cancel, &[token.to_string().as_bytes()]);
    }
    true
}

pub fn finish(id: &str, outcome: Outcome, total_ms: u64) {
    let (waiters, reply, dropped) = {
        let mut reg = executions::registry();
        let Some(e) = reg.get_mut(id) else { return };
        e.waiting = None;
        e.status = outcome.status;
        e.results = outcome.results;
        e.errors = outcome.errors;
        e.step_ms = outcome.step_ms;
        e.total_ms = total_ms;
        let waiters = std::mem::take(&mut e.waiters);
        let reply = e.results_reply();
        let dropped = if e.drop_when_answered { reg.remove(id) } else { None };
        (waiters, reply, dropped)
    };
    drop(dropped); // outside the lock: this may free the session
    for waiter in waiters {
        // Clients blocked by RG.GETRESULTSBLOCKING or a blocking RG.PYEXECUTE.
        waiter.reply(&reply);
        waiter.unblock();
    }
}
