//! Fault injection: error and throttle rates, write conflicts, latency,
//! cut watches, forced expiry, and a pause switch. Set from tests through
//! [`FaultHandle`] or at run time with `GET`/`PUT /sim/faults` (JSON).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The faults in force. All fields default to "no fault"; the JSON form
/// (for `/sim/faults`) uses the same camelCase names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Faults {
    /// Fraction (0.0–1.0) of resource requests answered 500 InternalError.
    pub error_rate: f64,
    /// Fraction of resource requests answered 429 TooManyRequests.
    pub throttle_rate: f64,
    /// `Retry-After` seconds on 429 answers (0 means 1).
    pub retry_after_seconds: u64,
    /// Fraction of writes (create/update/patch/apply/delete) answered 409 Conflict.
    pub conflict_rate: f64,
    /// Added latency per resource request, in milliseconds.
    pub latency_ms: u64,
    /// Watches end (cleanly) after this many events.
    pub watch_max_events: Option<u64>,
    /// Watches end (cleanly) after this many seconds.
    pub watch_max_seconds: Option<f64>,
    /// The next this-many watches that name a resourceVersion, and list
    /// requests with a `continue` token, get 410 Expired.
    pub expire_next: u32,
    /// While true, every request (except `/sim/faults`, `/metrics` and the
    /// health endpoints) waits.
    pub paused: bool,
    /// Limit rates and latency to these resources (plural names); empty = all.
    pub resources: Vec<String>,
    /// Limit rates and latency to these verbs (`get`, `list`, `watch`,
    /// `create`, `update`, `patch`, `apply`, `delete`); empty = all.
    pub verbs: Vec<String>,
}

impl Faults {
    fn applies(&self, verb: &str, resource: &str) -> bool {
        (self.resources.is_empty() || self.resources.iter().any(|r| r == resource))
            && (self.verbs.is_empty() || self.verbs.iter().any(|v| v == verb))
    }
}

/// What a request should suffer, decided once when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    None,
    Error,
    Throttle(u64),
    Conflict,
}

#[derive(Debug)]
pub(crate) struct FaultState {
    faults: Mutex<Faults>,
    paused: watch::Sender<bool>,
    /// Bumped to end every open watch at once.
    cut: watch::Sender<u64>,
}

/// Handle for reading and changing faults; cheap to clone.
#[derive(Debug, Clone)]
pub struct FaultHandle {
    pub(crate) state: Arc<FaultState>,
}

impl FaultState {
    pub fn new() -> Self {
        FaultState {
            faults: Mutex::new(Faults::default()),
            paused: watch::channel(false).0,
            cut: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self) -> Faults {
        self.lock().clone()
    }

    pub fn set(&self, f: Faults) {
        let paused = f.paused;
        *self.lock() = f;
        self.paused.send_replace(paused);
    }

    /// Waits while the server is paused.
    pub async fn wait_unpaused(&self) {
        let mut rx = self.paused.subscribe();
        let _ = rx.wait_for(|p| !*p).await;
    }

    pub fn latency(&self, verb: &str, resource: &str) -> Option<Duration> {
        let f = self.lock();
        (f.latency_ms > 0 && f.applies(verb, resource)).then(|| Duration::from_millis(f.latency_ms))
    }

    pub fn decide(&self, verb: &str, resource: &str, write: bool) -> Injected {
        use rand::Rng;
        let f = self.lock();
        if !f.applies(verb, resource) {
            return Injected::None;
        }
        let mut rng = rand::rng();
        if f.error_rate > 0.0 && rng.random_bool(f.error_rate.clamp(0.0, 1.0)) {
            return Injected::Error;
        }
        if f.throttle_rate > 0.0 && rng.random_bool(f.throttle_rate.clamp(0.0, 1.0)) {
            return Injected::Throttle(f.retry_after_seconds.max(1));
        }
        if write && f.conflict_rate > 0.0 && rng.random_bool(f.conflict_rate.clamp(0.0, 1.0)) {
            return Injected::Conflict;
        }
        Injected::None
    }

    /// A receiver that changes when [`FaultHandle::drop_watches`] is called.
    pub fn cut_signal(&self) -> watch::Receiver<u64> {
        self.cut.subscribe()
    }

    pub fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// Consumes one forced expiry, if any is pending.
    pub fn take_expiry(&self) -> bool {
        let mut f = self.lock();
        if f.expire_next > 0 {
            f.expire_next -= 1;
            true
        } else {
            false
        }
    }

    pub fn watch_limits(&self) -> (Option<u64>, Option<f64>) {
        let f = self.lock();
        (f.watch_max_events, f.watch_max_seconds)
    }
}

impl FaultHandle {
    /// The faults in force.
    pub fn get(&self) -> Faults {
        self.state.get()
    }

    /// Replaces all faults.
    pub fn set(&self, faults: Faults) {
        self.state.set(faults);
    }

    /// Changes some faults in place: `faults.update(|f| f.error_rate = 0.2)`.
    pub fn update(&self, change: impl FnOnce(&mut Faults)) {
        let mut f = self.state.get();
        change(&mut f);
        self.state.set(f);
    }

    /// Removes every fault (and resumes a paused server).
    pub fn clear(&self) {
        self.state.set(Faults::default());
    }

    /// Makes requests hang until [`FaultHandle::resume`].
    pub fn pause(&self) {
        self.update(|f| f.paused = true);
    }

    pub fn resume(&self) {
        self.update(|f| f.paused = false);
    }

    /// Ends every open watch now (cleanly, as a dropped connection would
    /// look to a client that then re-watches).
    pub fn drop_watches(&self) {
        self.state.cut_all();
    }

    /// The next watch from a resourceVersion (or list continuation) gets 410.
    pub fn expire_next_watch(&self) {
        self.update(|f| f.expire_next += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_json_uses_camel_case_and_defaults() {
        let f: Faults =
            serde_json::from_str(r#"{"errorRate": 0.5, "watchMaxEvents": 3}"#).expect("parse");
        assert_eq!(f.error_rate, 0.5);
        assert_eq!(f.watch_max_events, Some(3));
        assert!(!f.paused);
    }

    #[test]
    fn rates_of_one_always_inject_and_scoping_limits_them() {
        let s = FaultState::new();
        s.set(Faults {
            conflict_rate: 1.0,
            resources: vec!["nodes".into()],
            ..Faults::default()
        });
        assert_eq!(s.decide("patch", "nodes", true), Injected::Conflict);
        assert_eq!(s.decide("get", "nodes", false), Injected::None);
        assert_eq!(s.decide("patch", "pods", true), Injected::None);
        s.set(Faults {
            expire_next: 1,
            ..Faults::default()
        });
        assert!(s.take_expiry());
        assert!(!s.take_expiry());
    }
}
