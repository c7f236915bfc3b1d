//! The planner and the executors: where verdicts become writes.
//!
//! The planner takes a batch of node names from the queue and, using only
//! the caches, asks `plumbline-policy` which policy governs each node, what
//! the verdict is and what the plan is (against one budget per policy for
//! the whole batch). That part is synchronous and does no I/O. The jobs it
//! produces — a desired node, a verdict, events — then run concurrently,
//! each write guarded by the lease. The next batch starts when every job of
//! this one has finished, so it plans against caches that hold every write
//! made so far (see [`crate::cache`]).

use crate::Shared;
use crate::cache::{baseline_node, strip_baseline, strip_node};
use crate::error::{ControllerError, status_code};
use crate::patch;
use crate::queue::Work;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, NodeCondition as K8sCondition, ObjectReference};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use plumbline_api::keys::{self, annotations, reasons, rules};
use plumbline_api::{GpuFleetPolicy, GpuFleetPolicySpec, NodeGpuBaseline, Verdict, VerdictState};
use plumbline_policy::{
    Budget, ConditionChange, ConditionStatus, EvalInput, FleetView, HoldReason, NodeCondition,
    NodePlan, NodeView, PlanInput, Taint, evaluate, plan, release, select_policy, transition_time,
    unmanaged_verdict, validate_policy,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the controller last decided for one node; the policy status is
/// summarized from these.
#[derive(Debug, Clone)]
pub(crate) struct NodeRecord {
    pub policy: Option<String>,
    pub verdict: Verdict,
    /// Kept only when it says something after being applied: a hold-back,
    /// or everything in `DryRun`.
    pub plan: Option<NodePlan>,
}

#[derive(Debug, Default)]
pub(crate) struct Records {
    inner: Mutex<HashMap<String, NodeRecord>>,
    /// Bumped whenever a record changes, so the status task can skip
    /// unchanged passes.
    epoch: std::sync::atomic::AtomicU64,
}

impl Records {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, NodeRecord>> {
        self.inner
            .lock()
            .expect("records mutex is never held across a panic")
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

// ---------------------------------------------------------------------------
// Events

/// An Event to publish, on the node and (with the node as `related`) on the
/// policy.
#[derive(Debug)]
pub(crate) struct PendingEvent {
    regarding: ObjectReference,
    related: Option<ObjectReference>,
    warning: bool,
    reason: &'static str,
    note: String,
}

pub(crate) type EventSink = mpsc::Sender<PendingEvent>;

pub(crate) fn event_channel() -> (EventSink, mpsc::Receiver<PendingEvent>) {
    mpsc::channel(8192)
}

/// The `events.k8s.io/v1` Event for `ev`, to be created in `namespace`.
///
/// Everything Plumbline reports on (Nodes, policies) is cluster-scoped, so
/// `regarding` and `related` carry no namespace, whatever namespace the
/// Event itself lives in: `kubectl describe node` finds a node's events in
/// every namespace by kind, name, uid and an empty
/// `involvedObject.namespace`, and would miss one whose reference named a
/// namespace.
pub(crate) fn event_object(
    ev: &PendingEvent,
    namespace: &str,
    reporter: &str,
    now: Timestamp,
) -> K8sEvent {
    let object = ev
        .regarding
        .name
        .as_deref()
        .unwrap_or(keys::CONTROLLER_MANAGER);
    K8sEvent {
        metadata: kube::api::ObjectMeta {
            // The client-go naming scheme: object name and time.
            name: Some(format!("{object}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        action: Some(EVENT_ACTION.to_string()),
        event_time: Some(MicroTime(now)),
        note: Some(plumbline_policy::text::truncate(&ev.note, 1000)),
        reason: Some(ev.reason.to_string()),
        regarding: Some(ev.regarding.clone()),
        related: ev.related.clone(),
        reporting_controller: Some(keys::CONTROLLER_MANAGER.to_string()),
        reporting_instance: Some(reporter.to_string()),
        type_: Some(if ev.warning { "Warning" } else { "Normal" }.to_string()),
        ..Default::default()
    }
}

/// The `action` of every Event: what the controller was doing.
const EVENT_ACTION: &str = "Reconcile";

/// Publishes events off the reconcile path, a few at a time, into
/// `events_namespace`. Events are best effort: when the channel is full
/// they are dropped and counted.
pub(crate) async fn run_events(shared: Arc<Shared>, rx: mpsc::Receiver<PendingEvent>) {
    let api: Api<K8sEvent> =
        Api::namespaced(shared.client.clone(), &shared.config.events_namespace);
    tokio_stream(rx)
        .for_each_concurrent(4, |ev| {
            let api = api.clone();
            let shared = shared.clone();
            async move {
                if !shared.leadership.is_leader() {
                    return;
                }
                let event = event_object(
                    &ev,
                    &shared.config.events_namespace,
                    &shared.config.identity,
                    Timestamp::now(),
                );
                shared.metrics.write("event");
                if let Err(source) = api.create(&PostParams::default(), &event).await {
                    let e = ControllerError::Event {
                        object: ev.regarding.name.clone().unwrap_or_default(),
                        source,
                    };
                    shared.metrics.error(e.kind());
                    tracing::debug!(error = %e, "event not published");
                }
            }
        })
        .await;
}

fn tokio_stream<T>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn node_ref(node: &Node) -> ObjectReference {
    let mut r = node.object_ref(&());
    r.namespace = None;
    r
}

fn policy_ref(policy: &GpuFleetPolicy) -> ObjectReference {
    let mut r = policy.object_ref(&());
    r.namespace = None;
    r
}

// ---------------------------------------------------------------------------
// Conversions between k8s objects and the policy engine's view

fn taint_of(t: &k8s_openapi::api::core::v1::Taint) -> Taint {
    Taint {
        key: t.key.clone(),
        value: t.value.clone(),
        effect: t.effect.clone(),
    }
}

fn our_condition(node: &Node) -> Option<&K8sCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == keys::conditions::GPU_STACK_COMPLIANT)
}

fn condition_view(c: &K8sCondition) -> NodeCondition {
    NodeCondition {
        status: match c.status.as_str() {
            "True" => ConditionStatus::True,
            "False" => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        },
        reason: c.reason.clone().unwrap_or_default(),
        message: c.message.clone().unwrap_or_default(),
    }
}

/// The engine's view of a cached (stripped) node.
pub(crate) fn view_of(node: &Node) -> NodeView {
    NodeView {
        name: node.name_any(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        annotations: node.metadata.annotations.clone().unwrap_or_default(),
        taints: node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .map(|ts| ts.iter().map(taint_of).collect())
            .unwrap_or_default(),
        unschedulable: node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        condition: our_condition(node).map(condition_view),
    }
}

/// Only what the budget reads, without copying labels. A node with a
/// disruptive write in doubt counts as unavailable.
fn budget_view(node: &Node, in_doubt: bool) -> NodeView {
    let spec = node.spec.as_ref();
    NodeView {
        taints: spec
            .and_then(|s| s.taints.as_ref())
            .map(|ts| {
                ts.iter()
                    .filter(|t| t.key == keys::taints::DRIFT)
                    .map(taint_of)
                    .collect()
            })
            .unwrap_or_default(),
        unschedulable: in_doubt || spec.and_then(|s| s.unschedulable).unwrap_or(false),
        ..NodeView::default()
    }
}

/// The node as the plan wants it: the plan applied to the freshest node.
fn desired_node(before: &Node, plan: &NodePlan, now: Timestamp) -> Node {
    let mut n = before.clone();
    let labels = n.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in &plan.labels {
        match v {
            Some(v) => labels.insert(k.clone(), v.clone()),
            None => labels.remove(k),
        };
    }
    let anns = n.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in &plan.annotations {
        match v {
            Some(v) => anns.insert(k.clone(), v.clone()),
            None => anns.remove(k),
        };
    }
    let spec = n.spec.get_or_insert_with(Default::default);
    let taints = spec.taints.get_or_insert_with(Vec::new);
    taints.retain(|t| !plan.remove_taints.contains(&taint_of(t)));
    for t in &plan.add_taints {
        if !taints.iter().any(|have| taint_of(have) == *t) {
            taints.push(k8s_openapi::api::core::v1::Taint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect: t.effect.clone(),
                time_added: None,
            });
        }
    }
    if let Some(u) = plan.unschedulable {
        spec.unschedulable = u.then_some(true);
    }
    match &plan.condition {
        None => {}
        Some(ConditionChange::Remove) => {
            if let Some(cs) = n.status.as_mut().and_then(|s| s.conditions.as_mut()) {
                cs.retain(|c| c.type_ != keys::conditions::GPU_STACK_COMPLIANT);
            }
        }
        Some(ConditionChange::Set(want)) => {
            let previous = our_condition(before).and_then(|c| {
                c.last_transition_time
                    .as_ref()
                    .map(|t| (condition_view(c), t.clone()))
            });
            let ltt = transition_time(previous.as_ref().map(|(c, t)| (c, t)), want, now);
            let cond = K8sCondition {
                type_: keys::conditions::GPU_STACK_COMPLIANT.to_string(),
                status: want.status.as_str().to_string(),
                reason: Some(want.reason.clone()),
                message: Some(want.message.clone()),
                last_transition_time: Some(ltt),
                last_heartbeat_time: None,
            };
            let cs = n
                .status
                .get_or_insert_with(Default::default)
                .conditions
                .get_or_insert_with(Vec::new);
            cs.retain(|c| c.type_ != keys::conditions::GPU_STACK_COMPLIANT);
            cs.push(cond);
        }
    }
    n
}

// ---------------------------------------------------------------------------
// The planner

/// Which policy governs a node, remembered while the node's labels and the
/// policies stay the same (selection is re-run only when one changes).
struct Membership {
    policy: Option<usize>,
    conflicting: Vec<String>,
    labels: BTreeMap<String, String>,
}

/// A disruptive Node write that failed without a clear refusal (a 5xx, a
/// timeout, a broken connection): it may have landed, or may still land,
/// so its node counts as unavailable until a read settles it.
#[derive(Debug, Clone)]
struct Doubt {
    /// The resourceVersion the write was conditioned on. A read showing any
    /// other version settles the doubt at once: the write either landed (and
    /// the read shows it) or can never land.
    rv: Option<String>,
    /// When the failure was seen. A read of the node still at `rv`, started
    /// `in_doubt_settle` after this, settles the doubt as "did not land".
    since: Instant,
    /// When to read the node from the API next.
    next_read: Instant,
}

/// Reads of nodes in doubt that fail are retried this often.
const DOUBT_READ_RETRY: Duration = Duration::from_millis(500);

#[derive(Default)]
struct PlannerState {
    policy_specs: Vec<(String, GpuFleetPolicySpec)>,
    membership: HashMap<String, Membership>,
    /// Unavailable nodes per policy after the last batch (nodes in doubt
    /// included), to notice freed budget and re-plan the nodes it held back.
    last_unavailable: HashMap<String, u32>,
    /// Nodes whose disruptive write is in doubt.
    in_doubt: HashMap<String, Doubt>,
}

/// One node's work for the executors.
struct Job {
    name: String,
    before: Arc<Node>,
    desired: Option<Node>,
    makes_unavailable: bool,
    baseline: Option<Arc<NodeGpuBaseline>>,
    verdict: Option<Verdict>,
    events: Vec<PendingEvent>,
}

enum Outcome {
    Done {
        wrote: bool,
    },
    /// The node or baseline changed since it was read; plan again.
    Conflict,
    Failed {
        in_doubt: bool,
    },
    NotLeader,
}

pub(crate) async fn run_planner(shared: Arc<Shared>) {
    let mut state = PlannerState::default();
    let mut leader = shared.leadership.subscribe();
    loop {
        if !shared.synced() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        if !shared.leadership.is_leader() {
            // A standby keeps its caches warm and plans nothing. On taking
            // over, every node is looked at again from the caches. Writes in
            // doubt are facts about the cluster, not about leadership: they
            // stay counted until settled.
            state = PlannerState {
                in_doubt: std::mem::take(&mut state.in_doubt),
                ..PlannerState::default()
            };
            tokio::select! {
                _ = leader.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            if shared.leadership.is_leader() {
                shared.queue.request_full();
            }
            continue;
        }
        let work = tokio::select! {
            w = shared.queue.next_batch(shared.config.batch_size) => w,
            _ = leader.changed() => continue,
        };
        match work {
            Work::Full => {
                let names: Vec<String> = shared.nodes.all().iter().map(|n| n.name_any()).collect();
                shared.queue.add_all(names.iter().map(String::as_str));
            }
            Work::Names(names) => {
                let started = Instant::now();
                let n = names.len();
                process_batch(&shared, &mut state, names).await;
                shared
                    .metrics
                    .batch_duration
                    .observe(started.elapsed().as_secs_f64());
                shared.metrics.batch_size.observe(n as f64);
            }
        }
        shared
            .metrics
            .queue_depth
            .set(i64::try_from(shared.queue.len()).unwrap_or(i64::MAX));
    }
}

fn parse_duration(text: &str) -> Option<Duration> {
    plumbline_policy::text::parse_duration(text).and_then(|d| Duration::try_from(d).ok())
}

/// What a read of a node in doubt found.
enum DoubtRead {
    /// The node, at this resourceVersion (now also in the cache).
    Found(Option<String>),
    Gone,
    Failed,
}

async fn read_node_in_doubt(shared: &Shared, name: &str) -> DoubtRead {
    let nodes: Api<Node> = Api::all(shared.client.clone());
    match nodes.get(name).await {
        Ok(mut n) => {
            strip_node(&mut n);
            let rv = n.metadata.resource_version.clone();
            shared.nodes.write_through(n);
            DoubtRead::Found(rv)
        }
        Err(source) if status_code(&source) == Some(404) => DoubtRead::Gone,
        Err(source) => {
            let e = ControllerError::NodeGet {
                node: name.to_string(),
                source,
            };
            shared.metrics.error(e.kind());
            tracing::debug!(error = %e, "node in doubt not read");
            DoubtRead::Failed
        }
    }
}

/// Settles what can be settled of the writes in doubt, before the budgets
/// are computed. The cache settles a doubt as soon as it shows the node at
/// another version; otherwise the node is read from the API: at once (the
/// watch may be behind or cut), then when `in_doubt_settle` has passed, and
/// again after every failed read. Each node in doubt is queued for the time
/// of its next read, so a batch comes round to it.
async fn settle_doubts(shared: &Arc<Shared>, state: &mut PlannerState) {
    let moved_on = |name: &str, d: &Doubt| {
        shared
            .nodes
            .get(name)
            .is_none_or(|n| n.metadata.resource_version != d.rv)
    };
    state.in_doubt.retain(|name, d| !moved_on(name, d));
    let started = Instant::now();
    let due: Vec<String> = state
        .in_doubt
        .iter()
        .filter(|(_, d)| d.next_read <= started)
        .map(|(name, _)| name.clone())
        .collect();
    if due.is_empty() {
        return;
    }
    let reads: Vec<(String, DoubtRead)> = futures::stream::iter(due.into_iter().map(|name| {
        let shared = shared.clone();
        async move {
            let read = read_node_in_doubt(&shared, &name).await;
            (name, read)
        }
    }))
    .buffer_unordered(shared.config.concurrency.max(1))
    .collect()
    .await;
    let settle = shared.config.in_doubt_settle;
    let now = Instant::now();
    for (name, read) in reads {
        let Some(d) = state.in_doubt.get_mut(&name) else {
            continue;
        };
        match read {
            DoubtRead::Gone => {
                state.in_doubt.remove(&name);
            }
            DoubtRead::Found(rv) if rv != d.rv => {
                state.in_doubt.remove(&name);
            }
            DoubtRead::Found(_) => {
                // Still at the version the write was conditioned on: it has
                // not landed. Once the read began after the settle time, it
                // never will (the API server has finished or abandoned it).
                let settled_at = d.since + settle;
                if started >= settled_at {
                    state.in_doubt.remove(&name);
                } else {
                    d.next_read = settled_at;
                    shared
                        .queue
                        .add_after(&name, settled_at.saturating_duration_since(now));
                }
            }
            DoubtRead::Failed => {
                d.next_read = now + DOUBT_READ_RETRY;
                shared.queue.add_after(&name, DOUBT_READ_RETRY);
            }
        }
    }
}

async fn process_batch(shared: &Arc<Shared>, state: &mut PlannerState, names: Vec<String>) {
    settle_doubts(shared, state).await;
    shared
        .metrics
        .in_doubt
        .set(i64::try_from(state.in_doubt.len()).unwrap_or(i64::MAX));
    let now = Timestamp::now();
    let policies: Vec<GpuFleetPolicy> = shared
        .policies
        .all()
        .iter()
        .map(|p| (**p).clone())
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let specs: Vec<(String, GpuFleetPolicySpec)> = policies
        .iter()
        .map(|p| (p.name_any(), p.spec.clone()))
        .collect();
    if specs != state.policy_specs {
        state.membership.clear();
        state.policy_specs = specs;
    }
    let valid: Vec<bool> = policies
        .iter()
        .map(|p| validate_policy(&p.spec).is_ok())
        .collect();

    // Membership of every node, and each policy's pool.
    let all_nodes = shared.nodes.all();
    let mut pools: Vec<Vec<Arc<Node>>> = vec![Vec::new(); policies.len()];
    let mut seen: HashSet<String> = HashSet::with_capacity(all_nodes.len());
    for node in &all_nodes {
        let name = node.name_any();
        let labels = node.metadata.labels.as_ref();
        let stale = match state.membership.get(&name) {
            Some(m) => Some(&m.labels) != labels && !(m.labels.is_empty() && labels.is_none()),
            None => true,
        };
        if stale {
            let empty = BTreeMap::new();
            let labels = labels.unwrap_or(&empty);
            let selection = select_policy(labels, &policies);
            let idx = selection
                .policy
                .and_then(|p| policies.iter().position(|q| std::ptr::eq(q, p)));
            state.membership.insert(
                name.clone(),
                Membership {
                    policy: idx,
                    conflicting: selection.conflicting,
                    labels: labels.clone(),
                },
            );
        }
        if let Some(Membership {
            policy: Some(idx), ..
        }) = state.membership.get(&name)
            && let Some(pool) = pools.get_mut(*idx)
        {
            pool.push(node.clone());
        }
        seen.insert(name);
    }
    state.membership.retain(|name, _| seen.contains(name));

    // Budgets and fleet views, for the policies this batch touches.
    let mut budgets: HashMap<usize, Budget> = HashMap::new();
    let mut fleets: HashMap<usize, FleetView> = HashMap::new();
    let batch_policies: BTreeSet<usize> = names
        .iter()
        .filter_map(|n| state.membership.get(n).and_then(|m| m.policy))
        .collect();
    for &idx in &batch_policies {
        let (Some(policy), Some(pool)) = (policies.get(idx), pools.get(idx)) else {
            continue;
        };
        let views: Vec<NodeView> = pool
            .iter()
            .map(|n| budget_view(n, state.in_doubt.contains_key(&n.name_any())))
            .collect();
        budgets.insert(idx, Budget::for_policy(&policy.spec, views.iter()));
        let keys = &policy.spec.requirements.uniformity;
        let fleet = if keys.is_empty() {
            FleetView::new()
        } else {
            let statuses: Vec<Arc<NodeGpuBaseline>> = pool
                .iter()
                .filter_map(|n| shared.baselines.get(&n.name_any()))
                .collect();
            FleetView::from_statuses(keys, statuses.iter().filter_map(|b| b.status.as_ref()))
        };
        fleets.insert(idx, fleet);
    }

    // Plan every node of the batch.
    let mut jobs = Vec::with_capacity(names.len());
    let mut new_records: Vec<(String, Option<NodeRecord>)> = Vec::with_capacity(names.len());
    let previous_records: HashMap<String, NodeRecord> = {
        let records = shared.records.lock();
        names
            .iter()
            .filter_map(|n| records.get(n).map(|r| (n.clone(), r.clone())))
            .collect()
    };
    let empty_fleet = FleetView::new();
    for name in &names {
        let Some(node) = shared.nodes.get(name) else {
            new_records.push((name.clone(), None));
            continue;
        };
        let baseline = shared.baselines.get(name);
        let view = view_of(&node);
        let membership = state.membership.get(name);
        let policy_idx = membership.and_then(|m| m.policy);
        let policy = policy_idx.and_then(|i| policies.get(i));
        let baseline_unmanaged = baseline.as_ref().is_some_and(|b| {
            b.annotations()
                .get(annotations::UNMANAGED)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        });
        let (verdict, node_plan) = match (policy, policy_idx) {
            (Some(policy), Some(idx)) if valid.get(idx).copied().unwrap_or(false) => {
                let policy_name = policy.name_any();
                let conflicting = membership
                    .map(|m| m.conflicting.clone())
                    .unwrap_or_default();
                let fleet = fleets.get(&idx).unwrap_or(&empty_fleet);
                let verdict = if baseline_unmanaged {
                    unmanaged_verdict()
                } else {
                    evaluate(&EvalInput {
                        policy_name: &policy_name,
                        spec: &policy.spec,
                        baseline: baseline.as_ref().and_then(|b| b.status.as_ref()),
                        fleet,
                        now,
                        compat: shared.compat(),
                        conflicting_policies: &conflicting,
                    })
                };
                let Some(budget) = budgets.get_mut(&idx) else {
                    continue;
                };
                let input = PlanInput {
                    policy_name: &policy_name,
                    spec: &policy.spec,
                    verdict: &verdict,
                    observed: baseline
                        .as_ref()
                        .and_then(|b| b.status.as_ref())
                        .and_then(|s| s.observed.as_ref()),
                    node: &view,
                    now,
                    compat: shared.compat(),
                };
                // A node in doubt is counted as unavailable; planning it
                // against a budget its own doubt fills would hold its retry
                // back for good. Its write goes out with the same
                // resourceVersion precondition as the one in doubt, so at
                // most one of the two lands: it may use its own unit.
                let p = if state.in_doubt.contains_key(name) {
                    budget.with_own_unit(|b| plan(&input, b))
                } else {
                    plan(&input, budget)
                };
                schedule_rechecks(
                    shared,
                    name,
                    &policy.spec,
                    baseline.as_deref(),
                    &p,
                    &view,
                    now,
                );
                (verdict, p)
            }
            _ => (unmanaged_verdict(), release(&view)),
        };
        let policy_name = node_plan_policy(&verdict, policy);

        let previous_state = baseline
            .as_ref()
            .and_then(|b| b.status.as_ref())
            .and_then(|s| s.verdict.as_ref())
            .map(|v| v.state)
            .or_else(|| previous_records.get(name).map(|r| r.verdict.state));
        let previously_held = previous_records
            .get(name)
            .and_then(|r| r.plan.as_ref())
            .and_then(|p| p.held_back.as_ref())
            .map(|h| h.reason);

        let mut events = Vec::new();
        transition_events(&mut events, &node, policy, previous_state, &verdict);
        let applies = !node_plan.is_empty() && !node_plan.dry_run;
        let desired = applies.then(|| desired_node(&node, &node_plan, now));
        if !node_plan.dry_run {
            for ev in node_plan.events() {
                let is_hold = node_plan
                    .held_back
                    .as_ref()
                    .is_some_and(|h| h.reason.as_str() == ev.reason);
                if is_hold && previously_held == node_plan.held_back.as_ref().map(|h| h.reason) {
                    continue;
                }
                if is_hold
                    && !matches!(
                        node_plan.held_back.as_ref().map(|h| h.reason),
                        Some(HoldReason::Budget)
                    )
                {
                    // Grace periods and conflicts are reported in the
                    // condition; only the budget hold is an Event.
                    continue;
                }
                push_event(&mut events, &node, policy, ev.reason, ev.message, is_hold);
            }
        }
        let verdict_write = baseline.as_ref().and_then(|b| {
            let current = b.status.as_ref().and_then(|s| s.verdict.as_ref());
            (current != Some(&verdict)).then(|| verdict.clone())
        });
        let keep_plan = node_plan.dry_run || node_plan.held_back.is_some();
        new_records.push((
            name.clone(),
            Some(NodeRecord {
                policy: policy_name,
                verdict: verdict.clone(),
                plan: keep_plan.then(|| node_plan.clone()),
            }),
        ));
        if desired.is_none() && verdict_write.is_none() && events.is_empty() {
            continue;
        }
        jobs.push(Job {
            name: name.clone(),
            makes_unavailable: node_plan.taints_node() || node_plan.cordons_node(),
            before: node,
            desired,
            baseline,
            verdict: verdict_write,
            events,
        });
    }
    let noop = names.len() - jobs.len();
    shared.metrics.reconciled("noop", noop as u64);

    // Records before the writes: the status describes decisions; a failed
    // write is retried, and its node re-decided, in a later batch.
    {
        let mut records = shared.records.lock();
        let mut changed = false;
        for (name, rec) in new_records {
            match rec {
                Some(rec) => {
                    let same = records.get(&name).is_some_and(|old| {
                        old.policy == rec.policy
                            && old.verdict == rec.verdict
                            && old.plan == rec.plan
                    });
                    if !same {
                        records.insert(name, rec);
                        changed = true;
                    }
                }
                None => changed |= records.remove(&name).is_some(),
            }
        }
        if changed {
            shared.records.bump();
        }
    }

    // Carry the jobs out.
    let outcomes: Vec<(String, bool, Option<String>, Outcome)> =
        futures::stream::iter(jobs.into_iter().map(|job| {
            let shared = shared.clone();
            async move {
                let name = job.name.clone();
                let makes_unavailable = job.makes_unavailable;
                let rv = job.before.metadata.resource_version.clone();
                let outcome = execute(&shared, job).await;
                (name, makes_unavailable, rv, outcome)
            }
        }))
        .buffer_unordered(shared.config.concurrency.max(1))
        .collect()
        .await;
    for (name, makes_unavailable, rv, outcome) in outcomes {
        match outcome {
            Outcome::Done { wrote } => {
                shared
                    .metrics
                    .reconciled(if wrote { "applied" } else { "noop" }, 1);
            }
            Outcome::Conflict => {
                shared.metrics.reconciled("conflict", 1);
                shared.queue.add(&name);
            }
            Outcome::Failed { in_doubt } => {
                shared.metrics.reconciled("error", 1);
                if in_doubt && makes_unavailable {
                    let since = Instant::now();
                    state.in_doubt.insert(
                        name.clone(),
                        Doubt {
                            rv,
                            since,
                            next_read: since,
                        },
                    );
                }
                shared.queue.add_after(&name, Duration::from_millis(500));
            }
            Outcome::NotLeader => shared.metrics.reconciled("skipped", 1),
        }
    }

    shared
        .metrics
        .in_doubt
        .set(i64::try_from(state.in_doubt.len()).unwrap_or(i64::MAX));

    // Budget freed since the last batch (a recovery, or a doubt settled):
    // re-plan the nodes it held back.
    let records = shared.records.lock();
    for (idx, policy) in policies.iter().enumerate() {
        let Some(pool) = pools.get(idx) else { continue };
        let name = policy.name_any();
        let unavailable = u32::try_from(
            pool.iter()
                .filter_map(|n| shared.nodes.get(&n.name_any()))
                .filter(|n| {
                    budget_view(n, state.in_doubt.contains_key(&n.name_any())).is_unavailable()
                })
                .count(),
        )
        .unwrap_or(u32::MAX);
        let before = state.last_unavailable.insert(name.clone(), unavailable);
        if before.is_some_and(|b| unavailable < b) {
            let held: Vec<&str> = records
                .iter()
                .filter(|(_, r)| {
                    r.policy.as_deref() == Some(name.as_str())
                        && r.plan
                            .as_ref()
                            .and_then(|p| p.held_back.as_ref())
                            .is_some_and(|h| h.reason == HoldReason::Budget)
                })
                .map(|(n, _)| n.as_str())
                .collect();
            shared.queue.add_all(held);
        }
    }
}

fn node_plan_policy(verdict: &Verdict, policy: Option<&GpuFleetPolicy>) -> Option<String> {
    if verdict.state == VerdictState::Unmanaged {
        None
    } else {
        policy.map(|p| p.name_any())
    }
}

/// Wake-ups for changes no watch event announces: a heartbeat going stale,
/// a grace period ending, an upgrade window closing.
fn schedule_rechecks(
    shared: &Shared,
    name: &str,
    spec: &GpuFleetPolicySpec,
    baseline: Option<&NodeGpuBaseline>,
    p: &NodePlan,
    view: &NodeView,
    now: Timestamp,
) {
    let mut due: Option<Duration> = None;
    let mut consider = |at: Timestamp| {
        if at > now
            && let Ok(d) = Duration::try_from(at.duration_since(now))
        {
            let d = d + Duration::from_millis(50);
            due = Some(due.map_or(d, |cur| cur.min(d)));
        }
    };
    if let Some(beat) = baseline
        .and_then(|b| b.status.as_ref())
        .and_then(|s| s.last_heartbeat_time.as_ref())
        && let Some(stale) = parse_duration(&spec.actions.stale_after)
        && let Ok(stale) = jiff::SignedDuration::try_from(stale)
    {
        consider(beat.0 + stale);
    }
    if p.held_back
        .as_ref()
        .is_some_and(|h| h.reason == HoldReason::GracePeriod)
        && let Some(grace) = spec
            .actions
            .grace_period
            .as_deref()
            .and_then(parse_duration)
        && let Ok(grace) = jiff::SignedDuration::try_from(grace)
    {
        let since = p
            .annotations
            .get(annotations::DRIFTING_SINCE)
            .and_then(|v| v.as_deref())
            .or_else(|| {
                view.annotations
                    .get(annotations::DRIFTING_SINCE)
                    .map(String::as_str)
            })
            .and_then(|s| s.parse::<Timestamp>().ok())
            .unwrap_or(now);
        consider(since + grace);
    }
    if let Some(window) = &spec.requirements.upgrade_window {
        consider(window.until.0);
    }
    if let Some(d) = due {
        shared.queue.add_after(name, d);
    }
}

fn push_event(
    events: &mut Vec<PendingEvent>,
    node: &Node,
    policy: Option<&GpuFleetPolicy>,
    reason: &'static str,
    note: String,
    warning: bool,
) {
    events.push(PendingEvent {
        regarding: node_ref(node),
        related: policy.map(policy_ref),
        warning,
        reason,
        note: note.clone(),
    });
    if let Some(p) = policy {
        events.push(PendingEvent {
            regarding: policy_ref(p),
            related: Some(node_ref(node)),
            warning,
            reason,
            note: format!("{}: {note}", node.name_any()),
        });
    }
}

/// Events for a verdict that changed state. The previous state is read
/// from the baseline (so a restarted controller does not repeat them).
fn transition_events(
    events: &mut Vec<PendingEvent>,
    node: &Node,
    policy: Option<&GpuFleetPolicy>,
    previous: Option<VerdictState>,
    verdict: &Verdict,
) {
    if previous == Some(verdict.state) {
        return;
    }
    let summary = || {
        verdict
            .findings
            .iter()
            .map(|f| format!("{}: {}", f.rule, f.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    match verdict.state {
        VerdictState::Drifting => {
            push_event(events, node, policy, reasons::DRIFTING, summary(), true)
        }
        VerdictState::Compliant => {
            // A first look at a compliant node is not news.
            if previous.is_some_and(|p| p != VerdictState::Unmanaged) {
                push_event(
                    events,
                    node,
                    policy,
                    reasons::COMPLIANT,
                    "the GPU stack satisfies the policy again".to_string(),
                    false,
                );
            }
        }
        VerdictState::Unknown => {
            let has = |rule: &str| verdict.findings.iter().any(|f| f.rule == rule);
            let reason = if has(rules::BASELINE_MISSING) {
                reasons::NO_BASELINE
            } else if has(rules::HEARTBEAT_STALE) {
                reasons::STALE_BASELINE
            } else {
                reasons::UNKNOWN
            };
            push_event(events, node, policy, reason, summary(), true);
        }
        VerdictState::Unmanaged => {
            if previous.is_some_and(|p| p != VerdictState::Unmanaged) {
                push_event(
                    events,
                    node,
                    None,
                    reasons::RELEASED,
                    "no policy governs the node any more; Plumbline removed its labels, taint, condition and cordon".to_string(),
                    false,
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The executors

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(keys::CONTROLLER_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

/// Unknown outcome: the server may have applied the write.
fn in_doubt(e: &kube::Error) -> bool {
    !matches!(status_code(e), Some(c) if (400..500).contains(&c))
}

async fn execute(shared: &Shared, job: Job) -> Outcome {
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let mut wrote = false;
    let mut before = job.before.clone();
    if let Some(desired) = &job.desired {
        if let Some(body) = patch::node_patch(&before, desired) {
            if !shared.leadership.is_leader() {
                return Outcome::NotLeader;
            }
            shared.metrics.write("node");
            match nodes
                .patch(&job.name, &params(), &Patch::Merge(&body))
                .await
            {
                Ok(mut n) => {
                    strip_node(&mut n);
                    shared.nodes.write_through(n.clone());
                    before = Arc::new(n);
                    wrote = true;
                }
                Err(source) => {
                    return node_failure(
                        shared,
                        &nodes,
                        ControllerError::NodePatch {
                            node: job.name.clone(),
                            source,
                        },
                    )
                    .await;
                }
            }
        }
        if let Some(body) = patch::node_status_patch(&before, desired) {
            if !shared.leadership.is_leader() {
                return Outcome::NotLeader;
            }
            shared.metrics.write("node_status");
            match nodes
                .patch_status(&job.name, &params(), &Patch::Strategic(&body))
                .await
            {
                Ok(mut n) => {
                    strip_node(&mut n);
                    shared.nodes.write_through(n);
                    wrote = true;
                }
                Err(source) => {
                    return node_failure(
                        shared,
                        &nodes,
                        ControllerError::NodeStatusPatch {
                            node: job.name.clone(),
                            source,
                        },
                    )
                    .await;
                }
            }
        }
    }
    if let (Some(verdict), Some(baseline)) = (&job.verdict, &job.baseline) {
        if !shared.leadership.is_leader() {
            return Outcome::NotLeader;
        }
        let current = baseline
            .status
            .as_ref()
            .and_then(|s| s.verdict.as_ref())
            .and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or(serde_json::Value::Null);
        let new = match serde_json::to_value(verdict) {
            Ok(v) => v,
            Err(source) => {
                let e = ControllerError::Encode {
                    what: "verdict",
                    source,
                };
                shared.metrics.error(e.kind());
                return Outcome::Failed { in_doubt: false };
            }
        };
        if let Some(diff) = patch::merge_diff(&current, &new) {
            let body = serde_json::json!({
                "metadata": {"resourceVersion": baseline.metadata.resource_version},
                "status": {"verdict": diff},
            });
            let api: Api<NodeGpuBaseline> = Api::all(shared.client.clone());
            shared.metrics.write("baseline_status");
            match api
                .patch_status(&baseline.name_any(), &params(), &Patch::Merge(&body))
                .await
            {
                Ok(mut b) => {
                    strip_baseline(&mut b);
                    shared.baselines.write_through(b);
                    wrote = true;
                }
                Err(source) => {
                    let conflict = status_code(&source) == Some(409);
                    let e = ControllerError::VerdictPatch {
                        name: baseline_node(baseline),
                        source,
                    };
                    shared.metrics.error(e.kind());
                    tracing::debug!(error = %e, "verdict not written");
                    return if conflict {
                        Outcome::Conflict
                    } else {
                        Outcome::Failed { in_doubt: false }
                    };
                }
            }
        }
    }
    for ev in job.events {
        if shared.events.try_send(ev).is_err() {
            shared.metrics.error("event_dropped");
        }
    }
    Outcome::Done { wrote }
}

/// After a failed Node write: on conflict, re-read the node so the next
/// plan starts from what is there now.
async fn node_failure(shared: &Shared, nodes: &Api<Node>, e: ControllerError) -> Outcome {
    shared.metrics.error(e.kind());
    tracing::debug!(error = %e, "node write failed");
    let node = match &e {
        ControllerError::NodePatch { node, .. } | ControllerError::NodeStatusPatch { node, .. } => {
            node.clone()
        }
        _ => String::new(),
    };
    if e.is_conflict() {
        match nodes.get(&node).await {
            Ok(mut n) => {
                strip_node(&mut n);
                shared.nodes.write_through(n);
            }
            Err(source) => {
                let e = ControllerError::NodeGet { node, source };
                shared.metrics.error(e.kind());
            }
        }
        return Outcome::Conflict;
    }
    let doubt = match &e {
        ControllerError::NodePatch { source, .. } => in_doubt(source),
        _ => false,
    };
    Outcome::Failed { in_doubt: doubt }
}
