//! The policy status: counts, histograms, budget, hold-backs, dry-run
//! counts and conditions, from a pass's verdicts and plans.

mod common;

use common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use plumbline_api::keys::{conditions, reasons};
use plumbline_api::*;
use plumbline_compat::CompatDb;
use plumbline_policy::*;

struct Pass {
    names: Vec<String>,
    verdicts: Vec<Verdict>,
    observed: Vec<Observed>,
    plans: Vec<NodePlan>,
    budget: Budget,
    fleet: FleetView,
}

/// Four nodes: two compliant H100s on 580, two drifting nodes on 570, with
/// `Taint` and a budget of one.
fn pass(mode: PolicyMode) -> (GpuFleetPolicySpec, Pass) {
    let mut spec = GpuFleetPolicySpec {
        mode,
        ..GpuFleetPolicySpec::default()
    };
    spec.requirements.driver = Some(DriverRequirements {
        branches: vec![580],
        ..DriverRequirements::default()
    });
    spec.requirements.uniformity = vec![UniformityKey::DriverVersion];
    spec.actions.on_drift = vec![Action::Label, Action::Condition, Action::Taint];
    spec.actions.max_unavailable = Some(IntOrString::Int(1));
    let mut old = h100_node();
    set_driver(&mut old, "570.124.06", Some("12.8"));
    let observed = vec![h100_node(), h100_node(), old.clone(), old];
    let names: Vec<String> = (0..4).map(|i| format!("gpu-{i}")).collect();
    let statuses: Vec<NodeGpuBaselineStatus> =
        observed.iter().map(|o| status(o.clone(), 0)).collect();
    let fleet = FleetView::from_statuses(&spec.requirements.uniformity, &statuses);
    let nodes: Vec<NodeView> = names
        .iter()
        .map(|n| NodeView {
            name: n.clone(),
            ..NodeView::default()
        })
        .collect();
    let mut budget = Budget::for_policy(&spec, &nodes);
    let mut verdicts = Vec::new();
    let mut plans = Vec::new();
    for ((status, node), o) in statuses.iter().zip(&nodes).zip(&observed) {
        let verdict = evaluate(&EvalInput {
            policy_name: "pool-a",
            spec: &spec,
            baseline: Some(status),
            fleet: &fleet,
            now: now(),
            compat: CompatDb::embedded(),
            conflicting_policies: &[],
        });
        let p = plan(
            &PlanInput {
                policy_name: "pool-a",
                spec: &spec,
                verdict: &verdict,
                observed: Some(o),
                node,
                now: now(),
                compat: CompatDb::embedded(),
            },
            &mut budget,
        );
        verdicts.push(verdict);
        plans.push(p);
    }
    (
        spec,
        Pass {
            names,
            verdicts,
            observed,
            plans,
            budget,
            fleet,
        },
    )
}

fn summarize_pass(
    spec: &GpuFleetPolicySpec,
    p: &Pass,
    previous: Option<&GpuFleetPolicyStatus>,
    conflicts: &[String],
) -> GpuFleetPolicyStatus {
    let outcomes: Vec<NodeOutcome<'_>> = (0..p.names.len())
        .map(|i| NodeOutcome {
            node: &p.names[i],
            verdict: &p.verdicts[i],
            observed: Some(&p.observed[i]),
            plan: Some(&p.plans[i]),
        })
        .collect();
    summarize(&SummaryInput {
        spec,
        generation: Some(3),
        nodes: &outcomes,
        budget: &p.budget,
        fleet: &p.fleet,
        conflicts,
        previous,
        now: now(),
        compat: CompatDb::embedded(),
    })
}

fn condition<'a>(
    s: &'a GpuFleetPolicyStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_}"))
}

#[test]
fn enforce_counts_budget_and_hold_backs() {
    let (spec, p) = pass(PolicyMode::Enforce);
    let s = summarize_pass(&spec, &p, None, &[]);
    assert_eq!(
        (s.selected_nodes, s.compliant, s.drifting, s.unknown),
        (4, 2, 2, 0)
    );
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(
        s.budget,
        Some(BudgetStatus {
            unavailable: 1,
            max_unavailable: 1
        })
    );
    assert_eq!(
        s.held_back, 1,
        "the second drifting node waits for the budget"
    );
    assert_eq!(s.held_back_nodes, vec!["gpu-3".to_string()]);
    assert_eq!(s.findings.get("driver.version"), Some(&2));
    assert_eq!(
        s.findings.get("uniformity"),
        None,
        "a 2-2 tie judges nobody"
    );
    let h = s.histograms.as_ref().unwrap();
    assert_eq!(h.driver_versions.get("580.95.05"), Some(&2));
    assert_eq!(h.driver_versions.get("570.124.06"), Some(&2));
    assert_eq!(h.cuda_ceilings.get("12.8"), Some(&2));
    assert_eq!(h.kernel_modules.get("open"), Some(&4));
    assert_eq!(s.dry_run, None);
    assert_eq!(condition(&s, conditions::VALID).status, "True");
    assert_eq!(
        condition(&s, conditions::BUDGET_EXHAUSTED).reason,
        reasons::BUDGET_EXHAUSTED
    );
    assert_eq!(condition(&s, conditions::CONFLICT).status, "False");
    let tie = condition(&s, conditions::UNIFORMITY_TIE);
    assert_eq!(
        (tie.status.as_str(), tie.reason.as_str()),
        ("True", reasons::TIED_MAJORITY)
    );
    assert!(
        tie.message
            .contains("driverVersion (570.124.06 = 580.95.05)"),
        "{}",
        tie.message
    );
}

#[test]
fn dry_run_reports_what_enforce_would_do() {
    let (spec, p) = pass(PolicyMode::DryRun);
    assert!(p.plans.iter().all(|plan| plan.dry_run));
    let s = summarize_pass(&spec, &p, None, &[]);
    let d = s.dry_run.expect("dry-run counts");
    assert_eq!(
        (d.would_taint, d.would_cordon, d.would_hold_back),
        (1, 0, 1)
    );
    assert_eq!(d.nodes, vec!["gpu-2".to_string(), "gpu-3".to_string()]);
    assert_eq!(s.held_back, 0, "nothing is really held back in DryRun");
}

#[test]
fn conditions_keep_their_transition_time_while_unchanged() {
    let (spec, p) = pass(PolicyMode::Enforce);
    let mut first = summarize_pass(&spec, &p, None, &[]);
    let earlier = Time("2026-11-01T00:00:00Z".parse().unwrap());
    for c in &mut first.conditions {
        c.last_transition_time = earlier.clone();
    }
    let conflicts = vec!["pool-b".to_string()];
    let second = summarize_pass(&spec, &p, Some(&first), &conflicts);
    assert_eq!(
        condition(&second, conditions::VALID).last_transition_time,
        earlier
    );
    let conflict = condition(&second, conditions::CONFLICT);
    assert_eq!(conflict.status, "True");
    assert_eq!(
        conflict.last_transition_time,
        Time(now()),
        "a changed status moves"
    );
    let third = summarize_pass(&spec, &p, Some(&first), &[]);
    let mut first_again = first.clone();
    first_again
        .conditions
        .iter_mut()
        .for_each(|c| c.last_transition_time = earlier.clone());
    assert_eq!(
        third, first_again,
        "an unchanged fleet gives an unchanged status"
    );
}

#[test]
fn invalid_policies_say_why() {
    let mut spec = GpuFleetPolicySpec::default();
    spec.actions.on_drift = vec![Action::Cordon];
    let errors = validate_policy(&spec).unwrap_err();
    let s = invalid_status(&errors, Some(2), None, now());
    let valid = condition(&s, conditions::VALID);
    assert_eq!(
        (valid.status.as_str(), valid.reason.as_str()),
        ("False", reasons::POLICY_INVALID)
    );
    assert!(valid.message.contains(
        "spec.actions.maxUnavailable: onDrift with Cordon, or Taint with a NoSchedule or NoExecute effect, needs maxUnavailable"
    ));
    assert_eq!(s.selected_nodes, 0);
}
