//! One peer's link: a thread of its own that connects (with Redis's own `masteruser` /
//! `masterauth`), greets the peer with `RG.HELLO` (its run id: a new one means it restarted and
//! what was queued for it is void), then writes the queued messages as pipelined
//! `RG.INNERMSGCOMMAND`s and drops each once the peer answered it. A lost connection is tried
//! again every second; unacknowledged messages are sent again (the peer ignores repeats). The
//! Redis lock is never taken here.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::outbox::{Message, Outbox, Refused};

/// Where a peer listens, and its node id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub id: String,
    pub host: String,
    pub port: u16,
}

/// How this shard signs its messages and logs in to its peers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub my_id: String,
    pub my_run_id: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

const RETRY: Duration = Duration::from_secs(1);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const BATCH: usize = 64;
/// Per peer: a peer that does not answer cannot hold more than this.
const MAX_MESSAGES: usize = 100_000;
const MAX_BYTES: usize = 512 << 20;
/// A message is written at most this often (RedisGears 1.2's SendMsgRetries default).
const MAX_SENDS: u32 = 3;

struct State {
    outbox: Outbox,
    peer_run_id: Option<String>,
    connected: bool,
    stopped: bool,
}

pub struct Link {
    pub peer: Peer,
    state: Mutex<State>,
    wake: Condvar,
}

impl Link {
    /// Starts the link's thread.
    pub fn start(peer: Peer, me: Identity) -> Arc<Link> {
        let link = Arc::new(Link {
            peer,
            state: Mutex::new(State {
                outbox: Outbox::new(MAX_MESSAGES, MAX_BYTES),
                peer_run_id: None,
                connected: false,
                stopped: false,
            }),
            wake: Condvar::new(),
        });
        let runner = Arc::clone(&link);
        let name = format!("rg-link-{}", &link.peer.id[..link.peer.id.len().min(8)]);
        if let Err(e) = std::thread::Builder::new().name(name).spawn(move || runner.run(&me)) {
            crate::redis::log::warning(&format!("wasmgears: no thread for the link to {}: {e}", link.peer.id));
        }
        link
    }

    /// Lock order: a leaf (level 5), never held while doing I/O.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn send(&self, function: &str, payload: Vec<u8>) -> Result<(), Refused> {
        let mut state = self.state();
        state.outbox.push(function, payload)?;
        self.wake.notify_one();
        Ok(())
    }

    pub fn stop(&self) {
        self.state().stopped = true;
        self.wake.notify_one();
    }

    /// The peer's run id once it answered RG.HELLO, and how many messages wait for it.
    pub fn status(&self) -> (Option<String>, usize, bool) {
        let state = self.state();
        (state.peer_run_id.clone(), state.outbox.len(), state.connected)
    }

    fn stopped(&self) -> bool {
        self.state().stopped
    }

    /// Waits `RETRY` (or until stopped).
    fn pause(&self) {
        let state = self.state();
        if !state.stopped {
            drop(self.wake.wait_timeout(state, RETRY));
        }
    }

    fn run(&self, me: &Identity) {
        let mut warned = false;
        while !self.stopped() {
            let mut connection = match self.connect(me) {
                Ok(c) => c,
                Err(e) => {
                    if !warned {
                        crate::redis::log::notice(&format!(
                            "wasmgears: cannot reach shard {} at {}:{} ({e}); trying every second",
                            self.peer.id, self.peer.host, self.peer.port
                        ));
                        warned = true;
                    }
                    self.pause();
                    continue;
                }
            };
            warned = false;
            if let Err(e) = self.deliver(&mut connection, me) {
                crate::redis::log::notice(&format!("wasmgears: link to shard {} lost: {e}", self.peer.id));
            }
            self.state().connected = false;
            self.pause();
        }
    }

    /// Connects, logs in and greets: the peer's run id decides whether the queue still holds.
    fn connect(&self, me: &Identity) -> redis::RedisResult<redis::Connection> {
        let mut settings = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(user) = &me.user {
            settings = settings.set_username(user);
        }
        if let Some(password) = &me.password {
            settings = settings.set_password(password);
        }
        let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
            self.peer.host.clone(),
            self.peer.port,
        ))?
        .set_redis_settings(settings);
        let mut connection = redis::Client::open(info)?.get_connection_with_timeout(IO_TIMEOUT)?;
        connection.set_read_timeout(Some(IO_TIMEOUT))?;
        connection.set_write_timeout(Some(IO_TIMEOUT))?;
        self.hello(&mut connection)?;
        Ok(connection)
    }

    /// RG.HELLO: the peer's run id. A new one means it started or restarted: what was queued
    /// for its previous run is void, and the domain hears of it (`transport::on_greeted`).
    fn hello(&self, connection: &mut redis::Connection) -> redis::RedisResult<()> {
        let run_id: String = redis::cmd("RG.HELLO").query(connection)?;
        let new_run = {
            let mut state = self.state();
            if state.peer_run_id.as_ref().is_some_and(|known| *known != run_id) {
                let dropped = state.outbox.clear();
                if dropped > 0 {
                    crate::redis::log::notice(&format!(
                        "wasmgears: shard {} restarted; {dropped} messages for it dropped",
                        self.peer.id
                    ));
                }
            }
            let new_run = state.peer_run_id.as_ref() != Some(&run_id);
            state.peer_run_id = Some(run_id);
            state.connected = true;
            new_run
        };
        if new_run {
            super::greeting::greeted(&self.peer.id);
        }
        Ok(())
    }

    /// Writes what is queued, batch by batch, until the connection fails or the link stops.
    fn deliver(&self, connection: &mut redis::Connection, me: &Identity) -> redis::RedisResult<()> {
        loop {
            let batch = {
                let mut state = self.state();
                if state.outbox.is_empty() && !state.stopped {
                    // Idle: a HELLO every second finds a peer that went away or restarted
                    // (1.2 only noticed when it next had something to send).
                    state = self.wake.wait_timeout(state, RETRY).unwrap_or_else(|p| p.into_inner()).0;
                    if state.outbox.is_empty() && !state.stopped {
                        drop(state);
                        self.hello(connection)?;
                        continue;
                    }
                }
                if state.stopped {
                    return Ok(());
                }
                for function in state.outbox.drop_exhausted(MAX_SENDS) {
                    crate::redis::log::warning(&format!(
                        "wasmgears: a {function} message to shard {} was given up after {MAX_SENDS} tries",
                        self.peer.id
                    ));
                }
                state.outbox.take_batch(BATCH)
            };
            if batch.is_empty() {
                continue;
            }
            let replies: Vec<redis::Value> = pipeline(&batch, me).query(connection)?;
            let mut state = self.state();
            for (message, reply) in batch.iter().zip(replies) {
                if let redis::Value::ServerError(e) = &reply {
                    // The peer refused it (it will refuse it again): dropped, said once.
                    crate::redis::log::warning(&format!(
                        "wasmgears: shard {} refused a {} message: {e}",
                        self.peer.id, message.function
                    ));
                }
                state.outbox.acknowledge(message.id);
            }
        }
    }
}

fn pipeline(batch: &[Message], me: &Identity) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for m in batch {
        pipe.cmd("RG.INNERMSGCOMMAND").arg(&me.my_id).arg(&me.my_run_id).arg(&m.function).arg(&m.payload).arg(m.id);
    }
    pipe
}
