//! The node agent: keeps one node's `NodeGpuBaseline` true to its host.
//!
//! `plumbline agent` runs on every GPU node (a DaemonSet). It reads the
//! host's NVIDIA stack through the probes in `plumbline-probe`, from a
//! read-only mount of the host's `/`, and publishes what it found as the
//! `status` of the `NodeGpuBaseline` named after the node. The controller
//! judges that status; the agent only reports.
//!
//! ```text
//!   timer (60 s) ────────────┐
//!   inotify: /etc/containerd, │           ┌──────────┐    ┌──────────────┐
//!     docker, crio, cdi, ctk, ├─► debounce├─► probe  ├──► │ hash         │
//!     /usr/local/cuda*, libs  │  (200 ms) │ (blocking│    │ (observed +  │
//!   poll 1 s: /sys/module/    │           │  thread) │    │  probe status│
//!     nvidia/version, /proc/  │           └──────────┘    │  no duration)│
//!     driver/nvidia/version ──┘                           └──────┬───────┘
//!                                                 changed? ──────┘
//!                                                        ▼ latest snapshot (watch channel)
//!   heartbeat (5 min) ─────────────────────────► publish: GET once, create with
//!                                                 ownerReference → Node, then a
//!                                                 merge patch of /status holding
//!                                                 only the agent's fields that
//!                                                 differ (never `verdict`)
//!                                                        │ error: jittered backoff,
//!                                                        ▼ probing goes on
//!                                                 /metrics /healthz /readyz
//! ```
//!
//! Probing and publishing are two loops joined by a `watch` channel that
//! holds only the latest snapshot. The probe loop never waits for the API:
//! while the server is slow or gone it keeps probing and overwrites the
//! snapshot, and the publish loop, once the server answers again, sends the
//! newest state and nothing in between. A status write happens only when
//! the snapshot's hash differs from the server's `observedHash` (or the
//! heartbeat is due), so an idle node costs one small request per heartbeat
//! interval. Each write is one request; on shutdown the in-flight request is
//! dropped whole, never half-sent.
//!
//! Everything per agent is small and optional so that `plumbline sim` can
//! run thousands in one process: inotify, the kernel poll and the HTTP
//! server can each be turned off, the metric families can be shared, and a
//! simulated host can replace the real probes ([`HostProbe`]).

mod backoff;
mod config;
mod error;
mod http;
mod metrics;
mod probe;
mod publish;
mod status;
mod watch;

pub use config::{
    AgentConfig, ConfigError, DEFAULT_API_TIMEOUT, DEFAULT_DEBOUNCE, DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_HOST_ROOT, DEFAULT_KERNEL_POLL_INTERVAL, DEFAULT_METRICS_ADDR, DEFAULT_PROBE_INTERVAL,
    validate_config,
};
pub use error::{AgentError, ApiError};
pub use metrics::{AgentMetrics, SharedMetrics, probe_error_kind};
pub use probe::{HostProbe, HostTreeProbe, StaticProbe};
pub use publish::Reason;
pub use status::{AGENT_FIELDS, Snapshot, observed_hash};
pub use watch::{POLLED_FILES, WATCHED_DIRS, WatchedDir};

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use plumbline_api::ProbeStatus;
use plumbline_probe::HostRoot;
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, watch as channel};
use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::metrics::{ProbeErrorLabels, ProbeLabels, ReasonLabels, TriggerLabels};
use crate::publish::Publisher;
use crate::watch::{FileWatcher, KernelPoll};

/// Longest a burst of changes can hold back a probe: with changes arriving
/// faster than the debounce, the agent still probes this long after the
/// first one.
const MAX_COALESCE: Duration = Duration::from_millis(1000);

/// Shortest wait between two publish attempts when nothing was written, so
/// that no state of the publisher can turn into a busy loop.
const MIN_PUBLISH_WAIT: Duration = Duration::from_millis(100);

/// Runs the agent until `shutdown` completes, then returns within
/// milliseconds. Fails only at start: a bad setting, an unreadable host
/// root, a metrics address that cannot be bound. After that, API errors are
/// retried and probe errors are published.
pub async fn run(
    config: AgentConfig,
    client: kube::Client,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    validate_config(&config)?;

    let (probe, host): (Arc<dyn HostProbe>, Option<HostRoot>) = match &config.probe {
        Some(probe) => (probe.clone(), None),
        None => {
            let host = HostRoot::new(&config.host_root).map_err(|e| AgentError::HostRoot {
                path: config.host_root.display().to_string(),
                message: e.to_string(),
            })?;
            (
                Arc::new(HostTreeProbe::new(
                    host.clone(),
                    config.nvml,
                    config.nvml_library.clone(),
                )),
                Some(host),
            )
        }
    };

    let shared = match &config.metrics {
        Some(shared) => shared.clone(),
        None if config.metrics_addr.is_some() => SharedMetrics::new(),
        None => SharedMetrics {
            metrics: AgentMetrics::unregistered(),
            registry: Arc::new(Registry::default()),
        },
    };
    let ready = Arc::new(AtomicBool::new(false));
    let listener = match config.metrics_addr {
        Some(addr) => Some(
            http::bind(addr)
                .await
                .map_err(|source| AgentError::MetricsBind {
                    addr: addr.to_string(),
                    source,
                })?,
        ),
        None => None,
    };
    let health = http::Health {
        ready: ready.clone(),
        metrics: shared.clone(),
    };
    let server = async move {
        match listener {
            Some(listener) => http::serve(listener, health).await,
            None => std::future::pending().await,
        }
    };

    let (tx, rx) = channel::channel::<Option<Arc<Snapshot>>>(None);
    let prober = ProbeLoop {
        probe,
        host: host.clone(),
        watch_files: config.watch_files,
        kernel_poll_interval: config.kernel_poll_interval,
        probe_interval: config.probe_interval,
        debounce: config.debounce,
        metrics: shared.metrics.clone(),
    }
    .run(tx);
    let publisher = PublishLoop {
        publisher: Publisher::new(
            client,
            config.node_name.clone(),
            config.agent_version.clone(),
            config.heartbeat_interval,
            config.api_timeout,
        ),
        backoff: Backoff::new(config.backoff_base, config.backoff_max),
        metrics: shared.metrics.clone(),
        ready,
    }
    .run(rx);

    let span = tracing::info_span!("agent", node = %config.node_name);
    async move {
        tracing::info!(
            host_root = %config.host_root.display(),
            probe_interval = ?config.probe_interval,
            heartbeat_interval = ?config.heartbeat_interval,
            "agent started"
        );
        tokio::select! {
            biased;
            () = shutdown => tracing::info!("shutting down"),
            () = prober => {}
            () = publisher => {}
            () = server => {}
        }
    }
    .instrument(span)
    .await;
    Ok(())
}

/// What set off a probe pass, the `trigger` label of `probe_runs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Startup,
    Timer,
    File,
    Kernel,
    Signal,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Timer => "timer",
            Trigger::File => "file",
            Trigger::Kernel => "kernel",
            Trigger::Signal => "signal",
        }
    }
}

struct ProbeLoop {
    probe: Arc<dyn HostProbe>,
    host: Option<HostRoot>,
    watch_files: bool,
    kernel_poll_interval: Option<Duration>,
    probe_interval: Duration,
    debounce: Duration,
    metrics: AgentMetrics,
}

/// A change seen but not yet probed: probe at `deadline`.
struct Pending {
    trigger: Trigger,
    first: Instant,
    deadline: Instant,
}

impl ProbeLoop {
    async fn run(self, tx: channel::Sender<Option<Arc<Snapshot>>>) {
        let mut watcher = match (&self.host, self.watch_files) {
            (Some(host), true) => match FileWatcher::new(host.clone()) {
                Ok(w) => {
                    tracing::debug!(watches = w.watch_count(), "watching host directories");
                    Some(w)
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "inotify unavailable; changes are seen at the next timer probe (raise fs.inotify.max_user_instances)"
                    );
                    None
                }
            },
            _ => None,
        };
        let mut kernel = match (&self.host, self.kernel_poll_interval) {
            (Some(host), Some(every)) => {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Some((KernelPoll::new(host), tick))
            }
            _ => None,
        };
        let signal = self.probe.change_signal();
        let mut timer =
            tokio::time::interval_at(Instant::now() + self.probe_interval, self.probe_interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let mut trigger = Some(Trigger::Startup);
        let mut pending: Option<Pending> = None;
        loop {
            if let Some(t) = trigger.take() {
                self.probe_once(t, &tx).await;
                timer.reset();
            }
            let deadline = pending.as_ref().map(|p| p.deadline);
            let seen = tokio::select! {
                _ = timer.tick() => {
                    trigger = Some(Trigger::Timer);
                    pending = None;
                    None
                }
                alive = file_changed(&mut watcher) => {
                    if alive {
                        Some(Trigger::File)
                    } else {
                        tracing::warn!("inotify stream ended; changes are seen at the next timer probe");
                        watcher = None;
                        None
                    }
                }
                changed = kernel_changed(&mut kernel) => changed.then_some(Trigger::Kernel),
                () = notified(signal.as_deref()) => Some(Trigger::Signal),
                () = sleep_until(deadline) => {
                    trigger = pending.take().map(|p| p.trigger);
                    None
                }
            };
            if let Some(t) = seen {
                let now = Instant::now();
                pending = Some(match pending.take() {
                    None => Pending {
                        trigger: t,
                        first: now,
                        deadline: now + self.debounce,
                    },
                    Some(p) => Pending {
                        deadline: (now + self.debounce).min(p.first + MAX_COALESCE),
                        ..p
                    },
                });
            }
        }
    }

    async fn probe_once(&self, trigger: Trigger, tx: &channel::Sender<Option<Arc<Snapshot>>>) {
        let probe = self.probe.clone();
        let started = Instant::now();
        let (observed, probes) = match tokio::task::spawn_blocking(move || probe.probe()).await {
            Ok(result) => result,
            Err(e) => {
                // A probe that panics is a bug in the probe; the agent
                // keeps its last snapshot and tries again next time.
                tracing::error!(error = %e, "probe pass failed");
                return;
            }
        };
        let m = &self.metrics;
        m.probe_runs
            .get_or_create(&TriggerLabels {
                trigger: trigger.as_str(),
            })
            .inc();
        m.probe_duration
            .get_or_create(&ProbeLabels {
                probe: "all".to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
        for p in &probes {
            m.probe_duration
                .get_or_create(&ProbeLabels {
                    probe: p.name.clone(),
                })
                .observe(p.duration_micros as f64 / 1e6);
            if p.status == ProbeStatus::Error {
                m.probe_errors
                    .get_or_create(&ProbeErrorLabels {
                        probe: p.name.clone(),
                        kind: probe_error_kind(p.message.as_deref()).to_string(),
                    })
                    .inc();
            }
        }
        let snapshot = Snapshot::new(observed, probes);
        tx.send_if_modified(|current| {
            if current.as_ref().is_some_and(|c| c.hash == snapshot.hash) {
                return false;
            }
            tracing::info!(trigger = trigger.as_str(), hash = %snapshot.hash, "host changed");
            *current = Some(Arc::new(snapshot));
            true
        });
    }
}

async fn file_changed(watcher: &mut Option<FileWatcher>) -> bool {
    match watcher {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

async fn kernel_changed(kernel: &mut Option<(KernelPoll, tokio::time::Interval)>) -> bool {
    match kernel {
        Some((poll, tick)) => {
            tick.tick().await;
            poll.changed()
        }
        None => std::future::pending().await,
    }
}

async fn notified(signal: Option<&Notify>) {
    match signal {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

struct PublishLoop {
    publisher: Publisher,
    backoff: Backoff,
    metrics: AgentMetrics,
    ready: Arc<AtomicBool>,
}

impl PublishLoop {
    async fn run(mut self, mut rx: channel::Receiver<Option<Arc<Snapshot>>>) {
        let mut failing = false;
        loop {
            let latest = rx.borrow_and_update().clone();
            let Some(snapshot) = latest else {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
                continue;
            };
            match self.publisher.sync(&snapshot).await {
                Ok(wrote) => {
                    self.backoff.reset();
                    if failing {
                        tracing::info!("API reachable again");
                        failing = false;
                    }
                    if let Some(reason) = wrote {
                        self.metrics
                            .publishes
                            .get_or_create(&ReasonLabels {
                                reason: reason.as_str(),
                            })
                            .inc();
                        self.metrics
                            .last_publish
                            .set(jiff::Timestamp::now().as_millisecond() as f64 / 1000.0);
                        tracing::debug!(reason = reason.as_str(), hash = %snapshot.hash, "published");
                    }
                    // Ready only once the publish is counted, so a scrape
                    // that sees ready also sees the publish.
                    self.ready.store(true, Ordering::Relaxed);
                    let wait = self.publisher.heartbeat_due_in().max(MIN_PUBLISH_WAIT);
                    tokio::select! {
                        changed = rx.changed() => {
                            if changed.is_err() {
                                std::future::pending::<()>().await;
                            }
                        }
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                Err(e) => {
                    self.metrics
                        .api_errors
                        .get_or_create(&metrics::KindLabels { kind: e.kind() })
                        .inc();
                    let delay = self.backoff.next_delay();
                    if matches!(e, ApiError::NodeNotFound { .. }) {
                        tracing::error!(error = %e, retry_in = ?delay, "cannot publish");
                    } else if !failing {
                        tracing::warn!(error = %e, kind = e.kind(), retry_in = ?delay, "publish failed; retrying");
                    } else {
                        tracing::debug!(error = %e, kind = e.kind(), retry_in = ?delay, "publish failed again");
                    }
                    failing = true;
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
