//! The controller against the emulator: what it writes on nodes, baselines
//! and policies, and what it leaves alone.

mod common;

use common::*;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::Api;
use kube::api::ListParams;
use plumbline_api::keys::{self, annotations, labels, reasons};
use plumbline_controller::ControllerConfig;
use serde_json::json;
use std::time::Duration;

/// Generous: a loaded 2-core CI machine runs several emulators at once.
const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliant_and_drifting_nodes_are_labelled_tainted_and_recover() {
    let sim = start().await;
    seed_fleet(&sim, "gpu", "a", 4, |i| i == 3);
    sim.store()
        .create(policy(
            "fleet",
            "a",
            json!(1),
            &["Label", "Condition", "Taint"],
        ))
        .expect("policy created");
    let ctl = spawn_controller(&sim, config("c1")).await;

    eventually(T, "compliant node labelled", || {
        let n = get_node(&sim, "gpu-00000");
        label(&n, labels::COMPLIANT) == Some("true")
            && label(&n, labels::DRIVER_BRANCH) == Some("580")
            && label(&n, labels::POLICY) == Some("fleet")
            && condition_status(&n).as_deref() == Some("True")
    })
    .await;
    eventually(T, "drifting node tainted", || {
        let n = get_node(&sim, "gpu-00003");
        label(&n, labels::COMPLIANT) == Some("false")
            && has_drift_taint(&n)
            && condition_status(&n).as_deref() == Some("False")
    })
    .await;
    eventually(T, "verdicts written", || {
        get_baseline(&sim, "gpu-00003")["status"]["verdict"]["state"] == "Drifting"
            && get_baseline(&sim, "gpu-00000")["status"]["verdict"]["state"] == "Compliant"
    })
    .await;
    // The agent's fields are untouched by the verdict write.
    let b = get_baseline(&sim, "gpu-00003");
    assert_eq!(b["status"]["agentVersion"], "0.1.0");
    assert_eq!(b["status"]["observed"]["driver"]["version"], BAD_DRIVER);
    // Foreign node data survives: kubelet's condition, images, labels.
    let n = get_node(&sim, "gpu-00003");
    assert!(
        n["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready"))
    );
    assert_eq!(label(&n, "kubernetes.io/hostname"), Some("gpu-00003"));

    // Fixing the host clears taint and condition.
    set_driver(&sim, "gpu-00003", GOOD_DRIVER);
    eventually(T, "fixed node cleared", || {
        let n = get_node(&sim, "gpu-00003");
        label(&n, labels::COMPLIANT) == Some("true")
            && !has_drift_taint(&n)
            && condition_status(&n).as_deref() == Some("True")
    })
    .await;

    // Policy status is aggregated.
    eventually(T, "policy status", || {
        let p = sim
            .store()
            .get(keys::API_VERSION, "GpuFleetPolicy", None, "fleet")
            .expect("policy");
        p["status"]["selectedNodes"] == 4 && p["status"]["compliant"] == 4
    })
    .await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_taints_labels_and_admin_cordons_survive() {
    let sim = start().await;
    seed_fleet(&sim, "gpu", "a", 3, |_| false);
    sim.store()
        .create(policy(
            "fleet",
            "a",
            json!(3),
            &["Label", "Condition", "Taint", "Cordon"],
        ))
        .expect("policy created");
    // An admin cordoned gpu-00002 before Plumbline ever ran.
    sim.store()
        .merge_patch(
            "v1",
            "Node",
            None,
            "gpu-00002",
            &json!({"spec": {"unschedulable": true}}),
            false,
        )
        .expect("cordon");
    let ctl = spawn_controller(&sim, config("c1")).await;
    eventually(T, "labelled", || {
        label(&get_node(&sim, "gpu-00000"), labels::COMPLIANT) == Some("true")
    })
    .await;

    // Mid-rollout: gpu-00000 starts drifting while someone adds their own
    // taint and label to it.
    sim.store()
        .merge_patch(
            "v1",
            "Node",
            None,
            "gpu-00000",
            &json!({"metadata": {"labels": {"team": "ml"}},
                    "spec": {"taints": [{"key": "example.com/maintenance", "effect": "NoSchedule"}]}}),
            false,
        )
        .expect("foreign taint");
    set_driver(&sim, "gpu-00000", BAD_DRIVER);
    eventually(T, "drift taint and cordon", || {
        let n = get_node(&sim, "gpu-00000");
        has_drift_taint(&n) && n["spec"]["unschedulable"] == true
    })
    .await;
    let n = get_node(&sim, "gpu-00000");
    assert!(taint_keys(&n).contains(&"example.com/maintenance".to_string()));
    assert_eq!(label(&n, "team"), Some("ml"));
    assert!(n["metadata"]["annotations"][annotations::CORDONED_BY_PLUMBLINE].is_string());

    // Fixed: Plumbline lifts its own taint and cordon, the foreign taint stays.
    set_driver(&sim, "gpu-00000", GOOD_DRIVER);
    eventually(T, "recovered", || {
        let n = get_node(&sim, "gpu-00000");
        !has_drift_taint(&n) && n["spec"]["unschedulable"] != true
    })
    .await;
    let n = get_node(&sim, "gpu-00000");
    assert_eq!(taint_keys(&n), vec!["example.com/maintenance".to_string()]);
    assert_eq!(label(&n, "team"), Some("ml"));

    // The admin's cordon on the compliant gpu-00002 was never lifted.
    assert_eq!(get_node(&sim, "gpu-00002")["spec"]["unschedulable"], true);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_uncordon_is_respected() {
    let sim = start().await;
    seed_fleet(&sim, "gpu", "a", 2, |i| i == 0);
    sim.store()
        .create(policy(
            "fleet",
            "a",
            json!(2),
            &["Label", "Condition", "Cordon"],
        ))
        .expect("policy created");
    let addr = free_addr();
    let mut cfg = config("c1");
    cfg.resync = Duration::from_millis(500);
    cfg.metrics_addr = Some(addr);
    let ctl = spawn_controller(&sim, cfg).await;
    eventually(T, "cordoned", || {
        get_node(&sim, "gpu-00000")["spec"]["unschedulable"] == true
    })
    .await;
    // The admin uncordons it (kubectl uncordon).
    sim.store()
        .merge_patch(
            "v1",
            "Node",
            None,
            "gpu-00000",
            &json!({"spec": {"unschedulable": null}}),
            false,
        )
        .expect("uncordon");
    eventually(T, "uncordon recorded", || {
        get_node(&sim, "gpu-00000")["metadata"]["annotations"][annotations::UNCORDON_RESPECTED]
            .is_string()
    })
    .await;
    // Several resyncs later (counted, not timed) it is still schedulable.
    let start = reconciles(addr).await;
    eventually_async(T, "four resyncs of both nodes", || async {
        reconciles(addr).await >= start + 8.0
    })
    .await;
    assert_ne!(get_node(&sim, "gpu-00000")["spec"]["unschedulable"], true);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_writes_nothing_over_several_resyncs() {
    let sim = start().await;
    seed_fleet(&sim, "gpu", "a", 20, |i| i % 5 == 0);
    sim.store()
        .create(policy(
            "fleet",
            "a",
            json!("50%"),
            &["Label", "Condition", "Taint"],
        ))
        .expect("policy created");
    let addr = free_addr();
    let mut cfg = config("c1");
    cfg.resync = Duration::from_millis(700);
    cfg.metrics_addr = Some(addr);
    let ctl = spawn_controller(&sim, cfg).await;
    eventually(T, "converged", || {
        let p = sim
            .store()
            .get(keys::API_VERSION, "GpuFleetPolicy", None, "fleet")
            .expect("policy");
        p["status"]["drifting"] == 4 && p["status"]["compliant"] == 16
    })
    .await;
    let writes = || {
        let m = sim.metrics();
        m.writes("nodes")
            + m.writes("nodegpubaselines")
            + m.writes("gpufleetpolicies")
            + m.writes("events")
    };
    // Settled: the last events and status pass of the convergence are in
    // once a whole resync of every node went by without a write.
    let deadline = tokio::time::Instant::now() + T;
    let mut before = writes();
    let mut quiet_from = reconciles(addr).await;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = writes();
        let seen = reconciles(addr).await;
        if now != before {
            before = now;
            quiet_from = seen;
        } else if seen >= quiet_from + 20.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "writes never stopped after convergence"
        );
    }
    let before = writes();
    // Four more resyncs of all 20 nodes (counted, not timed) write nothing.
    let start = reconciles(addr).await;
    eventually_async(T, "four resyncs", || async {
        reconciles(addr).await >= start + 80.0
    })
    .await;
    assert_eq!(writes(), before, "writes in steady state");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_and_never_touches_nodes() {
    dry_run_case("the policy says DryRun", "DryRun", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_dry_run_overrides_an_enforce_policy() {
    dry_run_case("the controller runs with --dry-run", "Enforce", true).await;
}

async fn dry_run_case(what: &str, mode: &str, controller_dry_run: bool) {
    let sim = start().await;
    seed_fleet(&sim, "gpu", "a", 4, |i| i < 2);
    let mut p = policy("fleet", "a", json!(1), &["Label", "Condition", "Taint"]);
    p["spec"]["mode"] = json!(mode);
    sim.store().create(p).expect("policy created");
    let ctl = spawn_controller(
        &sim,
        ControllerConfig {
            dry_run: controller_dry_run,
            ..config("c1")
        },
    )
    .await;
    eventually(T, "dry-run status", || {
        let p = sim
            .store()
            .get(keys::API_VERSION, "GpuFleetPolicy", None, "fleet")
            .expect("policy");
        p["status"]["drifting"] == 2 && p["status"]["dryRun"]["wouldTaint"].as_u64().is_some()
    })
    .await;
    eventually(T, "drifting verdict", || {
        get_baseline(&sim, "gpu-00000")["status"]["verdict"]["state"] == "Drifting"
    })
    .await;
    assert_eq!(sim.metrics().writes("nodes"), 0, "{what}: wrote to nodes");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_policy_releases_its_nodes() {
    let sim = start().await;
    seed_fleet(&sim, "gpu", "a", 2, |i| i == 1);
    sim.store()
        .create(policy(
            "fleet",
            "a",
            json!(1),
            &["Label", "Condition", "Taint"],
        ))
        .expect("policy created");
    let ctl = spawn_controller(&sim, config("c1")).await;
    eventually(T, "tainted", || {
        has_drift_taint(&get_node(&sim, "gpu-00001"))
    })
    .await;
    sim.store()
        .delete(keys::API_VERSION, "GpuFleetPolicy", None, "fleet")
        .expect("policy deleted");
    eventually(T, "released", || {
        (0..2).all(|i| {
            let n = get_node(&sim, &format!("gpu-{i:05}"));
            !has_drift_taint(&n)
                && condition_status(&n).is_none()
                && n["metadata"]["labels"]
                    .as_object()
                    .is_some_and(|l| !l.keys().any(|k| k.starts_with(keys::PREFIX)))
        })
    })
    .await;
    eventually(T, "unmanaged verdict", || {
        get_baseline(&sim, "gpu-00001")["status"]["verdict"]["state"] == "Unmanaged"
    })
    .await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_baseline_or_with_a_stale_one_is_unknown() {
    let sim = start().await;
    seed_fleet(&sim, "gpu", "a", 1, |_| false);
    sim.store().create(node("bare", "a")).expect("node");
    let mut stale = baseline("old", GOOD_DRIVER);
    stale["status"]["lastHeartbeatTime"] = json!("2020-01-01T00:00:00Z");
    sim.store().create(node("old", "a")).expect("node");
    sim.store().create(stale).expect("baseline");
    sim.store()
        .create(policy(
            "fleet",
            "a",
            json!(1),
            &["Label", "Condition", "Taint"],
        ))
        .expect("policy");
    let ctl = spawn_controller(&sim, config("c1")).await;
    eventually(T, "unknown nodes labelled", || {
        ["bare", "old"].iter().all(|n| {
            let n = get_node(&sim, n);
            label(&n, labels::COMPLIANT) == Some("unknown")
                && condition_status(&n).as_deref() == Some("Unknown")
                && !has_drift_taint(&n)
        })
    })
    .await;
    eventually(T, "unknown verdict", || {
        get_baseline(&sim, "old")["status"]["verdict"]["state"] == "Unknown"
    })
    .await;
    ctl.stop().await;
}

/// What `kubectl describe node` asks for: the node's events in every
/// namespace, by kind, name, uid and an empty `involvedObject.namespace`.
async fn describe_node_events(sim: &plumbline_sim::Sim, name: &str) -> Vec<CoreEvent> {
    let uid = get_node(sim, name)["metadata"]["uid"]
        .as_str()
        .expect("the node has a uid")
        .to_string();
    let events: Api<CoreEvent> = Api::all(sim.client().await);
    let fields = format!(
        "involvedObject.name={name},involvedObject.namespace=,involvedObject.kind=Node,involvedObject.uid={uid}"
    );
    events
        .list(&ListParams::default().fields(&fields))
        .await
        .expect("events listed")
        .items
}

async fn drift_event_case(events_namespace: &str) {
    let sim = start().await;
    if sim
        .store()
        .get("v1", "Namespace", None, events_namespace)
        .is_none()
    {
        sim.store()
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": events_namespace}}))
            .expect("namespace created");
    }
    seed_fleet(&sim, "gpu", "a", 2, |i| i == 1);
    sim.store()
        .create(policy(
            "fleet",
            "a",
            json!(1),
            &["Label", "Condition", "Taint"],
        ))
        .expect("policy created");
    let ctl = spawn_controller(
        &sim,
        ControllerConfig {
            events_namespace: events_namespace.to_string(),
            ..config("c1")
        },
    )
    .await;
    let deadline = tokio::time::Instant::now() + T;
    let found = loop {
        let found = describe_node_events(&sim, "gpu-00001").await;
        if found
            .iter()
            .any(|e| e.reason.as_deref() == Some(reasons::DRIFTING))
        {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no drift event as kubectl describe node finds them: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let drifting = found
        .iter()
        .find(|e| e.reason.as_deref() == Some(reasons::DRIFTING))
        .expect("found above");
    assert_eq!(
        drifting.metadata.namespace.as_deref(),
        Some(events_namespace)
    );
    assert_eq!(drifting.type_.as_deref(), Some("Warning"));
    assert_eq!(
        drifting.reporting_component.as_deref(),
        Some(keys::CONTROLLER_MANAGER)
    );
    assert_eq!(drifting.reporting_instance.as_deref(), Some("c1"));
    assert!(
        drifting
            .related
            .as_ref()
            .is_some_and(|r| r.kind.as_deref() == Some("GpuFleetPolicy")
                && r.name.as_deref() == Some("fleet")
                && r.namespace.is_none()),
        "the policy is named as related: {:?}",
        drifting.related
    );
    // The policy has the same event, naming the node.
    let on_policy: Api<CoreEvent> = Api::namespaced(sim.client().await, events_namespace);
    let listed = on_policy
        .list(&ListParams::default().fields(
            "involvedObject.kind=GpuFleetPolicy,involvedObject.name=fleet,involvedObject.namespace=",
        ))
        .await
        .expect("events listed");
    assert!(
        listed
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some(reasons::DRIFTING)
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("gpu-00001: "))),
        "{:?}",
        listed.items
    );
    // Nothing went anywhere else.
    let all: Api<CoreEvent> = Api::all(sim.client().await);
    let elsewhere: Vec<_> = all
        .list(&ListParams::default())
        .await
        .expect("events listed")
        .items
        .into_iter()
        .filter(|e| e.metadata.namespace.as_deref() != Some(events_namespace))
        .collect();
    assert!(elsewhere.is_empty(), "events elsewhere: {elsewhere:?}");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_events_go_to_default_where_kubectl_describe_node_finds_them() {
    drift_event_case("default").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_can_go_to_the_controllers_own_namespace_and_are_still_found() {
    drift_event_case("plumbline-system").await;
}
