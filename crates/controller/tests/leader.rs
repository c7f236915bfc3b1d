//! Two replicas: only the Lease holder writes; when it dies the other takes
//! over within the lease duration; a leader that loses the Lease stops
//! writing at once. Also checks `/metrics`, `/healthz` and `/readyz`.

mod common;

use common::*;
use plumbline_api::keys::labels;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn lease_holder(sim: &plumbline_sim::Sim) -> Option<String> {
    sim.store()
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            Some("default"),
            "plumbline-controller",
        )
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

async fn node_writes(addr: std::net::SocketAddr) -> f64 {
    let (_, body) = http_get(addr, "/metrics").await;
    sample(&body, "plumbline_controller_writes_total", "kind=\"node\"")
        + sample(
            &body,
            "plumbline_controller_writes_total",
            "kind=\"baseline_status\"",
        )
        + sample(
            &body,
            "plumbline_controller_writes_total",
            "kind=\"node_status\"",
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_the_standby_takes_over() {
    let sim = start().await;
    seed_fleet(&sim, "gpu", "a", 10, |i| i == 0);
    sim.store()
        .create(policy(
            "fleet",
            "a",
            json!(2),
            &["Label", "Condition", "Taint"],
        ))
        .expect("policy");
    let (addr_a, addr_b) = (free_addr(), free_addr());
    let mut cfg_a = config("replica-a");
    cfg_a.metrics_addr = Some(addr_a);
    let a = spawn_controller(&sim, cfg_a).await;
    eventually(T, "a leads", || {
        lease_holder(&sim).as_deref() == Some("replica-a")
    })
    .await;
    let mut cfg_b = config("replica-b");
    cfg_b.metrics_addr = Some(addr_b);
    let b = spawn_controller(&sim, cfg_b).await;

    eventually(T, "converged", || fleet_state(&sim) == (1, 10, 10)).await;
    // The standby is ready (warm caches) but not leading, and wrote nothing.
    eventually(T, "b ready", || {
        futures::executor::block_on(http_get(addr_b, "/readyz")).0 == 200
    })
    .await;
    assert_eq!(http_get(addr_b, "/healthz").await.0, 200);
    let (_, body_b) = http_get(addr_b, "/metrics").await;
    assert_eq!(sample(&body_b, "plumbline_controller_leader", ""), 0.0);
    let (_, body_a) = http_get(addr_a, "/metrics").await;
    assert_eq!(sample(&body_a, "plumbline_controller_leader", ""), 1.0);
    assert!(node_writes(addr_a).await > 0.0);
    // A drift while both run: still only a writes.
    set_driver(&sim, "gpu-00001", BAD_DRIVER);
    eventually(T, "second drift tainted", || fleet_state(&sim).0 == 2).await;
    assert_eq!(node_writes(addr_b).await, 0.0, "the standby wrote");

    // a crashes without releasing the Lease; b takes over within the lease
    // duration (2 s) plus a retry period.
    a.kill().await;
    let killed = tokio::time::Instant::now();
    set_driver(&sim, "gpu-00001", GOOD_DRIVER);
    eventually(Duration::from_secs(6), "b took over and untainted", || {
        let n = get_node(&sim, "gpu-00001");
        lease_holder(&sim).as_deref() == Some("replica-b")
            && label(&n, labels::COMPLIANT) == Some("true")
            && !has_drift_taint(&n)
    })
    .await;
    assert!(killed.elapsed() < Duration::from_secs(5));
    assert!(node_writes(addr_b).await > 0.0);
    b.stop().await;
    // A clean stop releases the Lease.
    assert_eq!(lease_holder(&sim), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_the_lease_stops_writing_at_once() {
    let sim = start().await;
    seed_fleet(&sim, "gpu", "a", 3, |_| false);
    sim.store()
        .create(policy(
            "fleet",
            "a",
            json!(2),
            &["Label", "Condition", "Taint"],
        ))
        .expect("policy");
    let a = spawn_controller(&sim, config("replica-a")).await;
    eventually(T, "converged", || fleet_state(&sim) == (0, 3, 3)).await;

    // Someone else takes the Lease (and keeps renewing it).
    let steal = |sim: &plumbline_sim::Sim| {
        let mut lease = sim
            .store()
            .get(
                "coordination.k8s.io/v1",
                "Lease",
                Some("default"),
                "plumbline-controller",
            )
            .expect("lease");
        lease["spec"]["holderIdentity"] = json!("intruder");
        lease["spec"]["renewTime"] = json!(
            jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
                .to_string()
        );
        lease["metadata"]["resourceVersion"] = serde_json::Value::Null;
        sim.store().update(lease).expect("lease stolen");
    };
    steal(&sim);
    // Let a notice (one retry period).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = sim.metrics().writes("nodes");
    set_driver(&sim, "gpu-00000", BAD_DRIVER);
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        steal(&sim);
    }
    assert_eq!(
        sim.metrics().writes("nodes"),
        before,
        "a wrote without the lease"
    );
    assert!(!has_drift_taint(&get_node(&sim, "gpu-00000")));
    // The intruder goes silent: a takes the Lease back and acts.
    eventually(T, "a leads again and taints", || {
        lease_holder(&sim).as_deref() == Some("replica-a")
            && has_drift_taint(&get_node(&sim, "gpu-00000"))
    })
    .await;
    a.stop().await;
}
