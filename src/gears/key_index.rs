//! Which KeysReader registrations a key can fire, found without looking at every registration
//! (each write in Redis asks): the registrations by the literal part of their prefix (`user:` of
//! `user:*`, the whole of `exact`), looked up once per distinct literal length. Pure logic.

use std::collections::HashMap;

#[derive(Default)]
pub struct KeyIndex {
    /// literal -> (registration seq, the prefix names the whole key), seqs ascending.
    by_literal: HashMap<Vec<u8>, Vec<(u64, bool)>>,
    /// The distinct lengths of the literals, ascending.
    lengths: Vec<usize>,
}

/// RedisGears' prefix match: `*` matches all, `p*` a prefix, anything else the exact key.
pub fn prefix_matches(prefix: &str, key: &[u8]) -> bool {
    match literal(prefix) {
        (text, true) => key == text,
        (text, false) => key.starts_with(text),
    }
}

/// A prefix's literal part, and whether it must be the whole key (no trailing `*`).
fn literal(prefix: &str) -> (&[u8], bool) {
    match prefix.strip_suffix('*') {
        Some(start) => (start.as_bytes(), false),
        None => (prefix.as_bytes(), true),
    }
}

impl KeyIndex {
    pub fn add(&mut self, seq: u64, prefix: &str) {
        let (text, whole) = literal(prefix);
        let entries = self.by_literal.entry(text.to_vec()).or_default();
        let at = entries.partition_point(|(s, _)| *s < seq);
        entries.insert(at, (seq, whole));
        if let Err(at) = self.lengths.binary_search(&text.len()) {
            self.lengths.insert(at, text.len());
        }
    }

    pub fn remove(&mut self, seq: u64, prefix: &str) {
        let (text, _) = literal(prefix);
        let Some(entries) = self.by_literal.get_mut(text) else { return };
        entries.retain(|(s, _)| *s != seq);
        if entries.is_empty() {
            self.by_literal.remove(text);
            if !self.by_literal.keys().any(|k| k.len() == text.len()) {
                self.lengths.retain(|&l| l != text.len());
            }
        }
    }

    /// The registrations whose prefix matches `key`, in registration (seq) order.
    pub fn candidates(&self, key: &[u8]) -> Vec<u64> {
        let mut out = Vec::new();
        let mut sources = 0;
        for &len in &self.lengths {
            if len > key.len() {
                break;
            }
            let Some(entries) = self.by_literal.get(&key[..len]) else { continue };
            sources += 1;
            out.extend(entries.iter().filter(|(_, whole)| !whole || len == key.len()).map(|(seq, _)| *seq));
        }
        if sources > 1 {
            out.sort_unstable();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_matching_prefixes_in_registration_order() {
        let prefixes = ["user:*", "*", "user:1", "u*", "order:*", "user:*", "exact"];
        let mut index = KeyIndex::default();
        for (seq, p) in prefixes.iter().enumerate() {
            index.add(seq as u64, p);
        }
        for key in ["user:1", "user:12", "u", "", "order:9", "exact", "exactly", "other"] {
            let want: Vec<u64> =
                (0..prefixes.len() as u64).filter(|&s| prefix_matches(prefixes[s as usize], key.as_bytes())).collect();
            assert_eq!(index.candidates(key.as_bytes()), want, "{key}");
        }
    }

    #[test]
    fn removed_registrations_are_no_candidates() {
        let mut index = KeyIndex::default();
        index.add(1, "a:*");
        index.add(2, "a:*");
        index.add(3, "abc");
        index.remove(1, "a:*");
        assert_eq!(index.candidates(b"a:x"), vec![2]);
        index.remove(2, "a:*");
        index.remove(3, "abc");
        assert!(index.candidates(b"a:x").is_empty() && index.candidates(b"abc").is_empty());
        assert!(index.lengths.is_empty() && index.by_literal.is_empty());
    }

    #[test]
    fn a_seq_added_out_of_order_keeps_the_order() {
        let mut index = KeyIndex::default();
        index.add(5, "k*");
        index.add(2, "k*");
        index.add(3, "*");
        assert_eq!(index.candidates(b"key"), vec![2, 3, 5]);
    }
}
