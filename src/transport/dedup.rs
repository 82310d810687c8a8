//! The receiving side's memory of what each sender sent (RedisGears 1.2: `nodesMsgIds`): a
//! message resent after a reconnect is acknowledged again but not run twice.

use std::collections::HashMap;

#[derive(Default, Debug)]
pub struct Seen {
    /// sender id -> (its run id, the last message id run from it)
    last: HashMap<String, (String, u64)>,
}

impl Seen {
    /// True if message `id` from `sender` (in its run `run_id`) is new; it then counts as
    /// seen. A sender that restarted (another run id) starts over.
    pub fn first_time(&mut self, sender: &str, run_id: &str, id: u64) -> bool {
        match self.last.get_mut(sender) {
            Some((run, last)) if run == run_id => {
                if id <= *last {
                    return false;
                }
                *last = id;
                true
            }
            _ => {
                self.last.insert(sender.to_string(), (run_id.to_string(), id));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_seen_and_a_restart_starts_over() {
        let mut seen = Seen::default();
        assert!(seen.first_time("a", "r1", 1));
        assert!(seen.first_time("a", "r1", 2));
        assert!(!seen.first_time("a", "r1", 2));
        assert!(!seen.first_time("a", "r1", 1));
        assert!(seen.first_time("b", "r1", 1), "senders are apart");
        assert!(seen.first_time("a", "r2", 1), "a new run of the sender");
        assert!(!seen.first_time("a", "r2", 1));
    }
}
