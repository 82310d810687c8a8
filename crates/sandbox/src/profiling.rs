//! `ProfileExecutions`, as the guest learns it: a flag in the code of every entry (no host
//! call to read the setting on each event). The host's RG.CONFIGSET sets it.

use std::sync::atomic::{AtomicBool, Ordering};
use wasmgears_abi::{GuestEntry, ENTRY_PROFILE_FLAG};

static PROFILE_EXECUTIONS: AtomicBool = AtomicBool::new(false);

/// `ProfileExecutions` (any value but 0 turns it on).
pub fn set_profile_executions(on: bool) {
    PROFILE_EXECUTIONS.store(on, Ordering::Relaxed);
}

/// The code `gears_enter` gets for `op`: its own, with the profile flag when profiling.
pub fn entry_code(op: GuestEntry) -> u32 {
    if PROFILE_EXECUTIONS.load(Ordering::Relaxed) {
        op.code() | ENTRY_PROFILE_FLAG
    } else {
        op.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_follows_the_setting() {
        set_profile_executions(true);
        assert_eq!(entry_code(GuestEntry::KeyEvent), GuestEntry::KeyEvent.code() | ENTRY_PROFILE_FLAG);
        set_profile_executions(false);
        assert_eq!(entry_code(GuestEntry::KeyEvent), GuestEntry::KeyEvent.code());
    }
}
