//! Request counters and the Prometheus text exposition at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Inner {
    requests: Mutex<BTreeMap<(String, String, String, u16), u64>>,
    watches: Mutex<BTreeMap<String, i64>>,
    events_sent: AtomicU64,
}

/// Live request counters of one emulator; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RequestCounters {
    inner: Arc<Inner>,
}

/// One counter line: how many requests of a verb/resource/subresource got a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCount {
    pub verb: String,
    pub resource: String,
    pub subresource: String,
    pub code: u16,
    pub count: u64,
}

/// Decrements `sim_watches_active` when a watch ends.
#[derive(Debug)]
pub(crate) struct WatchGuard {
    counters: RequestCounters,
    resource: String,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut w = self
            .counters
            .inner
            .watches
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *w.entry(self.resource.clone()).or_insert(0) -= 1;
    }
}

impl RequestCounters {
    pub(crate) fn record(&self, verb: &str, resource: &str, subresource: &str, code: u16) {
        let mut m = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *m.entry((verb.into(), resource.into(), subresource.into(), code))
            .or_insert(0) += 1;
    }

    pub(crate) fn watch_started(&self, resource: &str) -> WatchGuard {
        let mut w = self.inner.watches.lock().unwrap_or_else(|e| e.into_inner());
        *w.entry(resource.to_string()).or_insert(0) += 1;
        WatchGuard {
            counters: self.clone(),
            resource: resource.to_string(),
        }
    }

    pub(crate) fn event_sent(&self) {
        self.inner.events_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests of `verb` on `resource` (plural), any subresource and code.
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.sum(|(v, r, _, _)| v == verb && r == resource)
    }

    /// Requests of `verb` on `resource`/`subresource` ("" for the main resource), any code.
    pub fn count_sub(&self, verb: &str, resource: &str, subresource: &str) -> u64 {
        self.sum(|(v, r, s, _)| v == verb && r == resource && s == subresource)
    }

    /// Requests of `verb` on `resource` answered with `code`.
    pub fn count_code(&self, verb: &str, resource: &str, code: u16) -> u64 {
        self.sum(|(v, r, _, c)| v == verb && r == resource && *c == code)
    }

    /// Writes (create, update, patch, apply, delete, deletecollection) on `resource`.
    pub fn writes(&self, resource: &str) -> u64 {
        self.sum(|(v, r, _, _)| {
            r == resource
                && matches!(
                    v.as_str(),
                    "create" | "update" | "patch" | "apply" | "delete" | "deletecollection"
                )
        })
    }

    /// Every counted resource request.
    pub fn total(&self) -> u64 {
        self.sum(|_| true)
    }

    fn sum(&self, f: impl Fn(&(String, String, String, u16)) -> bool) -> u64 {
        let m = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        m.iter().filter(|(k, _)| f(k)).map(|(_, n)| *n).sum()
    }

    pub fn snapshot(&self) -> Vec<RequestCount> {
        let m = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        m.iter()
            .map(|((verb, resource, subresource, code), n)| RequestCount {
                verb: verb.clone(),
                resource: resource.clone(),
                subresource: subresource.clone(),
                code: *code,
                count: *n,
            })
            .collect()
    }

    /// Zeroes the request counters (not the active-watch gauge).
    pub fn reset(&self) {
        self.inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.inner.events_sent.store(0, Ordering::Relaxed);
    }

    pub fn watch_events_sent(&self) -> u64 {
        self.inner.events_sent.load(Ordering::Relaxed)
    }

    /// Watches open right now on `resource`.
    pub fn watches_active(&self, resource: &str) -> i64 {
        let w = self.inner.watches.lock().unwrap_or_else(|e| e.into_inner());
        w.get(resource).copied().unwrap_or(0)
    }

    /// Prometheus text format; `objects` is `(resource, count)`.
    pub(crate) fn render(&self, objects: &[(String, usize)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource, subresource and HTTP response code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        for c in self.snapshot() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{code=\"{}\",resource=\"{}\",subresource=\"{}\",verb=\"{}\"}} {}",
                c.code,
                c.resource,
                c.subresource,
                prom_verb(&c.verb),
                c.count
            );
        }
        out.push_str("# HELP sim_watches_active Watches currently open, by resource.\n");
        out.push_str("# TYPE sim_watches_active gauge\n");
        {
            let w = self.inner.watches.lock().unwrap_or_else(|e| e.into_inner());
            for (r, n) in w.iter() {
                let _ = writeln!(out, "sim_watches_active{{resource=\"{r}\"}} {n}");
            }
        }
        out.push_str("# HELP sim_watch_events_sent_total Watch events written to clients.\n");
        out.push_str("# TYPE sim_watch_events_sent_total counter\n");
        let _ = writeln!(
            out,
            "sim_watch_events_sent_total {}",
            self.watch_events_sent()
        );
        out.push_str("# HELP sim_objects Objects stored, by resource.\n");
        out.push_str("# TYPE sim_objects gauge\n");
        for (r, n) in objects {
            let _ = writeln!(out, "sim_objects{{resource=\"{r}\"}} {n}");
        }
        out
    }
}

/// The `verb` label as the real API server writes it.
fn prom_verb(verb: &str) -> String {
    match verb {
        "create" => "POST".into(),
        "update" => "PUT".into(),
        "deletecollection" => "DELETE".into(),
        other => other.to_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_exposition() {
        let c = RequestCounters::default();
        c.record("patch", "nodes", "status", 200);
        c.record("patch", "nodes", "", 409);
        c.record("get", "nodes", "", 200);
        assert_eq!(c.count("patch", "nodes"), 2);
        assert_eq!(c.count_code("patch", "nodes", 409), 1);
        assert_eq!(c.writes("nodes"), 2);
        {
            let _g = c.watch_started("nodes");
            assert_eq!(c.watches_active("nodes"), 1);
        }
        assert_eq!(c.watches_active("nodes"), 0);
        let text = c.render(&[("nodes".into(), 3)]);
        assert!(text.contains("apiserver_request_total{code=\"409\",resource=\"nodes\",subresource=\"\",verb=\"PATCH\"} 1"));
        assert!(text.contains("sim_objects{resource=\"nodes\"} 3"));
    }
}
