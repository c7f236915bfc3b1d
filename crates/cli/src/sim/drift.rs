//! Hosts that change while the simulation runs: a rolling driver upgrade
//! (the `rolling-upgrade` scenario) and random drift (`--drift-every`).
//! Both change a node's spec and write the difference into its tree, so
//! the change reaches the API through the node's agent, like on a real
//! host.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plumbline_api::VerdictState;
use plumbline_api::keys::rules;
use plumbline_sim::fleet::Rng;
use tokio::sync::watch;

use super::cluster::LiveView;
use super::hosts::SimNode;

/// How a rolling upgrade is going.
#[derive(Debug, Default)]
pub struct Rollout {
    pub waves: AtomicUsize,
    pub waves_done: AtomicUsize,
    pub done: AtomicBool,
    /// Nodes seen drifting (`driver.mismatch`) while their reboot was pending.
    pub drift_seen: Mutex<BTreeSet<String>>,
    /// Nodes whose drift was never seen, or that never came back.
    pub missed: Mutex<Vec<String>>,
}

impl Rollout {
    /// `rollout wave 3/8`, or `rollout done`.
    pub fn status(&self) -> String {
        if self.done.load(Ordering::Relaxed) {
            "rollout done".to_string()
        } else {
            let waves = self.waves.load(Ordering::Relaxed);
            let current = (self.waves_done.load(Ordering::Relaxed) + 1).min(waves);
            format!("rollout wave {current}/{waves}")
        }
    }

    pub fn seen(&self) -> usize {
        self.drift_seen.lock().map(|s| s.len()).unwrap_or(0)
    }

    pub fn missed(&self) -> Vec<String> {
        self.missed.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Changes one node off the async threads (it writes files).
async fn change<R: Send + 'static>(
    node: &Arc<SimNode>,
    f: impl FnOnce(&mut plumbline_sim::fleet::GeneratedNode) -> R + Send + 'static,
) -> Option<(R, Vec<String>)> {
    let node = node.clone();
    let name = node.name.clone();
    match tokio::task::spawn_blocking(move || node.change(f)).await {
        Ok(Ok(done)) => Some(done),
        Ok(Err(e)) => {
            eprintln!("sim: changing host {name}: {e}");
            None
        }
        Err(_) => None,
    }
}

/// Waits until `ok` holds for every node in `names`, or `limit` passes.
/// Returns the names it never held for.
async fn wait_until(
    live: &LiveView,
    names: &[String],
    limit: Duration,
    ok: impl Fn(&super::cluster::NodeState) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let pending: Vec<String> = live
            .read(|view| {
                names
                    .iter()
                    .filter(|n| !view.nodes.get(*n).is_some_and(&ok))
                    .cloned()
                    .collect()
            })
            .unwrap_or_else(|| names.to_vec());
        if pending.is_empty() || Instant::now() >= deadline {
            return pending;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Rolls `target` through the fleet in waves: install (a reboot is now
/// pending and Plumbline flags the node), wait until the drift is seen,
/// hold it a moment, reboot, wait until the node is compliant on the new
/// driver, next wave.
pub async fn rollout(
    nodes: Vec<Arc<SimNode>>,
    target: &'static str,
    live: LiveView,
    state: Arc<Rollout>,
    mut stop: watch::Receiver<bool>,
) {
    let wave_size = nodes.len().div_ceil(8).max(1);
    let waves: Vec<&[Arc<SimNode>]> = nodes.chunks(wave_size).collect();
    state.waves.store(waves.len(), Ordering::Relaxed);
    let limit = Duration::from_secs(60);
    // Start from a judged, compliant fleet, so that every drift seen is
    // the rollout's.
    let all: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    wait_until(&live, &all, Duration::from_secs(120), |n| {
        n.verdict == Some(VerdictState::Compliant)
    })
    .await;
    eprintln!(
        "rollout: {} nodes, {target} in {} waves of up to {wave_size}",
        nodes.len(),
        waves.len()
    );
    for (i, wave) in waves.iter().enumerate() {
        if *stop.borrow() {
            return;
        }
        let names: Vec<String> = wave.iter().map(|n| n.name.clone()).collect();
        for node in *wave {
            change(node, move |g| g.install_driver(target)).await;
        }
        eprintln!(
            "rollout: wave {}/{}: driver {target} installed on {}; reboot pending",
            i + 1,
            waves.len(),
            names.join(", ")
        );
        let missed = wait_until(&live, &names, limit, |n| {
            n.verdict == Some(VerdictState::Drifting)
                && n.findings.iter().any(|(r, _)| r == rules::DRIVER_MISMATCH)
        })
        .await;
        if let Ok(mut seen) = state.drift_seen.lock() {
            seen.extend(names.iter().filter(|n| !missed.contains(n)).cloned());
        }
        // Let the drift be seen (kubectl get ngb -w) before it clears.
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(1000)) => {}
            _ = stop.changed() => return,
        }
        for node in *wave {
            change(node, |g| g.reboot()).await;
        }
        eprintln!(
            "rollout: wave {}/{}: rebooted {}",
            i + 1,
            waves.len(),
            names.join(", ")
        );
        let stuck = wait_until(&live, &names, limit, |n| {
            n.verdict == Some(VerdictState::Compliant) && n.driver.as_deref() == Some(target)
        })
        .await;
        if let Ok(mut m) = state.missed.lock() {
            m.extend(
                missed
                    .iter()
                    .map(|n| format!("{n}: its pending reboot was never flagged")),
            );
            m.extend(
                stuck
                    .iter()
                    .map(|n| format!("{n}: not compliant on {target} after its reboot")),
            );
        }
        state.waves_done.store(i + 1, Ordering::Relaxed);
    }
    state.done.store(true, Ordering::Relaxed);
    eprintln!("rollout: every node runs {target}");
}

/// Every `every`, breaks a random healthy host in one of its pool's
/// usual ways, or repairs a broken one.
pub async fn drift(
    nodes: Vec<Arc<SimNode>>,
    every: Duration,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = Rng::new(seed ^ 0x5EED_D81F);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(node) = nodes.get(rng.below(nodes.len())) else {
            return;
        };
        let mut node_rng = rng.fork(0);
        let done = change(node, move |g| {
            if g.violations.is_empty() {
                match g.break_host(&mut node_rng) {
                    Some(added) => added
                        .iter()
                        .map(|v| v.describe())
                        .collect::<Vec<_>>()
                        .join("; "),
                    None => "left alone".to_string(),
                }
            } else {
                let cleared = g.repair();
                format!(
                    "repaired ({})",
                    cleared
                        .iter()
                        .map(|v| v.kind().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        })
        .await;
        if let Some((what, files)) = done
            && !files.is_empty()
        {
            let shown: Vec<&str> = files.iter().take(3).map(String::as_str).collect();
            let more = files.len().saturating_sub(3);
            eprintln!(
                "drift: {}: {what} [{}{}]",
                node.name,
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more files")
                } else {
                    String::new()
                }
            );
        }
    }
}
