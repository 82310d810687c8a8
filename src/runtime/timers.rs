//! One timer thread for everything that happens later: time event ticks, stream batches that
//! wait for `duration`, retries after a failure. A due job runs on the timer thread, so jobs
//! only hand work to the workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Due jobs by (deadline, id); ids let a job be cancelled.
#[derive(Default)]
struct Queue {
    next_id: u64,
    by_deadline: BTreeMap<(Instant, u64), Job>,
    deadline_of: HashMap<u64, Instant>,
}

impl Queue {
    fn add(&mut self, at: Instant, job: Job) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.by_deadline.insert((at, id), job);
        self.deadline_of.insert(id, at);
        id
    }

    fn cancel(&mut self, id: u64) -> bool {
        match self.deadline_of.remove(&id) {
            Some(at) => self.by_deadline.remove(&(at, id)).is_some(),
            None => false,
        }
    }

    /// The jobs due at `now`, and when the next one is due.
    fn take_due(&mut self, now: Instant) -> (Vec<Job>, Option<Instant>) {
        let mut due = Vec::new();
        while let Some(entry) = self.by_deadline.first_entry() {
            let (at, id) = *entry.key();
            if at > now {
                return (due, Some(at));
            }
            due.push(entry.remove());
            self.deadline_of.remove(&id);
        }
        (due, None)
    }
}

struct Timers {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The timer queue. Lock order: a leaf (level 5); the timer thread runs due jobs with it released.
static TIMERS: OnceLock<Timers> = OnceLock::new();

fn timers() -> &'static Timers {
    TIMERS.get_or_init(|| {
        let spawned = std::thread::Builder::new().name("rg-timers".into()).spawn(run);
        if spawned.is_err() {
            crate::redis::log::warning("wasmgears: could not start the timer thread");
        }
        Timers { queue: Mutex::new(Queue::default()), wake: Condvar::new() }
    })
}

fn run() {
    let t = timers();
    let mut queue = t.queue.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let (due, next) = queue.take_due(Instant::now());
        if !due.is_empty() {
            drop(queue);
            for job in due {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                    crate::redis::log::warning("wasmgears: a timer job panicked");
                }
            }
            queue = t.queue.lock().unwrap_or_else(|p| p.into_inner());
            continue;
        }
        queue = match next {
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                t.wake.wait_timeout(queue, wait).unwrap_or_else(|p| p.into_inner()).0
            }
            None => t.wake.wait(queue).unwrap_or_else(|p| p.into_inner()),
        };
    }
}

/// The longest delay a timer waits: longer ones (which no caller should ask for: scripts'
/// intervals are capped at `wasmgears_abi::MAX_INTERVAL_SECS`) wait this long instead.
pub const MAX_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `delay` from now, saturating: never past `now + MAX_DELAY` (nor past the farthest
/// instant the platform can represent), never a panic on overflow.
pub fn deadline_after(delay: Duration) -> Instant {
    let now = Instant::now();
    let mut delay = delay.min(MAX_DELAY);
    loop {
        match now.checked_add(delay) {
            Some(at) => return at,
            None => delay /= 2, // ends: `now + 0` always fits
        }
    }
}

/// Runs `job` (on the timer thread) after `delay` (at most `MAX_DELAY`). Its id cancels it.
pub fn after(delay: Duration, job: impl FnOnce() + Send + 'static) -> u64 {
    let t = timers();
    let id = t.queue.lock().unwrap_or_else(|p| p.into_inner()).add(deadline_after(delay), Box::new(job));
    t.wake.notify_one();
    id
}

/// Cancels a job not yet run; false if it already ran or never existed.
pub fn cancel(id: u64) -> bool {
    timers().queue.lock().unwrap_or_else(|p| p.into_inner()).cancel(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        let before = Instant::now();
        for huge in [Duration::from_secs(u64::MAX), Duration::MAX] {
            let far = deadline_after(huge);
            assert!(far >= before + MAX_DELAY && far <= Instant::now() + MAX_DELAY);
        }
        let soon = deadline_after(Duration::from_millis(5));
        assert!(soon >= before + Duration::from_millis(5) && soon < before + MAX_DELAY);
    }

    #[test]
    fn due_jobs_come_out_in_deadline_order_and_cancelled_ones_never() {
        let mut q = Queue::default();
        let now = Instant::now();
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let push = |n: u32| {
            let order = std::sync::Arc::clone(&order);
            Box::new(move || order.lock().unwrap().push(n)) as Job
        };
        q.add(now + Duration::from_millis(20), push(2));
        let cancelled = q.add(now + Duration::from_millis(5), push(99));
        q.add(now + Duration::from_millis(10), push(1));
        q.add(now + Duration::from_secs(60), push(3));
        assert!(q.cancel(cancelled));
        assert!(!q.cancel(cancelled));
        let (due, next) = q.take_due(now + Duration::from_millis(30));
        due.into_iter().for_each(|job| job());
        assert_eq!(*order.lock().unwrap(), vec![1, 2]);
        assert_eq!(next, Some(now + Duration::from_secs(60)));
    }
}
