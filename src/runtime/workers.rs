//! The execution worker pool (`ExecutionThreads`): Python runs here, off Redis's main thread.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use wasmgears_sandbox::engine_config::MAX_WASM_STACK;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The workers' queue. Lock order: a leaf (level 5 in docs/architecture.md), held only to send.
static POOL: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();

/// Room for wasm's own stack plus the host frames around it.
const WORKER_STACK: usize = MAX_WASM_STACK + (8 << 20);

pub fn start(threads: usize) -> std::io::Result<()> {
    let (tx, rx) = channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads.max(1) {
        let rx = Arc::clone(&rx);
        std::thread::Builder::new().name(format!("rg-worker-{i}")).stack_size(WORKER_STACK).spawn(move || run(rx))?;
    }
    let _ = POOL.set(Mutex::new(tx));
    Ok(())
}

fn run(rx: Arc<Mutex<Receiver<Job>>>) {
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // A panic in one job must not take the worker (or Redis) down.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            crate::redis::log::warning("wasmgears: a worker job panicked; its client got no reply");
        }
    }
}

/// Queues `job` on the pool. Returns false if the pool is not running.
pub fn submit(job: impl FnOnce() + Send + 'static) -> bool {
    match POOL.get() {
        Some(tx) => tx.lock().unwrap_or_else(|p| p.into_inner()).send(Box::new(job)).is_ok(),
        None => false,
    }
}
