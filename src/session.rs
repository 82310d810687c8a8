//! A session: one script's sandboxed interpreter, shared by `Arc` among everything the
//! script created (the RG.PYEXECUTE call now; executions, registrations and time events
//! later). Dropping the last `Arc` drops the instance and returns its memory.

use crate::codec::Reply;
use crate::sandbox::{self, Created, Guest, RedisCaller, SandboxError, ScriptOutcome};
use std::io::Read;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static LIVE_SESSIONS: AtomicUsize = AtomicUsize::new(0);

pub struct Session {
    pub id: String,
    /// One thread at a time runs this session's Python (its "GIL").
    guest: Mutex<Guest>,
}

/// Sessions currently alive in this process.
pub fn live_sessions() -> usize {
    LIVE_SESSIONS.load(Ordering::Relaxed)
}

/// 40 random hex characters, like RedisGears' session ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 20];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_err() {
        // Unique enough without entropy: time and a counter.
        static FALLBACK: AtomicUsize = AtomicUsize::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        bytes[..16].copy_from_slice(&nanos.to_le_bytes());
        bytes[16..].copy_from_slice(&(FALLBACK.fetch_add(1, Ordering::Relaxed) as u32).to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Session {
    pub fn create(id: Option<String>) -> Result<Arc<Session>, SandboxError> {
        let rt = sandbox::runtime().ok_or_else(|| SandboxError::Create("the sandbox is not initialised".into()))?;
        let guest = Guest::new(rt)?;
        LIVE_SESSIONS.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(Session { id: id.unwrap_or_else(random_id), guest: Mutex::new(guest) }))
    }

    fn guest(&self) -> std::sync::MutexGuard<'_, Guest> {
        self.guest.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn exec_script(
        &self,
        script: &[u8],
        redis: Box<dyn RedisCaller>,
    ) -> Result<(ScriptOutcome, Created), SandboxError> {
        self.guest().exec_script(script, redis)
    }

    pub fn run_trigger(&self, payload: &[u8], redis: Box<dyn RedisCaller>) -> Result<Reply, SandboxError> {
        self.guest().run_trigger(payload, redis)
    }

    pub fn run_key_event(&self, payload: &[u8], redis: Box<dyn RedisCaller>) -> Result<Reply, SandboxError> {
        self.guest().run_key_event(payload, redis)
    }

    pub fn run_execution(
        &self,
        id: &str,
        redis: Box<dyn RedisCaller>,
        abort: Arc<AtomicBool>,
    ) -> Result<Reply, SandboxError> {
        self.guest().run_execution(id, redis, abort)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        LIVE_SESSIONS.fetch_sub(1, Ordering::Relaxed);
    }
}
