//! Messages between shards (RedisGears 1.2: src/cluster.c): one link per peer master
//! (`link.rs`), each message `RG.INNERMSGCOMMAND <sender id> <sender run id> <function>
//! <payload> <message id>`, run on the receiving shard's main thread by the receiver registered
//! for `function`, once (`dedup.rs`). Payloads are bytes to this layer: the gears domain gives
//! them meaning. Below the gears domain: it knows peers by id and address, nothing more.

mod dedup;
mod greeting;
mod link;
mod outbox;

pub use greeting::on_greeted;

pub use link::{Identity, Peer};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use redis_module::Context;

use link::Link;

/// What runs a message on the receiving shard's main thread: (context, sender id, payload).
pub type Receiver = fn(&Context, &str, &[u8]);

#[derive(Default)]
struct Network {
    me: Identity,
    links: HashMap<String, Arc<Link>>,
}

/// Lock order: level 4, taken alone (a link's own lock is taken under it only to queue).
static NETWORK: OnceLock<Mutex<Network>> = OnceLock::new();
static RECEIVERS: OnceLock<Mutex<HashMap<&'static str, Receiver>>> = OnceLock::new();
static SEEN: OnceLock<Mutex<dedup::Seen>> = OnceLock::new();

fn lock<T: Default>(cell: &'static OnceLock<Mutex<T>>) -> MutexGuard<'static, T> {
    cell.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers the receiver of messages named `function` (at load).
pub fn on(function: &'static str, receiver: Receiver) {
    lock(&RECEIVERS).insert(function, receiver);
}

/// Who this shard is and who its peers are: links to new peers start, links to peers that are
/// gone stop, and all of them restart when this shard's identity changed (a new run id, other
/// credentials). Cheap when nothing changed.
pub fn configure(me: Identity, peers: Vec<Peer>) {
    let stopped = {
        let mut network = lock(&NETWORK);
        let mut stopped = Vec::new();
        if network.me != me {
            stopped.extend(network.links.drain().map(|(_, l)| l));
            network.me = me.clone();
        }
        let wanted: HashMap<&str, &Peer> = peers.iter().map(|p| (p.id.as_str(), p)).collect();
        let gone: Vec<String> = network
            .links
            .iter()
            .filter(|(id, l)| wanted.get(id.as_str()) != Some(&&l.peer))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            stopped.extend(network.links.remove(&id));
        }
        for peer in peers {
            network.links.entry(peer.id.clone()).or_insert_with(|| Link::start(peer, me.clone()));
        }
        stopped
    };
    for link in stopped {
        link.stop();
    }
}

/// Queues a message for peer `target`.
pub fn send(target: &str, function: &str, payload: Vec<u8>) -> Result<(), String> {
    let link = lock(&NETWORK).links.get(target).cloned().ok_or_else(|| format!("unknown shard {target}"))?;
    link.send(function, payload).map_err(|e| format!("shard {target}: {e}"))
}

/// Queues a message for every peer; the first refusal (the others are still queued).
pub fn broadcast(function: &str, payload: &[u8]) -> Result<(), String> {
    let links: Vec<Arc<Link>> = lock(&NETWORK).links.values().cloned().collect();
    let mut first_error = Ok(());
    for link in links {
        if let Err(e) = link.send(function, payload.to_vec()) {
            if first_error.is_ok() {
                first_error = Err(format!("shard {}: {e}", link.peer.id));
            }
        }
    }
    first_error
}

/// A peer's run id (once it answered RG.HELLO) and the messages waiting for it.
pub fn peer_status(id: &str) -> Option<(Option<String>, usize)> {
    let link = lock(&NETWORK).links.get(id).cloned()?;
    let (run_id, pending, _) = link.status();
    Some((run_id, pending))
}

/// Why an incoming message was refused (RedisGears 1.2's words).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("bad msg id given")]
    BadId,
    #[error("can not find the callback requested")]
    NoReceiver,
}

/// RG.INNERMSGCOMMAND on the main thread: `Ok(true)` ran it, `Ok(false)` a repeat ignored.
pub fn receive(
    ctx: &Context,
    sender: &str,
    sender_run_id: &str,
    function: &str,
    payload: &[u8],
    id: &str,
) -> Result<bool, Refusal> {
    let id: u64 = id.parse().map_err(|_| Refusal::BadId)?;
    let receiver = *lock(&RECEIVERS).get(function).ok_or(Refusal::NoReceiver)?;
    if !lock(&SEEN).first_time(sender, sender_run_id, id) {
        return Ok(false);
    }
    receiver(ctx, sender, payload);
    Ok(true)
}
