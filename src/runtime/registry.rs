//! An insertion-ordered registry with RedisGears' eviction rule: when over the cap, drop the
//! oldest *finished* entries. Pure logic, used for executions.

use std::collections::{HashMap, VecDeque};

pub trait Finished {
    fn finished(&self) -> bool;
}

pub struct Registry<T> {
    items: HashMap<String, T>,
    order: VecDeque<String>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry { items: HashMap::new(), order: VecDeque::new() }
    }
}

impl<T: Finished> Registry<T> {
    pub fn insert(&mut self, id: String, item: T) {
        self.order.push_back(id.clone());
        self.items.insert(id, item);
    }

    pub fn get(&self, id: &str) -> Option<&T> {
        self.items.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.items.get_mut(id)
    }

    pub fn remove(&mut self, id: &str) -> Option<T> {
        let item = self.items.remove(id)?;
        self.order.retain(|x| x != id);
        Some(item)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Entries oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &T)> {
        self.order.iter().filter_map(|id| self.items.get_key_value(id))
    }

    /// Removes the oldest finished entries until at most `max` remain (running ones stay).
    pub fn evict_to(&mut self, max: usize) -> Vec<T> {
        let mut evicted = Vec::new();
        let mut i = 0;
        while self.items.len() > max && i < self.order.len() {
            if self.items[&self.order[i]].finished() {
                let id = self.order.remove(i).expect("index in range");
                evicted.extend(self.items.remove(&id));
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
}
