//! Prometheus metrics, served on `/metrics` by [`crate::http`].
//!
//! Names and labels are part of the runbook's contract (`docs/runbook.md`
//! quotes them in its alerts), so they are listed once, here.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PolicyVerdictLabels {
    pub policy: String,
    pub verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PolicyLabel {
    pub policy: String,
}

/// Every metric the controller exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub registry: Registry,
    /// Node reconciles by result (`noop`, `applied`, `skipped`, `error`).
    pub reconciles: Family<ResultLabel, Counter>,
    /// Time to plan and apply one batch of nodes.
    pub batch_duration: Histogram,
    /// Nodes per planning batch.
    pub batch_size: Histogram,
    /// Errors by [`crate::ControllerError::kind`].
    pub errors: Family<KindLabel, Counter>,
    /// Writes sent by kind (`node`, `node_status`, `baseline_status`,
    /// `policy_status`, `event`, `lease`).
    pub writes: Family<KindLabel, Counter>,
    /// Nodes by verdict per policy (`none` for unmanaged nodes).
    pub nodes: Family<PolicyVerdictLabels, Gauge>,
    /// Nodes of the policy unavailable now (budget in use).
    pub budget_in_use: Family<PolicyLabel, Gauge>,
    /// `maxUnavailable` of the policy resolved to a count.
    pub budget_max: Family<PolicyLabel, Gauge>,
    /// Nodes whose disruptive actions the budget holds back.
    pub held_back: Family<PolicyLabel, Gauge>,
    /// Nodes whose disruptive write's outcome is not known yet (counted as
    /// unavailable until it is).
    pub in_doubt: Gauge,
    /// 1 while this replica holds the lease.
    pub leader: Gauge,
    /// Nodes waiting to be reconciled.
    pub queue_depth: Gauge,
    /// Objects in the caches, by resource.
    pub cached: Family<KindLabel, Gauge>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("plumbline_controller");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reconciles",
            "Node reconciles by result",
            reconciles.clone(),
        );
        let batch_duration = Histogram::new([
            0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]);
        registry.register(
            "batch_duration_seconds",
            "Time to plan and apply one batch of node reconciles",
            batch_duration.clone(),
        );
        let batch_size = Histogram::new([1.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0]);
        registry.register(
            "batch_size",
            "Nodes reconciled per batch",
            batch_size.clone(),
        );
        let errors = Family::<KindLabel, Counter>::default();
        registry.register("errors", "Errors by kind", errors.clone());
        let writes = Family::<KindLabel, Counter>::default();
        registry.register("writes", "API writes sent, by kind", writes.clone());
        let nodes = Family::<PolicyVerdictLabels, Gauge>::default();
        registry.register("nodes", "Nodes by policy and verdict", nodes.clone());
        let budget_in_use = Family::<PolicyLabel, Gauge>::default();
        registry.register(
            "budget_in_use",
            "Selected nodes of the policy that are unavailable now",
            budget_in_use.clone(),
        );
        let budget_max = Family::<PolicyLabel, Gauge>::default();
        registry.register(
            "budget_max",
            "maxUnavailable of the policy resolved to a node count",
            budget_max.clone(),
        );
        let held_back = Family::<PolicyLabel, Gauge>::default();
        registry.register(
            "held_back",
            "Nodes whose disruptive actions the budget holds back",
            held_back.clone(),
        );
        let in_doubt = Gauge::default();
        registry.register(
            "nodes_in_doubt",
            "Nodes whose disruptive write failed without a clear refusal and may have landed; each counts as unavailable until a read settles it",
            in_doubt.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the lease",
            leader.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Nodes waiting to be reconciled",
            queue_depth.clone(),
        );
        let cached = Family::<KindLabel, Gauge>::default();
        registry.register(
            "cached_objects",
            "Objects held in the watch caches",
            cached.clone(),
        );
        Arc::new(Metrics {
            registry,
            reconciles,
            batch_duration,
            batch_size,
            errors,
            writes,
            nodes,
            budget_in_use,
            budget_max,
            held_back,
            in_doubt,
            leader,
            queue_depth,
            cached,
        })
    }

    pub fn write(&self, kind: &'static str) {
        self.writes.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn reconciled(&self, result: &'static str, n: u64) {
        self.reconciles
            .get_or_create(&ResultLabel { result })
            .inc_by(n);
    }

    /// OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Writing into a String cannot fail; an empty page is the least
            // surprising answer if it ever did.
            out.clear();
        }
        out
    }
}
