//! What the simulated cluster looks like now, read straight from the
//! emulator's store, and whether it is what the scenario expects.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use plumbline_api::keys::{self, annotations, taints};
use plumbline_api::{GpuFleetPolicy, TaintEffect, VerdictState};
use plumbline_sim::{Committed, EventType, Sim, StoreHandle};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::scenario::Expected;

/// One node as the API server has it.
#[derive(Debug, Clone, Default)]
pub struct NodeState {
    /// The agent has published an observation.
    pub published: bool,
    /// `status.observed.driver.version`.
    pub driver: Option<String>,
    pub verdict: Option<VerdictState>,
    pub policy: Option<String>,
    /// (rule, message) of each finding.
    pub findings: Vec<(String, String)>,
    /// Effect of Plumbline's drift taint.
    pub taint: Option<String>,
    /// Cordoned by Plumbline (`spec.unschedulable` with its annotation).
    pub cordoned: bool,
}

impl NodeState {
    /// Made unavailable by Plumbline: cordoned, or a taint that repels pods.
    pub fn disrupted(&self) -> bool {
        self.cordoned
            || self
                .taint
                .as_deref()
                .is_some_and(|e| e != "PreferNoSchedule")
    }
}

/// One policy's status.
#[derive(Debug, Clone, Default)]
pub struct PolicyState {
    pub name: String,
    pub selected: u32,
    pub compliant: u32,
    pub drifting: u32,
    pub unknown: u32,
    pub held_back: u32,
    pub held_back_nodes: Vec<String>,
    /// (unavailable, maxUnavailable).
    pub budget: Option<(u32, u32)>,
    /// The status describes the current generation.
    pub current: bool,
}

/// Store keys of Plumbline's resources in the emulator.
const BASELINES: &str = "nodegpubaselines.plumbline.dev";
const POLICIES: &str = "gpufleetpolicies.plumbline.dev";

/// A [`ClusterView`] kept current from the emulator's stream of commits,
/// so that watching thousands of nodes costs one update per write instead
/// of copying the whole store (under its lock) every second.
#[derive(Debug, Clone)]
pub struct LiveView {
    view: Arc<Mutex<ClusterView>>,
}

impl LiveView {
    /// Starts following `sim`'s commits. Falls back to a full read when the
    /// stream gets ahead of it.
    pub fn start(sim: &Sim) -> LiveView {
        // Subscribe before reading, so nothing between the two is missed;
        // applying a write twice is harmless.
        let mut commits = sim.subscribe();
        let store = sim.store();
        let view = Arc::new(Mutex::new(ClusterView::read(&store)));
        let shared = view.clone();
        tokio::spawn(async move {
            loop {
                match commits.recv().await {
                    Ok(c) => {
                        if let Ok(mut v) = shared.lock() {
                            v.apply(&c);
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let fresh = ClusterView::read(&store);
                        if let Ok(mut v) = shared.lock() {
                            *v = fresh;
                        }
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        LiveView { view }
    }

    /// The cluster as of the last commit seen.
    pub fn snapshot(&self) -> ClusterView {
        self.read(ClusterView::clone).unwrap_or_default()
    }

    /// Looks at the current view without copying it.
    pub fn read<R>(&self, f: impl FnOnce(&ClusterView) -> R) -> Option<R> {
        self.view.lock().ok().map(|v| f(&v))
    }
}

/// Nodes and policies as the API server has them.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub nodes: BTreeMap<String, NodeState>,
    pub policies: Vec<PolicyState>,
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn count(v: &Value, pointer: &str) -> u32 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

fn verdict_state(s: &str) -> Option<VerdictState> {
    [
        VerdictState::Compliant,
        VerdictState::Drifting,
        VerdictState::Unknown,
        VerdictState::Unmanaged,
    ]
    .into_iter()
    .find(|v| v.as_str() == s)
}

impl ClusterView {
    /// Reads everything at once (holding the store's lock while it copies).
    pub fn read(store: &StoreHandle) -> ClusterView {
        let mut view = ClusterView::default();
        for node in store.list("v1", "Node", None) {
            view.apply_node(&node);
        }
        for b in store.list(keys::API_VERSION, "NodeGpuBaseline", None) {
            view.apply_baseline(&b);
        }
        for p in store.list(keys::API_VERSION, "GpuFleetPolicy", None) {
            view.apply_policy(&p);
        }
        view
    }

    /// Applies one committed write (store keys as the emulator names them).
    fn apply(&mut self, c: &Committed) {
        let name = text(&c.object, "/metadata/name").unwrap_or_default();
        match (c.resource.as_str(), c.event) {
            ("nodes", EventType::Deleted) | (BASELINES, EventType::Deleted) => {
                self.nodes.remove(&name);
            }
            (POLICIES, EventType::Deleted) => self.policies.retain(|p| p.name != name),
            ("nodes", _) => self.apply_node(&c.object),
            (BASELINES, _) => self.apply_baseline(&c.object),
            (POLICIES, _) => self.apply_policy(&c.object),
            _ => {}
        }
    }

    fn apply_node(&mut self, node: &Value) {
        let Some(name) = text(node, "/metadata/name") else {
            return;
        };
        let state = self.nodes.entry(name).or_default();
        state.taint = node
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|t| t.get("key").and_then(Value::as_str) == Some(taints::DRIFT))
            .and_then(|t| text(t, "/effect"));
        let unschedulable = node
            .pointer("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let ours = node
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(annotations::CORDONED_BY_PLUMBLINE))
            .is_some();
        state.cordoned = unschedulable && ours;
    }

    fn apply_baseline(&mut self, b: &Value) {
        let Some(name) = text(b, "/metadata/name") else {
            return;
        };
        let state = self.nodes.entry(name).or_default();
        state.published = b.pointer("/status/observedHash").is_some();
        state.driver = text(b, "/status/observed/driver/version");
        state.verdict = text(b, "/status/verdict/state").and_then(|s| verdict_state(&s));
        state.policy = text(b, "/status/verdict/policy");
        state.findings = b
            .pointer("/status/verdict/findings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|f| {
                (
                    text(f, "/rule").unwrap_or_default(),
                    text(f, "/message").unwrap_or_default(),
                )
            })
            .collect();
    }

    fn apply_policy(&mut self, p: &Value) {
        let generation = p.pointer("/metadata/generation").and_then(Value::as_i64);
        let observed = p
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64);
        let state = PolicyState {
            name: text(p, "/metadata/name").unwrap_or_default(),
            selected: count(p, "/status/selectedNodes"),
            compliant: count(p, "/status/compliant"),
            drifting: count(p, "/status/drifting"),
            unknown: count(p, "/status/unknown"),
            held_back: count(p, "/status/heldBack"),
            held_back_nodes: p
                .pointer("/status/heldBackNodes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect(),
            budget: p
                .pointer("/status/budget")
                .map(|b| (count(b, "/unavailable"), count(b, "/maxUnavailable"))),
            current: observed.is_some() && observed == generation,
        };
        match self.policies.iter_mut().find(|q| q.name == state.name) {
            Some(q) => *q = state,
            None => {
                self.policies.push(state);
                self.policies.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
    }

    pub fn count_verdict(&self, state: VerdictState) -> usize {
        self.nodes
            .values()
            .filter(|n| n.verdict == Some(state))
            .count()
    }

    pub fn published(&self) -> usize {
        self.nodes.values().filter(|n| n.published).count()
    }

    pub fn judged(&self) -> usize {
        self.nodes.values().filter(|n| n.verdict.is_some()).count()
    }

    pub fn tainted(&self) -> usize {
        self.nodes.values().filter(|n| n.taint.is_some()).count()
    }

    pub fn cordoned(&self) -> usize {
        self.nodes.values().filter(|n| n.cordoned).count()
    }

    pub fn held_back(&self) -> u32 {
        self.policies.iter().map(|p| p.held_back).sum()
    }

    pub fn policy(&self, name: &str) -> Option<&PolicyState> {
        self.policies.iter().find(|p| p.name == name)
    }
}

/// What one node must look like: its expected verdict and the driver its
/// host has loaded (so an old observation never passes for a new one).
#[derive(Debug, Clone)]
pub struct NodeExpectation {
    pub name: String,
    pub expected: Expected,
    pub driver: String,
}

/// Why the cluster is not (yet) what the scenario expects; empty when it is.
pub fn differences(
    view: &ClusterView,
    nodes: &[NodeExpectation],
    policies: &[GpuFleetPolicy],
) -> Vec<String> {
    let mut out = Vec::new();
    for want in nodes {
        let Some(have) = view.nodes.get(&want.name) else {
            out.push(format!("{}: no Node", want.name));
            continue;
        };
        if !have.published {
            out.push(format!("{}: the agent has not published yet", want.name));
            continue;
        }
        if have.driver.as_deref() != Some(want.driver.as_str()) {
            out.push(format!(
                "{}: the baseline says driver {}, the host has {} loaded",
                want.name,
                have.driver.as_deref().unwrap_or("none"),
                want.driver
            ));
            continue;
        }
        let e = &want.expected;
        let rules: BTreeSet<&str> = have.findings.iter().map(|(r, _)| r.as_str()).collect();
        let rules_ok = if e.rules.is_empty() {
            rules.is_empty()
        } else {
            e.rules.iter().all(|r| rules.contains(r))
        };
        if have.verdict != Some(e.state) || have.policy != e.policy || !rules_ok {
            out.push(format!(
                "{}: expected {} under {}{}, the verdict is {} under {}{}",
                want.name,
                e.state.as_str(),
                e.policy.as_deref().unwrap_or("no policy"),
                list(e.rules.iter().copied()),
                have.verdict.map_or("not written yet", |v| v.as_str()),
                have.policy.as_deref().unwrap_or("no policy"),
                list(rules.iter().copied()),
            ));
        }
    }
    for policy in policies {
        let Some(name) = policy.metadata.name.as_deref() else {
            continue;
        };
        let governed: Vec<&NodeExpectation> = nodes
            .iter()
            .filter(|n| n.expected.policy.as_deref() == Some(name))
            .collect();
        let drifting = governed
            .iter()
            .filter(|n| n.expected.state == VerdictState::Drifting)
            .count() as u32;
        let Some(status) = view.policy(name) else {
            out.push(format!("policy {name}: not in the cluster"));
            continue;
        };
        if !status.current
            || status.selected != governed.len() as u32
            || status.drifting != drifting
        {
            out.push(format!(
                "policy {name}: status shows {} selected, {} drifting; expected {}, {}",
                status.selected,
                status.drifting,
                governed.len(),
                drifting
            ));
            continue;
        }
        let states: Vec<&NodeState> = governed
            .iter()
            .filter_map(|n| view.nodes.get(&n.name))
            .collect();
        let actions = &policy.spec.actions;
        let disrupted = states.iter().filter(|s| s.disrupted()).count() as u32;
        let tainted = states.iter().filter(|s| s.taint.is_some()).count() as u32;
        if plumbline_policy::needs_budget(&actions.on_drift, actions.taint_effect) {
            let max = status.budget.map_or(0, |(_, max)| max);
            let want = drifting.min(max);
            if disrupted != want || status.held_back != drifting - want {
                out.push(format!(
                    "policy {name}: {disrupted} nodes tainted or cordoned and {} held back; expected {want} and {} (budget {max})",
                    status.held_back,
                    drifting - want
                ));
            }
        } else if actions.on_drift.contains(&plumbline_api::Action::Taint)
            && actions.taint_effect == TaintEffect::PreferNoSchedule
        {
            if tainted != drifting {
                out.push(format!(
                    "policy {name}: {tainted} nodes carry the PreferNoSchedule taint; expected {drifting}"
                ));
            }
        } else if disrupted > 0 || tainted > 0 {
            out.push(format!(
                "policy {name}: {} nodes tainted or cordoned though the policy asks for neither",
                disrupted.max(tainted)
            ));
        }
    }
    out
}

fn list<'a>(rules: impl Iterator<Item = &'a str>) -> String {
    let rules: Vec<&str> = rules.collect();
    if rules.is_empty() {
        String::new()
    } else {
        format!(" ({})", rules.join(", "))
    }
}
