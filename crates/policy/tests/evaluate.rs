//! Evaluation around the rules: baselines and heartbeats, the pool
//! (uniformity), verdict bookkeeping, policy selection and validation.

mod common;

use std::collections::BTreeMap;

use common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use plumbline_api::keys::rules;
use plumbline_api::*;
use plumbline_compat::CompatDb;
use plumbline_policy::*;

fn eval(
    spec: &GpuFleetPolicySpec,
    baseline: Option<&NodeGpuBaselineStatus>,
    fleet: &FleetView,
) -> Verdict {
    evaluate(&EvalInput {
        policy_name: "pool-a",
        spec,
        baseline,
        fleet,
        now: now(),
        compat: CompatDb::embedded(),
        conflicting_policies: &[],
    })
}

fn uniform_spec(keys: &[UniformityKey]) -> GpuFleetPolicySpec {
    GpuFleetPolicySpec {
        requirements: Requirements {
            uniformity: keys.to_vec(),
            ..Requirements::default()
        },
        ..GpuFleetPolicySpec::default()
    }
}

fn with_driver(version: &str) -> Observed {
    let mut o = h100_node();
    set_driver(&mut o, version, None);
    o
}

#[test]
fn baseline_and_heartbeat_cases() {
    let spec = GpuFleetPolicySpec::default();
    let fleet = FleetView::new();
    let fresh = status(h100_node(), 60);
    let stale = status(h100_node(), 16 * 60);
    let mut never = status(h100_node(), 0);
    never.last_heartbeat_time = None;
    let mut empty = status(h100_node(), 0);
    empty.observed = None;
    let cases: [(&str, Option<&NodeGpuBaselineStatus>, VerdictState, &[&str]); 5] = [
        (
            "a fresh baseline and an empty policy is compliant",
            Some(&fresh),
            VerdictState::Compliant,
            &[],
        ),
        (
            "no baseline is unknown",
            None,
            VerdictState::Unknown,
            &[rules::BASELINE_MISSING],
        ),
        (
            "a baseline without an observation is unknown",
            Some(&empty),
            VerdictState::Unknown,
            &[rules::BASELINE_MISSING],
        ),
        (
            "a heartbeat older than staleAfter (15m) is unknown",
            Some(&stale),
            VerdictState::Unknown,
            &[rules::HEARTBEAT_STALE],
        ),
        (
            "no heartbeat at all is unknown",
            Some(&never),
            VerdictState::Unknown,
            &[rules::HEARTBEAT_STALE],
        ),
    ];
    for (what, baseline, state, want) in cases {
        let v = eval(&spec, baseline, &fleet);
        assert_eq!(v.state, state, "{what}");
        let got: Vec<&str> = v.findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(got, want, "{what}");
    }
    let v = eval(&spec, Some(&stale), &fleet);
    assert!(
        v.findings[0].message.contains("16m ago"),
        "{}",
        v.findings[0].message
    );
}

#[test]
fn stale_data_never_drifts() {
    let mut spec = GpuFleetPolicySpec::default();
    spec.requirements.driver = Some(DriverRequirements {
        versions: vec!["570.*".into()],
        ..DriverRequirements::default()
    });
    let fleet = FleetView::new();
    let v = eval(&spec, Some(&status(h100_node(), 3600)), &fleet);
    assert_eq!(
        v.state,
        VerdictState::Unknown,
        "old data must not make a node Drifting"
    );
    let v = eval(&spec, Some(&status(h100_node(), 10)), &fleet);
    assert_eq!(v.state, VerdictState::Drifting);
}

#[test]
fn stale_after_comes_from_the_policy() {
    let mut spec = GpuFleetPolicySpec::default();
    spec.actions.stale_after = "1h".into();
    let v = eval(
        &spec,
        Some(&status(h100_node(), 30 * 60)),
        &FleetView::new(),
    );
    assert_eq!(v.state, VerdictState::Compliant);
}

#[test]
fn since_carries_over_while_the_state_holds() {
    let spec = GpuFleetPolicySpec::default();
    let earlier: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    let mut baseline = status(h100_node(), 0);
    baseline.verdict = Some(Verdict {
        state: VerdictState::Compliant,
        since: Some(Time(earlier)),
        ..Verdict::default()
    });
    let v = eval(&spec, Some(&baseline), &FleetView::new());
    assert_eq!(v.since, Some(Time(earlier)), "same state keeps since");
    baseline.verdict.as_mut().unwrap().state = VerdictState::Drifting;
    let v = eval(&spec, Some(&baseline), &FleetView::new());
    assert_eq!(v.since, Some(Time(now())), "a new state starts now");
}

#[test]
fn conflicts_are_reported_on_the_verdict() {
    let spec = GpuFleetPolicySpec::default();
    let baseline = status(h100_node(), 0);
    let conflicts = vec!["pool-b".to_string()];
    let v = evaluate(&EvalInput {
        policy_name: "pool-a",
        spec: &spec,
        baseline: Some(&baseline),
        fleet: &FleetView::new(),
        now: now(),
        compat: CompatDb::embedded(),
        conflicting_policies: &conflicts,
    });
    assert_eq!(v.conflicting_policies, conflicts);
    assert_eq!(v.policy.as_deref(), Some("pool-a"));
}

#[test]
fn uniformity_cases() {
    let keys = [UniformityKey::DriverVersion];
    let pool = |versions: &[&str]| {
        let statuses: Vec<NodeGpuBaselineStatus> =
            versions.iter().map(|v| status(with_driver(v), 0)).collect();
        FleetView::from_statuses(&keys, &statuses)
    };
    struct U {
        what: &'static str,
        pool: &'static [&'static str],
        node: &'static str,
        window: Option<(&'static str, &'static str)>,
        drift: bool,
    }
    let cases = [
        U {
            what: "the node is on the majority",
            pool: &["580.95.05", "580.95.05", "570.124.06"],
            node: "580.95.05",
            window: None,
            drift: false,
        },
        U {
            what: "the node is off the majority",
            pool: &["580.95.05", "580.95.05", "570.124.06"],
            node: "570.124.06",
            window: None,
            drift: true,
        },
        U {
            what: "a tie judges nobody",
            pool: &["580.95.05", "570.124.06"],
            node: "570.124.06",
            window: None,
            drift: false,
        },
        U {
            what: "a plurality is a majority",
            pool: &["a.1", "580.95.05", "580.95.05", "570.124.06", "575.57.08"],
            node: "575.57.08",
            window: None,
            drift: true,
        },
        U {
            what: "a pool of one is uniform",
            pool: &["570.124.06"],
            node: "570.124.06",
            window: None,
            drift: false,
        },
        U {
            what: "an open window exempts nodes already on the new version",
            pool: &["570.124.06", "570.124.06", "580.95.05"],
            node: "580.95.05",
            window: Some(("580.*", "2026-12-01T00:00:00Z")),
            drift: false,
        },
        U {
            what: "an open window exempts nodes still on the old version",
            pool: &["580.95.05", "580.95.05", "570.124.06"],
            node: "570.124.06",
            window: Some(("580.*", "2026-12-01T00:00:00Z")),
            drift: false,
        },
        U {
            what: "a closed window exempts nobody",
            pool: &["570.124.06", "570.124.06", "580.95.05"],
            node: "580.95.05",
            window: Some(("580.*", "2026-11-01T00:00:00Z")),
            drift: true,
        },
    ];
    for case in cases {
        let mut spec = uniform_spec(&keys);
        if let Some((v, until)) = case.window {
            spec.requirements.driver = Some(DriverRequirements {
                branches: vec![570],
                ..DriverRequirements::default()
            });
            spec.requirements.upgrade_window = Some(UpgradeWindow {
                driver_versions: vec![v.into()],
                until: Time(until.parse().unwrap()),
            });
        }
        let fleet = pool(case.pool);
        let v = eval(&spec, Some(&status(with_driver(case.node), 0)), &fleet);
        let uniformity = v.findings.iter().any(|f| f.rule == rules::UNIFORMITY);
        assert_eq!(uniformity, case.drift, "{}: {:?}", case.what, v.findings);
    }
}

#[test]
fn uniformity_message_names_the_reference() {
    let keys = [UniformityKey::KernelModule, UniformityKey::ToolkitVersions];
    let mut odd = h100_node();
    odd.driver.kernel_module = KernelModule::Proprietary;
    odd.toolkits.truncate(1);
    let statuses = vec![
        status(h100_node(), 0),
        status(h100_node(), 0),
        status(odd.clone(), 0),
    ];
    let fleet = FleetView::from_statuses(&keys, &statuses);
    let v = eval(&uniform_spec(&keys), Some(&status(odd, 0)), &fleet);
    assert_eq!(v.state, VerdictState::Drifting);
    let messages: Vec<&str> = v.findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "kernelModule is proprietary here but open on most of the pool (2 of 3 nodes): bring this node to open",
            "toolkitVersions is 12.9 here but 12.9,13.0 on most of the pool (2 of 3 nodes): bring this node to 12.9,13.0",
        ]
    );
}

#[test]
fn fleet_view_skips_failed_probes_and_reports_ties() {
    let keys = [
        UniformityKey::ContainerToolkitVersion,
        UniformityKey::KernelRelease,
    ];
    let mut failed = status(h100_node(), 0);
    failed.probes = probes_with_errors(&[plumbline_api::keys::probes::CONTAINER_TOOLKIT]);
    let mut other = h100_node();
    other.kernel.release = Some("6.8.0-50-generic".into());
    let fleet = FleetView::from_statuses(&keys, &[failed, status(other, 0)]);
    assert_eq!(
        fleet.histogram(UniformityKey::ContainerToolkitVersion),
        Some(&BTreeMap::from([("1.17.8".to_string(), 1)]))
    );
    assert_eq!(
        fleet.ties(),
        vec![(
            UniformityKey::KernelRelease,
            vec![
                "6.8.0-45-generic".to_string(),
                "6.8.0-50-generic".to_string()
            ]
        )]
    );
}

// -- selection ------------------------------------------------------------------

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

#[test]
fn selector_cases() {
    let node = labels(&[("pool", "h100"), ("zone", "a")]);
    let sel = |match_labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>| LabelSelector {
        match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
        match_expressions: (!exprs.is_empty()).then_some(exprs),
    };
    let cases: Vec<(&str, Option<LabelSelector>, bool)> = vec![
        ("no selector selects every node", None, true),
        (
            "the empty selector selects every node",
            Some(LabelSelector::default()),
            true,
        ),
        (
            "matchLabels equal",
            Some(sel(&[("pool", "h100")], vec![])),
            true,
        ),
        (
            "matchLabels differ",
            Some(sel(&[("pool", "a100")], vec![])),
            false,
        ),
        (
            "matchLabels key missing",
            Some(sel(&[("team", "x")], vec![])),
            false,
        ),
        (
            "In matches",
            Some(sel(&[], vec![expr("zone", "In", &["a", "b"])])),
            true,
        ),
        (
            "In misses",
            Some(sel(&[], vec![expr("zone", "In", &["c"])])),
            false,
        ),
        (
            "NotIn matches a different value",
            Some(sel(&[], vec![expr("zone", "NotIn", &["c"])])),
            true,
        ),
        (
            "NotIn matches a missing key",
            Some(sel(&[], vec![expr("team", "NotIn", &["x"])])),
            true,
        ),
        (
            "NotIn misses",
            Some(sel(&[], vec![expr("zone", "NotIn", &["a"])])),
            false,
        ),
        (
            "Exists",
            Some(sel(&[], vec![expr("pool", "Exists", &[])])),
            true,
        ),
        (
            "Exists misses",
            Some(sel(&[], vec![expr("team", "Exists", &[])])),
            false,
        ),
        (
            "DoesNotExist",
            Some(sel(&[], vec![expr("team", "DoesNotExist", &[])])),
            true,
        ),
        (
            "DoesNotExist misses",
            Some(sel(&[], vec![expr("pool", "DoesNotExist", &[])])),
            false,
        ),
        (
            "all terms must hold",
            Some(sel(&[("pool", "h100")], vec![expr("zone", "In", &["b"])])),
            false,
        ),
        (
            "an unknown operator matches nothing",
            Some(sel(&[], vec![expr("zone", "Gt", &["1"])])),
            false,
        ),
        (
            "In without values matches nothing",
            Some(sel(&[], vec![expr("zone", "In", &[])])),
            false,
        ),
    ];
    for (what, selector, want) in cases {
        assert_eq!(selector_matches(selector.as_ref(), &node), want, "{what}");
    }
}

fn named(name: &str, priority: i32, selector: Option<LabelSelector>) -> GpuFleetPolicy {
    GpuFleetPolicy::new(
        name,
        GpuFleetPolicySpec {
            priority,
            node_selector: selector,
            ..GpuFleetPolicySpec::default()
        },
    )
}

#[test]
fn select_policy_cases() {
    let node = labels(&[("pool", "h100")]);
    let h100 = Some(LabelSelector {
        match_labels: Some(labels(&[("pool", "h100")])),
        match_expressions: None,
    });
    let a100 = Some(LabelSelector {
        match_labels: Some(labels(&[("pool", "a100")])),
        match_expressions: None,
    });

    let policies = vec![named("fleet", 0, None), named("h100", 10, h100.clone())];
    let s = select_policy(&node, &policies);
    assert_eq!(s.policy_name(), Some("h100"), "highest priority wins");
    assert!(s.conflicting.is_empty());

    let policies = vec![
        named("zeta", 5, h100.clone()),
        named("alpha", 5, None),
        named("low", 1, None),
    ];
    let s = select_policy(&node, &policies);
    assert_eq!(
        s.policy_name(),
        Some("alpha"),
        "a tie is broken by name, never by list order"
    );
    assert_eq!(s.conflicting, vec!["zeta".to_string()]);

    let policies = vec![named("a100", 10, a100)];
    assert_eq!(
        select_policy(&node, &policies).policy,
        None,
        "nothing selects the node"
    );

    let mut invalid = named("broken", 100, None);
    invalid.spec.actions.stale_after = "soon".into();
    let policies = vec![invalid, named("fleet", 0, None)];
    assert_eq!(
        select_policy(&node, &policies).policy_name(),
        Some("fleet"),
        "an invalid policy never claims a node"
    );
}

// -- validation ---------------------------------------------------------------------

#[test]
fn validation_cases() {
    type Edit = fn(&mut GpuFleetPolicySpec);
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        ("the default spec is valid", |_| {}, &[]),
        (
            "a bad staleAfter",
            |s| s.actions.stale_after = "15 minutes".into(),
            &["spec.actions.staleAfter"],
        ),
        (
            "a zero staleAfter",
            |s| s.actions.stale_after = "0s".into(),
            &["spec.actions.staleAfter"],
        ),
        (
            "a bad gracePeriod",
            |s| s.actions.grace_period = Some("1d".into()),
            &["spec.actions.gracePeriod"],
        ),
        (
            "Taint without maxUnavailable",
            |s| s.actions.on_drift = vec![Action::Taint],
            &["spec.actions.maxUnavailable"],
        ),
        (
            "Cordon on unknown without maxUnavailable",
            |s| s.actions.on_unknown = vec![Action::Cordon],
            &["spec.actions.maxUnavailable"],
        ),
        (
            "a negative maxUnavailable",
            |s| s.actions.max_unavailable = Some(IntOrString::Int(-1)),
            &["spec.actions.maxUnavailable"],
        ),
        (
            "a percentage over 100",
            |s| s.actions.max_unavailable = Some(IntOrString::String("150%".into())),
            &["spec.actions.maxUnavailable"],
        ),
        (
            "a string that is no percentage",
            |s| s.actions.max_unavailable = Some(IntOrString::String("3".into())),
            &["spec.actions.maxUnavailable"],
        ),
        (
            "Taint with a percentage is fine",
            |s| {
                s.actions.on_drift = vec![Action::Taint];
                s.actions.max_unavailable = Some(IntOrString::String("10%".into()));
            },
            &[],
        ),
        (
            "a driver pattern that does not parse",
            |s| {
                s.requirements.driver = Some(DriverRequirements {
                    versions: vec!["580.x".into()],
                    ..Default::default()
                })
            },
            &["spec.requirements.driver.versions[0]"],
        ),
        (
            "a bare branch as a version",
            |s| {
                s.requirements.driver = Some(DriverRequirements {
                    versions: vec!["580".into()],
                    ..Default::default()
                })
            },
            &["spec.requirements.driver.versions[0]"],
        ),
        (
            "a bad minVersion",
            |s| {
                s.requirements.driver = Some(DriverRequirements {
                    min_version: Some("580".into()),
                    ..Default::default()
                })
            },
            &["spec.requirements.driver.minVersion"],
        ),
        (
            "a zero branch",
            |s| {
                s.requirements.driver = Some(DriverRequirements {
                    branches: vec![0],
                    ..Default::default()
                })
            },
            &["spec.requirements.driver.branches[0]"],
        ),
        (
            "a bad minCeiling",
            |s| {
                s.requirements.cuda = Some(CudaRequirements {
                    min_ceiling: Some("12".into()),
                    ..Default::default()
                })
            },
            &["spec.requirements.cuda.minCeiling"],
        ),
        (
            "a workload listed twice with a bad version",
            |s| {
                s.requirements.cuda = Some(CudaRequirements {
                    workloads: vec![
                        Workload {
                            name: "a".into(),
                            cuda_version: "12.8".into(),
                            allow_minor_version_compat: false,
                        },
                        Workload {
                            name: "a".into(),
                            cuda_version: "twelve".into(),
                            allow_minor_version_compat: false,
                        },
                    ],
                    ..Default::default()
                })
            },
            &[
                "spec.requirements.cuda.workloads[1].name",
                "spec.requirements.cuda.workloads[1].cudaVersion",
            ],
        ),
        (
            "a bad toolkit pattern",
            |s| {
                s.requirements.toolkit = Some(ToolkitRequirements {
                    versions: vec!["12".into()],
                    ..Default::default()
                })
            },
            &["spec.requirements.toolkit.versions[0]"],
        ),
        (
            "a bad Container Toolkit minimum",
            |s| {
                s.requirements.container_toolkit = Some(ContainerToolkitRequirements {
                    min_version: Some("1.x".into()),
                    ..Default::default()
                })
            },
            &["spec.requirements.containerToolkit.minVersion"],
        ),
        (
            "an upgrade window with nothing to widen",
            |s| {
                s.requirements.upgrade_window = Some(UpgradeWindow {
                    driver_versions: vec!["580.*".into()],
                    until: Time(now()),
                })
            },
            &["spec.requirements.upgradeWindow"],
        ),
        (
            "a bad selector operator",
            |s| {
                s.node_selector = Some(LabelSelector {
                    match_expressions: Some(vec![expr("pool", "Equals", &["x"])]),
                    match_labels: None,
                })
            },
            &["spec.nodeSelector.matchExpressions[0].operator"],
        ),
        (
            "a PreferNoSchedule drift taint keeps pods nowhere off: no budget needed",
            |s| {
                s.actions.on_drift = vec![Action::Label, Action::Taint];
                s.actions.taint_effect = TaintEffect::PreferNoSchedule;
            },
            &[],
        ),
        (
            "a NoSchedule drift taint needs a budget",
            |s| {
                s.actions.on_drift = vec![Action::Label, Action::Taint];
                s.actions.taint_effect = TaintEffect::NoSchedule;
            },
            &["spec.actions.maxUnavailable"],
        ),
        (
            "a cordon on unknown needs a budget whatever the taint effect",
            |s| {
                s.actions.on_unknown = vec![Action::Cordon];
                s.actions.taint_effect = TaintEffect::PreferNoSchedule;
            },
            &["spec.actions.maxUnavailable"],
        ),
        (
            "Exists with values",
            |s| {
                s.node_selector = Some(LabelSelector {
                    match_expressions: Some(vec![expr("pool", "Exists", &["x"])]),
                    match_labels: None,
                })
            },
            &["spec.nodeSelector.matchExpressions[0].values"],
        ),
    ];
    for (what, edit, want) in cases {
        let mut spec = GpuFleetPolicySpec::default();
        edit(&mut spec);
        let fields: Vec<String> = match validate_policy(&spec) {
            Ok(()) => vec![],
            Err(errors) => errors.into_iter().map(|e| e.field).collect(),
        };
        assert_eq!(fields, want, "{what}");
    }
}

#[test]
fn max_unavailable_resolution() {
    let cases = [
        (IntOrString::Int(2), 10, 2, "a count is a count"),
        (IntOrString::Int(0), 10, 0, "zero allows nothing"),
        (
            IntOrString::String("25%".into()),
            10,
            2,
            "percent rounds down",
        ),
        (
            IntOrString::String("10%".into()),
            5,
            1,
            "a non-zero percent of a small pool allows one",
        ),
        (
            IntOrString::String("0%".into()),
            5,
            0,
            "zero percent allows nothing",
        ),
        (
            IntOrString::String("10%".into()),
            0,
            0,
            "an empty pool allows nothing",
        ),
        (IntOrString::String("100%".into()), 7, 7, "all"),
    ];
    for (value, selected, want, what) in cases {
        assert_eq!(
            MaxUnavailable::parse(&value).unwrap().resolve(selected),
            want,
            "{what}"
        );
    }
}
