//! What the domain wants to hear when a link greets a peer with a run id it had not seen: the
//! peer started, or restarted and lost what it was sent.

use std::sync::OnceLock;

/// Called on the link's thread with the peer's id.
pub type Greeted = fn(&str);

static GREETED: OnceLock<Greeted> = OnceLock::new();

/// Registers what runs when a peer (re)appears (at load).
pub fn on_greeted(f: Greeted) {
    let _ = GREETED.set(f);
}

/// A link greeted `peer` with a new run id.
pub fn greeted(peer: &str) {
    if let Some(f) = GREETED.get() {
        f(peer);
    }
}
