//! Asking every shard and answering with all of them (RedisGears 1.2 runs a ShardsIDReader
//! execution with a `map` that asks each shard, then `collect`): `RG.GETEXECUTION <id>` in
//! cluster mode, `RG.DUMPEXECUTIONS CLUSTER`, `RG.DUMPREGISTRATIONS CLUSTER`. Each kind of
//! question has an answerer that runs on every shard's main thread; the asking shard's client
//! gets its own answer first, then each peer's in topology order (a peer that does not answer
//! within `ExecutionMaxIdleTime` is an error element naming it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use redis_module::Context;
use wasmgears_abi::{decode_args, encode_args, Reply};

use crate::gears::distributed::MAX_IDLE_REACHED;
use crate::gears::topology;
use crate::redis::worker_context::WorkerContext;
use crate::runtime::{config, settings, timers, workers};
use crate::transport;

const ASK: &str = "wg.ask";
const ANSWER: &str = "wg.answer";

/// One shard's answer to a question (its arguments), on its main thread.
pub type Answerer = fn(&Context, &[u8]) -> Reply;
/// The client's reply from every shard's answer (this shard's first).
pub type Combine = fn(Vec<Reply>) -> Reply;

struct Question {
    client: Arc<WorkerContext>,
    /// Per shard in topology order: its answer once it came.
    answers: Vec<(String, Option<Reply>)>,
    combine: Combine,
}

/// Lock order: level 3, taken alone.
static ANSWERERS: OnceLock<Mutex<HashMap<&'static str, Answerer>>> = OnceLock::new();
static QUESTIONS: OnceLock<Mutex<HashMap<u64, Question>>> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(1);

fn lock<T: Default>(cell: &'static OnceLock<Mutex<T>>) -> MutexGuard<'static, T> {
    cell.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

pub fn install() {
    transport::on(ASK, on_ask);
    transport::on(ANSWER, on_answer);
}

/// Registers the answerer of questions of `kind` (at load).
pub fn on(kind: &'static str, answerer: Answerer) {
    lock(&ANSWERERS).insert(kind, answerer);
}

/// Every shard's list as one: each shard's items in turn (a shard's error as one element).
pub fn concatenated(lists: Vec<Reply>) -> Reply {
    let mut all = Vec::new();
    for list in lists {
        match list {
            Reply::Array(items) => all.extend(items),
            error => all.push(error),
        }
    }
    Reply::Array(all)
}

/// True in cluster mode (more than one master).
pub fn in_cluster(ctx: &Context) -> bool {
    crate::redis::cluster_api::cluster_enabled(ctx) && topology::refresh(ctx, false).is_ok_and(|t| t.is_cluster_mode())
}

/// Asks every peer `kind` with `args`; the blocked `client` gets `combine` of this shard's
/// `mine` and the peers' answers.
pub fn ask_all(kind: &str, args: &[u8], mine: Reply, client: Arc<WorkerContext>, combine: Combine) {
    let topology = topology::current();
    let request = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut answers: Vec<(String, Option<Reply>)> = vec![(topology.my_id.clone(), Some(mine))];
    answers.extend(topology.shards.iter().filter(|s| s.id != topology.my_id).map(|s| (s.id.clone(), None)));
    let peers: Vec<String> = answers[1..].iter().map(|(id, _)| id.clone()).collect();
    lock(&QUESTIONS).insert(request, Question { client, answers, combine });
    let payload = encode_args(&[request.to_string().as_bytes(), kind.as_bytes(), args]);
    for peer in peers {
        if let Err(e) = transport::send(&peer, ASK, payload.clone()) {
            record(request, &peer, Reply::Error(format!("ERR shard-{peer}: {e}").into_bytes()));
        }
    }
    let limit = settings::int(config::EXECUTION_MAX_IDLE_TIME).max(1) as u64;
    timers::after(Duration::from_millis(limit), move || expire(request));
    answer_if_complete(request);
}

fn record(request: u64, shard: &str, reply: Reply) {
    if let Some(q) = lock(&QUESTIONS).get_mut(&request) {
        if let Some((_, slot)) = q.answers.iter_mut().find(|(id, a)| id == shard && a.is_none()) {
            *slot = Some(reply);
        }
    }
}

fn expire(request: u64) {
    if let Some(q) = lock(&QUESTIONS).get_mut(&request) {
        for (shard, slot) in q.answers.iter_mut().filter(|(_, a)| a.is_none()) {
            *slot = Some(Reply::Error(format!("ERR shard-{shard}: {MAX_IDLE_REACHED}").into_bytes()));
        }
    }
    answer_if_complete(request);
}

fn answer_if_complete(request: u64) {
    let done = {
        let mut questions = lock(&QUESTIONS);
        match questions.get(&request) {
            Some(q) if q.answers.iter().all(|(_, a)| a.is_some()) => questions.remove(&request),
            _ => None,
        }
    };
    let Some(q) = done else { return };
    workers::submit(move || {
        let reply = (q.combine)(q.answers.into_iter().filter_map(|(_, a)| a).collect());
        q.client.reply(&reply);
        q.client.unblock();
    });
}

/// A peer: [request, kind, args] -> its answer, sent back.
fn on_ask(ctx: &Context, sender: &str, payload: &[u8]) {
    let Ok(fields) = decode_args(payload) else { return };
    let [request, kind, args] = fields.as_slice() else { return };
    let _ = topology::refresh(ctx, false);
    let answerer = lock(&ANSWERERS).get(String::from_utf8_lossy(kind).as_ref()).copied();
    let reply = match answerer {
        Some(answer) => answer(ctx, args),
        None => Reply::Error(b"ERR unknown question".to_vec()),
    };
    let _ = transport::send(sender, ANSWER, encode_args(&[*request, &reply.to_bytes()]));
}

/// The asking shard: [request, the peer's answer (encoded)].
fn on_answer(_ctx: &Context, sender: &str, payload: &[u8]) {
    let Ok(fields) = decode_args(payload) else { return };
    let [request, reply] = fields.as_slice() else { return };
    let Ok(request) = String::from_utf8_lossy(request).parse::<u64>() else { return };
    let reply = Reply::decode(reply).unwrap_or_else(|e| Reply::Error(format!("ERR shard-{sender}: {e}").into_bytes()));
    record(request, sender, reply);
    answer_if_complete(request);
}
