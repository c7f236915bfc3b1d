//! `plumbline fleet` as a user runs it: the built binary against the API
//! server emulator, through a kubeconfig, on a small fleet with differing
//! versions; and the errors a user meets first (no CRDs, no server).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use plumbline_api::keys;
use plumbline_sim::{Sim, SimConfig};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_plumbline");

const NEW: &str = "580.105.08";
const OLD: &str = "570.195.03";

async fn start(with_crds: bool) -> Sim {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    if with_crds {
        for crd in plumbline_api::crds() {
            sim.store()
                .create(serde_json::to_value(&crd).unwrap())
                .unwrap();
        }
    }
    sim
}

fn node(name: &str, pool: Option<&str>) -> Value {
    let mut labels = json!({"kubernetes.io/hostname": name});
    if let Some(pool) = pool {
        labels["pool"] = json!(pool);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {}
    })
}

fn policy(name: &str, pool: &str) -> Value {
    json!({
        "apiVersion": keys::API_VERSION,
        "kind": "GpuFleetPolicy",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"matchLabels": {"pool": pool}},
            "requirements": {"driver": {"versions": ["580.*"]}},
            "actions": {"staleAfter": "15m"}
        }
    })
}

/// How one node's baseline differs from a healthy H100 on the new driver.
#[derive(Clone)]
struct Host {
    name: String,
    driver: &'static str,
    policy: &'static str,
    drifting: bool,
    stale_cdi: bool,
    heartbeat_ago_mins: i64,
}

fn host(name: &str, driver: &'static str, policy: &'static str) -> Host {
    Host {
        name: name.to_string(),
        driver,
        policy,
        drifting: false,
        stale_cdi: false,
        heartbeat_ago_mins: 1,
    }
}

fn baseline(h: &Host) -> Value {
    let ceiling = if h.driver.starts_with("580") {
        "13.0"
    } else {
        "12.8"
    };
    let beat = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(h.heartbeat_ago_mins);
    let findings = if h.drifting {
        json!([{"rule": keys::rules::DRIVER_VERSION, "expected": "580.*", "observed": h.driver,
                "message": "the driver is not one the policy allows"}])
    } else {
        json!([])
    };
    json!({
        "apiVersion": keys::API_VERSION,
        "kind": "NodeGpuBaseline",
        "metadata": {"name": h.name},
        "spec": {"nodeName": h.name},
        "status": {
            "observed": {
                "driver": {"loaded": true, "version": h.driver, "kernelModule": "open",
                           "userspaceVersion": h.driver, "mismatch": false,
                           "cudaCeiling": ceiling, "root": "/"},
                "gpus": [{"index": 0, "pciBusId": "0000:3b:00.0", "product": "NVIDIA H100 80GB HBM3"}],
                "toolkits": [{"version": "12.9", "path": "/usr/local/cuda-12.9", "default": true}],
                "containerToolkit": {"installed": true, "version": "1.17.8", "mode": "auto"},
                "runtimes": [{"name": "containerd", "configPaths": ["/etc/containerd/config.toml"],
                              "nvidiaHandler": true, "defaultRuntime": "nvidia", "cdiEnabled": true}],
                "cdi": {"specs": [{"path": "/etc/cdi/nvidia.yaml", "devices": ["all"],
                                   "driverVersions": [h.driver], "stale": h.stale_cdi,
                                   "problems": if h.stale_cdi { json!(["references 570.86.10"]) } else { json!([]) }}]},
                "kernel": {"release": "6.8.0-51-generic"},
                "os": {"id": "ubuntu", "versionId": "24.04"}
            },
            "lastHeartbeatTime": beat.to_string(),
            "agentVersion": "0.1.0",
            "observedHash": format!("h-{}", h.name),
            "verdict": {
                "state": if h.drifting { "Drifting" } else { "Compliant" },
                "policy": h.policy,
                "findings": findings
            }
        }
    })
}

/// The fleet of the tests below:
/// - policy `h100` (pool=h100): gpu-1..gpu-12 on the new driver except
///   gpu-3 and gpu-11 (old driver, drifting); gpu-5 has a stale CDI spec;
///   gpu-8's agent went silent two hours ago; gpu-13 has no baseline.
/// - policy `a100` (pool=a100): a100-1 and a100-2, both on the old driver.
/// - cpu-1: no pool, no baseline. gone-1: a baseline whose Node is gone.
fn seed(sim: &Sim) {
    let store = sim.store();
    store.create(policy("h100", "h100")).unwrap();
    store.create(policy("a100", "a100")).unwrap();
    let mut hosts = Vec::new();
    for (i, name) in [
        "gpu-1", "gpu-2", "gpu-3", "gpu-4", "gpu-5", "gpu-6", "gpu-7", "gpu-8", "gpu-9", "gpu-10",
        "gpu-11", "gpu-12",
    ]
    .into_iter()
    .enumerate()
    {
        let mut h = host(name, NEW, "h100");
        if i == 2 || i == 10 {
            h.driver = OLD;
            h.drifting = true;
        }
        h.stale_cdi = i == 4;
        if i == 7 {
            h.heartbeat_ago_mins = 120;
        }
        store.create(node(name, Some("h100"))).unwrap();
        hosts.push(h);
    }
    for name in ["a100-1", "a100-2"] {
        store.create(node(name, Some("a100"))).unwrap();
        hosts.push(host(name, OLD, "a100"));
    }
    store.create(node("gpu-13", Some("h100"))).unwrap();
    store.create(node("cpu-1", None)).unwrap();
    hosts.push(host("gone-1", NEW, "h100"));
    for h in &hosts {
        store.create(baseline(h)).unwrap();
    }
}

/// Runs `plumbline fleet ARGS` with KUBECONFIG at `kubeconfig`, off the
/// runtime's threads so the emulator keeps answering.
async fn fleet(kubeconfig: &Path, args: &[&str]) -> Output {
    let kubeconfig = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .arg("fleet")
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("NO_COLOR")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "plumbline fleet failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The table row whose cells (split on two or more spaces) start with
/// `cells`, after the `!` flag.
fn row<'a>(table: &'a str, cells: &[&str]) -> Option<&'a str> {
    table.lines().find(|line| {
        let got: Vec<&str> = line
            .trim_start_matches(['!', ' '])
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        got.starts_with(cells)
    })
}

fn group<'a>(doc: &'a Value, policy: &str) -> &'a Value {
    doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["policy"] == policy)
        .unwrap_or_else(|| panic!("no group for policy {policy} in {doc:#}"))
}

fn field<'a>(group: &'a Value, id: &str) -> &'a Value {
    group["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == id)
        .unwrap_or_else(|| panic!("no field {id} in {group:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_and_json_name_the_outliers() {
    let sim = start(true).await;
    seed(&sim);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();

    let table = stdout(&fleet(&kubeconfig, &[]).await);
    let first = table.lines().next().unwrap();
    assert_eq!(
        first,
        "fleet: 14 nodes with a baseline (12 Compliant, 2 Drifting) · 1 stale heartbeat · \
         1 node without a baseline · 1 baseline without a Node · 1 other node outside every policy",
        "{table}"
    );
    assert!(
        row(&table, &["stale heartbeat", "gpu-8 (2h ago > 15m)"]).is_some(),
        "{table}"
    );
    assert!(
        row(&table, &["no baseline", "gpu-13 (h100)"]).is_some(),
        "{table}"
    );
    assert!(row(&table, &["Node gone", "gone-1"]).is_some(), "{table}");
    // h100 first (the bigger pool); its majority driver unflagged, the
    // old one flagged with its nodes named in natural order.
    let h100_at = table
        .find("policy h100 · 12 nodes: 10 Compliant, 2 Drifting")
        .unwrap();
    let a100_at = table.find("policy a100 · 2 nodes: 2 Compliant").unwrap();
    assert!(h100_at < a100_at, "{table}");
    let h100 = &table[h100_at..a100_at];
    let majority = row(h100, &["driver", NEW, "10"]).unwrap();
    assert!(!majority.starts_with('!'), "{majority}");
    let outlier = row(h100, &[OLD, "2", "gpu-3, gpu-11"]).unwrap();
    assert!(outlier.starts_with('!'), "{outlier}");
    assert!(row(h100, &["CUDA", "13.0", "10"]).is_some(), "{h100}");
    assert!(
        row(h100, &["12.8", "2", "gpu-3, gpu-11"]).is_some(),
        "{h100}"
    );
    assert!(
        row(h100, &["stale", "1", "gpu-5"])
            .unwrap()
            .starts_with('!'),
        "{h100}"
    );
    assert!(row(h100, &["module", "open", "12"]).is_some(), "{h100}");
    assert!(
        row(
            h100,
            &[
                "findings",
                keys::rules::DRIVER_VERSION,
                "2",
                "gpu-3, gpu-11"
            ]
        )
        .is_some(),
        "{h100}"
    );
    // In its own pool the old driver is the majority: nothing flagged.
    let a100 = &table[a100_at..];
    let a100_driver = row(a100, &["driver", OLD, "2"]).unwrap();
    assert!(!a100_driver.starts_with('!'), "{a100_driver}");

    let json_out = stdout(&fleet(&kubeconfig, &["--output", "json"]).await);
    let doc: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(doc["schemaVersion"], 1);
    assert_eq!(doc["totals"]["nodes"], 14);
    assert_eq!(doc["totals"]["verdicts"]["drifting"], 2);
    assert_eq!(doc["totals"]["otherNodes"], 1);
    assert_eq!(doc["attention"]["staleHeartbeats"][0]["node"], "gpu-8");
    assert_eq!(
        doc["attention"]["withoutBaseline"][0],
        json!({"node": "gpu-13", "policy": "h100"})
    );
    assert_eq!(doc["attention"]["baselinesWithoutNode"], json!(["gone-1"]));
    let driver = field(group(&doc, "h100"), "driver");
    assert_eq!(driver["majority"], NEW);
    assert_eq!(driver["uniform"], false);
    assert_eq!(
        driver["values"][1],
        json!({"value": OLD, "count": 2, "outlier": true, "problem": false,
               "nodes": ["gpu-3", "gpu-11"]})
    );
    let cdi = field(group(&doc, "h100"), "cdi");
    assert_eq!(cdi["values"][1]["nodes"], json!(["gpu-5"]));
    assert_eq!(cdi["values"][1]["problem"], true);
    let containerd = field(group(&doc, "h100"), "runtime.containerd");
    assert_eq!(containerd["uniform"], true);
    let gpu3 = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "gpu-3")
        .unwrap();
    assert_eq!(gpu3["verdict"], "Drifting");
    assert_eq!(gpu3["values"]["driver"], OLD);
    assert_eq!(gpu3["findings"], json!([keys::rules::DRIVER_VERSION]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_and_selector_narrow_the_view() {
    let sim = start(true).await;
    seed(&sim);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();

    let by_policy = stdout(&fleet(&kubeconfig, &["--policy", "a100", "-o", "json"]).await);
    let doc: Value = serde_json::from_str(&by_policy).unwrap();
    let policies: Vec<&Value> = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["policy"])
        .collect();
    assert_eq!(policies, vec![&json!("a100")]);
    assert_eq!(doc["totals"]["nodes"], 2);
    assert_eq!(doc["policyFilter"], "a100");
    assert_eq!(doc["attention"]["withoutBaseline"], json!([]));

    let by_label = stdout(&fleet(&kubeconfig, &["--selector", "pool=h100", "-o", "json"]).await);
    let doc: Value = serde_json::from_str(&by_label).unwrap();
    assert_eq!(doc["totals"]["nodes"], 12);
    // Other Nodes are outside the selector, not gone.
    assert_eq!(doc["attention"]["baselinesWithoutNode"], json!([]));
    assert_eq!(doc["attention"]["withoutBaseline"][0]["node"], "gpu-13");

    let bad = fleet(&kubeconfig, &["--selector", "pool in h100"]).await;
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("label selector"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_bigger_than_one_page_is_counted_whole() {
    let sim = start(true).await;
    let store = sim.store();
    store.create(policy("h100", "h100")).unwrap();
    // Three pages of 500.
    let n = 1_234;
    for i in 0..n {
        let name = format!("gpu-{i}");
        store.create(node(&name, Some("h100"))).unwrap();
        let driver = if i % 617 == 5 { OLD } else { NEW };
        store
            .create(baseline(&host(&name, driver, "h100")))
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();

    let doc: Value =
        serde_json::from_str(&stdout(&fleet(&kubeconfig, &["-o", "json"]).await)).unwrap();
    assert_eq!(doc["totals"]["nodes"], n);
    let driver = field(group(&doc, "h100"), "driver");
    assert_eq!(driver["values"][0]["count"], n - 2);
    assert_eq!(driver["values"][1]["nodes"], json!(["gpu-5", "gpu-622"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_crds_say_how_to_install_them() {
    let sim = start(false).await;
    sim.store().create(node("gpu-1", None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();

    let out = fleet(&kubeconfig, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the NodeGpuBaseline CRD is not installed"),
        "{stderr}"
    );
    assert!(stderr.contains(&sim.url()), "{stderr}");
    assert!(
        stderr.contains("run `plumbline crds | kubectl apply -f -`"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_named() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: gone\n  context:\n    cluster: gone\n    user: gone\n\
             current-context: gone\nusers:\n- name: gone\n  user: {{}}\n"
        ),
    )
    .unwrap();

    let out = fleet(&kubeconfig, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot reach the Kubernetes API server at http://127.0.0.1:{port}/"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("KUBECONFIG"), "{stderr}");
}
