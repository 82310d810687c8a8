//! The wrapped command running on this thread (inside `RG.INNERHOOK`), and the `commands=`
//! registrations its keyspace events fired, kept to run once the command is done. Shared by
//! key_events (which fills it) and command_hooks (which opens and drains it).

use crate::gears::registrations::Target;
use std::cell::RefCell;

/// The `commands=` registrations fired while a wrapped command runs on this thread.
struct Capture {
    command: String,
    deferred: Vec<(Target, Vec<u8>)>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// A wrapped command in progress on this thread; ends (even by a panic) when dropped.
pub struct Scope {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Opens the scope of wrapped command `command` (lower case).
pub fn open(command: String) -> Scope {
    CAPTURE.with(|c| *c.borrow_mut() = Some(Capture { command, deferred: Vec::new() }));
    Scope { _not_send: std::marker::PhantomData }
}

impl Scope {
    /// Ends the scope: the events it kept, in the order they fired.
    pub fn close(self) -> Vec<(Target, Vec<u8>)> {
        CAPTURE.with(|c| c.borrow_mut().take()).map(|c| c.deferred).unwrap_or_default()
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

/// The wrapped command running on this thread, if any (lower case).
pub fn wrapped_command() -> Option<String> {
    CAPTURE.with(|c| c.borrow().as_ref().map(|c| c.command.clone()))
}

/// Keeps a `commands=` registration's event for after the command; false for others.
pub fn defer(target: &Target, payload: &[u8]) -> bool {
    if !target.waits {
        return false;
    }
    CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(capture) => {
            capture.deferred.push((target.clone(), payload.to_vec()));
            true
        }
        None => false,
    })
}
