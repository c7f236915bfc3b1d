//! Policy status: summarized from the planner's records every
//! `status_interval`, written only when it differs from what the policy
//! already says. A fleet of 10,000 nodes changing at once costs each policy
//! one status write per interval, not one per node.

use crate::Shared;
use crate::error::ControllerError;
use crate::metrics::{PolicyLabel, PolicyVerdictLabels};
use crate::patch::merge_diff;
use crate::reconcile::{NodeRecord, view_of};
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use plumbline_api::keys;
use plumbline_api::{GpuFleetPolicy, NodeGpuBaseline, VerdictState};
use plumbline_policy::{
    Budget, FleetView, NodeOutcome, SummaryInput, invalid_status, summarize, validate_policy,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// What a status pass depended on: the records' epoch and every policy's
/// resourceVersion.
type PassKey = (u64, Vec<(String, Option<String>)>);

pub(crate) async fn run_status(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.status_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<PassKey> = None;
    loop {
        tick.tick().await;
        if !shared.synced() || !shared.leadership.is_leader() {
            last = None;
            continue;
        }
        // Skip the pass when neither the records nor the policies moved
        // since a pass that wrote everything it wanted to.
        let policies = shared.policies.all();
        let key = (
            shared.records.epoch(),
            policies
                .iter()
                .map(|p| (p.name_any(), p.metadata.resource_version.clone()))
                .collect::<Vec<_>>(),
        );
        if last.as_ref() == Some(&key) {
            continue;
        }
        let all_ok = pass(&shared, &policies).await;
        // Our own status writes change the policies' resourceVersions; take
        // them into the key so the next pass is skipped when that is all.
        let key = (
            key.0,
            shared
                .policies
                .all()
                .iter()
                .map(|p| (p.name_any(), p.metadata.resource_version.clone()))
                .collect::<Vec<_>>(),
        );
        last = all_ok.then_some(key);
    }
}

/// One summary of every policy. Returns whether every write it wanted
/// succeeded.
async fn pass(shared: &Shared, policies: &[Arc<GpuFleetPolicy>]) -> bool {
    let now = Timestamp::now();
    let compat = shared.compat();
    let records: HashMap<String, NodeRecord> = shared.records.lock().clone();
    let mut by_policy: BTreeMap<&str, Vec<(&String, &NodeRecord)>> = BTreeMap::new();
    let mut conflicts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut unmanaged = 0i64;
    for (name, rec) in &records {
        match rec.policy.as_deref() {
            Some(p) => {
                by_policy.entry(p).or_default().push((name, rec));
                for other in &rec.verdict.conflicting_policies {
                    conflicts
                        .entry(p.to_string())
                        .or_default()
                        .insert(other.clone());
                    conflicts
                        .entry(other.clone())
                        .or_default()
                        .insert(p.to_string());
                }
            }
            None => unmanaged += 1,
        }
    }
    shared.metrics.nodes.clear();
    shared
        .metrics
        .nodes
        .get_or_create(&PolicyVerdictLabels {
            policy: "none".to_string(),
            verdict: VerdictState::Unmanaged.as_str(),
        })
        .set(unmanaged);

    let mut all_ok = true;
    for policy in policies {
        let name = policy.name_any();
        let members = by_policy.get(name.as_str()).cloned().unwrap_or_default();
        let status = match validate_policy(&policy.spec) {
            Err(errors) => invalid_status(
                &errors,
                policy.metadata.generation,
                policy.status.as_ref(),
                now,
            ),
            Ok(()) => {
                let baselines: Vec<Option<Arc<NodeGpuBaseline>>> = members
                    .iter()
                    .map(|(n, _)| shared.baselines.get(n))
                    .collect();
                let keys = &policy.spec.requirements.uniformity;
                let fleet = if keys.is_empty() {
                    FleetView::new()
                } else {
                    FleetView::from_statuses(
                        keys,
                        baselines
                            .iter()
                            .filter_map(|b| b.as_ref().and_then(|b| b.status.as_ref())),
                    )
                };
                let views: Vec<_> = members
                    .iter()
                    .filter_map(|(n, _)| shared.nodes.get(n))
                    .map(|n| view_of(&n))
                    .collect();
                let budget = Budget::for_policy(&policy.spec, views.iter());
                let outcomes: Vec<NodeOutcome<'_>> = members
                    .iter()
                    .zip(&baselines)
                    .map(|((n, rec), b)| NodeOutcome {
                        node: n.as_str(),
                        verdict: &rec.verdict,
                        observed: b
                            .as_ref()
                            .and_then(|b| b.status.as_ref())
                            .and_then(|s| s.observed.as_ref()),
                        plan: rec.plan.as_ref(),
                    })
                    .collect();
                let policy_conflicts: Vec<String> = conflicts
                    .get(&name)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                let label = PolicyLabel {
                    policy: name.clone(),
                };
                shared
                    .metrics
                    .budget_in_use
                    .get_or_create(&label)
                    .set(i64::from(budget.unavailable()));
                shared
                    .metrics
                    .budget_max
                    .get_or_create(&label)
                    .set(i64::from(budget.max()));
                let status = summarize(&SummaryInput {
                    spec: &policy.spec,
                    generation: policy.metadata.generation,
                    nodes: &outcomes,
                    budget: &budget,
                    fleet: &fleet,
                    conflicts: &policy_conflicts,
                    previous: policy.status.as_ref(),
                    now,
                    compat,
                });
                shared
                    .metrics
                    .held_back
                    .get_or_create(&label)
                    .set(i64::from(status.held_back));
                for (verdict, n) in [
                    (VerdictState::Compliant, status.compliant),
                    (VerdictState::Drifting, status.drifting),
                    (VerdictState::Unknown, status.unknown),
                ] {
                    shared
                        .metrics
                        .nodes
                        .get_or_create(&PolicyVerdictLabels {
                            policy: name.clone(),
                            verdict: verdict.as_str(),
                        })
                        .set(i64::from(n));
                }
                status
            }
        };
        let current = serde_json::to_value(policy.status.clone().unwrap_or_default())
            .unwrap_or(serde_json::Value::Null);
        let wanted = match serde_json::to_value(&status) {
            Ok(v) => v,
            Err(source) => {
                let e = ControllerError::Encode {
                    what: "policy status",
                    source,
                };
                shared.metrics.error(e.kind());
                continue;
            }
        };
        let Some(diff) = merge_diff(&current, &wanted) else {
            continue;
        };
        if !shared.leadership.is_leader() {
            return false;
        }
        let body = serde_json::json!({
            "metadata": {"resourceVersion": policy.metadata.resource_version},
            "status": diff,
        });
        let api: Api<GpuFleetPolicy> = Api::all(shared.client.clone());
        shared.metrics.write("policy_status");
        let params = PatchParams {
            field_manager: Some(keys::CONTROLLER_MANAGER.to_string()),
            ..PatchParams::default()
        };
        match api.patch_status(&name, &params, &Patch::Merge(&body)).await {
            Ok(mut p) => {
                crate::cache::policy_strip(shared.config.dry_run)(&mut p);
                shared.policies.write_through(p);
            }
            Err(source) => {
                all_ok = false;
                let e = ControllerError::PolicyStatusPatch { name, source };
                shared.metrics.error(e.kind());
                tracing::debug!(error = %e, "policy status not written");
            }
        }
    }
    all_ok
}
