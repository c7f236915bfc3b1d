//! The plan's safety properties, over generated fleets, policies and
//! verdicts:
//!
//! 1. a pass of plans never takes the pool past `maxUnavailable`, whichever
//!    subset of the plans the controller manages to write; if others already
//!    took it past, no node is newly disrupted;
//! 2. applying a plan and planning again yields an empty plan;
//! 3. no plan touches a foreign label, annotation or taint, or lifts a
//!    cordon Plumbline did not make.

mod common;

use std::collections::BTreeMap;

use common::*;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use plumbline_api::keys::{annotations, labels, rules, taints};
use plumbline_api::*;
use plumbline_compat::CompatDb;
use plumbline_policy::*;
use proptest::prelude::*;
use proptest::sample::subsequence;

fn effect_name(i: u8) -> &'static str {
    ["NoSchedule", "PreferNoSchedule", "NoExecute"][usize::from(i % 3)]
}

fn arb_time() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("garbage".to_string())),
        (0i64..7200).prop_map(|secs| Some((now() - SignedDuration::from_secs(secs)).to_string())),
    ]
}

prop_compose! {
    fn arb_node(i: usize)(
        foreign_labels in proptest::collection::btree_map(
            prop_oneof![Just("zone"), Just("plumbline.dev/team"), Just("nvidia.com/gpu.present")],
            "[a-z]{1,4}", 0..3),
        stale_owned_label in proptest::option::of(prop_oneof![Just(labels::COMPLIANT), Just(labels::DRIVER_VERSION), Just(labels::POLICY)]),
        foreign_taints in proptest::collection::vec(
            (prop_oneof![Just("node.kubernetes.io/unreachable"), Just("nvidia.com/gpu"), Just("team")], 0u8..3), 0..3),
        drift_taint in proptest::option::of((0u8..3, prop_oneof![Just("pool-a"), Just("other")])),
        unschedulable in any::<bool>(),
        cordoned in any::<bool>(),
        respected in any::<bool>(),
        unmanaged in proptest::bool::weighted(0.1),
        since in arb_time(),
        with_condition in any::<bool>(),
    ) -> NodeView {
        let mut n = NodeView { name: format!("gpu-{i}"), ..NodeView::default() };
        for (k, v) in foreign_labels {
            n.labels.insert(k.to_string(), v);
        }
        if let Some(k) = stale_owned_label {
            n.labels.insert(k.to_string(), "stale".to_string());
        }
        n.annotations.insert("foreign.example/keep".to_string(), "yes".to_string());
        for (k, e) in foreign_taints {
            let t = Taint { key: k.to_string(), value: None, effect: effect_name(e).to_string() };
            if !n.taints.contains(&t) {
                n.taints.push(t);
            }
        }
        if let Some((e, value)) = drift_taint {
            n.taints.push(Taint { key: taints::DRIFT.to_string(), value: Some(value.to_string()), effect: effect_name(e).to_string() });
        }
        n.unschedulable = unschedulable;
        if cordoned {
            n.annotations.insert(annotations::CORDONED_BY_PLUMBLINE.to_string(), "2026-11-20T00:00:00Z".to_string());
        }
        if respected {
            n.annotations.insert(annotations::UNCORDON_RESPECTED.to_string(), "2026-11-21T00:00:00Z".to_string());
        }
        if unmanaged {
            n.annotations.insert(annotations::UNMANAGED.to_string(), "true".to_string());
        }
        if let Some(s) = since {
            n.annotations.insert(annotations::DRIFTING_SINCE.to_string(), s);
        }
        if with_condition {
            n.condition = Some(NodeCondition { status: ConditionStatus::True, reason: "Old".into(), message: "old".into() });
        }
        n
    }
}

prop_compose! {
    fn arb_verdict()(
        state in prop_oneof![
            3 => Just(VerdictState::Drifting),
            2 => Just(VerdictState::Compliant),
            2 => Just(VerdictState::Unknown),
            1 => Just(VerdictState::Unmanaged),
        ],
        conflict in proptest::bool::weighted(0.1),
        since_secs in proptest::option::of(0i64..7200),
        with_baseline in proptest::bool::weighted(0.9),
    ) -> (Verdict, bool) {
        let findings = match state {
            VerdictState::Drifting => vec![Finding { rule: rules::DRIVER_VERSION.into(), message: "drift".into(), ..Finding::default() }],
            VerdictState::Unknown => vec![Finding { rule: rules::HEARTBEAT_STALE.into(), message: "silent".into(), ..Finding::default() }],
            _ => vec![],
        };
        let verdict = Verdict {
            state,
            policy: Some("pool-a".into()),
            conflicting_policies: if conflict { vec!["pool-b".into()] } else { vec![] },
            findings,
            since: since_secs.map(|s| Time(now() - SignedDuration::from_secs(s))),
        };
        (verdict, with_baseline)
    }
}

fn arb_actions() -> impl Strategy<Value = Vec<Action>> {
    subsequence(
        vec![
            Action::Label,
            Action::Condition,
            Action::Taint,
            Action::Cordon,
        ],
        0..=4,
    )
}

prop_compose! {
    fn arb_spec()(
        on_drift in arb_actions(),
        on_unknown in arb_actions(),
        effect in 0u8..3,
        max in prop_oneof![
            (0i32..4).prop_map(IntOrString::Int),
            (0u32..=100).prop_map(|p| IntOrString::String(format!("{p}%"))),
        ],
        grace in proptest::option::of(prop_oneof![Just("0s"), Just("5m"), Just("1h")]),
        dry_run in proptest::bool::weighted(0.2),
    ) -> GpuFleetPolicySpec {
        let mut spec = GpuFleetPolicySpec::default();
        spec.actions.on_drift = on_drift;
        spec.actions.on_unknown = on_unknown;
        spec.actions.taint_effect = [TaintEffect::NoSchedule, TaintEffect::PreferNoSchedule, TaintEffect::NoExecute][usize::from(effect)];
        spec.actions.max_unavailable = Some(max);
        spec.actions.grace_period = grace.map(str::to_string);
        if dry_run {
            spec.mode = PolicyMode::DryRun;
        }
        spec
    }
}

fn arb_fleet() -> impl Strategy<Value = Vec<(NodeView, Verdict, bool)>> {
    (1usize..14).prop_flat_map(|n| {
        (0..n)
            .map(|i| (arb_node(i), arb_verdict()).prop_map(|(node, (v, b))| (node, v, b)))
            .collect::<Vec<_>>()
    })
}

fn plan_one(
    spec: &GpuFleetPolicySpec,
    verdict: &Verdict,
    with_baseline: bool,
    node: &NodeView,
    at: Timestamp,
    budget: &mut Budget,
) -> NodePlan {
    let observed = h100_node();
    plan(
        &PlanInput {
            policy_name: "pool-a",
            spec,
            verdict,
            observed: with_baseline.then_some(&observed),
            node,
            now: at,
            compat: CompatDb::embedded(),
        },
        budget,
    )
}

fn unavailable(nodes: &[NodeView]) -> u32 {
    nodes.iter().filter(|n| n.is_unavailable()).count() as u32
}

fn foreign<'a>(map: &'a BTreeMap<String, String>, owned: &[&str]) -> BTreeMap<&'a str, &'a str> {
    map.iter()
        .filter(|(k, _)| !owned.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn passes_never_exceed_the_budget(
        spec in arb_spec(),
        fleet in arb_fleet(),
        masks in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 14), 3),
    ) {
        let mut nodes: Vec<NodeView> = fleet.iter().map(|(n, _, _)| n.clone()).collect();
        // Several passes, each with a budget counted from the cluster as it
        // is, and each writing only some of its plans (failed writes).
        for (pass, mask) in masks.iter().enumerate() {
            let at = now() + SignedDuration::from_mins(20 * pass as i64);
            let mut budget = Budget::for_policy(&spec, &nodes);
            let before = unavailable(&nodes);
            let max = budget.max();
            let plans: Vec<NodePlan> = fleet
                .iter()
                .zip(&nodes)
                .map(|((_, v, b), n)| plan_one(&spec, v, *b, n, at, &mut budget))
                .collect();
            let next: Vec<NodeView> = nodes
                .iter()
                .zip(&plans)
                .zip(mask)
                .map(|((n, p), write)| if *write { p.apply(n) } else { n.clone() })
                .collect();
            let after = unavailable(&next);
            prop_assert!(after <= before.max(max), "pass {pass}: {before} -> {after} with max {max}");
            if before >= max {
                for (old, new) in nodes.iter().zip(&next) {
                    prop_assert!(old.is_unavailable() || !new.is_unavailable(), "{} newly disrupted over budget", new.name);
                }
            }
            nodes = next;
        }
    }

    #[test]
    fn apply_then_plan_is_empty(spec in arb_spec(), fleet in arb_fleet()) {
        let nodes: Vec<NodeView> = fleet.iter().map(|(n, _, _)| n.clone()).collect();
        let mut budget = Budget::for_policy(&spec, &nodes);
        for ((node, verdict, with_baseline), _) in fleet.iter().zip(&nodes) {
            let start = budget.clone();
            let first = plan_one(&spec, verdict, *with_baseline, node, now(), &mut budget);
            let applied = first.apply(node);
            // The same world, one plan later: the budget as this plan left it.
            let mut again_budget = Budget::new(start.max(), budget.unavailable());
            let second = plan_one(&spec, verdict, *with_baseline, &applied, now(), &mut again_budget);
            prop_assert!(second.is_empty(), "first {first:#?}\nsecond {second:#?}");
        }
    }

    #[test]
    fn plans_touch_only_what_plumbline_owns(spec in arb_spec(), fleet in arb_fleet()) {
        let nodes: Vec<NodeView> = fleet.iter().map(|(n, _, _)| n.clone()).collect();
        let mut budget = Budget::for_policy(&spec, &nodes);
        for (node, verdict, with_baseline) in &fleet {
            let p = plan_one(&spec, verdict, *with_baseline, node, now(), &mut budget);
            for key in p.labels.keys() {
                prop_assert!(labels::ALL.contains(&key.as_str()), "label {key}");
            }
            for key in p.annotations.keys() {
                prop_assert!(OWNED_ANNOTATIONS.contains(&key.as_str()), "annotation {key}");
            }
            for t in p.add_taints.iter().chain(&p.remove_taints) {
                prop_assert_eq!(t.key.as_str(), taints::DRIFT);
            }
            let admins_cordon = node.unschedulable && !node.annotations.contains_key(annotations::CORDONED_BY_PLUMBLINE);
            prop_assert!(!(admins_cordon && p.unschedulable == Some(false)), "lifted an admin's cordon");
            if p.unschedulable == Some(true) {
                prop_assert!(!node.unschedulable);
                prop_assert!(p.annotations.get(annotations::CORDONED_BY_PLUMBLINE).is_some_and(Option::is_some), "a cordon records ownership");
            }
            let after = p.apply(node);
            prop_assert_eq!(foreign(&after.labels, labels::ALL), foreign(&node.labels, labels::ALL));
            prop_assert_eq!(foreign(&after.annotations, &OWNED_ANNOTATIONS), foreign(&node.annotations, &OWNED_ANNOTATIONS));
            let theirs = |n: &NodeView| n.taints.iter().filter(|t| t.key != taints::DRIFT).cloned().collect::<Vec<_>>();
            prop_assert_eq!(theirs(&after), theirs(node));
        }
    }
}
