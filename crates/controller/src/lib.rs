//! The Plumbline fleet controller: it holds every node's `NodeGpuBaseline`
//! against the `GpuFleetPolicy` that selects the node, and carries out what
//! the policy engine (`plumbline-policy`) decides — never more.
//!
//! ```text
//!   API server ──watch──► caches (reflector stores, stripped: labels, our
//!   │                      annotations/condition, taints, cordon; baselines;
//!   │                      policies) + read-your-writes overlay
//!   │                         │ node names (deduplicated)
//!   │                         ▼
//!   │                     work queue ◄── resync timer, staleness timers,
//!   │                         │          policy changes ("every node")
//!   │                         ▼ batches (leader only)
//!   │                     planner: select_policy → evaluate → plan
//!   │                         │  (pure plumbline-policy calls; one budget
//!   │                         │   per policy, computed from the caches)
//!   │                         ▼ jobs: desired node + verdict
//!   │◄──── one Node patch ─── executors (bounded concurrency), each write
//!   │◄──── one /status patch  guarded by the lease and carrying the
//!   │◄──── one verdict patch  resourceVersion it was planned from
//!   │◄──── Events (transitions only)
//!   │◄──── policy status (every few seconds, only when changed)
//!   └───── Lease (leader election)
//! ```
//!
//! Decisions happen in one place, the planner, one batch at a time: within a
//! batch each policy's budget is a single `&mut` value the engine draws
//! from, so two nodes can never both take the last slot; between batches the
//! budget is recomputed from the caches, which include every write this
//! replica made (the overlay), so a slot taken is never forgotten; and a
//! restarted or newly elected replica recomputes it from a fresh list. A
//! write whose node changed meanwhile gets 409; the node is re-read and
//! planned again in the next batch, against the budget as it then is. A
//! disruptive write that failed without a clear refusal may still land: its
//! node counts as unavailable until a read of the node settles it (it moved
//! to another version, or still shows the planned one once the API server
//! can no longer apply the write), and meanwhile its retry may only reuse
//! the unit its doubt holds.
//!
//! Nothing is written that is already so: a plan that changes nothing sends
//! nothing, verdicts and policy status are compared before writing, so a
//! converged fleet costs zero writes however often it is resynced.

mod cache;
mod error;
mod http;
mod leader;
mod metrics;
mod patch;
mod queue;
mod reconcile;
mod status;

pub use error::ControllerError;
pub use leader::LeaseTiming;

use crate::cache::Cache;
use crate::leader::{Elector, Leadership};
use crate::metrics::Metrics;
use crate::queue::Queue;
use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};
use plumbline_api::{GpuFleetPolicy, NodeGpuBaseline};
use plumbline_compat::CompatDb;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// How the controller runs. `Default` is what `plumbline controller` uses
/// without flags.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Namespace of the leader-election Lease (`POD_NAMESPACE`).
    pub namespace: String,
    /// Namespace the controller's Events are created in. Everything they
    /// are about is cluster-scoped; Kubernetes' own components (client-go's
    /// recorders, the kubelet) put such Events in `default`, which is where
    /// `kubectl events` and `kubectl get events` look first.
    pub events_namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's name in the Lease (the pod name).
    pub identity: String,
    /// Take part in leader election. Off, the replica always acts: only for
    /// single-replica setups and tests.
    pub leader_election: bool,
    /// Lease timing.
    pub lease: LeaseTiming,
    /// Every node is reconciled again this often, even without events.
    pub resync: Duration,
    /// Policy status is written at most this often per policy.
    pub status_interval: Duration,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; `None` = don't.
    pub metrics_addr: Option<SocketAddr>,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// Most nodes planned in one batch.
    pub batch_size: usize,
    /// Treat every policy as `DryRun` whatever its spec says: verdicts and
    /// policy status are written, Nodes never are (`--dry-run`, the chart's
    /// `dryRun` value for a first install).
    pub dry_run: bool,
    /// How long a disruptive Node write that failed without a clear refusal
    /// (5xx, timeout, broken connection) may still land. Until a read of the
    /// node shows it moved on, or a read started this long after the
    /// failure shows it did not, the node counts as unavailable. The API
    /// server's default `--request-timeout` is 60 s.
    pub in_doubt_settle: Duration,
    /// Compatibility data to judge with instead of the data built into the
    /// binary (`--compat-data`, read once by [`load_compat_data`] before the
    /// controller starts). The data cannot change while it runs: a new file
    /// takes a restart, so every verdict of one run rests on one dataset.
    pub compat: Option<Arc<CompatDb>>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            namespace: "plumbline-system".to_string(),
            events_namespace: "default".to_string(),
            lease_name: "plumbline-controller".to_string(),
            identity: default_identity(),
            leader_election: true,
            lease: LeaseTiming::default(),
            resync: Duration::from_secs(300),
            status_interval: Duration::from_secs(5),
            metrics_addr: None,
            concurrency: 32,
            batch_size: 2000,
            dry_run: false,
            in_doubt_settle: Duration::from_secs(60),
            compat: None,
        }
    }
}

/// The pod name when running in a pod (`HOSTNAME`), else host and pid.
fn default_identity() -> String {
    match std::env::var("HOSTNAME") {
        Ok(h) if !h.is_empty() => h,
        _ => format!("plumbline-controller-{}", std::process::id()),
    }
}

/// Reads and checks a compatibility data file (`--compat-data`), for
/// [`ControllerConfig::compat`]. The error names the file and what is wrong
/// with it: unreadable, not TOML, an unsupported schema, or content that
/// contradicts itself (with the line).
pub fn load_compat_data(path: &Path) -> Result<Arc<CompatDb>, ControllerError> {
    CompatDb::load(path)
        .map(Arc::new)
        .map_err(|source| ControllerError::CompatData {
            path: path.display().to_string(),
            source,
        })
}

/// Everything the controller's tasks share.
pub(crate) struct Shared {
    pub config: ControllerConfig,
    pub client: Client,
    pub nodes: Arc<Cache<Node>>,
    pub baselines: Arc<Cache<NodeGpuBaseline>>,
    pub policies: Arc<Cache<GpuFleetPolicy>>,
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
    pub leadership: Arc<Leadership>,
    pub records: reconcile::Records,
    pub events: reconcile::EventSink,
}

impl Shared {
    /// The compatibility data verdicts and labels are computed with.
    pub fn compat(&self) -> &CompatDb {
        self.config
            .compat
            .as_deref()
            .unwrap_or_else(|| CompatDb::embedded())
    }

    pub fn synced(&self) -> bool {
        self.nodes.synced() && self.baselines.synced() && self.policies.synced()
    }
}

/// Runs the controller until `shutdown` completes; then it stops writing,
/// gives up the lease and returns.
pub async fn run(
    config: ControllerConfig,
    client: Client,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ControllerError> {
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let listener = match config.metrics_addr {
        Some(addr) => Some(http::bind(addr).await?),
        None => None,
    };
    let leadership = if config.leader_election {
        Leadership::new()
    } else {
        Leadership::always()
    };
    let (events, event_rx) = reconcile::event_channel();
    let shared = Arc::new(Shared {
        nodes: Cache::new(),
        baselines: Cache::new(),
        policies: Cache::new(),
        queue: Arc::new(Queue::default()),
        metrics: metrics.clone(),
        leadership: leadership.clone(),
        records: reconcile::Records::default(),
        events,
        client: client.clone(),
        config: config.clone(),
    });

    let mut tasks = tokio::task::JoinSet::new();
    if let Some(listener) = listener {
        tasks.spawn(http::serve(listener, metrics.clone(), ready.clone()));
    }
    tasks.spawn(cache::run_watch(
        Api::<Node>::all(client.clone()),
        shared.nodes.clone(),
        cache::strip_node,
        cache::node_touched,
        shared.queue.clone(),
        metrics.clone(),
        "nodes",
    ));
    tasks.spawn(cache::run_watch(
        Api::<NodeGpuBaseline>::all(client.clone()),
        shared.baselines.clone(),
        cache::strip_baseline,
        cache::baseline_touched,
        shared.queue.clone(),
        metrics.clone(),
        "nodegpubaselines",
    ));
    tasks.spawn(cache::run_watch(
        Api::<GpuFleetPolicy>::all(client.clone()),
        shared.policies.clone(),
        cache::policy_strip(shared.config.dry_run),
        cache::policy_touched,
        shared.queue.clone(),
        metrics.clone(),
        "gpufleetpolicies",
    ));
    {
        let shared = shared.clone();
        let ready = ready.clone();
        tasks.spawn(async move {
            while !shared.synced() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ready.store(true, Ordering::Release);
        });
    }
    tasks.spawn(reconcile::run_planner(shared.clone()));
    tasks.spawn(reconcile::run_events(shared.clone(), event_rx));
    tasks.spawn(status::run_status(shared.clone()));
    {
        let shared = shared.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(shared.config.resync);
            tick.tick().await;
            loop {
                tick.tick().await;
                shared.queue.request_full();
            }
        });
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let elector = config.leader_election.then(|| {
        tokio::spawn(
            Elector::new(
                client.clone(),
                &config.namespace,
                &config.lease_name,
                &config.identity,
                config.lease.clone(),
                leadership.clone(),
                metrics.clone(),
            )
            .run(stop_rx),
        )
    });
    if !config.leader_election {
        metrics.leader.set(1);
    }

    shutdown.await;
    tracing::info!("shutting down");
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let _ = stop_tx.send(true);
    if let Some(elector) = elector {
        let _ = elector.await;
    }
    Ok(())
}
