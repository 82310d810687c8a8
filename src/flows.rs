//! Running an execution's flow in its session, and finishing it: results stored, waiting
//! clients (RG.GETRESULTSBLOCKING) answered.

use crate::codec::Reply;
use crate::executions::{self, Status};
use crate::sandbox::{RedisCaller, SandboxError};
use crate::session::Session;
use crate::worker_context::WorkerContext;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How an execution ended.
pub struct Outcome {
    pub status: Status,
    pub results: Vec<Reply>,
    pub errors: Vec<String>,
    /// Per step, plan order (only with ProfileExecutions).
    pub step_ms: Vec<u64>,
}

impl Outcome {
    fn failed(status: Status, error: String) -> Outcome {
        Outcome { status, results: Vec::new(), errors: vec![error], step_ms: Vec::new() }
    }
}

/// Splits the guest's `[[results], [errors]]` (+ `[durations]` when profiling).
pub fn split_results(reply: Reply) -> Outcome {
    let text = |r: Reply| match r {
        Reply::Bulk(b) | Reply::Status(b) | Reply::Error(b) => String::from_utf8_lossy(&b).into_owned(),
        other => format!("{other:?}"),
    };
    let Reply::Array(parts) = reply else {
        return Outcome::failed(Status::Done, "malformed results from the sandbox".into());
    };
    let mut parts = parts.into_iter();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Reply::Array(results)), Some(Reply::Array(errors)), durations) => {
            let step_ms = match durations {
                Some(Reply::Array(d)) => {
                    d.iter().map(|x| if let Reply::Int(ms) = x { *ms as u64 } else { 0 }).collect()
                }
                _ => Vec::new(),
            };
            Outcome { status: Status::Done, results, errors: errors.into_iter().map(text).collect(), step_ms }
        }
        _ => Outcome::failed(Status::Done, "malformed results from the sandbox".into()),
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
    let outcome = if !starting {
        Outcome::failed(Status::Aborted, SandboxError::Aborted.to_string())
    } else {
        match session.run_execution(id, redis, abort) {
            Ok(reply) => split_results(reply),
            Err(e @ SandboxError::Aborted) => Outcome::failed(Status::Aborted, e.to_string()),
            Err(e) => {
                crate::redis_log::warning(&format!("wasmgears: execution {id}: {e}"));
                Outcome::failed(Status::Done, e.to_string())
            }
        }
    };
    finish(id, outcome, started.elapsed().as_millis() as u64);
}

fn finish(id: &str, outcome: Outcome, total_ms: u64) {
    let (waiters, reply) = {
        let mut reg = executions::registry();
        let Some(e) = reg.get_mut(id) else { return };
        e.status = outcome.status;
        e.results = outcome.results;
        e.errors = outcome.errors;
        e.step_ms = outcome.step_ms;
        e.total_ms = total_ms;
        (std::mem::take(&mut e.waiters), e.results_reply())
    };
    for waiter in waiters {
        reply_to_blocked(waiter, &reply);
    }
}

/// Answers a client blocked by RG.GETRESULTSBLOCKING.
fn reply_to_blocked(client: WorkerContext, reply: &Reply) {
    client.reply(reply);
}
