//! Results that come later: an entry whose records wait (async steps, `gearsFuture`) hands
//! its caller a token instead of results; a later entry into the same session completes the
//! token. The caller's continuation (answer a client, finish an execution, count a run) is
//! attached to the token after the first entry, so a completion may arrive before it: the
//! result is then kept until the continuation is attached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// What a continuation receives: the encoded results, or why there are none.
pub type Completion<R> = Box<dyn FnOnce(R) + Send + 'static>;

enum Slot<R> {
    /// Handed out; neither attached nor completed yet.
    Open,
    Waiting(Completion<R>),
    Completed(R),
}

/// Where a continuation whose result was already in when it was attached runs.
pub type Spawn = fn(Box<dyn FnOnce() + Send + 'static>);

/// The tokens of one kind of result.
pub struct Table<R> {
    next: AtomicU64,
    slots: Mutex<HashMap<u64, Slot<R>>>,
    spawn: Spawn,
}

impl<R: Send + 'static> Default for Table<R> {
    /// A table whose early results are delivered on the attaching thread (for tests).
    fn default() -> Self {
        Table::with_spawn(|job| job())
    }
}

impl<R: Send + 'static> Table<R> {
    /// A table whose early results are delivered through `spawn`.
    pub fn with_spawn(spawn: Spawn) -> Self {
        Table { next: AtomicU64::new(1), slots: Mutex::new(HashMap::new()), spawn }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Slot<R>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new token, open until attached and completed.
    pub fn open(&self) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.slots().insert(token, Slot::Open);
        token
    }

    /// Attaches the continuation; if the result is already in, it runs through the table's
    /// `spawn` (never on the attaching thread, which may be Redis's main thread holding the
    /// Redis lock: a continuation may enter a session and call Redis).
    pub fn attach(&self, token: u64, then: Completion<R>) {
        let ready = {
            let mut slots = self.slots();
            match slots.remove(&token) {
                Some(Slot::Completed(result)) => Some(result),
                Some(Slot::Open) => {
                    slots.insert(token, Slot::Waiting(then));
                    return;
                }
                // Attached twice: the first continuation stays.
                Some(waiting @ Slot::Waiting(_)) => {
                    slots.insert(token, waiting);
                    return;
                }
                // Cancelled: nobody waits for it any more.
                None => return,
            }
        };
        if let Some(result) = ready {
            (self.spawn)(Box::new(move || then(result)));
        }
    }

    /// Delivers the result: runs the attached continuation (on this thread), or keeps it.
    pub fn complete(&self, token: u64, result: R) {
        let then = {
            let mut slots = self.slots();
            match slots.remove(&token) {
                Some(Slot::Waiting(then)) => then,
                Some(Slot::Open) => {
                    slots.insert(token, Slot::Completed(result));
                    return;
                }
                // Completed twice: the first result stays.
                Some(done @ Slot::Completed(_)) => {
                    slots.insert(token, done);
                    return;
                }
                None => return,
            }
        };
        then(result);
    }

    /// Forgets the token: a later completion is dropped. Whether it was still pending.
    pub fn cancel(&self, token: u64) -> bool {
        self.slots().remove(&token).is_some()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots().len()
    }
}

/// A deferred entry's outcome: the results it would have returned, or why there are none.
pub type EntryResult = Result<wasmgears_abi::Reply, wasmgears_sandbox::SandboxError>;

/// The process's table of deferred entry results.
pub fn results() -> &'static Table<EntryResult> {
    // Lock order: level 3 (docs/architecture.md); continuations run after it is released.
    static TABLE: OnceLock<Table<EntryResult>> = OnceLock::new();
    TABLE.get_or_init(|| {
        Table::with_spawn(|job| {
            if !crate::runtime::workers::submit(job) {
                crate::redis::log::warning("wasmgears: no worker for a deferred result");
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex as StdMutex};

    fn recorder() -> (Arc<StdMutex<Vec<u32>>>, impl Fn() -> Completion<u32>) {
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        (seen, move || {
            let s = Arc::clone(&s);
            Box::new(move |v| s.lock().unwrap().push(v)) as Completion<u32>
        })
    }

    #[test]
    fn completion_after_attach_runs_the_continuation() {
        let table = Table::default();
        let (seen, then) = recorder();
        let t = table.open();
        table.attach(t, then());
        assert!(seen.lock().unwrap().is_empty());
        table.complete(t, 7);
        assert_eq!(*seen.lock().unwrap(), vec![7]);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn completion_before_attach_is_kept_until_attached() {
        let table = Table::default();
        let (seen, then) = recorder();
        let t = table.open();
        table.complete(t, 3);
        assert!(seen.lock().unwrap().is_empty());
        table.attach(t, then());
        assert_eq!(*seen.lock().unwrap(), vec![3]);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn cancelled_tokens_drop_late_results_and_continuations() {
        let table = Table::default();
        let (seen, then) = recorder();
        let a = table.open();
        table.attach(a, then());
        assert!(table.cancel(a));
        table.complete(a, 1);
        let b = table.open();
        assert!(table.cancel(b));
        table.attach(b, then());
        table.complete(b, 2);
        assert!(seen.lock().unwrap().is_empty());
        assert_eq!(table.len(), 0);
        assert!(!table.cancel(a));
    }

    #[test]
    fn a_token_completes_once() {
        let table = Table::default();
        let (seen, then) = recorder();
        let t = table.open();
        table.complete(t, 1);
        table.complete(t, 2);
        table.attach(t, then());
        assert_eq!(*seen.lock().unwrap(), vec![1]);
    }
}
