//! An insertion-ordered registry with RedisGears' eviction rule: when over the cap, drop the
//! oldest *finished* entries. Pure logic, used for executions.

use std::collections::{HashMap, VecDeque};

pub trait Finished {
    fn finished(&self) -> bool;
}

pub struct Registry<T> {
    /// Each entry with the number it was inserted under.
    items: HashMap<String, (u64, T)>,
    /// Insertion order. A removed entry stays here until passed over (its number no longer
    /// matches), so removing is O(1): the registry of executions drops one on every event.
    order: VecDeque<(u64, String)>,
    inserted: u64,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry { items: HashMap::new(), order: VecDeque::new(), inserted: 0 }
    }
}

impl<T: Finished> Registry<T> {
    pub fn insert(&mut self, id: String, item: T) {
        self.inserted += 1;
        self.order.push_back((self.inserted, id.clone()));
        self.items.insert(id, (self.inserted, item));
        self.compact();
    }

    pub fn get(&self, id: &str) -> Option<&T> {
        self.items.get(id).map(|(_, item)| item)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.items.get_mut(id).map(|(_, item)| item)
    }

    pub fn remove(&mut self, id: &str) -> Option<T> {
        let (_, item) = self.items.remove(id)?;
        self.compact();
        Some(item)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    fn is_live(&self, (number, id): &(u64, String)) -> bool {
        self.items.get(id).is_some_and(|(n, _)| n == number)
    }

    /// Drops the removed entries from the order once they are as many as the live ones.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.items.len() + 16 {
            let items = &self.items;
            self.order.retain(|(number, id)| items.get(id).is_some_and(|(n, _)| n == number));
        }
    }

    /// Entries oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &T)> {
        self.order.iter().filter(|e| self.is_live(e)).filter_map(|(_, id)| {
            let (key, (_, item)) = self.items.get_key_value(id)?;
            Some((key, item))
        })
    }

    /// Removes the oldest finished entries until at most `max` remain (running ones stay).
    pub fn evict_to(&mut self, max: usize) -> Vec<T> {
        let mut evicted = Vec::new();
        let mut i = 0;
        while self.items.len() > max && i < self.order.len() {
            if !self.is_live(&self.order[i]) {
                self.order.remove(i);
                continue;
            }
            let id = &self.order[i].1;
            if self.items[id].1.finished() {
                let (_, id) = self.order.remove(i).expect("index in range");
                evicted.extend(self.items.remove(&id).map(|(_, item)| item));
            } else {
                i += 1;
            }
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(bool);
    impl Finished for Item {
        fn finished(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn keeps_insertion_order_and_removes() {
        let mut r = Registry::default();
        r.insert("a".into(), Item(true));
        r.insert("b".into(), Item(false));
        assert_eq!(r.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(r.remove("a").is_some());
        assert!(r.remove("a").is_none());
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn evicts_oldest_finished_first_and_never_running_ones() {
        let mut r = Registry::default();
        r.insert("run1".into(), Item(false));
        r.insert("done1".into(), Item(true));
        r.insert("done2".into(), Item(true));
        r.insert("run2".into(), Item(false));
        assert_eq!(r.evict_to(3).len(), 1);
        assert!(r.get("done1").is_none() && r.get("done2").is_some());
        assert_eq!(r.evict_to(0).len(), 1);
        assert_eq!(r.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["run1", "run2"]);
    }

    #[test]
    fn a_removed_id_inserted_again_is_listed_once_at_its_new_place() {
        let mut r = Registry::default();
        for id in ["a", "b", "c"] {
            r.insert(id.into(), Item(true));
        }
        r.remove("a");
        r.insert("a".into(), Item(true));
        assert_eq!(r.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["b", "c", "a"]);
        assert_eq!(r.evict_to(1).len(), 2);
        assert_eq!(r.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn removing_many_keeps_the_order_bounded() {
        let mut r = Registry::default();
        for n in 0..10_000 {
            r.insert(n.to_string(), Item(true));
            if n >= 100 {
                r.remove(&(n - 100).to_string());
            }
        }
        assert_eq!(r.len(), 100);
        assert!(r.order.len() <= 2 * 100 + 16 + 1, "{}", r.order.len());
        assert_eq!(r.iter().next().map(|(k, _)| k.as_str()), Some("9900"));
    }
}
