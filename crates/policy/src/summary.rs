//! `summarize`: a policy's status from its nodes' verdicts and plans.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use plumbline_api::keys::{conditions, reasons};
use plumbline_api::{
    DryRunStatus, GpuFleetPolicySpec, GpuFleetPolicyStatus, Histograms, Observed, PolicyMode,
    Verdict, VerdictState,
};
use plumbline_compat::CompatDb;

use crate::fleet::FleetView;
use crate::gpu::{effective_ceiling, loaded_driver};
use crate::plan::{Budget, HoldReason, NodePlan};
use crate::validate::{FieldError, needs_budget};

/// Most node names a status lists.
pub const MAX_LISTED_NODES: usize = 50;

/// One selected node's outcome in this pass.
#[derive(Debug, Clone, Copy)]
pub struct NodeOutcome<'a> {
    pub node: &'a str,
    pub verdict: &'a Verdict,
    pub observed: Option<&'a Observed>,
    /// The plan made for the node, if any.
    pub plan: Option<&'a NodePlan>,
}

/// Everything `summarize` needs.
#[derive(Debug, Clone, Copy)]
pub struct SummaryInput<'a> {
    pub spec: &'a GpuFleetPolicySpec,
    /// `metadata.generation` of the policy.
    pub generation: Option<i64>,
    pub nodes: &'a [NodeOutcome<'a>],
    /// The budget after this pass's plans.
    pub budget: &'a Budget,
    pub fleet: &'a FleetView,
    /// Policies of equal priority that select some of the same nodes.
    pub conflicts: &'a [String],
    /// The status now on the policy, to keep condition transition times.
    pub previous: Option<&'a GpuFleetPolicyStatus>,
    pub now: Timestamp,
    pub compat: &'a CompatDb,
}

/// The policy's status. Everything in it is derived from the inputs, and
/// conditions keep their `lastTransitionTime` while their status holds, so
/// an unchanged fleet yields an unchanged status (and no write).
pub fn summarize(input: &SummaryInput<'_>) -> GpuFleetPolicyStatus {
    let mut status = GpuFleetPolicyStatus {
        observed_generation: input.generation,
        selected_nodes: count(input.nodes.len()),
        budget: Some(input.budget.status()),
        ..GpuFleetPolicyStatus::default()
    };
    let dry_run = input.spec.mode == PolicyMode::DryRun;
    let mut histograms = Histograms::default();
    let mut findings: BTreeMap<String, u32> = BTreeMap::new();
    let mut held: BTreeSet<&str> = BTreeSet::new();
    let mut would = DryRunStatus::default();
    let mut would_nodes: BTreeSet<&str> = BTreeSet::new();

    for outcome in input.nodes {
        match outcome.verdict.state {
            VerdictState::Compliant => status.compliant += 1,
            VerdictState::Drifting => status.drifting += 1,
            VerdictState::Unknown => status.unknown += 1,
            VerdictState::Unmanaged => {}
        }
        let rules: BTreeSet<&str> = outcome
            .verdict
            .findings
            .iter()
            .map(|f| f.rule.as_str())
            .collect();
        for rule in rules {
            *findings.entry(rule.to_string()).or_default() += 1;
        }
        if let Some(observed) = outcome.observed {
            add_histograms(&mut histograms, observed, input.compat);
        }
        let Some(plan) = outcome.plan else {
            continue;
        };
        let budget_held = plan
            .held_back
            .as_ref()
            .is_some_and(|h| h.reason == HoldReason::Budget);
        if dry_run {
            if plan.taints_node() {
                would.would_taint += 1;
            }
            if plan.cordons_node() {
                would.would_cordon += 1;
            }
            if budget_held {
                would.would_hold_back += 1;
            }
            if plan.taints_node() || plan.cordons_node() || budget_held {
                would_nodes.insert(outcome.node);
            }
        } else if budget_held {
            held.insert(outcome.node);
        }
    }
    status.held_back = count(held.len());
    status.held_back_nodes = held
        .iter()
        .take(MAX_LISTED_NODES)
        .map(|s| s.to_string())
        .collect();
    if dry_run {
        would.nodes = would_nodes
            .iter()
            .take(MAX_LISTED_NODES)
            .map(|s| s.to_string())
            .collect();
        status.dry_run = Some(would);
    }
    if histograms != Histograms::default() {
        status.histograms = Some(histograms);
    }
    status.findings = findings;

    let disruptive = needs_budget(
        &input.spec.actions.on_drift,
        input.spec.actions.taint_effect,
    ) || needs_budget(
        &input.spec.actions.on_unknown,
        input.spec.actions.taint_effect,
    );
    let exhausted = disruptive && input.budget.exhausted();
    let ties = input.fleet.ties();
    let next = vec![
        condition(
            conditions::VALID,
            true,
            reasons::POLICY_VALID,
            "the policy passed validation".to_string(),
            input.generation,
        ),
        condition(
            conditions::BUDGET_EXHAUSTED,
            exhausted,
            if exhausted {
                reasons::BUDGET_EXHAUSTED
            } else {
                reasons::BUDGET_AVAILABLE
            },
            format!(
                "{} of at most {} selected nodes are unavailable",
                input.budget.unavailable(),
                input.budget.max()
            ),
            input.generation,
        ),
        condition(
            conditions::CONFLICT,
            !input.conflicts.is_empty(),
            if input.conflicts.is_empty() {
                reasons::NO_CONFLICT
            } else {
                reasons::PRIORITY_TIE
            },
            if input.conflicts.is_empty() {
                "no other policy of the same priority selects these nodes".to_string()
            } else {
                format!(
                    "policies {} have the same priority and select some of the same nodes; new taints and cordons are held back on those nodes",
                    input.conflicts.join(", ")
                )
            },
            input.generation,
        ),
        condition(
            conditions::UNIFORMITY_TIE,
            !ties.is_empty(),
            if ties.is_empty() {
                reasons::CLEAR_MAJORITY
            } else {
                reasons::TIED_MAJORITY
            },
            if ties.is_empty() {
                "every uniformity key has a single majority value".to_string()
            } else {
                let parts: Vec<String> = ties
                    .iter()
                    .map(|(key, values)| format!("{} ({})", key.as_str(), values.join(" = ")))
                    .collect();
                format!(
                    "no majority for {}; no node is judged on these keys until one value leads",
                    parts.join(", ")
                )
            },
            input.generation,
        ),
    ];
    status.conditions = merge_conditions(
        input
            .previous
            .map(|p| p.conditions.as_slice())
            .unwrap_or_default(),
        next,
        input.now,
    );
    status
}

/// The status of a policy that failed validation: the reasons in `Valid`,
/// and nothing else (an invalid policy is not acted on, so there is
/// nothing to count).
pub fn invalid_status(
    errors: &[FieldError],
    generation: Option<i64>,
    previous: Option<&GpuFleetPolicyStatus>,
    now: Timestamp,
) -> GpuFleetPolicyStatus {
    let messages: Vec<String> = errors.iter().map(FieldError::to_string).collect();
    let next = vec![condition(
        conditions::VALID,
        false,
        reasons::POLICY_INVALID,
        format!("the policy is not acted on: {}", messages.join("; ")),
        generation,
    )];
    GpuFleetPolicyStatus {
        observed_generation: generation,
        conditions: merge_conditions(
            previous
                .map(|p| p.conditions.as_slice())
                .unwrap_or_default(),
            next,
            now,
        ),
        ..GpuFleetPolicyStatus::default()
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn add_histograms(h: &mut Histograms, observed: &Observed, compat: &CompatDb) {
    if let Some(driver) = loaded_driver(observed) {
        *h.driver_versions.entry(driver.to_string()).or_default() += 1;
        if let Some(ceiling) = effective_ceiling(observed, &driver, compat, true) {
            *h.cuda_ceilings.entry(ceiling.to_string()).or_default() += 1;
        }
        *h.kernel_modules
            .entry(observed.driver.kernel_module.as_str().to_string())
            .or_default() += 1;
    }
    if observed.container_toolkit.installed
        && let Some(v) = &observed.container_toolkit.version
    {
        *h.container_toolkit_versions.entry(v.clone()).or_default() += 1;
    }
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        // Filled in by merge_conditions.
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// Gives each new condition the previous `lastTransitionTime` when its
/// status is unchanged, `now` otherwise.
pub fn merge_conditions(
    previous: &[Condition],
    next: Vec<Condition>,
    now: Timestamp,
) -> Vec<Condition> {
    next.into_iter()
        .map(|mut c| {
            c.last_transition_time = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == c.status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            c
        })
        .collect()
}
