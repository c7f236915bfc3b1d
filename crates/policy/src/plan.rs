//! `plan`: the minimal changes that make a Node say what its verdict says,
//! within the disruption budget.
//!
//! A plan is a diff against the Node as it is, restricted to what Plumbline
//! owns: the keys in [`labels::ALL`], three annotations, the
//! `plumbline.dev/drift` taint, the `GpuStackCompliant` condition, and
//! `spec.unschedulable` only for cordons Plumbline made.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use plumbline_api::keys::{annotations, conditions, labels, reasons, rules, taints};
use plumbline_api::{
    Action, GpuFleetPolicySpec, Observed, PolicyMode, TaintEffect, Verdict, VerdictState,
};
use plumbline_compat::CompatDb;

use crate::gpu::{architecture_label, effective_ceiling, identify_gpus, loaded_driver};
use crate::text::{is_label_value, parse_duration, truncate};
use crate::validate::MaxUnavailable;

/// The longest condition message a plan writes.
pub const MAX_CONDITION_MESSAGE: usize = 1024;

/// Annotations Plumbline owns on a Node (the `unmanaged` annotation is the
/// admin's, and only read).
pub const OWNED_ANNOTATIONS: [&str; 3] = [
    annotations::CORDONED_BY_PLUMBLINE,
    annotations::UNCORDON_RESPECTED,
    annotations::DRIFTING_SINCE,
];

/// One taint, as on a Node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute` (kept as a string:
    /// foreign taints are carried through untouched whatever they say).
    pub effect: String,
}

impl Taint {
    /// Whether this is Plumbline's drift taint with an effect that keeps
    /// pods off the node.
    pub fn is_disruptive_drift(&self) -> bool {
        self.key == taints::DRIFT && (self.effect == "NoSchedule" || self.effect == "NoExecute")
    }
}

/// Status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// The `GpuStackCompliant` node condition, without its timestamps (the
/// controller keeps `lastTransitionTime` when the status is unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCondition {
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

impl NodeCondition {
    /// The node condition type this describes.
    pub const TYPE: &'static str = conditions::GPU_STACK_COMPLIANT;
}

/// The parts of a Node a plan reads and writes. The controller builds it
/// from a `k8s_openapi` Node; keeping it this small keeps planning pure and
/// its tests cheap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    /// The `GpuStackCompliant` condition, when the node has one.
    pub condition: Option<NodeCondition>,
}

impl NodeView {
    /// Unschedulable, or carrying a disruptive Plumbline taint: what the
    /// budget counts, whoever made it so.
    pub fn is_unavailable(&self) -> bool {
        self.unschedulable || self.taints.iter().any(Taint::is_disruptive_drift)
    }

    /// The admin marked the node to be left alone.
    pub fn is_unmanaged(&self) -> bool {
        self.annotations
            .get(annotations::UNMANAGED)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// What happens to the node condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionChange {
    Set(NodeCondition),
    Remove,
}

/// Why a disruptive action was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReason {
    /// `maxUnavailable` nodes of the policy are already unavailable.
    Budget,
    /// Drift has not yet persisted for `gracePeriod`.
    GracePeriod,
    /// Another policy of equal priority selects the node.
    Conflict,
    /// An admin uncordoned the node after Plumbline cordoned it.
    UncordonRespected,
}

impl HoldReason {
    /// The reason string for Events and conditions.
    pub fn as_str(&self) -> &'static str {
        match self {
            HoldReason::Budget => reasons::HELD_BACK,
            HoldReason::GracePeriod => reasons::GRACE_PERIOD,
            HoldReason::Conflict => reasons::PRIORITY_TIE,
            HoldReason::UncordonRespected => reasons::UNCORDON_RESPECTED,
        }
    }
}

/// A disruptive action the plan did not take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBack {
    pub reason: HoldReason,
    pub message: String,
}

/// The exact changes to make to one Node. Empty in steady state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePlan {
    pub node: String,
    /// The policy is in `DryRun`: report the plan, never write it.
    pub dry_run: bool,
    /// Label key → new value, or `None` to remove it.
    pub labels: BTreeMap<String, Option<String>>,
    /// Annotation key → new value, or `None` to remove it.
    pub annotations: BTreeMap<String, Option<String>>,
    pub remove_taints: Vec<Taint>,
    pub add_taints: Vec<Taint>,
    /// New value of `spec.unschedulable`.
    pub unschedulable: Option<bool>,
    pub condition: Option<ConditionChange>,
    /// Set when the verdict asked for a disruptive action that was not
    /// taken. A report, not a change.
    pub held_back: Option<HeldBack>,
}

/// An Event the controller may emit for a plan it applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEvent {
    /// One of [`reasons`].
    pub reason: &'static str,
    pub message: String,
}

impl NodePlan {
    fn for_node(node: &NodeView, dry_run: bool) -> NodePlan {
        NodePlan {
            node: node.name.clone(),
            dry_run,
            ..NodePlan::default()
        }
    }

    /// No change to make (a held-back report alone is no change).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
            && self.annotations.is_empty()
            && self.remove_taints.is_empty()
            && self.add_taints.is_empty()
            && self.unschedulable.is_none()
            && self.condition.is_none()
    }

    /// The node as it is after the plan.
    pub fn apply(&self, node: &NodeView) -> NodeView {
        let mut out = node.clone();
        for (key, value) in &self.labels {
            match value {
                Some(v) => out.labels.insert(key.clone(), v.clone()),
                None => out.labels.remove(key),
            };
        }
        for (key, value) in &self.annotations {
            match value {
                Some(v) => out.annotations.insert(key.clone(), v.clone()),
                None => out.annotations.remove(key),
            };
        }
        out.taints.retain(|t| !self.remove_taints.contains(t));
        for taint in &self.add_taints {
            if !out.taints.contains(taint) {
                out.taints.push(taint.clone());
            }
        }
        if let Some(u) = self.unschedulable {
            out.unschedulable = u;
        }
        match &self.condition {
            Some(ConditionChange::Set(c)) => out.condition = Some(c.clone()),
            Some(ConditionChange::Remove) => out.condition = None,
            None => {}
        }
        out
    }

    /// The plan adds a taint that keeps pods off the node.
    pub fn taints_node(&self) -> bool {
        self.add_taints.iter().any(Taint::is_disruptive_drift)
    }

    /// The plan cordons the node.
    pub fn cordons_node(&self) -> bool {
        self.unschedulable == Some(true)
    }

    /// Events describing the plan's disruptive changes and hold-backs.
    pub fn events(&self) -> Vec<PlanEvent> {
        let mut events = Vec::new();
        for t in &self.add_taints {
            events.push(PlanEvent {
                reason: reasons::TAINTED,
                message: format!(
                    "added taint {}={}:{}",
                    t.key,
                    t.value.as_deref().unwrap_or(""),
                    t.effect
                ),
            });
        }
        if !self.remove_taints.is_empty() && self.add_taints.is_empty() {
            events.push(PlanEvent {
                reason: reasons::UNTAINTED,
                message: format!("removed taint {}", taints::DRIFT),
            });
        }
        match self.unschedulable {
            Some(true) => events.push(PlanEvent {
                reason: reasons::CORDONED,
                message: "cordoned the node".to_string(),
            }),
            Some(false) => events.push(PlanEvent {
                reason: reasons::UNCORDONED,
                message: "lifted the cordon Plumbline had made".to_string(),
            }),
            None => {}
        }
        if let Some(h) = &self.held_back {
            events.push(PlanEvent {
                reason: h.reason.as_str(),
                message: h.message.clone(),
            });
        }
        events
    }
}

/// The disruption budget of one policy for one pass.
///
/// Computed from the cluster's nodes at the start of a pass, so a restarted
/// controller cannot exceed it. Each plan that makes an available node
/// unavailable takes one unit. A recovery in the pass does *not* give its
/// unit back until the next pass: the controller might fail to write the
/// recovery, and the budget must hold whatever subset of a pass's plans
/// lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    max: u32,
    unavailable: u32,
    taken: u32,
    freed: u32,
    held_back: Vec<String>,
}

impl Budget {
    /// A budget of `max` with `unavailable` nodes unavailable now.
    pub fn new(max: u32, unavailable: u32) -> Budget {
        Budget {
            max,
            unavailable,
            taken: 0,
            freed: 0,
            held_back: Vec::new(),
        }
    }

    /// The budget of a policy over the nodes it selects. Without
    /// `maxUnavailable` (or with one that does not parse) the budget is
    /// zero: nothing disruptive happens.
    pub fn for_policy<'a>(
        spec: &GpuFleetPolicySpec,
        selected: impl IntoIterator<Item = &'a NodeView>,
    ) -> Budget {
        let mut count = 0u32;
        let mut unavailable = 0u32;
        for node in selected {
            count = count.saturating_add(1);
            if node.is_unavailable() {
                unavailable = unavailable.saturating_add(1);
            }
        }
        let max = spec
            .actions
            .max_unavailable
            .as_ref()
            .and_then(|m| MaxUnavailable::parse(m).ok())
            .map_or(0, |m| m.resolve(count));
        Budget::new(max, unavailable)
    }

    /// `maxUnavailable` resolved against the pool.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Nodes unavailable now plus those this pass's plans made unavailable.
    pub fn unavailable(&self) -> u32 {
        self.unavailable.saturating_add(self.taken)
    }

    /// No unit left for a new disruption.
    pub fn exhausted(&self) -> bool {
        self.unavailable() >= self.max
    }

    /// Recoveries planned this pass (their units return next pass).
    pub fn freed(&self) -> u32 {
        self.freed
    }

    /// Nodes whose disruptive actions this budget held back, in plan order.
    pub fn held_back(&self) -> &[String] {
        &self.held_back
    }

    /// For the policy status.
    pub fn status(&self) -> plumbline_api::BudgetStatus {
        plumbline_api::BudgetStatus {
            unavailable: self.unavailable(),
            max_unavailable: self.max,
        }
    }

    /// Runs `f` (a plan of one node) with one of the unavailable units
    /// handed back, for a node that counts as unavailable only because a
    /// disruptive write to it may have landed. Whatever `f` decides stays
    /// within the budget: if it takes a unit for the node, that unit stands
    /// in for the one handed back (the earlier write and the new one carry
    /// the same `resourceVersion` precondition, so at most one of them can
    /// land); if it takes none, the node is counted again, since the earlier
    /// write may still land.
    pub fn with_own_unit<T>(&mut self, f: impl FnOnce(&mut Budget) -> T) -> T {
        let lent = self.unavailable > 0;
        if lent {
            self.unavailable -= 1;
        }
        let taken = self.taken;
        let out = f(self);
        if lent && self.taken == taken {
            self.unavailable += 1;
        }
        out
    }

    fn try_take(&mut self) -> bool {
        if self.exhausted() {
            false
        } else {
            self.taken += 1;
            true
        }
    }
}

/// Everything one plan needs.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub policy_name: &'a str,
    pub spec: &'a GpuFleetPolicySpec,
    pub verdict: &'a Verdict,
    /// The node's observation, for fact labels; `None` without a baseline.
    pub observed: Option<&'a Observed>,
    pub node: &'a NodeView,
    pub now: Timestamp,
    pub compat: &'a CompatDb,
}

/// The fact labels an observation supports. A fact that cannot be told, or
/// whose value is not a valid label value, is absent (and so removed from
/// the node): a stale fact is worse than none for a scheduler.
pub fn fact_labels(observed: &Observed, compat: &CompatDb) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    if let Some(driver) = loaded_driver(observed) {
        out.insert(labels::DRIVER_BRANCH, driver.branch().to_string());
        out.insert(labels::DRIVER_VERSION, driver.to_string());
        if let Some(ceiling) = effective_ceiling(observed, &driver, compat, true) {
            out.insert(labels::CUDA_CEILING, ceiling.to_string());
            out.insert(labels::CUDA_CEILING_CODE, ceiling.label_code().to_string());
        }
        match observed.driver.kernel_module {
            plumbline_api::KernelModule::Unknown => {}
            module => {
                out.insert(labels::DRIVER_MODULE, module.as_str().to_string());
            }
        }
    }
    if let Some(arch) = architecture_label(&identify_gpus(observed, compat)) {
        out.insert(labels::GPU_ARCHITECTURE, arch);
    }
    if observed.container_toolkit.installed
        && let Some(v) = &observed.container_toolkit.version
    {
        out.insert(labels::CONTAINER_TOOLKIT_VERSION, v.clone());
    }
    out.retain(|_, v| is_label_value(v) && !v.is_empty());
    out
}

/// The condition message for a verdict.
pub fn condition_message(policy: &str, verdict: &Verdict, held: Option<&HeldBack>) -> String {
    let mut text = match verdict.state {
        VerdictState::Compliant => format!("the GPU stack satisfies policy {policy}"),
        _ => {
            let n = verdict.findings.len();
            let items: Vec<String> = verdict
                .findings
                .iter()
                .map(|f| format!("{}: {}", f.rule, f.message))
                .collect();
            let noun = if n == 1 { "finding" } else { "findings" };
            format!("policy {policy}: {n} {noun}: {}", items.join("; "))
        }
    };
    if let Some(h) = held {
        text = format!("{}; {}", text, hold_note(h.reason));
    }
    truncate(&text, MAX_CONDITION_MESSAGE)
}

/// A short, count-free note for the condition, so the message does not
/// change (and cause a write) every time the budget moves.
fn hold_note(reason: HoldReason) -> &'static str {
    match reason {
        HoldReason::Budget => "taint/cordon held back by the disruption budget (maxUnavailable)",
        HoldReason::GracePeriod => "taint/cordon waits for the policy's gracePeriod",
        HoldReason::Conflict => "taint/cordon held back: policies of equal priority conflict",
        HoldReason::UncordonRespected => "not cordoned again: an admin lifted Plumbline's cordon",
    }
}

fn condition_reason(verdict: &Verdict) -> &'static str {
    match verdict.state {
        VerdictState::Compliant => reasons::COMPLIANT,
        VerdictState::Drifting => reasons::DRIFTING,
        VerdictState::Unknown | VerdictState::Unmanaged => {
            let has = |rule: &str| verdict.findings.iter().any(|f| f.rule == rule);
            if has(rules::BASELINE_MISSING) {
                reasons::NO_BASELINE
            } else if has(rules::HEARTBEAT_STALE) {
                reasons::STALE_BASELINE
            } else if has(rules::PROBE_ERROR) {
                reasons::PROBE_ERRORS
            } else {
                reasons::UNKNOWN
            }
        }
    }
}

/// Plans the changes for one node.
///
/// - `Unmanaged` (or the node's `plumbline.dev/unmanaged: "true"`):
///   [`release`].
/// - Fact labels and `plumbline.dev/policy` always follow the observation.
/// - `Label` / `Condition` in the action list of the verdict's state control
///   the `compliant` label and the `GpuStackCompliant` condition (for a
///   compliant node: in either list).
/// - `Taint` / `Cordon` are disruptive. A new one waits for `gracePeriod`
///   (since `plumbline.dev/drifting-since`), is held back while policies
///   conflict, and takes a unit of `budget` when it makes an available node
///   unavailable; without one it is held back and the plan says so.
/// - Recovery (a compliant node, or an action no longer asked for) is never
///   held back. `Unknown` never lifts a taint or cordon: what cannot be
///   seen is not taken to be fixed.
/// - A cordon is lifted only when Plumbline made it; an admin's uncordon of
///   Plumbline's cordon is recorded and respected until the node is
///   compliant again.
pub fn plan(input: &PlanInput<'_>, budget: &mut Budget) -> NodePlan {
    let node = input.node;
    let dry_run = input.spec.mode == PolicyMode::DryRun;
    let verdict = input.verdict;
    if verdict.state == VerdictState::Unmanaged || node.is_unmanaged() {
        let mut released = release(node);
        released.dry_run = dry_run;
        return released;
    }
    let mut out = NodePlan::for_node(node, dry_run);
    let state = verdict.state;
    let actions = &input.spec.actions;
    let list: &[Action] = match state {
        VerdictState::Drifting => &actions.on_drift,
        VerdictState::Unknown => &actions.on_unknown,
        _ => &[],
    };
    let enabled = |a: Action| match state {
        VerdictState::Compliant => actions.on_drift.contains(&a) || actions.on_unknown.contains(&a),
        _ => list.contains(&a),
    };
    let compliant = state == VerdictState::Compliant;
    let now_text = input.now.to_string();

    // -- labels -------------------------------------------------------------
    let mut want_labels: BTreeMap<&'static str, String> = input
        .observed
        .map(|o| fact_labels(o, input.compat))
        .unwrap_or_default();
    if is_label_value(input.policy_name) && !input.policy_name.is_empty() {
        want_labels.insert(labels::POLICY, input.policy_name.to_string());
    }
    if enabled(Action::Label) {
        let value = match state {
            VerdictState::Compliant => labels::VALUE_TRUE,
            VerdictState::Drifting => labels::VALUE_FALSE,
            _ => labels::VALUE_UNKNOWN,
        };
        want_labels.insert(labels::COMPLIANT, value.to_string());
    }

    // -- annotations and disruption -------------------------------------------
    let mut want_ann: BTreeMap<&'static str, Option<String>> = BTreeMap::new();
    let ann = |key: &str| node.annotations.get(key);
    let ours = ann(annotations::CORDONED_BY_PLUMBLINE).is_some();
    let admin_uncordoned = ours && !node.unschedulable;
    let respected =
        ann(annotations::UNCORDON_RESPECTED).is_some() || (admin_uncordoned && !compliant);

    let drift_start = if compliant {
        None
    } else {
        let recorded = ann(annotations::DRIFTING_SINCE).and_then(|s| s.parse::<Timestamp>().ok());
        let start = recorded
            .or_else(|| {
                verdict
                    .since
                    .as_ref()
                    .map(|t| t.0)
                    .filter(|s| *s <= input.now)
            })
            .unwrap_or(input.now);
        Some(start)
    };
    want_ann.insert(
        annotations::DRIFTING_SINCE,
        drift_start.map(|s| {
            ann(annotations::DRIFTING_SINCE)
                .filter(|v| v.parse::<Timestamp>().is_ok())
                .cloned()
                .unwrap_or_else(|| s.to_string())
        }),
    );
    if compliant || !respected {
        want_ann.insert(annotations::UNCORDON_RESPECTED, None);
    } else {
        want_ann.insert(
            annotations::UNCORDON_RESPECTED,
            Some(
                ann(annotations::UNCORDON_RESPECTED)
                    .cloned()
                    .unwrap_or_else(|| now_text.clone()),
            ),
        );
    }

    let existing: Vec<&Taint> = node
        .taints
        .iter()
        .filter(|t| t.key == taints::DRIFT)
        .collect();
    let policy_taint = Taint {
        key: taints::DRIFT.to_string(),
        value: Some(input.policy_name.to_string()),
        effect: actions.taint_effect.as_str().to_string(),
    };
    // The taints and cordon the verdict asks for, before any gate.
    let keep_existing = state == VerdictState::Unknown;
    let mut want_taints: Vec<Taint> = if list.contains(&Action::Taint) {
        vec![policy_taint.clone()]
    } else if keep_existing {
        existing.iter().map(|t| (*t).clone()).collect()
    } else {
        Vec::new()
    };
    let cordon_asked = list.contains(&Action::Cordon);
    let mut want_cordon = if cordon_asked {
        !respected || node.unschedulable
    } else {
        keep_existing && ours && node.unschedulable
    };
    let mut held: Option<HeldBack> = None;
    if cordon_asked && respected && !node.unschedulable {
        held = Some(HeldBack {
            reason: HoldReason::UncordonRespected,
            message: format!(
                "an admin uncordoned {} after Plumbline cordoned it; it stays schedulable until it is compliant again",
                node.name
            ),
        });
    }

    // A new disruption: a disruptive taint the node does not already carry,
    // or a cordon of a schedulable node.
    let adds_disruptive_taint = want_taints
        .iter()
        .any(|t| t.is_disruptive_drift() && !existing.iter().any(|e| e.effect == t.effect));
    let adds_cordon = want_cordon && !node.unschedulable;
    if adds_disruptive_taint || adds_cordon {
        let grace = actions
            .grace_period
            .as_deref()
            .and_then(parse_duration)
            .unwrap_or(SignedDuration::ZERO);
        let persisted = drift_start.map_or(SignedDuration::ZERO, |s| input.now.duration_since(s));
        let would_be_unavailable =
            want_cordon || want_taints.iter().any(Taint::is_disruptive_drift);
        let gate = if !verdict.conflicting_policies.is_empty() {
            Some(HeldBack {
                reason: HoldReason::Conflict,
                message: format!(
                    "policies {} and {} both select {} at priority {}: resolve the conflict before Plumbline taints or cordons",
                    input.policy_name,
                    verdict.conflicting_policies.join(", "),
                    node.name,
                    input.spec.priority
                ),
            })
        } else if persisted < grace {
            Some(HeldBack {
                reason: HoldReason::GracePeriod,
                message: format!(
                    "drift on {} began at {}; taint/cordon waits until gracePeriod {} has passed",
                    node.name,
                    drift_start.map(|s| s.to_string()).unwrap_or_default(),
                    actions.grace_period.as_deref().unwrap_or("0s")
                ),
            })
        } else if !node.is_unavailable() && would_be_unavailable && !budget.try_take() {
            budget.held_back.push(node.name.clone());
            Some(HeldBack {
                reason: HoldReason::Budget,
                message: format!(
                    "{} of at most {} selected nodes are unavailable: {} is not tainted or cordoned until one recovers",
                    budget.unavailable(),
                    budget.max(),
                    node.name
                ),
            })
        } else {
            None
        };
        if let Some(gate) = gate {
            // Hold: leave the node's disruption exactly as it is.
            want_taints = existing.iter().map(|t| (*t).clone()).collect();
            want_cordon = ours && node.unschedulable;
            held = Some(gate);
        }
    }

    if want_cordon && !node.unschedulable {
        out.unschedulable = Some(true);
        want_ann.insert(annotations::CORDONED_BY_PLUMBLINE, Some(now_text.clone()));
    } else if !want_cordon && ours && node.unschedulable {
        out.unschedulable = Some(false);
        want_ann.insert(annotations::CORDONED_BY_PLUMBLINE, None);
    } else if admin_uncordoned {
        want_ann.insert(annotations::CORDONED_BY_PLUMBLINE, None);
    }
    let after_unavailable = (node.unschedulable && out.unschedulable != Some(false))
        || out.unschedulable == Some(true)
        || want_taints.iter().any(Taint::is_disruptive_drift);
    if node.is_unavailable() && !after_unavailable {
        budget.freed += 1;
    }

    for t in &existing {
        if !want_taints.contains(t) {
            out.remove_taints.push((*t).clone());
        }
    }
    for t in want_taints {
        if !existing.contains(&&t) && !out.add_taints.contains(&t) {
            out.add_taints.push(t);
        }
    }

    // -- condition ---------------------------------------------------------------
    let want_condition = enabled(Action::Condition).then(|| NodeCondition {
        status: match state {
            VerdictState::Compliant => ConditionStatus::True,
            VerdictState::Drifting => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        },
        reason: condition_reason(verdict).to_string(),
        message: condition_message(input.policy_name, verdict, held.as_ref()),
    });
    out.condition = match (want_condition, &node.condition) {
        (Some(want), Some(have)) if &want == have => None,
        (Some(want), _) => Some(ConditionChange::Set(want)),
        (None, Some(_)) => Some(ConditionChange::Remove),
        (None, None) => None,
    };

    // -- diff labels and annotations -----------------------------------------------
    for key in labels::ALL {
        diff_entry(
            &mut out.labels,
            &node.labels,
            key,
            want_labels.get(key).cloned(),
        );
    }
    for (key, want) in want_ann {
        diff_entry(&mut out.annotations, &node.annotations, key, want);
    }
    out.held_back = held;
    out
}

fn diff_entry(
    out: &mut BTreeMap<String, Option<String>>,
    have: &BTreeMap<String, String>,
    key: &str,
    want: Option<String>,
) {
    match (want, have.get(key)) {
        (Some(w), Some(h)) if &w == h => {}
        (Some(w), _) => {
            out.insert(key.to_string(), Some(w));
        }
        (None, Some(_)) => {
            out.insert(key.to_string(), None);
        }
        (None, None) => {}
    }
}

/// Removes everything Plumbline put on a node: fact labels, its
/// annotations, the drift taint, the condition, and a cordon it made. For a
/// node no policy selects any more, or one marked unmanaged.
pub fn release(node: &NodeView) -> NodePlan {
    let mut out = NodePlan::for_node(node, false);
    for key in labels::ALL {
        if node.labels.contains_key(*key) {
            out.labels.insert(key.to_string(), None);
        }
    }
    for key in OWNED_ANNOTATIONS {
        if node.annotations.contains_key(key) {
            out.annotations.insert(key.to_string(), None);
        }
    }
    out.remove_taints = node
        .taints
        .iter()
        .filter(|t| t.key == taints::DRIFT)
        .cloned()
        .collect();
    if node.unschedulable
        && node
            .annotations
            .contains_key(annotations::CORDONED_BY_PLUMBLINE)
    {
        out.unschedulable = Some(false);
    }
    if node.condition.is_some() {
        out.condition = Some(ConditionChange::Remove);
    }
    out
}

/// `lastTransitionTime` for the node condition: kept while the status is
/// unchanged, `now` when it changes, so steady state writes nothing.
pub fn transition_time(
    previous: Option<(&NodeCondition, &Time)>,
    next: &NodeCondition,
    now: Timestamp,
) -> Time {
    match previous {
        Some((prev, time)) if prev.status == next.status => time.clone(),
        _ => Time(now),
    }
}

/// The drift taint a policy puts on nodes.
pub fn drift_taint(policy_name: &str, effect: TaintEffect) -> Taint {
    Taint {
        key: taints::DRIFT.to_string(),
        value: Some(policy_name.to_string()),
        effect: effect.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::Budget;

    #[test]
    fn a_node_re_planned_with_its_own_unit_never_takes_a_second_one() {
        // Two of two slots in use; one of them is the node being re-planned.
        let mut budget = Budget::new(2, 2);
        assert!(budget.with_own_unit(|b| b.try_take()));
        assert_eq!(budget.unavailable(), 2);
        assert!(budget.exhausted());
        // Another node still finds no slot.
        assert!(!budget.try_take());
    }

    #[test]
    fn a_node_that_takes_nothing_keeps_counting_as_unavailable() {
        let mut budget = Budget::new(2, 2);
        budget.with_own_unit(|_| ());
        assert_eq!(budget.unavailable(), 2);
        assert!(!budget.try_take());
    }

    #[test]
    fn with_nothing_to_hand_back_the_budget_is_drawn_as_usual() {
        let mut budget = Budget::new(1, 0);
        assert!(budget.with_own_unit(|b| b.try_take()));
        assert_eq!(budget.unavailable(), 1);
        assert!(!budget.with_own_unit(|b| b.try_take()));
    }
}
