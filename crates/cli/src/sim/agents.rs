//! One real agent per simulated node and the real controller, in this
//! process, against the emulator.
//!
//! Each agent runs `plumbline_agent::run` with the real probes
//! ([`HostTreeProbe`]) over its node's tree. Its own file watching and
//! kernel polling are off (see `hosts.rs` for why); instead the probe
//! carries a change signal that the host poller and the simulator's own
//! changes ring. The agents share one metrics registry and serve nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use plumbline_agent::{AgentConfig, HostProbe, HostTreeProbe, SharedMetrics};
use plumbline_api::{Observed, ProbeResult};
use plumbline_probe::HostRoot;
use plumbline_sim::StoreHandle;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::hosts::SimNode;

/// The real probes over a simulated host, with a change signal.
struct SimHostProbe {
    probe: HostTreeProbe,
    changed: Arc<Notify>,
}

impl HostProbe for SimHostProbe {
    fn probe(&self) -> (Observed, Vec<ProbeResult>) {
        self.probe.probe()
    }

    fn change_signal(&self) -> Option<Arc<Notify>> {
        Some(self.changed.clone())
    }
}

/// Completes when `stop` turns true (or its sender is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// How many agents start before the next group waits for their first
/// publish, so that thousands do not hit the API server in one instant.
const START_GROUP: usize = 200;

/// Starts one agent per node. Returns once every agent has published (or
/// a group took over 30 s to), calling `progress(started)` per group.
pub async fn start_agents(
    nodes: &[Arc<SimNode>],
    client: &kube::Client,
    store: &StoreHandle,
    stop: &watch::Receiver<bool>,
    progress: impl Fn(usize),
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let metrics = SharedMetrics::new();
    // Thousands of hosts change rarely and are polled anyway: probe on the
    // timer less often than a real agent's minute.
    let probe_interval = if nodes.len() > 500 {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(60)
    };
    let mut tasks = Vec::with_capacity(nodes.len());
    let mut started = 0;
    for group in nodes.chunks(START_GROUP) {
        for node in group {
            let host = HostRoot::new(&node.root)
                .with_context(|| format!("opening the host tree {}", node.root.display()))?;
            let probe = SimHostProbe {
                probe: HostTreeProbe::new(host, false, None),
                changed: node.changed.clone(),
            };
            let config = AgentConfig {
                node_name: node.name.clone(),
                host_root: node.root.clone(),
                probe_interval,
                metrics_addr: None,
                watch_files: false,
                kernel_poll_interval: None,
                metrics: Some(metrics.clone()),
                probe: Some(Arc::new(probe)),
                ..AgentConfig::default()
            };
            let client = client.clone();
            let shutdown = stopped(stop.clone());
            let name = node.name.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = plumbline_agent::run(config, client, shutdown).await {
                    tracing::error!(node = %name, error = %e, "agent stopped");
                }
            }));
        }
        started += group.len();
        let names: Vec<&str> = group.iter().map(|n| n.name.as_str()).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !all_published(store, &names) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        progress(started);
    }
    Ok(tasks)
}

fn all_published(store: &StoreHandle, names: &[&str]) -> bool {
    names.iter().all(|n| {
        store
            .get(plumbline_api::keys::API_VERSION, "NodeGpuBaseline", None, n)
            .is_some_and(|b| b.pointer("/status/observedHash").is_some())
    })
}

/// Starts the controller: no leader election (it is alone), policy status
/// every second so the summary is current.
pub fn start_controller(
    client: kube::Client,
    stop: &watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    let config = plumbline_controller::ControllerConfig {
        identity: "plumbline-sim".to_string(),
        leader_election: false,
        status_interval: Duration::from_secs(1),
        metrics_addr: None,
        ..plumbline_controller::ControllerConfig::default()
    };
    let shutdown = stopped(stop.clone());
    tokio::spawn(async move {
        plumbline_controller::run(config, client, shutdown)
            .await
            .context("the controller stopped")
    })
}
