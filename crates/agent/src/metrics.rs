//! The agent's Prometheus metrics.
//!
//! Families are registered once per registry. The `plumbline agent` process
//! has one agent and one registry; `plumbline sim` registers the families
//! once and hands the same [`AgentMetrics`] to every simulated agent, so a
//! thousand agents add up in one set of series instead of a thousand.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub probe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeErrorLabels {
    pub probe: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    pub trigger: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn probe_histogram() -> Histogram {
    // 50 µs .. ~3 s: a probe reads a handful of small files, a whole pass a
    // few dozen; the top buckets catch a slow or hung mount.
    Histogram::new([
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
        1.0, 2.5,
    ])
}

/// Every metric the agent records. Cheap to clone (shared handles).
#[derive(Clone, Debug)]
pub struct AgentMetrics {
    /// Seconds each probe took, by probe; `probe="all"` is the whole pass.
    pub probe_duration: HistogramFamily<ProbeLabels>,
    /// Probe passes in which a probe reported `Error`, by probe and kind.
    pub probe_errors: Family<ProbeErrorLabels, Counter>,
    /// Probe passes, by what triggered them.
    pub probe_runs: Family<TriggerLabels, Counter>,
    /// Status writes, by reason: `create`, `change`, `heartbeat`.
    pub publishes: Family<ReasonLabels, Counter>,
    /// Failed API requests, by kind (`timeout`, `server_error`, ...).
    pub api_errors: Family<KindLabels, Counter>,
    /// Unix time of the last successful status write.
    pub last_publish: Gauge<f64, AtomicU64>,
}

impl AgentMetrics {
    /// Families not registered anywhere: counted, never exported.
    pub fn unregistered() -> AgentMetrics {
        AgentMetrics {
            probe_duration: Family::new_with_constructor(probe_histogram),
            probe_errors: Family::default(),
            probe_runs: Family::default(),
            publishes: Family::default(),
            api_errors: Family::default(),
            last_publish: Gauge::default(),
        }
    }

    /// New families, registered in `registry` under `plumbline_agent_`.
    pub fn register(registry: &mut Registry) -> AgentMetrics {
        let m = AgentMetrics::unregistered();
        let r = registry.sub_registry_with_prefix("plumbline_agent");
        r.register(
            "probe_duration_seconds",
            "Time one probe took; probe=\"all\" is a whole pass",
            m.probe_duration.clone(),
        );
        r.register(
            "probe_errors",
            "Probe passes in which a probe reported Error, by probe and kind",
            m.probe_errors.clone(),
        );
        r.register(
            "probe_runs",
            "Probe passes, by trigger (startup, timer, file, kernel, signal)",
            m.probe_runs.clone(),
        );
        r.register(
            "publishes",
            "NodeGpuBaseline writes, by reason (create, change, heartbeat)",
            m.publishes.clone(),
        );
        r.register(
            "api_errors",
            "Failed Kubernetes API requests, by kind",
            m.api_errors.clone(),
        );
        r.register(
            "last_publish_timestamp_seconds",
            "Unix time of the last successful NodeGpuBaseline write",
            m.last_publish.clone(),
        );
        m
    }
}

/// Metrics shared by many agents: the families to record into and the
/// registry they are in (served by whoever owns it).
#[derive(Clone, Debug)]
pub struct SharedMetrics {
    pub metrics: AgentMetrics,
    pub registry: Arc<Registry>,
}

impl SharedMetrics {
    /// A fresh registry holding only the agent's families.
    pub fn new() -> SharedMetrics {
        let mut registry = Registry::default();
        let metrics = AgentMetrics::register(&mut registry);
        SharedMetrics {
            metrics,
            registry: Arc::new(registry),
        }
    }

    /// The registry in the text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for SharedMetrics {
    fn default() -> Self {
        SharedMetrics::new()
    }
}

/// Short kind of a probe error for the `kind` label, from its message:
/// the probes' messages name the path and then the reason, and the reason
/// falls into a few classes. Unknown shapes are `other`.
pub fn probe_error_kind(message: Option<&str>) -> &'static str {
    let m = message.unwrap_or("").to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    if has(&["permission denied", "operation not permitted"]) {
        "permission"
    } else if has(&["too large", "larger than", "exceeds"]) {
        "too_large"
    } else if has(&["symlink", "loop"]) {
        "symlink"
    } else if has(&[
        "pars",
        "invalid",
        "unexpected",
        "expected",
        "malformed",
        "utf-8",
        "utf8",
        "toml",
        "yaml",
        "json",
    ]) {
        "parse"
    } else if has(&["not found", "no such file", "does not exist", "missing"]) {
        "missing"
    } else if has(&["reading", "i/o", "io error"]) {
        "io"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_with_prefix_and_labels() {
        let shared = SharedMetrics::new();
        let m = &shared.metrics;
        m.publishes
            .get_or_create(&ReasonLabels { reason: "change" })
            .inc();
        m.api_errors
            .get_or_create(&KindLabels { kind: "timeout" })
            .inc();
        m.probe_errors
            .get_or_create(&ProbeErrorLabels {
                probe: "cdi".into(),
                kind: "parse".into(),
            })
            .inc();
        m.probe_duration
            .get_or_create(&ProbeLabels {
                probe: "all".into(),
            })
            .observe(0.002);
        m.last_publish.set(1_700_000_000.0);
        let text = shared.encode();
        for needle in [
            "plumbline_agent_publishes_total{reason=\"change\"} 1",
            "plumbline_agent_api_errors_total{kind=\"timeout\"} 1",
            "plumbline_agent_probe_errors_total{probe=\"cdi\",kind=\"parse\"} 1",
            "plumbline_agent_probe_duration_seconds_count{probe=\"all\"} 1",
            "plumbline_agent_last_publish_timestamp_seconds 1700000000",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn probe_error_kinds() {
        let cases = [
            (
                Some("reading /etc/cdi/x.yaml: permission denied (os error 13)"),
                "permission",
            ),
            (
                Some("parsing /etc/containerd/config.toml: expected `=`"),
                "parse",
            ),
            (Some("/var/lib/dpkg/status is too large"), "too_large"),
            (Some("reading /proc/driver/nvidia/version: i/o"), "io"),
            (None, "other"),
        ];
        for (message, kind) in cases {
            assert_eq!(probe_error_kind(message), kind, "{message:?}");
        }
    }
}
