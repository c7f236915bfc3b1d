//! Planning, case by case: what each verdict does to a Node.

mod common;

use std::collections::BTreeMap;

use common::*;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use plumbline_api::keys::{annotations, labels, reasons, rules, taints};
use plumbline_api::*;
use plumbline_compat::CompatDb;
use plumbline_policy::*;

fn spec(on_drift: &[Action], max: Option<i32>) -> GpuFleetPolicySpec {
    let mut spec = GpuFleetPolicySpec::default();
    spec.actions.on_drift = on_drift.to_vec();
    spec.actions.max_unavailable = max.map(IntOrString::Int);
    spec
}

fn verdict(state: VerdictState) -> Verdict {
    let findings = match state {
        VerdictState::Drifting => vec![Finding {
            rule: rules::DRIVER_VERSION.into(),
            expected: Some("one of 570.*".into()),
            observed: Some("580.95.05".into()),
            message:
                "driver 580.95.05 is not one of 570.*: install an allowed driver (one of 570.*)"
                    .into(),
        }],
        VerdictState::Unknown => vec![Finding {
            rule: rules::HEARTBEAT_STALE.into(),
            expected: None,
            observed: None,
            message: "the agent's last heartbeat was 1h ago".into(),
        }],
        _ => vec![],
    };
    Verdict {
        state,
        policy: Some("pool-a".into()),
        findings,
        since: Some(Time(now())),
        ..Verdict::default()
    }
}

fn node() -> NodeView {
    NodeView {
        name: "gpu-1".into(),
        labels: BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), "gpu-1".to_string()),
            ("plumbline.dev/team".to_string(), "ml".to_string()),
        ]),
        annotations: BTreeMap::from([(
            "node.alpha.kubernetes.io/ttl".to_string(),
            "0".to_string(),
        )]),
        taints: vec![Taint {
            key: "nvidia.com/gpu".into(),
            value: Some("present".into()),
            effect: "NoSchedule".into(),
        }],
        ..NodeView::default()
    }
}

fn run(spec: &GpuFleetPolicySpec, v: &Verdict, n: &NodeView, budget: &mut Budget) -> NodePlan {
    let observed = h100_node();
    plan(
        &PlanInput {
            policy_name: "pool-a",
            spec,
            verdict: v,
            observed: Some(&observed),
            node: n,
            now: now(),
            compat: CompatDb::embedded(),
        },
        budget,
    )
}

/// Plans, applies, and checks that planning again changes nothing.
fn settle(
    spec: &GpuFleetPolicySpec,
    v: &Verdict,
    n: &NodeView,
    budget: &mut Budget,
) -> (NodePlan, NodeView) {
    let before = budget.clone();
    let p = run(spec, v, n, budget);
    let after = p.apply(n);
    let mut again_budget = Budget::new(before.max(), budget.unavailable());
    let again = run(spec, v, &after, &mut again_budget);
    assert!(again.is_empty(), "not idempotent: {again:#?}");
    (p, after)
}

fn drift_taint_on(n: &NodeView) -> Option<&Taint> {
    n.taints.iter().find(|t| t.key == taints::DRIFT)
}

#[test]
fn compliant_node_gets_facts_label_and_condition() {
    let (p, after) = settle(
        &spec(&[Action::Label, Action::Condition], None),
        &verdict(VerdictState::Compliant),
        &node(),
        &mut Budget::new(0, 0),
    );
    assert!(!p.dry_run);
    let want = [
        (labels::DRIVER_BRANCH, "580"),
        (labels::DRIVER_VERSION, "580.95.05"),
        (labels::DRIVER_MODULE, "open"),
        (labels::CUDA_CEILING, "13.0"),
        (labels::CUDA_CEILING_CODE, "1300"),
        (labels::GPU_ARCHITECTURE, "hopper"),
        (labels::CONTAINER_TOOLKIT_VERSION, "1.17.8"),
        (labels::COMPLIANT, "true"),
        (labels::POLICY, "pool-a"),
    ];
    for (key, value) in want {
        assert_eq!(
            after.labels.get(key).map(String::as_str),
            Some(value),
            "{key}"
        );
    }
    assert_eq!(
        after.labels.get("plumbline.dev/team").map(String::as_str),
        Some("ml"),
        "a foreign key under the prefix is kept"
    );
    let c = after.condition.expect("condition set");
    assert_eq!(c.status, ConditionStatus::True);
    assert_eq!(c.reason, reasons::COMPLIANT);
    assert!(!after.annotations.contains_key(annotations::DRIFTING_SINCE));
}

#[test]
fn ceiling_code_and_architecture_labels() {
    let mut observed = h100_node();
    set_driver(&mut observed, "570.124.06", Some("12.8"));
    set_gpus(&mut observed, 1, "NVIDIA L40S", "Ada Lovelace", "8.9");
    observed.container_toolkit.version = Some("1.18.0+git".into());
    let facts = fact_labels(&observed, CompatDb::embedded());
    assert_eq!(
        facts.get(labels::CUDA_CEILING_CODE).map(String::as_str),
        Some("1208")
    );
    assert_eq!(
        facts.get(labels::GPU_ARCHITECTURE).map(String::as_str),
        Some("ada-lovelace")
    );
    assert_eq!(
        facts.get(labels::CONTAINER_TOOLKIT_VERSION),
        None,
        "not a valid label value"
    );
    observed
        .gpus
        .push(gpu(1, "NVIDIA H100 80GB HBM3", "Hopper", "9.0"));
    let facts = fact_labels(&observed, CompatDb::embedded());
    assert_eq!(
        facts.get(labels::GPU_ARCHITECTURE).map(String::as_str),
        Some("mixed")
    );
    observed.driver = DriverObserved::default();
    let facts = fact_labels(&observed, CompatDb::embedded());
    assert!(
        !facts.contains_key(labels::DRIVER_VERSION) && !facts.contains_key(labels::CUDA_CEILING)
    );
}

#[test]
fn drifting_node_is_tainted_within_budget() {
    let s = spec(&[Action::Label, Action::Condition, Action::Taint], Some(1));
    let mut budget = Budget::new(1, 0);
    let (p, after) = settle(&s, &verdict(VerdictState::Drifting), &node(), &mut budget);
    assert!(p.taints_node());
    assert_eq!(
        drift_taint_on(&after),
        Some(&Taint {
            key: taints::DRIFT.into(),
            value: Some("pool-a".into()),
            effect: "NoSchedule".into()
        })
    );
    assert_eq!(
        after.labels.get(labels::COMPLIANT).map(String::as_str),
        Some("false")
    );
    assert_eq!(
        after
            .annotations
            .get(annotations::DRIFTING_SINCE)
            .map(String::as_str),
        Some(now().to_string().as_str())
    );
    assert_eq!(
        after.condition.as_ref().map(|c| c.status),
        Some(ConditionStatus::False)
    );
    assert_eq!(budget.unavailable(), 1);
    assert!(p.events().iter().any(|e| e.reason == reasons::TAINTED));
}

#[test]
fn exhausted_budget_holds_back_but_still_labels() {
    let s = spec(
        &[
            Action::Label,
            Action::Condition,
            Action::Taint,
            Action::Cordon,
        ],
        Some(1),
    );
    let mut budget = Budget::new(1, 1);
    let (p, after) = settle(&s, &verdict(VerdictState::Drifting), &node(), &mut budget);
    assert!(!p.taints_node() && !p.cordons_node());
    assert!(!after.unschedulable && drift_taint_on(&after).is_none());
    assert_eq!(
        p.held_back.as_ref().map(|h| h.reason),
        Some(HoldReason::Budget)
    );
    assert_eq!(budget.held_back(), ["gpu-1".to_string()]);
    assert_eq!(
        after.labels.get(labels::COMPLIANT).map(String::as_str),
        Some("false")
    );
    assert!(
        after
            .condition
            .unwrap()
            .message
            .contains("held back by the disruption budget")
    );
}

#[test]
fn grace_period_delays_disruption() {
    let mut s = spec(&[Action::Taint], Some(5));
    s.actions.grace_period = Some("30m".into());
    let mut n = node();
    let ten_min_ago: Timestamp = now() - jiff::SignedDuration::from_mins(10);
    n.annotations
        .insert(annotations::DRIFTING_SINCE.into(), ten_min_ago.to_string());
    let (p, _) = settle(
        &s,
        &verdict(VerdictState::Drifting),
        &n,
        &mut Budget::new(5, 0),
    );
    assert_eq!(
        p.held_back.as_ref().map(|h| h.reason),
        Some(HoldReason::GracePeriod)
    );
    assert!(!p.taints_node());
    let hour_ago: Timestamp = now() - jiff::SignedDuration::from_mins(60);
    n.annotations
        .insert(annotations::DRIFTING_SINCE.into(), hour_ago.to_string());
    let (p, _) = settle(
        &s,
        &verdict(VerdictState::Drifting),
        &n,
        &mut Budget::new(5, 0),
    );
    assert!(p.taints_node() && p.held_back.is_none());
}

#[test]
fn cordon_records_ownership_and_recovery_lifts_it() {
    let s = spec(&[Action::Cordon, Action::Taint], Some(1));
    let (p, cordoned) = settle(
        &s,
        &verdict(VerdictState::Drifting),
        &node(),
        &mut Budget::new(1, 0),
    );
    assert!(p.cordons_node() && cordoned.unschedulable);
    assert!(
        cordoned
            .annotations
            .contains_key(annotations::CORDONED_BY_PLUMBLINE)
    );
    // Compliant again: recovery even though the budget is exhausted.
    let (p, healed) = settle(
        &s,
        &verdict(VerdictState::Compliant),
        &cordoned,
        &mut Budget::new(1, 5),
    );
    assert_eq!(p.unschedulable, Some(false));
    assert!(!healed.unschedulable && drift_taint_on(&healed).is_none());
    for key in OWNED_ANNOTATIONS {
        assert!(!healed.annotations.contains_key(key), "{key}");
    }
    assert!(p.events().iter().any(|e| e.reason == reasons::UNCORDONED));
}

#[test]
fn an_admins_cordon_is_never_lifted() {
    let s = spec(&[Action::Cordon], Some(1));
    let mut n = node();
    n.unschedulable = true;
    let (p, after) = settle(
        &s,
        &verdict(VerdictState::Compliant),
        &n,
        &mut Budget::new(1, 1),
    );
    assert_eq!(p.unschedulable, None);
    assert!(after.unschedulable);
    let (p, _) = settle(
        &s,
        &verdict(VerdictState::Drifting),
        &n,
        &mut Budget::new(1, 1),
    );
    assert_eq!(
        p.unschedulable, None,
        "already unschedulable: nothing to do, and not ours"
    );
    assert!(
        !p.annotations
            .contains_key(annotations::CORDONED_BY_PLUMBLINE)
    );
}

#[test]
fn a_manual_uncordon_is_respected_until_compliant() {
    let s = spec(&[Action::Cordon], Some(3));
    let mut n = node();
    n.annotations.insert(
        annotations::CORDONED_BY_PLUMBLINE.into(),
        "2026-11-20T00:00:00Z".into(),
    );
    n.unschedulable = false; // an admin ran kubectl uncordon
    let (p, after) = settle(
        &s,
        &verdict(VerdictState::Drifting),
        &n,
        &mut Budget::new(3, 0),
    );
    assert_eq!(p.unschedulable, None, "not cordoned again");
    assert_eq!(
        p.held_back.as_ref().map(|h| h.reason),
        Some(HoldReason::UncordonRespected)
    );
    assert!(
        after
            .annotations
            .contains_key(annotations::UNCORDON_RESPECTED)
    );
    assert!(
        !after
            .annotations
            .contains_key(annotations::CORDONED_BY_PLUMBLINE)
    );
    // Once compliant, the record goes, and later drift may cordon again.
    let (_, healed) = settle(
        &s,
        &verdict(VerdictState::Compliant),
        &after,
        &mut Budget::new(3, 0),
    );
    assert!(
        !healed
            .annotations
            .contains_key(annotations::UNCORDON_RESPECTED)
    );
    let (p, _) = settle(
        &s,
        &verdict(VerdictState::Drifting),
        &healed,
        &mut Budget::new(3, 0),
    );
    assert!(p.cordons_node());
}

#[test]
fn unknown_never_lifts_and_only_adds_what_on_unknown_says() {
    let s = spec(&[Action::Taint, Action::Cordon], Some(2));
    let (_, drifting) = settle(
        &s,
        &verdict(VerdictState::Drifting),
        &node(),
        &mut Budget::new(2, 0),
    );
    assert!(drifting.unschedulable && drift_taint_on(&drifting).is_some());
    let (p, after) = settle(
        &s,
        &verdict(VerdictState::Unknown),
        &drifting,
        &mut Budget::new(2, 1),
    );
    assert_eq!(p.unschedulable, None);
    assert!(p.remove_taints.is_empty());
    assert!(after.unschedulable && drift_taint_on(&after).is_some());
    assert_eq!(
        after.labels.get(labels::COMPLIANT).map(String::as_str),
        Some("unknown")
    );
    assert_eq!(
        after.condition.as_ref().map(|c| c.reason.as_str()),
        Some(reasons::STALE_BASELINE)
    );
    // A fresh node going Unknown gets only onUnknown's (default) actions.
    let (p, _) = settle(
        &s,
        &verdict(VerdictState::Unknown),
        &node(),
        &mut Budget::new(2, 0),
    );
    assert!(!p.taints_node() && !p.cordons_node());
}

#[test]
fn dry_run_is_marked_and_computed_like_enforce() {
    let mut s = spec(&[Action::Taint], Some(1));
    s.mode = PolicyMode::DryRun;
    let p = run(
        &s,
        &verdict(VerdictState::Drifting),
        &node(),
        &mut Budget::new(1, 0),
    );
    assert!(p.dry_run);
    assert!(p.taints_node(), "a dry-run plan says what Enforce would do");
}

#[test]
fn conflicting_policies_hold_back_disruption() {
    let s = spec(&[Action::Taint], Some(1));
    let mut v = verdict(VerdictState::Drifting);
    v.conflicting_policies = vec!["pool-b".into()];
    let (p, _) = settle(&s, &v, &node(), &mut Budget::new(1, 0));
    assert_eq!(
        p.held_back.as_ref().map(|h| h.reason),
        Some(HoldReason::Conflict)
    );
    assert!(!p.taints_node());
}

#[test]
fn prefer_no_schedule_needs_no_budget() {
    let mut s = spec(&[Action::Taint], Some(0));
    s.actions.taint_effect = TaintEffect::PreferNoSchedule;
    let mut budget = Budget::new(0, 0);
    let (p, after) = settle(&s, &verdict(VerdictState::Drifting), &node(), &mut budget);
    assert_eq!(
        drift_taint_on(&after).map(|t| t.effect.as_str()),
        Some("PreferNoSchedule")
    );
    assert!(p.held_back.is_none() && !after.is_unavailable());
}

#[test]
fn an_effect_change_replaces_the_taint_without_budget() {
    let mut s = spec(&[Action::Taint], Some(1));
    let (_, tainted) = settle(
        &s,
        &verdict(VerdictState::Drifting),
        &node(),
        &mut Budget::new(1, 0),
    );
    s.actions.taint_effect = TaintEffect::NoExecute;
    let (p, after) = settle(
        &s,
        &verdict(VerdictState::Drifting),
        &tainted,
        &mut Budget::new(1, 1),
    );
    assert_eq!(p.remove_taints.len(), 1);
    assert_eq!(
        drift_taint_on(&after).map(|t| t.effect.as_str()),
        Some("NoExecute")
    );
}

#[test]
fn label_and_condition_actions_are_optional() {
    let s = spec(&[Action::Taint], Some(1));
    let mut n = node();
    n.labels.insert(labels::COMPLIANT.into(), "true".into());
    n.condition = Some(NodeCondition {
        status: ConditionStatus::True,
        reason: "Compliant".into(),
        message: "x".into(),
    });
    let mut s2 = s.clone();
    s2.actions.on_unknown = vec![];
    let (p, after) = settle(
        &s2,
        &verdict(VerdictState::Drifting),
        &n,
        &mut Budget::new(1, 0),
    );
    assert_eq!(
        p.labels.get(labels::COMPLIANT),
        Some(&None),
        "Label not asked: label removed"
    );
    assert_eq!(p.condition, Some(ConditionChange::Remove));
    assert!(
        after.labels.contains_key(labels::DRIVER_VERSION),
        "fact labels stay"
    );
}

#[test]
fn unmanaged_and_release_remove_only_what_plumbline_owns() {
    let s = spec(&[Action::Taint, Action::Cordon], Some(1));
    let (_, managed) = settle(
        &s,
        &verdict(VerdictState::Drifting),
        &node(),
        &mut Budget::new(1, 0),
    );
    let released = release(&managed).apply(&managed);
    assert_eq!(
        released,
        node(),
        "release restores the node as it was before Plumbline"
    );
    assert!(release(&released).is_empty());

    let mut marked = managed.clone();
    marked
        .annotations
        .insert(annotations::UNMANAGED.into(), "true".into());
    let (p, after) = settle(
        &s,
        &verdict(VerdictState::Drifting),
        &marked,
        &mut Budget::new(1, 0),
    );
    assert_eq!(p.unschedulable, Some(false));
    assert_eq!(
        after
            .annotations
            .get(annotations::UNMANAGED)
            .map(String::as_str),
        Some("true"),
        "the admin's annotation stays"
    );
    let (_, after) = settle(&s, &unmanaged_verdict(), &managed, &mut Budget::new(1, 0));
    assert_eq!(after, node());
}

#[test]
fn no_baseline_removes_fact_labels_but_keeps_the_policy_label() {
    let s = spec(&[Action::Label, Action::Condition], None);
    let (_, labelled) = settle(
        &s,
        &verdict(VerdictState::Compliant),
        &node(),
        &mut Budget::new(0, 0),
    );
    let mut v = verdict(VerdictState::Unknown);
    v.findings[0].rule = rules::BASELINE_MISSING.into();
    let p = plan(
        &PlanInput {
            policy_name: "pool-a",
            spec: &s,
            verdict: &v,
            observed: None,
            node: &labelled,
            now: now(),
            compat: CompatDb::embedded(),
        },
        &mut Budget::new(0, 0),
    );
    let after = p.apply(&labelled);
    assert!(!after.labels.contains_key(labels::DRIVER_VERSION));
    assert_eq!(
        after.labels.get(labels::POLICY).map(String::as_str),
        Some("pool-a")
    );
    assert_eq!(
        after.condition.map(|c| c.reason),
        Some(reasons::NO_BASELINE.to_string())
    );
}

#[test]
fn condition_message_is_bounded() {
    let mut v = verdict(VerdictState::Drifting);
    let f = v.findings[0].clone();
    v.findings = vec![f; 100];
    let text = condition_message("pool-a", &v, None);
    assert!(text.len() <= MAX_CONDITION_MESSAGE && text.ends_with('…'));
    assert!(text.starts_with("policy pool-a: 100 findings: driver.version: driver 580.95.05"));
}

#[test]
fn transition_time_only_moves_with_status() {
    let earlier = Time("2026-11-01T00:00:00Z".parse().unwrap());
    let c = |status| NodeCondition {
        status,
        reason: "r".into(),
        message: "m".into(),
    };
    assert_eq!(
        transition_time(
            Some((&c(ConditionStatus::True), &earlier)),
            &c(ConditionStatus::True),
            now()
        ),
        earlier
    );
    assert_eq!(
        transition_time(
            Some((&c(ConditionStatus::True), &earlier)),
            &c(ConditionStatus::False),
            now()
        ),
        Time(now())
    );
    assert_eq!(
        transition_time(None, &c(ConditionStatus::False), now()),
        Time(now())
    );
}
