//! `inorder=True` (CommandReader): the registration's runs start in arrival order, each only
//! once the previous one has finished, waiting records included. A run is finished when the
//! `Turn` it was handed is dropped (with the client's answer, whenever that comes).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce(Turn) + Send + 'static>;
type Spawn = fn(Box<dyn FnOnce() + Send + 'static>) -> bool;

#[derive(Default)]
struct Queue {
    running: bool,
    waiting: VecDeque<Job>,
}

pub struct InOrder {
    /// Lock order: level 3, held only to queue or pop a run (it may submit to the pool, level 5).
    queue: Mutex<Queue>,
    spawn: Spawn,
}

/// The right to run: the next queued run starts when it is dropped.
pub struct Turn(Arc<InOrder>);

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.next();
    }
}

impl InOrder {
    /// Runs go to the worker pool.
    pub fn on_workers() -> Arc<InOrder> {
        Arc::new(InOrder { queue: Mutex::default(), spawn: |job| crate::runtime::workers::submit(job) })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job`; it starts (on a worker) when every earlier one has finished.
    pub fn submit(self: &Arc<Self>, job: impl FnOnce(Turn) + Send + 'static) {
        {
            let mut queue = self.queue();
            if queue.running {
                queue.waiting.push_back(Box::new(job));
                return;
            }
            queue.running = true;
        }
        self.start(Box::new(job));
    }

    fn start(self: &Arc<Self>, job: Job) {
        let turn = Turn(Arc::clone(self));
        // Without a pool (shutting down) the job and its turn are dropped: the queue moves on.
        let _ = (self.spawn)(Box::new(move || job(turn)));
    }

    fn next(self: &Arc<Self>) {
        let job = {
            let mut queue = self.queue();
            match queue.waiting.pop_front() {
                Some(job) => job,
                None => {
                    queue.running = false;
                    return;
                }
            }
        };
        self.start(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Runs jobs at once, on this thread.
    fn inline() -> Arc<InOrder> {
        Arc::new(InOrder {
            queue: Mutex::default(),
            spawn: |job| {
                job();
                true
            },
        })
    }

    #[test]
    fn runs_start_in_order_one_at_a_time() {
        let order = inline();
        let log = Arc::new(Mutex::new(Vec::new()));
        let held: Arc<Mutex<Vec<Turn>>> = Arc::default();
        for i in 0..3 {
            let (log, held) = (Arc::clone(&log), Arc::clone(&held));
            // Each run keeps its turn (its records wait) until released below.
            order.submit(move |turn| {
                log.lock().unwrap().push(i);
                held.lock().unwrap().push(turn);
            });
        }
        assert_eq!(*log.lock().unwrap(), vec![0]);
        let first = held.lock().unwrap().pop();
        drop(first);
        assert_eq!(*log.lock().unwrap(), vec![0, 1]);
        let second = held.lock().unwrap().pop();
        drop(second);
        assert_eq!(*log.lock().unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn a_run_that_ends_at_once_lets_the_next_start() {
        let order = inline();
        let count = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let count = Arc::clone(&count);
            order.submit(move |_turn| {
                count.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(count.load(Ordering::Relaxed), 5);
        assert!(!order.queue().running);
    }
}
