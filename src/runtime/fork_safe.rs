//! A value that a forked child can read without waiting for anyone.
//!
//! Redis forks for BGSAVE and AOF rewrites; the child has only the forking thread, so a mutex
//! some other thread held at that instant stays locked in the child forever. `ForkSafe` keeps
//! its value in two slots, each behind its own mutex, and a writer replaces them one after
//! the other (writers take turns): whatever a writer was doing when the process forked, at
//! most one slot is locked, and the other holds a complete value, the new one or the one
//! before. Readers only `try_lock`, so they never block.

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

pub struct ForkSafe<T> {
    /// Writers take turns (and hold this only around the two slot updates).
    writer: Mutex<()>,
    slots: [Mutex<Option<Arc<T>>>; 2],
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T> ForkSafe<T> {
    pub const fn new() -> Self {
        ForkSafe { writer: Mutex::new(()), slots: [Mutex::new(None), Mutex::new(None)] }
    }

    /// Replaces the value. Lock order: a leaf (nothing else is taken meanwhile).
    pub fn publish(&self, value: Arc<T>) {
        let _turn = lock(&self.writer);
        for slot in &self.slots {
            let old = lock(slot).replace(Arc::clone(&value));
            drop(old); // outside the slot's lock
        }
    }

    /// The value last published (None before the first), without ever blocking; Err only if
    /// both slots are locked, which the writers' turns rule out.
    pub fn current(&self) -> Result<Option<Arc<T>>, ()> {
        for slot in &self.slots {
            match slot.try_lock() {
                Ok(value) => return Ok(value.clone()),
                // A panic cannot leave a slot half-written: the value is replaced whole.
                Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner().clone()),
                Err(TryLockError::WouldBlock) => continue,
            }
        }
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_get_the_latest_value() {
        let cell = ForkSafe::new();
        assert_eq!(cell.current(), Ok(None));
        cell.publish(Arc::new(1));
        cell.publish(Arc::new(2));
        assert_eq!(cell.current().unwrap().as_deref(), Some(&2));
    }

    #[test]
    fn a_slot_held_by_a_writer_does_not_block_readers() {
        let cell = ForkSafe::new();
        cell.publish(Arc::new("old"));
        // As if a writer had been stopped (by a fork) while replacing the first slot...
        let held = cell.slots[0].lock().unwrap();
        assert_eq!(cell.current().unwrap().as_deref(), Some(&"old"));
        drop(held);
        // ...or the second one, after the first was already replaced.
        *cell.slots[0].lock().unwrap() = Some(Arc::new("new"));
        let held = cell.slots[1].lock().unwrap();
        assert_eq!(cell.current().unwrap().as_deref(), Some(&"new"));
        drop(held);
    }
}
