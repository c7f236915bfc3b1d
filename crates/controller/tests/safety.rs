//! The disruption budget holds on every committed write — during a mass
//! drift, across controller crashes, under API faults — and the fleet
//! converges afterwards.

mod common;

use common::*;
use plumbline_sim::Faults;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

const NODES: usize = 200;
/// 40% of the fleet.
const DRIFTING: usize = 80;
/// `maxUnavailable: 10%` of 200.
const BUDGET: usize = 20;

/// How long convergence may take: generous, for a loaded 2-core machine.
const T: Duration = Duration::from_secs(30);

fn limits() -> HashMap<String, usize> {
    HashMap::from([("a".to_string(), BUDGET)])
}

async fn fleet_with_policy() -> plumbline_sim::Sim {
    let sim = start().await;
    seed_fleet(&sim, "gpu", "a", NODES, |_| false);
    sim.store()
        .create(policy(
            "fleet",
            "a",
            json!("10%"),
            &["Label", "Condition", "Taint"],
        ))
        .expect("policy created");
    sim
}

fn drift(sim: &plumbline_sim::Sim, range: std::ops::Range<usize>, driver: &str) {
    for i in range {
        set_driver(sim, &format!("gpu-{i:05}"), driver);
    }
}

/// Converged: exactly the budget's worth of drifting nodes tainted, every
/// node labelled and every verdict written as its baseline says.
async fn converged(sim: &plumbline_sim::Sim, tainted: usize, timeout: Duration) {
    eventually_explained(
        timeout,
        "fleet converged",
        || fleet_state(sim) == (tainted, NODES, NODES),
        || fleet_report(sim),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_percent_drifting_at_once_never_exceeds_the_budget() {
    let sim = fleet_with_policy().await;
    let ctl = spawn_controller(&sim, config("c1")).await;
    converged(&sim, 0, T).await;
    let observer = BudgetObserver::start(&sim, limits());

    drift(&sim, 0..DRIFTING, BAD_DRIVER);
    converged(&sim, BUDGET, T).await;
    eventually(T, "held back in status", || {
        let p = sim
            .store()
            .get(
                plumbline_api::keys::API_VERSION,
                "GpuFleetPolicy",
                None,
                "fleet",
            )
            .expect("policy");
        p["status"]["heldBack"] == json!(DRIFTING - BUDGET)
            && p["status"]["budget"]["maxUnavailable"] == json!(BUDGET)
    })
    .await;

    // Ten tainted nodes are fixed: their slots go to held-back nodes.
    let tainted: Vec<String> = sim
        .store()
        .list("v1", "Node", None)
        .into_iter()
        .filter(has_drift_taint)
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .take(10)
        .collect();
    for name in &tainted {
        set_driver(&sim, name, GOOD_DRIVER);
    }
    converged(&sim, BUDGET, T).await;

    // Everything fixed: every taint goes.
    drift(&sim, 0..DRIFTING, GOOD_DRIVER);
    converged(&sim, 0, T).await;
    observer.assert_clean();
    assert_eq!(observer.peak("a"), BUDGET, "the budget was used in full");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_controller_every_few_seconds_never_exceeds_the_budget() {
    let sim = fleet_with_policy().await;
    let observer = BudgetObserver::start(&sim, limits());
    drift(&sim, 0..DRIFTING, BAD_DRIVER);
    for round in 0..5 {
        let ctl = spawn_controller(&sim, config(&format!("c{round}"))).await;
        // Churn while it runs: some nodes recover, others start drifting.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let shift = round * 7;
        drift(&sim, shift..shift + 7, GOOD_DRIVER);
        drift(&sim, DRIFTING + shift..DRIFTING + shift + 7, BAD_DRIVER);
        tokio::time::sleep(Duration::from_millis(1300)).await;
        // Crash (no lease release) or clean stop, alternately.
        if round % 2 == 0 {
            ctl.kill().await;
        } else {
            ctl.stop().await;
        }
    }
    // Back to the original 80 drifting nodes; one more controller converges.
    drift(&sim, 0..DRIFTING, BAD_DRIVER);
    drift(&sim, DRIFTING..NODES, GOOD_DRIVER);
    let ctl = spawn_controller(&sim, config("final")).await;
    converged(&sim, BUDGET, T).await;
    observer.assert_clean();
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_and_dropped_watches_never_exceed_the_budget() {
    let sim = fleet_with_policy().await;
    let observer = BudgetObserver::start(&sim, limits());
    sim.faults().set(Faults {
        error_rate: 0.1,
        throttle_rate: 0.1,
        retry_after_seconds: 0,
        conflict_rate: 0.15,
        watch_max_events: Some(40),
        expire_next: 3,
        ..Faults::default()
    });
    let ctl = spawn_controller(&sim, config("c1")).await;
    drift(&sim, 0..DRIFTING, BAD_DRIVER);
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Recoveries and new drift while the faults last.
    drift(&sim, 0..10, GOOD_DRIVER);
    drift(&sim, DRIFTING..DRIFTING + 10, BAD_DRIVER);
    tokio::time::sleep(Duration::from_secs(3)).await;
    sim.faults().clear();
    converged(&sim, BUDGET, T).await;
    observer.assert_clean();
    assert!(
        sim.metrics().count_code("patch", "nodes", 409) > 0,
        "conflicts were injected"
    );
    ctl.stop().await;
}

/// Two nodes and a budget of one; doubts settle by reading the node after
/// `settle`.
async fn two_nodes(
    settle: Duration,
) -> (
    plumbline_sim::Sim,
    Running,
    std::net::SocketAddr,
    BudgetObserver,
) {
    let sim = start().await;
    seed_fleet(&sim, "gpu", "a", 2, |_| false);
    sim.store()
        .create(policy(
            "fleet",
            "a",
            json!(1),
            &["Label", "Condition", "Taint"],
        ))
        .expect("policy created");
    let addr = free_addr();
    let mut cfg = config("c1");
    cfg.metrics_addr = Some(addr);
    cfg.in_doubt_settle = settle;
    let ctl = spawn_controller(&sim, cfg).await;
    eventually(T, "labelled", || fleet_state(&sim) == (0, 2, 2)).await;
    let observer = BudgetObserver::start(&sim, HashMap::from([("a".to_string(), 1)]));
    (sim, ctl, addr, observer)
}

/// Every Node patch is answered 500, which the emulator never applies.
fn fail_node_writes(sim: &plumbline_sim::Sim) {
    sim.faults().set(Faults {
        error_rate: 1.0,
        resources: vec!["nodes".to_string()],
        verbs: vec!["patch".to_string()],
        ..Faults::default()
    });
}

async fn nodes_in_doubt(addr: std::net::SocketAddr) -> f64 {
    let (_, body) = http_get(addr, "/metrics").await;
    sample(&body, "plumbline_controller_nodes_in_doubt", "")
}

fn admin_cordon(sim: &plumbline_sim::Sim, name: &str, on: bool) {
    sim.store()
        .merge_patch(
            "v1",
            "Node",
            None,
            name,
            &json!({"spec": {"unschedulable": if on { json!(true) } else { json!(null) }}}),
            false,
        )
        .expect("cordon changed");
}

/// A drifting node waits for budget with its labels and condition already
/// written; when the slot frees, the one write left, the taint, fails with
/// 500. Its own doubt now fills the budget of one and there is nothing
/// else to write to it, so no new version will settle the doubt. Once the
/// API answers again it is tainted all the same, long before the doubt
/// could settle by time: its retry may use the unit its doubt holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taint_whose_write_failed_is_retried_within_its_own_unit() {
    let (sim, ctl, addr, observer) = two_nodes(Duration::from_secs(3600)).await;
    // An admin's cordon fills the budget; the drifting node is held back.
    admin_cordon(&sim, "gpu-00000", true);
    eventually(T, "the controller counts the cordon", || {
        let p = sim
            .store()
            .get(
                plumbline_api::keys::API_VERSION,
                "GpuFleetPolicy",
                None,
                "fleet",
            )
            .expect("policy");
        p["status"]["budget"]["unavailable"] == json!(1)
    })
    .await;
    set_driver(&sim, "gpu-00001", BAD_DRIVER);
    eventually_explained(
        T,
        "labelled drifting, held back",
        || {
            let n = get_node(&sim, "gpu-00001");
            label(&n, plumbline_api::keys::labels::COMPLIANT) == Some("false")
                && condition_status(&n).as_deref() == Some("False")
                && !has_drift_taint(&n)
        },
        || format!("{:#}", get_node(&sim, "gpu-00001")),
    )
    .await;
    fail_node_writes(&sim);
    admin_cordon(&sim, "gpu-00000", false);
    eventually_async(T, "the failed taint write is in doubt", || async {
        nodes_in_doubt(addr).await == 1.0
    })
    .await;
    sim.faults().clear();
    eventually(T, "the drifting node tainted", || {
        has_drift_taint(&get_node(&sim, "gpu-00001"))
    })
    .await;
    eventually_async(T, "no doubt left", || async {
        nodes_in_doubt(addr).await == 0.0
    })
    .await;
    assert!(!has_drift_taint(&get_node(&sim, "gpu-00000")));
    observer.assert_clean();
    ctl.stop().await;
}

/// The write that taints a node fails with 500, then the node recovers:
/// nothing is left to write to it, so no watch event will ever settle its
/// doubt. A read of the node from the API does, and the slot it held goes
/// to the next node that drifts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubt_with_nothing_left_to_write_is_settled_by_reading_the_node() {
    let (sim, ctl, addr, observer) = two_nodes(Duration::from_secs(1)).await;
    fail_node_writes(&sim);
    set_driver(&sim, "gpu-00001", BAD_DRIVER);
    eventually_async(T, "the failed taint write is in doubt", || async {
        nodes_in_doubt(addr).await == 1.0
    })
    .await;
    set_driver(&sim, "gpu-00001", GOOD_DRIVER);
    sim.faults().clear();
    set_driver(&sim, "gpu-00000", BAD_DRIVER);
    eventually_explained(
        T,
        "the slot went to the node that drifted next",
        || fleet_state(&sim) == (1, 2, 2) && has_drift_taint(&get_node(&sim, "gpu-00000")),
        || fleet_report(&sim),
    )
    .await;
    eventually_async(T, "no doubt left", || async {
        nodes_in_doubt(addr).await == 0.0
    })
    .await;
    observer.assert_clean();
    ctl.stop().await;
}
