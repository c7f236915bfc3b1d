//! kube-runtime against the emulator: watchers (list-then-watch and
//! streaming lists), reflectors, a Controller, the event Recorder, lease
//! leader election, and recovery from injected faults.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Node};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{CustomResource, Resource, ResourceExt};
use plumbline_sim::Faults;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "sim.plumbline.dev",
    version = "v1alpha1",
    kind = "GpuBaseline",
    status = "GpuBaselineStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct GpuBaselineSpec {
    node_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kernel_module: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct GpuBaselineStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verdict: Option<String>,
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    // 30 s: generous, because CI machines are small and busy.
    for _ in 0..600 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn watcher_sees_all(streaming: bool) {
    let sim = start().await;
    sim.store().create(node("pre")).expect("seed");
    let nodes: Api<Node> = Api::all(sim.client().await);
    let cfg = if streaming {
        watcher::Config::default().streaming_lists()
    } else {
        watcher::Config::default()
    };
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    let task = tokio::spawn(async move {
        let mut stream = watcher(nodes, cfg)
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Ok(Some(n)) = stream.try_next().await {
            s2.lock().expect("lock").push(n.name_any());
        }
    });
    eventually("initial node", || {
        seen.lock().expect("lock").contains(&"pre".to_string())
    })
    .await;
    for i in 0..5 {
        sim.store()
            .create(node(&format!("new{i}")))
            .expect("create");
    }
    eventually("new nodes", || {
        let s = seen.lock().expect("lock");
        (0..5).all(|i| s.contains(&format!("new{i}")))
    })
    .await;
    let watches = if streaming {
        sim.metrics().count("watch", "nodes")
    } else {
        sim.metrics().count("list", "nodes") + sim.metrics().count("watch", "nodes")
    };
    assert!(watches >= 1);
    if streaming {
        assert_eq!(
            sim.metrics().count("list", "nodes"),
            0,
            "streaming lists never LIST"
        );
    }
    task.abort();
    sim.shutdown().await;
}

#[tokio::test]
async fn watcher_list_then_watch() {
    watcher_sees_all(false).await;
}

#[tokio::test]
async fn watcher_streaming_lists() {
    watcher_sees_all(true).await;
}

#[tokio::test]
async fn reflector_recovers_from_cut_watches_and_expired_versions() {
    let sim = start().await;
    for i in 0..5 {
        sim.store().create(node(&format!("r{i}"))).expect("seed");
    }
    // Every watch ends after 2 events, and the first re-watch gets 410.
    sim.faults().update(|f| {
        f.watch_max_events = Some(2);
        f.expire_next = 1;
    });
    let nodes: Api<Node> = Api::all(sim.client().await);
    let (reader, writer) = reflector::store::<Node>();
    let task = tokio::spawn(async move {
        let stream = reflector(writer, watcher(nodes, watcher::Config::default()))
            .default_backoff()
            .applied_objects();
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    eventually("initial sync", || reader.state().len() == 5).await;

    // Rounds are spaced so that they straddle the watcher's back-off
    // after the 410, and later ones reach re-established (and cut) watches.
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..5 {
            sim.store()
                .merge_patch(
                    "v1",
                    "Node",
                    None,
                    &format!("r{i}"),
                    &json!({"metadata": {"labels": {"round": round.to_string()}}}),
                    false,
                )
                .expect("patch");
        }
        if round == 3 {
            sim.store().compact("v1", "Node").expect("compact");
        }
    }
    sim.store().create(node("late")).expect("create");
    eventually("reflector converges", || {
        let st = reader.state();
        st.len() == 6
            && st
                .iter()
                .filter(|n| n.name_any() != "late")
                .all(|n| n.labels().get("round").map(String::as_str) == Some("5"))
    })
    .await;
    // More events than a watch may carry: the open watch is cut and re-made.
    for i in 0..3 {
        sim.store()
            .merge_patch(
                "v1",
                "Node",
                None,
                "r0",
                &json!({"metadata": {"labels": {"extra": i.to_string()}}}),
                false,
            )
            .expect("patch");
    }
    let metrics = sim.metrics();
    eventually("a cut watch is re-established", || {
        metrics.count("watch", "nodes") >= 3
    })
    .await;
    eventually("the reflector sees the last patch", || {
        reader.state().iter().any(|n| {
            n.name_any() == "r0" && n.labels().get("extra").map(String::as_str) == Some("2")
        })
    })
    .await;
    assert!(
        sim.metrics().count("list", "nodes") >= 2,
        "a 410 forced a re-list"
    );
    task.abort();
    sim.shutdown().await;
}

struct Ctx {
    client: kube::Client,
}

#[derive(Debug, thiserror::Error)]
#[error("reconcile: {0}")]
struct ReconcileError(#[from] kube::Error);

async fn reconcile(obj: Arc<GpuBaseline>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let api: Api<GpuBaseline> = Api::all(ctx.client.clone());
    let verdict = if obj.spec.kernel_module.as_deref() == Some("open") {
        "Compliant"
    } else {
        "Drifting"
    };
    if obj.status.as_ref().and_then(|s| s.verdict.as_deref()) != Some(verdict) {
        api.patch_status(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"verdict": verdict}})),
        )
        .await?;
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<GpuBaseline>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

#[tokio::test]
async fn controller_reconciles_custom_resources_through_faults() {
    let sim = start_with_fixture().await;
    let client = sim.client().await;
    let api: Api<GpuBaseline> = Api::all(client.clone());
    for i in 0..6 {
        let module = if i % 2 == 0 { "open" } else { "proprietary" };
        let gb = GpuBaseline::new(
            &format!("gpu-{i}"),
            GpuBaselineSpec {
                node_name: format!("gpu-{i}"),
                kernel_module: Some(module.into()),
            },
        );
        api.create(&PostParams::default(), &gb)
            .await
            .expect("create");
    }
    // A third of status writes fail at first; the controller retries.
    sim.faults().set(Faults {
        error_rate: 0.3,
        verbs: vec!["patch".into()],
        ..Faults::default()
    });
    let ctx = Arc::new(Ctx {
        client: client.clone(),
    });
    let task = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    let store = sim.store();
    eventually("all reconciled", || {
        (0..6).all(|i| {
            store
                .get(
                    "sim.plumbline.dev/v1alpha1",
                    "GpuBaseline",
                    None,
                    &format!("gpu-{i}"),
                )
                .and_then(|o| o["status"]["verdict"].as_str().map(String::from))
                == Some(if i % 2 == 0 {
                    "Compliant".into()
                } else {
                    "Drifting".into()
                })
        })
    })
    .await;
    sim.faults().clear();
    // A spec change is reconciled too.
    api.patch(
        "gpu-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"kernelModule": "open"}})),
    )
    .await
    .expect("patch");
    eventually("changed object reconciled", || {
        store
            .get("sim.plumbline.dev/v1alpha1", "GpuBaseline", None, "gpu-1")
            .is_some_and(|o| o["status"]["verdict"] == "Compliant")
    })
    .await;
    task.abort();
    sim.shutdown().await;
}

#[tokio::test]
async fn recorder_events_read_back_as_core_events() {
    let sim = start().await;
    let client = sim.client().await;
    let n = sim.store().create(node("ev-node")).expect("node");
    let node: Node = serde_json::from_value(n).expect("node");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "plumbline-controller".into(),
            instance: Some("test".into()),
        },
    );
    let ev = Event {
        type_: EventType::Warning,
        reason: "DriftDetected".into(),
        note: Some("driver 570 is below the policy minimum 580".into()),
        action: "Taint".into(),
        secondary: None,
    };
    let reference = node.object_ref(&());
    recorder.publish(&ev, &reference).await.expect("publish");
    recorder
        .publish(&ev, &reference)
        .await
        .expect("publish again (series patch)");

    let events: Api<CoreEvent> = Api::all(client);
    let uid = node.uid().expect("uid");
    let found = events
        .list(&ListParams::default().fields(&format!(
            "involvedObject.kind=Node,involvedObject.name=ev-node,involvedObject.uid={uid}"
        )))
        .await
        .expect("list core events");
    assert_eq!(found.items.len(), 1);
    let e = &found.items[0];
    assert_eq!(e.reason.as_deref(), Some("DriftDetected"));
    assert_eq!(
        e.message.as_deref(),
        Some("driver 570 is below the policy minimum 580")
    );
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(
        e.reporting_component.as_deref(),
        Some("plumbline-controller")
    );
    assert_eq!(e.count, Some(2), "the series count reads as the core count");
    sim.shutdown().await;
}

/// One round of lease-based election: take the lease if free or expired,
/// renew it if held, using resourceVersion preconditions throughout.
async fn try_acquire(api: &Api<Lease>, me: &str, duration_secs: i32) -> bool {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    );
    match api.get_opt("plumbline-leader").await.expect("get lease") {
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": "plumbline-leader"},
                "spec": {"holderIdentity": me, "leaseDurationSeconds": duration_secs,
                         "acquireTime": now, "renewTime": now}
            }))
            .expect("lease");
            api.create(&PostParams::default(), &lease).await.is_ok()
        }
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_default();
            let holder = spec.holder_identity.clone().unwrap_or_default();
            let expired = spec.renew_time.as_ref().is_none_or(|t| {
                k8s_openapi::jiff::Timestamp::now().as_millisecond() - t.0.as_millisecond()
                    > i64::from(duration_secs) * 1000
            });
            if holder != me && !expired {
                return false;
            }
            spec.holder_identity = Some(me.into());
            spec.renew_time = Some(now);
            // replace() sends the resourceVersion we read: a racing writer gets 409.
            api.replace("plumbline-leader", &PostParams::default(), &lease)
                .await
                .is_ok()
        }
    }
}

#[tokio::test]
async fn lease_leader_election_with_optimistic_concurrency() {
    let sim = start().await;
    let api: Api<Lease> = Api::namespaced(sim.client().await, "kube-system");
    // A 5 s lease: long enough that a busy machine cannot let it lapse
    // between the renewal and the other candidate's attempt.
    let (a, b) = tokio::join!(try_acquire(&api, "a", 5), try_acquire(&api, "b", 5));
    assert!(a ^ b, "exactly one candidate wins the race (a={a}, b={b})");
    let (leader, other) = if a { ("a", "b") } else { ("b", "a") };
    assert!(try_acquire(&api, leader, 5).await, "the leader renews");
    assert!(
        !try_acquire(&api, other, 5).await,
        "the other waits while the lease is fresh"
    );
    tokio::time::sleep(Duration::from_millis(5300)).await;
    assert!(
        try_acquire(&api, other, 5).await,
        "the lease expired and changes hands"
    );
    let l = api.get("plumbline-leader").await.expect("lease");
    assert_eq!(
        l.spec.and_then(|s| s.holder_identity).as_deref(),
        Some(other)
    );
    assert!(sim.metrics().count_code("update", "leases", 409) <= 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_errors_throttling_conflicts_latency_and_pause() {
    let sim = start().await;
    sim.store().create(node("f1")).expect("seed");
    let nodes: Api<Node> = Api::all(sim.client().await);
    let status_of = |e: kube::Error| match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected API error, got {other:?}"),
    };

    sim.faults().set(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(status_of(nodes.get("f1").await.expect_err("500")), 500);

    sim.faults().set(Faults {
        throttle_rate: 1.0,
        retry_after_seconds: 7,
        ..Faults::default()
    });
    let (code, head, body) = raw_request(sim.addr(), "GET", "/api/v1/nodes/f1", &[], "").await;
    assert_eq!(code, 429, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 7"),
        "{head}"
    );

    sim.faults().set(Faults {
        conflict_rate: 1.0,
        ..Faults::default()
    });
    nodes.get("f1").await.expect("reads are not conflicted");
    let e = nodes
        .patch(
            "f1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect_err("409");
    assert_eq!(status_of(e), 409);

    sim.faults().set(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let t = std::time::Instant::now();
    nodes.get("f1").await.expect("slow get");
    assert!(t.elapsed() >= Duration::from_millis(300));

    sim.faults().set(Faults::default());
    sim.faults().pause();
    let n2 = nodes.clone();
    let pending = tokio::spawn(async move { n2.get("f1").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "requests hang while paused");
    // The fault endpoint itself still answers while paused.
    let (code, _, body) = raw_request(sim.addr(), "GET", "/sim/faults", &[], "").await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json")["paused"],
        true
    );
    let (code, _, _) = raw_request(
        sim.addr(),
        "PUT",
        "/sim/faults",
        &[("Content-Type", "application/json")],
        r#"{"paused": false}"#,
    )
    .await;
    assert_eq!(code, 200);
    pending
        .await
        .expect("join")
        .expect("completes after resume");
    assert!(!sim.faults().get().paused);

    // drop_watches() ends open watches at once.
    let addr = sim.addr();
    let open = tokio::spawn(async move {
        raw_request(
            addr,
            "GET",
            "/api/v1/nodes?watch=1&timeoutSeconds=30",
            &[],
            "",
        )
        .await
    });
    eventually("the watch to open", || {
        sim.metrics().watches_active("nodes") == 1
    })
    .await;
    sim.faults().drop_watches();
    let (code, _, body) = tokio::time::timeout(Duration::from_secs(5), open)
        .await
        .expect("watch ended")
        .expect("join");
    assert_eq!(code, 200);
    assert!(body.contains("\"ADDED\""), "{body}");

    // Watches cut after N seconds end cleanly.
    sim.faults().set(Faults {
        watch_max_seconds: Some(0.3),
        ..Faults::default()
    });
    let t = std::time::Instant::now();
    let (code, _, _) = raw_request(
        sim.addr(),
        "GET",
        "/api/v1/nodes?watch=1&timeoutSeconds=30",
        &[],
        "",
    )
    .await;
    assert_eq!(code, 200);
    // Cut long before the 30 s the client asked for.
    assert!(t.elapsed() < Duration::from_secs(15));
    sim.shutdown().await;
}

#[tokio::test]
async fn metrics_count_exactly_what_clients_did() {
    let sim = start().await;
    sim.store().create(node("m1")).expect("seed");
    let nodes: Api<Node> = Api::all(sim.client().await);
    let mut commits = sim.subscribe();
    sim.metrics().reset();
    for _ in 0..3 {
        nodes.get("m1").await.expect("get");
    }
    nodes.list(&ListParams::default()).await.expect("list");
    for i in 0..2 {
        nodes
            .patch(
                "m1",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"i": i.to_string()}}})),
            )
            .await
            .expect("patch");
    }
    nodes.get("missing").await.expect_err("404");
    let m = sim.metrics();
    assert_eq!(m.count("get", "nodes"), 4);
    assert_eq!(m.count_code("get", "nodes", 404), 1);
    assert_eq!(m.count("list", "nodes"), 1);
    assert_eq!(m.count("patch", "nodes"), 2);
    assert_eq!(m.writes("nodes"), 2);
    assert_eq!(m.total(), 7);

    let c = commits.recv().await.expect("commit");
    assert_eq!((c.verb.as_str(), c.resource.as_str()), ("patch", "nodes"));
    assert_eq!(c.event, plumbline_sim::EventType::Modified);

    let (_, _, text) = raw_request(sim.addr(), "GET", "/metrics", &[], "").await;
    assert!(text.contains("apiserver_request_total{code=\"200\",resource=\"nodes\",subresource=\"\",verb=\"GET\"} 3"), "{text}");
    assert!(text.contains(
        "apiserver_request_total{code=\"200\",resource=\"nodes\",subresource=\"\",verb=\"PATCH\"} 2"
    ));
    assert!(text.contains("sim_objects{resource=\"nodes\"} 1"));
    assert!(text.contains("sim_watch_events_sent_total"));
    sim.shutdown().await;
}
