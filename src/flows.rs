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

/// Splits the guest's `[[results], [errors]]`.
fn split_results(reply: Reply) -> (Vec<Reply>, Vec<String>) {
    let text = |r: Reply| match r {
        Reply::Bulk(b) | Reply::Status(b) | Reply::Error(b) => String::from_utf8_lossy(&b).into_owned(),
        other => format!("{other:?}"),
    };
    match reply {
        Reply::Array(mut parts) if parts.len() == 2 => match (parts.remove(0), parts.remove(0)) {
            (Reply::Array(results), Reply::Array(errors)) => (results, errors.into_iter().map(text).collect()),
            _ => (Vec::new(), vec!["malformed results from the sandbox".into()]),
        },
        _ => (Vec::new(), vec!["malformed results from the sandbox".into()]),
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
    let (status, results, errors) = if !starting {
        (Status::Aborted, Vec::new(), vec![SandboxError::Aborted.to_string()])
    } else {
        match session.run_execution(id, redis, abort) {
            Ok(reply) => {
                let (results, errors) = split_results(reply);
                (Status::Done, results, errors)
            }
            Err(e @ SandboxError::Aborted) => (Status::Aborted, Vec::new(), vec![e.to_string()]),
            Err(e) => {
                crate::redis_log::warning(&format!("wasmgears: execution {id}: {e}"));
                (Status::Done, Vec::new(), vec![e.to_string()])
            }
        }
    };
    finish(id, status, results, errors, started.elapsed().as_millis() as u64);
}

fn finish(id: &str, status: Status, results: Vec<Reply>, errors: Vec<String>, total_ms: u64) {
    let (waiters, reply) = {
        let mut reg = executions::registry();
        let Some(e) = reg.get_mut(id) else { return };
        e.status = status;
        e.results = results;
        e.errors = errors;
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
