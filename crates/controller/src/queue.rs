//! The work queue: node names waiting to be reconciled, each at most once.
//!
//! Watch events, resyncs and timers only *name* a node; the planner reads
//! the node's current state from the caches when it gets to it, so ten
//! events for one node before the planner runs cost one reconcile.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct Inner {
    queued: HashSet<String>,
    /// Every node must be reconciled (policy change, relist, new leader).
    full: bool,
    ready: VecDeque<String>,
    /// Re-checks at a time: staleness deadlines, grace periods, backoff.
    delayed: BinaryHeap<Reverse<(Instant, String)>>,
}

/// What the consumer should do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Work {
    /// Queue every node (then ask again).
    Full,
    Names(Vec<String>),
}

/// A de-duplicating FIFO with delayed entries, for one consumer.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("queue mutex is never held across a panic")
    }

    pub fn add(&self, name: &str) {
        let mut inner = self.lock();
        if inner.queued.insert(name.to_string()) {
            inner.ready.push_back(name.to_string());
            drop(inner);
            self.notify.notify_one();
        }
    }

    pub fn add_all<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.lock();
        let mut added = false;
        for name in names {
            if inner.queued.insert(name.to_string()) {
                inner.ready.push_back(name.to_string());
                added = true;
            }
        }
        drop(inner);
        if added {
            self.notify.notify_one();
        }
    }

    /// Reconcile `name` again after `delay` (it may run sooner if an event
    /// names it in the meantime).
    pub fn add_after(&self, name: &str, delay: Duration) {
        let mut inner = self.lock();
        inner
            .delayed
            .push(Reverse((Instant::now() + delay, name.to_string())));
        drop(inner);
        self.notify.notify_one();
    }

    /// Asks for every node to be reconciled; the consumer expands it, since
    /// only it knows every node's name.
    pub fn request_full(&self) {
        self.lock().full = true;
        self.notify.notify_one();
    }

    pub fn len(&self) -> usize {
        self.lock().ready.len()
    }

    /// Waits for work and takes up to `max` names.
    pub async fn next_batch(&self, max: usize) -> Work {
        loop {
            let wake_at = {
                let mut inner = self.lock();
                if std::mem::take(&mut inner.full) {
                    return Work::Full;
                }
                let now = Instant::now();
                while let Some(Reverse((at, _))) = inner.delayed.peek() {
                    if *at > now {
                        break;
                    }
                    let Some(Reverse((_, name))) = inner.delayed.pop() else {
                        break;
                    };
                    if inner.queued.insert(name.clone()) {
                        inner.ready.push_back(name);
                    }
                }
                if !inner.ready.is_empty() {
                    let n = inner.ready.len().min(max);
                    let batch: Vec<String> = inner.ready.drain(..n).collect();
                    for name in &batch {
                        inner.queued.remove(name);
                    }
                    return Work::Names(batch);
                }
                inner.delayed.peek().map(|Reverse((at, _))| *at)
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = self.notify.notified() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Work {
        Work::Names(n.iter().map(|s| s.to_string()).collect())
    }

    #[tokio::test]
    async fn a_full_resync_request_comes_first() {
        let q = Queue::default();
        q.add("a");
        q.request_full();
        assert_eq!(q.next_batch(10).await, Work::Full);
        assert_eq!(q.next_batch(10).await, names(&["a"]));
    }

    #[tokio::test]
    async fn a_name_queued_twice_is_reconciled_once() {
        let q = Queue::default();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.next_batch(10).await, names(&["a", "b"]));
        q.add("a");
        assert_eq!(q.next_batch(10).await, names(&["a"]));
    }

    #[tokio::test]
    async fn batches_are_bounded() {
        let q = Queue::default();
        q.add_all(["a", "b", "c"]);
        assert_eq!(q.next_batch(2).await, names(&["a", "b"]));
        assert_eq!(q.next_batch(2).await, names(&["c"]));
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_names_come_due() {
        let q = Queue::default();
        q.add_after("late", Duration::from_secs(5));
        let started = Instant::now();
        assert_eq!(q.next_batch(10).await, names(&["late"]));
        assert!(started.elapsed() >= Duration::from_secs(5));
    }
}
