//! Shared helpers for the controller's emulator tests: a seeded emulator, a
//! controller running in a task, and an invariant observer that checks the
//! disruption budget on every committed Node write.
#![allow(dead_code)]

use plumbline_api::keys;
use plumbline_controller::{ControllerConfig, LeaseTiming};
use plumbline_sim::{Sim, SimConfig};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const GOOD_DRIVER: &str = "580.95.05";
pub const BAD_DRIVER: &str = "570.86.10";
pub const POOL: &str = "pool";

pub async fn start() -> Sim {
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    for crd in plumbline_api::crds() {
        sim.store()
            .create(serde_json::to_value(&crd).expect("crd serializes"))
            .expect("crd created");
    }
    sim
}

pub fn node(name: &str, pool: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, POOL: pool}},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "images": [{"names": ["registry.example/cuda:12.8"], "sizeBytes": 123456789}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Ubuntu 24.04", "kernelVersion": "6.8.0-51-generic",
                         "containerRuntimeVersion": "containerd://2.0.0", "architecture": "amd64",
                         "operatingSystem": "linux", "bootID": "b", "machineID": "m", "systemUUID": "s",
                         "kubeProxyVersion": ""}
        }
    })
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// A baseline whose agent observed `driver` and sent a heartbeat now.
pub fn baseline(name: &str, driver: &str) -> Value {
    let branch: u32 = driver
        .split('.')
        .next()
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    json!({
        "apiVersion": keys::API_VERSION,
        "kind": "NodeGpuBaseline",
        "metadata": {"name": name},
        "spec": {"nodeName": name},
        "status": {
            "observed": {
                "driver": {
                    "loaded": true,
                    "version": driver,
                    "branch": branch,
                    "kernelModule": "open",
                    "userspaceVersion": driver,
                    "mismatch": false,
                    "cudaCeiling": if branch >= 580 { "13.0" } else { "12.8" },
                    "root": "/"
                },
                "gpus": [{"index": 0, "pciBusId": "0000:3b:00.0", "product": "NVIDIA H100 80GB HBM3"}],
                "containerToolkit": {"installed": true, "version": "1.17.8"},
                "kernel": {"release": "6.8.0-51-generic"},
                "os": {"id": "ubuntu", "versionId": "24.04"}
            },
            "probes": [],
            "lastHeartbeatTime": now_rfc3339(),
            "agentVersion": "0.1.0",
            "observedHash": format!("h-{driver}")
        }
    })
}

/// A policy over `pool=<pool>` pinning the good driver, tainting drift.
pub fn policy(name: &str, pool: &str, max_unavailable: Value, on_drift: &[&str]) -> Value {
    json!({
        "apiVersion": keys::API_VERSION,
        "kind": "GpuFleetPolicy",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"matchLabels": {POOL: pool}},
            "requirements": {"driver": {"versions": ["580.*"]}},
            "actions": {
                "onDrift": on_drift,
                "onUnknown": ["Label", "Condition"],
                "maxUnavailable": max_unavailable,
                "staleAfter": "15m"
            }
        }
    })
}

/// Seeds `n` nodes `prefix-i` in `pool` with baselines; `drifting(i)` picks
/// the bad driver.
pub fn seed_fleet(sim: &Sim, prefix: &str, pool: &str, n: usize, drifting: impl Fn(usize) -> bool) {
    let store = sim.store();
    for i in 0..n {
        let name = format!("{prefix}-{i:05}");
        store.create(node(&name, pool)).expect("node created");
        let driver = if drifting(i) { BAD_DRIVER } else { GOOD_DRIVER };
        store
            .create(baseline(&name, driver))
            .expect("baseline created");
    }
}

/// Changes the driver a baseline reports (as the agent would).
pub fn set_driver(sim: &Sim, name: &str, driver: &str) {
    let fresh = baseline(name, driver);
    sim.store()
        .merge_patch(
            keys::API_VERSION,
            "NodeGpuBaseline",
            None,
            name,
            &json!({"status": {"observed": fresh["status"]["observed"], "observedHash": fresh["status"]["observedHash"]}}),
            true,
        )
        .expect("baseline patched");
}

pub fn get_node(sim: &Sim, name: &str) -> Value {
    sim.store()
        .get("v1", "Node", None, name)
        .expect("node exists")
}

pub fn get_baseline(sim: &Sim, name: &str) -> Value {
    sim.store()
        .get(keys::API_VERSION, "NodeGpuBaseline", None, name)
        .expect("baseline exists")
}

pub fn label<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    node["metadata"]["labels"][key].as_str()
}

pub fn has_drift_taint(node: &Value) -> bool {
    node["spec"]["taints"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t["key"] == keys::taints::DRIFT))
}

pub fn taint_keys(node: &Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["key"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn condition_status(node: &Value) -> Option<String> {
    node["status"]["conditions"].as_array().and_then(|cs| {
        cs.iter()
            .find(|c| c["type"] == keys::conditions::GPU_STACK_COMPLIANT)
            .and_then(|c| c["status"].as_str().map(str::to_string))
    })
}

pub fn is_unavailable(node: &Value) -> bool {
    node["spec"]["unschedulable"] == json!(true)
        || node["spec"]["taints"].as_array().is_some_and(|ts| {
            ts.iter().any(|t| {
                t["key"] == keys::taints::DRIFT
                    && (t["effect"] == "NoSchedule" || t["effect"] == "NoExecute")
            })
        })
}

/// Controller settings for tests: fast lease, fast status, no metrics port.
pub fn config(identity: &str) -> ControllerConfig {
    ControllerConfig {
        identity: identity.to_string(),
        namespace: "default".to_string(),
        lease: LeaseTiming {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_millis(1500),
            retry_period: Duration::from_millis(250),
        },
        status_interval: Duration::from_millis(500),
        resync: Duration::from_secs(3),
        // The emulator applies a write or refuses it before it answers: a
        // write it answered 500 never lands later.
        in_doubt_settle: Duration::from_secs(1),
        ..ControllerConfig::default()
    }
}

/// A controller running in a task; `stop` ends it gracefully, dropping the
/// handle's task (`kill`) ends it abruptly like a crashed pod.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }

    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

pub async fn spawn_controller(sim: &Sim, config: ControllerConfig) -> Running {
    let client = sim.client().await;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.await;
        };
        if let Err(e) = plumbline_controller::run(config, client, shutdown).await {
            panic!("controller failed: {e}");
        }
    });
    Running {
        stop: Some(tx),
        task,
    }
}

/// Polls `check` every 25 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check() {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// [`eventually`] for checks that must await (an HTTP request).
pub async fn eventually_async<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Node reconciles a controller has counted so far, whatever their result.
pub async fn reconciles(addr: std::net::SocketAddr) -> f64 {
    let (_, body) = http_get(addr, "/metrics").await;
    sum_samples(&body, "plumbline_controller_reconciles_total")
}

/// The sum of every sample of a metric, across its labels.
pub fn sum_samples(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .sum()
}

/// Like [`eventually`], but on timeout the panic message carries `dump()`:
/// what was there instead.
pub async fn eventually_explained(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
    dump: impl Fn() -> String,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check() {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for: {what}\n{}",
                dump()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every node that does not look converged, one line each: its baseline's
/// driver, the drift taint, the `compliant` label and the verdict.
pub fn fleet_report(sim: &Sim) -> String {
    let baselines: HashMap<String, Value> = sim
        .store()
        .list(keys::API_VERSION, "NodeGpuBaseline", None)
        .into_iter()
        .map(|b| (b["metadata"]["name"].as_str().unwrap_or("").to_string(), b))
        .collect();
    let mut out = Vec::new();
    let (tainted, labelled, verdicts) = fleet_state(sim);
    out.push(format!(
        "fleet: {tainted} tainted, {labelled} labelled as their baseline says, {verdicts} verdicts right"
    ));
    for n in sim.store().list("v1", "Node", None) {
        let name = n["metadata"]["name"].as_str().unwrap_or("");
        let Some(b) = baselines.get(name) else {
            out.push(format!("{name}: no baseline"));
            continue;
        };
        let driver = b["status"]["observed"]["driver"]["version"]
            .as_str()
            .unwrap_or("?");
        let good = driver == GOOD_DRIVER;
        let compliant = label(&n, keys::labels::COMPLIANT);
        let verdict = b["status"]["verdict"]["state"].as_str().unwrap_or("none");
        let right_label = compliant == Some(if good { "true" } else { "false" });
        let right_verdict = verdict == if good { "Compliant" } else { "Drifting" };
        let tainted = has_drift_taint(&n);
        if !right_label || !right_verdict || (good && tainted) {
            out.push(format!(
                "{name}: driver {driver}, tainted {tainted}, compliant label {compliant:?}, verdict {verdict}, rv {}",
                n["metadata"]["resourceVersion"]
            ));
        }
    }
    out.join("\n")
}

/// Watches every committed Node write and records any moment at which more
/// nodes of a pool were unavailable than the pool's budget allows.
pub struct BudgetObserver {
    pub violations: Arc<Mutex<Vec<String>>>,
    pub node_writes: Arc<Mutex<u64>>,
    pub peak: Arc<Mutex<HashMap<String, usize>>>,
    task: JoinHandle<()>,
}

impl BudgetObserver {
    /// `limits`: pool → most unavailable nodes allowed.
    pub fn start(sim: &Sim, limits: HashMap<String, usize>) -> BudgetObserver {
        let mut rx = sim.subscribe();
        let violations = Arc::new(Mutex::new(Vec::new()));
        let node_writes = Arc::new(Mutex::new(0u64));
        let peak = Arc::new(Mutex::new(HashMap::new()));
        // Start from what the store holds now.
        let mut state: HashMap<String, (String, bool)> = HashMap::new();
        for n in sim.store().list("v1", "Node", None) {
            let name = n["metadata"]["name"].as_str().unwrap_or("").to_string();
            let pool = label(&n, POOL).unwrap_or("").to_string();
            state.insert(name, (pool, is_unavailable(&n)));
        }
        let (v, w, p) = (violations.clone(), node_writes.clone(), peak.clone());
        let task = tokio::spawn(async move {
            loop {
                let c = match rx.recv().await {
                    Ok(c) => c,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        v.lock()
                            .expect("observer lock")
                            .push(format!("observer lagged by {n} commits"));
                        continue;
                    }
                    Err(_) => return,
                };
                if c.resource != "nodes" {
                    continue;
                }
                *w.lock().expect("observer lock") += 1;
                let name = c.object["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if c.event == plumbline_sim::EventType::Deleted {
                    state.remove(&name);
                } else {
                    let pool = label(&c.object, POOL).unwrap_or("").to_string();
                    state.insert(name, (pool, is_unavailable(&c.object)));
                }
                for (pool, limit) in &limits {
                    let n = state.values().filter(|(p, u)| p == pool && *u).count();
                    let mut peaks = p.lock().expect("observer lock");
                    let e = peaks.entry(pool.clone()).or_insert(0);
                    *e = (*e).max(n);
                    if n > *limit {
                        v.lock().expect("observer lock").push(format!(
                            "rv {}: {n} nodes of pool {pool} unavailable, budget {limit}",
                            c.resource_version
                        ));
                    }
                }
            }
        });
        BudgetObserver {
            violations,
            node_writes,
            peak,
            task,
        }
    }

    pub fn assert_clean(&self) {
        let v = self.violations.lock().expect("observer lock");
        assert!(v.is_empty(), "budget violations: {v:#?}");
    }

    pub fn peak(&self, pool: &str) -> usize {
        self.peak
            .lock()
            .expect("observer lock")
            .get(pool)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for BudgetObserver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A free local port for a controller's metrics server, never one this
/// process handed out before: the probe listener is closed before the
/// controller binds, and the system may offer the same port again.
pub fn free_addr() -> std::net::SocketAddr {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().expect("port list lock");
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
}

/// `GET path` on a controller's metrics server: (status code, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.expect("read");
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

/// A sample's value from OpenMetrics text, by name and label text.
pub fn sample(body: &str, name: &str, labels: &str) -> f64 {
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Counts of the fleet's convergence: (drift-tainted nodes, nodes whose
/// `compliant` label matches their baseline's driver, verdicts written).
pub fn fleet_state(sim: &Sim) -> (usize, usize, usize) {
    let nodes = sim.store().list("v1", "Node", None);
    let baselines: HashMap<String, Value> = sim
        .store()
        .list(keys::API_VERSION, "NodeGpuBaseline", None)
        .into_iter()
        .map(|b| (b["metadata"]["name"].as_str().unwrap_or("").to_string(), b))
        .collect();
    let mut tainted = 0;
    let mut labelled = 0;
    let mut verdicts = 0;
    for n in &nodes {
        let name = n["metadata"]["name"].as_str().unwrap_or("");
        if has_drift_taint(n) {
            tainted += 1;
        }
        if let Some(b) = baselines.get(name) {
            let good = b["status"]["observed"]["driver"]["version"] == GOOD_DRIVER;
            let want = if good { "true" } else { "false" };
            if label(n, keys::labels::COMPLIANT) == Some(want) {
                labelled += 1;
            }
            let state = if good { "Compliant" } else { "Drifting" };
            if b["status"]["verdict"]["state"] == state {
                verdicts += 1;
            }
        }
    }
    (tainted, labelled, verdicts)
}
