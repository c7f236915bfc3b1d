//! Two replicas: only the Lease holder writes; when it dies the other takes
//! over within the lease duration; a leader that loses the Lease stops
//! writing at once. Also checks `/metrics`, `/healthz` and `/readyz`.

mod common;

use common::*;
use plumbline_api::keys::labels;
use serde_json::json;
use std::time::Duration;

/// Generous: a loaded 2-core CI machine runs several emulators at once.
const T: Duration = Duration::from_secs(30);

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

    // a crashes without releasing the Lease; once the lease has run out
    // (2 s of silence, as b sees it), b takes over and acts. How fast is a
    // matter of lease timing, not of this test: it only waits, generously.
    a.kill().await;
    set_driver(&sim, "gpu-00001", GOOD_DRIVER);
    eventually(T, "b took over and untainted", || {
        let n = get_node(&sim, "gpu-00001");
        lease_holder(&sim).as_deref() == Some("replica-b")
            && label(&n, labels::COMPLIANT) == Some("true")
            && !has_drift_taint(&n)
    })
    .await;
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
    let addr = free_addr();
    let mut cfg = config("replica-a");
    cfg.metrics_addr = Some(addr);
    let a = spawn_controller(&sim, cfg).await;
    eventually(T, "converged", || fleet_state(&sim) == (0, 3, 3)).await;

    // Someone else takes the Lease for `secs` seconds.
    let steal = |sim: &plumbline_sim::Sim, secs: i64| {
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
        lease["spec"]["leaseDurationSeconds"] = json!(secs);
        lease["spec"]["renewTime"] = json!(
            jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
                .to_string()
        );
        lease["metadata"]["resourceVersion"] = serde_json::Value::Null;
        sim.store().update(lease).expect("lease stolen");
    };
    // An hour: however slow this machine, a cannot get it back during
    // the check below.
    steal(&sim, 3600);
    eventually_async(T, "a stepped down", || async {
        let (_, body) = http_get(addr, "/metrics").await;
        sample(&body, "plumbline_controller_leader", "") == 0.0
    })
    .await;
    let before = sim.metrics().writes("nodes");
    set_driver(&sim, "gpu-00000", BAD_DRIVER);
    // A leader would taint within a few batches; a gets eight retry periods.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sim.metrics().writes("nodes"),
        before,
        "a wrote without the lease"
    );
    assert!(!has_drift_taint(&get_node(&sim, "gpu-00000")));
    // The intruder lets its lease run out: a takes it back and acts.
    steal(&sim, 1);
    eventually(T, "a leads again and taints", || {
        lease_holder(&sim).as_deref() == Some("replica-a")
            && has_drift_taint(&get_node(&sim, "gpu-00000"))
    })
    .await;
    a.stop().await;
}
