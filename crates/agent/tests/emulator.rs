//! The agent against the Kubernetes API emulator: what it publishes, how
//! fast changes arrive, what it costs when idle, how it survives faults.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use plumbline_agent::{SharedMetrics, StaticProbe};
use plumbline_api::{Observed, ProbeResult, ProbeStatus, keys};
use plumbline_probe::HostRoot;
use plumbline_sim::Faults;
use serde_json::{Value, json};

const NODE: &str = "gpu-node-1";
const H100: &str = "hgx-h100-580-open";

/// The observation the probes make of `root` directly, as JSON.
fn probed(root: &std::path::Path) -> (Value, Vec<ProbeResult>) {
    let host = HostRoot::new(root).expect("host root");
    let options = plumbline_probe::Options {
        nvml: false,
        ..plumbline_probe::Options::default()
    };
    let (observed, probes) = plumbline_probe::probe_host(&host, &options);
    (serde_json::to_value(observed).expect("serializes"), probes)
}

/// JSON without nulls (what a merge patch leaves on the server).
fn no_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, no_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(no_nulls).collect()),
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_a_fixture_host_owned_by_its_node_and_goes_with_the_node() {
    let host = host_copy(H100);
    let sim = sim_with_node(NODE).await;
    let node_uid = sim
        .store()
        .get("v1", "Node", None, NODE)
        .and_then(|n| n["metadata"]["uid"].as_str().map(String::from))
        .expect("node has a uid");
    let mut cfg = config(NODE, host.path());
    cfg.heartbeat_interval = Duration::from_secs(1);
    let agent = Agent::start(cfg, sim.client().await);

    let ngb = published(&sim, NODE).await;
    assert_eq!(ngb["spec"]["nodeName"], NODE);
    let owners = ngb["metadata"]["ownerReferences"]
        .as_array()
        .expect("ownerReferences set");
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0]["apiVersion"], "v1");
    assert_eq!(owners[0]["kind"], "Node");
    assert_eq!(owners[0]["name"], NODE);
    assert_eq!(owners[0]["uid"], node_uid.as_str());

    // What the API holds is exactly what the probes see on that host.
    let (observed, probes) = probed(host.path());
    assert_eq!(ngb["status"]["observed"], no_nulls(observed));
    assert_eq!(ngb["status"]["observed"]["driver"]["version"], "580.95.05");
    let names: Vec<&str> = ngb["status"]["probes"]
        .as_array()
        .expect("probes listed")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    let want: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, want);
    assert_eq!(ngb["status"]["agentVersion"], env!("CARGO_PKG_VERSION"));
    assert!(ngb["status"]["lastHeartbeatTime"].is_string());
    assert_eq!(
        ngb["status"]["summary"]["gpus"], "8x H100 80GB HBM3",
        "summary for printer columns: {}",
        ngb["status"]["summary"]
    );
    let probed_cond = ngb["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == keys::conditions::PROBED))
        .expect("Probed condition");
    assert_eq!(probed_cond["status"], "True", "{probed_cond}");
    assert_eq!(
        ngb["metadata"]["managedFields"]
            .as_array()
            .map(|m| m.iter().all(|f| f["manager"] == keys::AGENT_MANAGER)),
        Some(true),
        "every write is made as {}: {}",
        keys::AGENT_MANAGER,
        ngb["metadata"]["managedFields"]
    );

    // Deleting the Node takes the baseline with it, and the agent does not
    // bring it back for a Node that is gone.
    sim.store()
        .delete("v1", "Node", None, NODE)
        .expect("node deleted");
    wait_for(Duration::from_secs(30), "garbage collection", || {
        baseline(&sim, NODE).is_none().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        baseline(&sim, NODE).is_none(),
        "no baseline for a deleted Node"
    );
    assert!(agent.is_running(), "a missing Node is retried, not fatal");

    // The Node comes back (same name, new uid): so does its baseline.
    let node = add_node(&sim, NODE);
    let ngb = wait_for(Duration::from_secs(30), "the baseline to return", || {
        baseline(&sim, NODE).filter(|b| status_field(b, "/observedHash").is_some())
    })
    .await;
    assert_eq!(
        ngb["metadata"]["ownerReferences"][0]["uid"],
        node["metadata"]["uid"]
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_cdi_and_module_changes_reach_the_api_within_two_seconds() {
    let host = host_copy(H100);
    let root = host.path().to_path_buf();
    let sim = sim_with_node(NODE).await;
    let agent = Agent::start(config(NODE, &root), sim.client().await);
    published(&sim, NODE).await;
    let limit = Duration::from_secs(2);
    let observed = |pointer: &str| {
        baseline(&sim, NODE).and_then(|b| b.pointer(&format!("/status/observed{pointer}")).cloned())
    };

    // 1. A runtime reconfiguration: containerd's default runtime changes.
    let dropin = root.join("etc/containerd/conf.d/99-nvidia.toml");
    let text = std::fs::read_to_string(&dropin).expect("fixture drop-in");
    std::fs::write(
        &dropin,
        text.replace(
            "default_runtime_name = \"nvidia\"",
            "default_runtime_name = \"runc\"",
        ),
    )
    .expect("edit drop-in");
    let took = time_until(limit, || {
        observed("/runtimes/0/defaultRuntime") == Some(json!("runc"))
    })
    .await;
    assert!(took.is_some(), "containerd change not published within 2 s");

    // 2. A regenerated CDI spec (written beside and renamed over).
    let spec = root.join("run/cdi/nvidia.yaml");
    replace_file(
        &spec,
        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n  containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\ncontainerEdits:\n  env:\n  - NVIDIA_VISIBLE_DEVICES=void\n",
    );
    let took = time_until(limit, || {
        observed("/cdi/specs/0/devices") == Some(json!(["0"]))
    })
    .await;
    assert!(took.is_some(), "CDI spec change not published within 2 s");

    // 3. A driver reload: the loaded module's version changes (procfs and
    // sysfs, which are polled, not watched).
    std::fs::write(root.join("sys/module/nvidia/version"), "580.105.08\n").expect("write");
    let proc_version = root.join("proc/driver/nvidia/version");
    let text = std::fs::read_to_string(&proc_version).expect("fixture version");
    std::fs::write(&proc_version, text.replace("580.95.05", "580.105.08")).expect("write");
    let took = time_until(limit, || {
        observed("/driver/version") == Some(json!("580.105.08"))
    })
    .await;
    assert!(took.is_some(), "module change not published within 2 s");

    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_only_writes_heartbeats() {
    let host = host_copy(H100);
    let sim = sim_with_node(NODE).await;
    let shared = SharedMetrics::new();
    let mut cfg = config(NODE, host.path());
    cfg.heartbeat_interval = Duration::from_secs(1);
    cfg.metrics = Some(shared.clone());
    let client = sim.client().await;
    let agent = Agent::start(cfg, client.clone());
    let first = published(&sim, NODE).await;
    let hash = first["status"]["observedHash"].clone();
    sim.metrics().reset();
    let quiet_since = std::time::Instant::now();

    // Several heartbeat periods with nothing changing on the host. A loaded
    // machine may delay a heartbeat, so wait for three rather than for a
    // fixed time, then bound the count by the time that really passed.
    wait_for(Duration::from_secs(30), "three heartbeats", || {
        (sim.metrics().writes(NGB_RESOURCE) >= 3).then_some(())
    })
    .await;

    // Count from the emulator's /metrics, as an operator would.
    let (code, text) = http_get(sim.addr(), "/metrics").await;
    let elapsed = quiet_since.elapsed();
    assert_eq!(code, 200);
    let writes = count_requests(
        &text,
        NGB_RESOURCE,
        &["verb=\"PATCH\"", "subresource=\"status\""],
    );
    let all = count_requests(&text, NGB_RESOURCE, &[]);
    let nodes = count_requests(&text, "nodes", &[]);
    // At most one heartbeat per period, plus the one that may have been
    // due when counting started.
    let most = elapsed.as_secs() + 2;
    assert!(
        (3..=most).contains(&writes),
        "one heartbeat a second over {elapsed:?}, got {writes}:\n{text}"
    );
    assert_eq!(all, writes, "no reads, creates or other writes: {text}");
    assert_eq!(
        nodes, 0,
        "the Node is not read again once the baseline exists"
    );

    let now = baseline(&sim, NODE).expect("baseline");
    assert_eq!(now["status"]["observedHash"], hash, "nothing changed");
    assert_ne!(
        now["status"]["lastHeartbeatTime"], first["status"]["lastHeartbeatTime"],
        "the heartbeat moved"
    );
    let text = shared.encode();
    assert!(
        text.contains("plumbline_agent_publishes_total{reason=\"create\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("reason=\"change\""),
        "no change publishes on an idle host: {text}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_verdict_survives_agent_publishes() {
    let host = host_copy(H100);
    let root = host.path().to_path_buf();
    let sim = sim_with_node(NODE).await;
    let mut cfg = config(NODE, &root);
    cfg.heartbeat_interval = Duration::from_secs(1);
    let agent = Agent::start(cfg, sim.client().await);
    published(&sim, NODE).await;

    // The controller writes its verdict.
    let verdict = json!({
        "state": "Drifting",
        "policy": "prod-h100",
        "findings": [{"rule": keys::rules::DRIVER_VERSION, "expected": "580.105.08",
                      "observed": "580.95.05", "message": "driver is older than the policy allows"}]
    });
    sim.store()
        .merge_patch(
            NGB_API,
            NGB_KIND,
            None,
            NODE,
            &json!({"status": {"verdict": verdict}}),
            true,
        )
        .expect("controller writes verdict");

    // The host changes (a change publish) and time passes (heartbeats).
    std::fs::write(root.join("sys/module/nvidia/version"), "580.105.08\n").expect("write");
    let proc_version = root.join("proc/driver/nvidia/version");
    let text = std::fs::read_to_string(&proc_version).expect("fixture version");
    std::fs::write(&proc_version, text.replace("580.95.05", "580.105.08")).expect("write");
    wait_for(Duration::from_secs(30), "the change publish", || {
        baseline(&sim, NODE)
            .filter(|b| b["status"]["observed"]["driver"]["version"] == "580.105.08")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let ngb = baseline(&sim, NODE).expect("baseline");
    assert_eq!(ngb["status"]["verdict"], verdict, "verdict untouched");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_from_errors_throttling_conflicts_and_a_paused_server() {
    let host = host_copy(H100);
    let root = host.path().to_path_buf();
    let sim = sim_with_node(NODE).await;
    let shared = SharedMetrics::new();
    let mut cfg = config(NODE, &root);
    cfg.heartbeat_interval = Duration::from_secs(1);
    cfg.api_timeout = Duration::from_millis(700);
    cfg.metrics = Some(shared.clone());
    let agent = Agent::start(cfg, sim.client().await);
    published(&sim, NODE).await;
    let verdict = json!({"state": "Compliant", "policy": "prod"});
    sim.store()
        .merge_patch(
            NGB_API,
            NGB_KIND,
            None,
            NODE,
            &json!({"status": {"verdict": verdict}}),
            true,
        )
        .expect("verdict written");

    let proc_text =
        std::fs::read_to_string(root.join("proc/driver/nvidia/version")).expect("fixture version");
    let set_version = |v: &str| set_module_version(&root, &proc_text, v);

    // Every request fails for a while: the agent backs off and retries.
    sim.faults().set(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    set_version("580.105.01");
    tokio::time::sleep(Duration::from_millis(2000)).await;

    // A third of the requests fail, a third of the rest are throttled (which
    // kube's client retries itself), a third of the writes conflict, and
    // watches are cut after one event (the agent opens none).
    sim.faults().set(Faults {
        error_rate: 0.3,
        throttle_rate: 0.3,
        conflict_rate: 0.3,
        watch_max_events: Some(1),
        ..Faults::default()
    });
    for v in ["580.105.02", "580.105.03"] {
        set_version(v);
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }

    // Then the server stops answering altogether while the host changes.
    sim.faults().set(Faults {
        paused: true,
        ..Faults::default()
    });
    set_version("580.105.04");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    set_version("580.105.05");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(agent.is_running(), "the agent rides out the outage");
    sim.faults().set(Faults::default());

    let ngb = wait_for(
        Duration::from_secs(30),
        "the latest state after the outage",
        || {
            baseline(&sim, NODE)
                .filter(|b| b["status"]["observed"]["driver"]["version"] == "580.105.05")
        },
    )
    .await;
    assert_eq!(ngb["status"]["verdict"], verdict, "verdict untouched");
    let (observed, _) = probed(&root);
    assert_eq!(ngb["status"]["observed"], no_nulls(observed));
    assert_eq!(
        sim.metrics().count("watch", NGB_RESOURCE) + sim.metrics().count("list", NGB_RESOURCE),
        0,
        "the agent neither lists nor watches"
    );
    let text = shared.encode();
    for kind in ["server_error", "timeout"] {
        assert!(
            text.contains(&format!(
                "plumbline_agent_api_errors_total{{kind=\"{kind}\"}}"
            )),
            "{kind} counted:\n{text}"
        );
    }
    agent.stop().await;
}

/// The 30-second outage, run on demand (`cargo test -p
/// plumbline-agent -- --ignored`): the default suite pauses for 5 s, which
/// already spans several capped backoff periods and request timeouts, the
/// same code path a longer outage takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes 30 s; run with --ignored"]
async fn survives_a_thirty_second_outage() {
    let host = host_copy(H100);
    let root = host.path().to_path_buf();
    let sim = sim_with_node(NODE).await;
    let agent = Agent::start(config(NODE, &root), sim.client().await);
    published(&sim, NODE).await;
    sim.faults().set(Faults {
        paused: true,
        ..Faults::default()
    });
    let proc_text =
        std::fs::read_to_string(root.join("proc/driver/nvidia/version")).expect("fixture version");
    set_module_version(&root, &proc_text, "580.105.08");
    tokio::time::sleep(Duration::from_secs(30)).await;
    sim.faults().set(Faults::default());
    wait_for(
        Duration::from_secs(30),
        "the state after the outage",
        || {
            baseline(&sim, NODE)
                .filter(|b| b["status"]["observed"]["driver"]["version"] == "580.105.08")
        },
    )
    .await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_host_files_are_published_as_probe_errors() {
    let host = host_copy("broken-host");
    let root = host.path().to_path_buf();
    let sim = sim_with_node(NODE).await;
    let agent = Agent::start(config(NODE, &root), sim.client().await);
    let ngb = published(&sim, NODE).await;
    let errors: Vec<&Value> = ngb["status"]["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .filter(|p| p["status"] == "Error")
        .collect();
    assert!(!errors.is_empty(), "broken host reports errors: {ngb}");
    assert!(errors.iter().all(|p| p["message"].is_string()));
    let cond = ngb["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == keys::conditions::PROBED))
        .expect("Probed condition");
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], keys::reasons::PROBE_ERRORS);

    // More garbage arrives: binary junk in the containerd config, a huge
    // CDI spec. The agent keeps going and reports it.
    std::fs::create_dir_all(root.join("etc/containerd")).expect("mkdir");
    std::fs::write(
        root.join("etc/containerd/config.toml"),
        [0u8, 159, 146, 150, 0xff, b'[', b'[', 0, 1, 2],
    )
    .expect("write junk");
    std::fs::create_dir_all(root.join("etc/cdi")).expect("mkdir");
    std::fs::write(root.join("etc/cdi/huge.yaml"), "x".repeat(8 * 1024 * 1024))
        .expect("write huge");
    let before = ngb["status"]["observedHash"].clone();
    let ngb = wait_for(Duration::from_secs(30), "the new errors", || {
        baseline(&sim, NODE).filter(|b| b["status"]["observedHash"] != before)
    })
    .await;
    let runtimes = ngb["status"]["probes"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == keys::probes::RUNTIMES))
        .expect("runtimes probe listed");
    assert_eq!(runtimes["status"], "Error", "{runtimes}");
    assert!(agent.is_running());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_node_is_retried_until_it_appears() {
    let host = host_copy(H100);
    let sim = sim_with_node("some-other-node").await;
    let shared = SharedMetrics::new();
    let mut cfg = config(NODE, host.path());
    cfg.metrics = Some(shared.clone());
    let agent = Agent::start(cfg, sim.client().await);
    wait_for(Duration::from_secs(30), "a node_not_found error", || {
        shared
            .encode()
            .contains("plumbline_agent_api_errors_total{kind=\"node_not_found\"}")
            .then_some(())
    })
    .await;
    assert!(baseline(&sim, NODE).is_none());
    add_node(&sim, NODE);
    published(&sim, NODE).await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_on_an_unchanged_host_writes_nothing() {
    let host = host_copy(H100);
    let sim = sim_with_node(NODE).await;
    let agent = Agent::start(config(NODE, host.path()), sim.client().await);
    published(&sim, NODE).await;
    agent.stop().await;
    // On a busy machine the first agent may have retried a slow write; let
    // a retry already on the wire land before counting starts.
    settle(&sim).await;

    sim.metrics().reset();
    let before = baseline(&sim, NODE).expect("baseline");
    let agent = Agent::start(config(NODE, host.path()), sim.client().await);
    wait_for(
        Duration::from_secs(30),
        "the restarted agent's read",
        || (sim.metrics().count("get", NGB_RESOURCE) >= 1).then_some(()),
    )
    .await;
    // Give a wrong write, if there were one, time to follow the read.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = baseline(&sim, NODE).expect("baseline");
    assert_eq!(
        before["status"],
        after["status"],
        "{:?}",
        sim.metrics().snapshot()
    );
    assert_eq!(
        sim.metrics().writes(NGB_RESOURCE),
        0,
        "same hash, heartbeat not due"
    );
    assert_eq!(
        sim.metrics().count("get", NGB_RESOURCE),
        1,
        "one read to learn the state"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_even_with_a_request_in_flight() {
    let host = host_copy(H100);
    let sim = sim_with_node(NODE).await;
    let mut cfg = config(NODE, host.path());
    cfg.api_timeout = Duration::from_secs(30);
    let agent = Agent::start(cfg, sim.client().await);
    published(&sim, NODE).await;
    let before = baseline(&sim, NODE).expect("baseline");

    sim.faults().set(Faults {
        paused: true,
        ..Faults::default()
    });
    let proc_text = std::fs::read_to_string(host.path().join("proc/driver/nvidia/version"))
        .expect("fixture version");
    set_module_version(host.path(), &proc_text, "580.105.08");
    // Let the poll see it and the write reach the paused server.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let took = agent.stop().await;
    // Far below the 30 s request timeout, with room for a loaded machine.
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    sim.faults().set(Faults::default());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = baseline(&sim, NODE).expect("baseline");
    // Either the whole write landed or none of it did.
    let hash_changed = after["status"]["observedHash"] != before["status"]["observedHash"];
    let driver_changed = after["status"]["observed"]["driver"]["version"] == "580.105.08";
    assert_eq!(hash_changed, driver_changed, "no half-written status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_metrics_health_and_readiness() {
    let host = host_copy(H100);
    let sim = sim_with_node(NODE).await;
    let addr = free_addr();
    let mut cfg = config(NODE, host.path());
    cfg.metrics_addr = Some(addr);
    let agent = Agent::start(cfg, sim.client().await);
    let (code, _) = bounded(Duration::from_secs(5), async {
        loop {
            if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
                drop(stream);
                break http_get(addr, "/healthz").await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(code, 200);
    published(&sim, NODE).await;
    // The store holds the baseline a moment before the agent has read the
    // API's answer, so readiness follows shortly after, not at once.
    let code = bounded(Duration::from_secs(5), async {
        loop {
            let (code, _) = http_get(addr, "/readyz").await;
            if code == 200 {
                break code;
            }
            assert_eq!(code, 503, "not ready yet is a 503");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(code, 200, "ready after the first publish");
    let (code, body) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    for needle in [
        "plumbline_agent_publishes_total{reason=\"create\"} 1",
        "plumbline_agent_probe_duration_seconds_count{probe=\"all\"}",
        "plumbline_agent_probe_duration_seconds_count{probe=\"kernelModule\"}",
        "plumbline_agent_probe_runs_total{trigger=\"startup\"} 1",
        "plumbline_agent_last_publish_timestamp_seconds",
        // No Accept header: the Prometheus text format, not OpenMetrics.
        "# TYPE plumbline_agent_publishes_total counter",
    ] {
        assert!(body.contains(needle), "missing {needle}:\n{body}");
    }
    let (code, _) = http_get(addr, "/nope").await;
    assert_eq!(code, 404);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_metrics_port_stops_the_agent_at_start_with_advice() {
    let host = host_copy(H100);
    let sim = sim_with_node(NODE).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut cfg = config(NODE, host.path());
    cfg.metrics_addr = Some(taken.local_addr().expect("addr"));
    let err = plumbline_agent::run(cfg, sim.client().await, std::future::pending())
        .await
        .expect_err("port in use");
    assert_eq!(err.kind(), "metrics_bind");
    assert!(err.to_string().contains("--metrics-addr"), "{err}");
}

/// A driver reload: the loaded module's version in sysfs and procfs.
fn set_module_version(root: &std::path::Path, proc_text: &str, version: &str) {
    std::fs::write(
        root.join("sys/module/nvidia/version"),
        format!("{version}\n"),
    )
    .expect("write sysfs version");
    std::fs::write(
        root.join("proc/driver/nvidia/version"),
        proc_text.replace("580.95.05", version),
    )
    .expect("write procfs version");
}

fn static_host(version: &str) -> (Observed, Vec<ProbeResult>) {
    let mut observed = Observed::default();
    observed.driver.loaded = true;
    observed.driver.version = Some(version.to_string());
    let probes = vec![ProbeResult {
        name: keys::probes::KERNEL_MODULE.to_string(),
        status: ProbeStatus::Ok,
        message: None,
        duration_micros: 3,
    }];
    (observed, probes)
}

/// How `plumbline sim` runs a fleet: many agents in one process, simulated
/// hosts, no inotify, no poll, no HTTP server, one shared set of metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_agents_share_one_process() {
    let sim = sim_with_node("node-0").await;
    let shared = SharedMetrics::new();
    let client = sim.client().await;
    let mut agents = Vec::new();
    let mut hosts = Vec::new();
    for i in 0..50 {
        let name = format!("node-{i}");
        if i > 0 {
            add_node(&sim, &name);
        }
        let (o, p) = static_host("580.95.05");
        let probe = Arc::new(StaticProbe::new(o, p));
        hosts.push(probe.clone());
        let cfg = plumbline_agent::AgentConfig {
            node_name: name,
            host_root: "/nonexistent".into(),
            watch_files: false,
            kernel_poll_interval: None,
            metrics_addr: None,
            metrics: Some(shared.clone()),
            probe: Some(probe),
            ..config("x", std::path::Path::new("/"))
        };
        agents.push(Agent::start(cfg, client.clone()));
    }
    wait_for(Duration::from_secs(30), "50 baselines", || {
        (sim.store().count(NGB_API, NGB_KIND) == 50
            && (0..50).all(|i| {
                baseline(&sim, &format!("node-{i}"))
                    .is_some_and(|b| status_field(&b, "/observedHash").is_some())
            }))
        .then_some(())
    })
    .await;
    // The agents count a publish when the answer arrives, a moment after
    // the emulator has stored it.
    wait_for(
        Duration::from_secs(30),
        "50 create publishes counted",
        || {
            shared
                .encode()
                .contains("plumbline_agent_publishes_total{reason=\"create\"} 50")
                .then_some(())
        },
    )
    .await;

    // A simulated host changes: only its baseline follows, at once.
    let (o, p) = static_host("580.105.08");
    hosts[7].set(o, p);
    wait_for(Duration::from_secs(30), "node-7's change", || {
        baseline(&sim, "node-7")
            .filter(|b| b["status"]["observed"]["driver"]["version"] == "580.105.08")
    })
    .await;
    assert_eq!(
        baseline(&sim, "node-8").expect("node-8")["status"]["observed"]["driver"]["version"],
        "580.95.05"
    );
    for a in agents {
        a.stop().await;
    }
}

/// Waits until the emulator has seen no request for a full second.
async fn settle(sim: &plumbline_sim::Sim) {
    let mut last = sim.metrics().total();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = sim.metrics().total();
        if now == last {
            return;
        }
        last = now;
    }
    panic!("the emulator kept receiving requests after the agent stopped");
}
