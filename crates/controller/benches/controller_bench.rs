//! `cargo bench -p plumbline-controller`: the controller against the
//! emulator at 1k/5k/10k nodes.
//!
//! For each size, a few rounds, each on a fresh emulator: cold start to
//! converged (every node labelled and conditioned, every verdict written,
//! drifting nodes tainted), compared with the floor measured in the same
//! round against the same emulator — a bare client sending the same number
//! of minimal writes with the same concurrency; writes per node at cold
//! start; and the controller's peak memory (VmHWM). The first round also
//! counts writes in steady state over three resync periods and measures
//! drift-to-taint latency. The controller runs in a child process (this
//! binary, re-executed) so that its memory is not mixed with the
//! emulator's.
//!
//! Each figure is printed and, with `PLUMBLINE_BENCH_OUT`, appended as a
//! JSON line for `make bench`. `PLUMBLINE_BENCH_SIZES=1000,5000` picks
//! sizes, `PLUMBLINE_BENCH_ROUNDS` the rounds per size (default 3);
//! `BENCH_QUICK=1` is one round at 1,000 nodes with 10 drift samples.
#![allow(clippy::print_stdout, clippy::expect_used)]

use plumbline_api::keys;
use plumbline_bench::stats::millis;
use plumbline_bench::{Figure, Op, Recorder, Stat, Unit};
use plumbline_sim::{Committed, Sim, SimConfig};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const ROLE: &str = "PLUMBLINE_BENCH_ROLE";
const URL: &str = "PLUMBLINE_BENCH_URL";
const CONCURRENCY: usize = 32;
const RESYNC: Duration = Duration::from_secs(2);
const GOOD: &str = "580.95.05";
const BAD: &str = "570.86.10";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var(ROLE).as_deref() == Ok("controller") {
        rt.block_on(child());
        return;
    }
    // `cargo test` runs bench targets without `--bench`: nothing to measure.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let quick = plumbline_bench::quick();
    let sizes: Vec<usize> = std::env::var("PLUMBLINE_BENCH_SIZES")
        .unwrap_or_else(|_| if quick { "1000" } else { "1000,5000,10000" }.to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rounds: usize = std::env::var("PLUMBLINE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 })
        .max(1);
    let drift_samples = if quick { 10 } else { 30 };
    let mut rec = Recorder::from_env().expect("results file opens");
    for n in sizes {
        let results: Vec<Round> = (0..rounds)
            .map(|r| rt.block_on(round(n, if r == 0 { drift_samples } else { 0 })))
            .collect();
        for f in figures(n, &results) {
            rec.record(f).expect("figure recorded");
        }
    }
}

/// What one round at one size measured.
struct Round {
    cold: Duration,
    floor: Duration,
    /// Writes per node at cold start: Node, Node status, baseline status.
    writes: [f64; 3],
    /// Measured in the first round only.
    steady: Option<u64>,
    drift: Vec<Duration>,
    peak_mib: f64,
}

fn figures(n: usize, rounds: &[Round]) -> Vec<Figure> {
    let secs = |f: fn(&Round) -> Duration| -> Vec<f64> {
        rounds.iter().map(|r| f(r).as_secs_f64()).collect()
    };
    let nodes = Unit::Count.format(n as f64);
    let floor = Figure::samples(
        format!("controller.floor.{n}"),
        format!("floor: bare client, same writes, {nodes} nodes"),
        Unit::Seconds,
        &secs(|r| r.floor),
    )
    .expect("floor samples");
    let cold = Figure::samples(
        format!("controller.cold.{n}"),
        format!("cold start to converged, {nodes} nodes"),
        Unit::Seconds,
        &secs(|r| r.cold),
    )
    .expect("cold samples")
    .against(&floor)
    .target(Stat::Ratio, Op::Le, 1.5, "within 1.5× the floor");
    let mut out = vec![cold, floor];
    for (i, (what, text)) in [
        ("writes_node", "Node writes"),
        ("writes_status", "Node status writes"),
        ("writes_verdict", "baseline status writes"),
    ]
    .into_iter()
    .enumerate()
    {
        let samples: Vec<f64> = rounds.iter().map(|r| r.writes[i]).collect();
        out.push(
            Figure::samples(
                format!("controller.{what}.{n}"),
                format!("{text} per node at cold start, {nodes} nodes"),
                Unit::PerNode,
                &samples,
            )
            .expect("write counts")
            .target(Stat::Max, Op::Le, 1.0, "at most one per node"),
        );
    }
    if let Some(steady) = rounds.iter().find_map(|r| r.steady) {
        out.push(
            Figure::single(
                format!("controller.steady_writes.{n}"),
                format!("writes in steady state (3 resync periods), {nodes} nodes"),
                Unit::Count,
                steady as f64,
            )
            .target(Stat::Median, Op::Eq, 0.0, "zero"),
        );
    }
    let drift: Vec<Duration> = rounds
        .iter()
        .flat_map(|r| r.drift.iter().copied())
        .collect();
    if !drift.is_empty() {
        out.push(
            Figure::samples(
                format!("controller.drift_taint.{n}"),
                format!("drift → taint, {nodes} nodes"),
                Unit::Millis,
                &millis(&drift),
            )
            .expect("drift samples")
            .target(Stat::P99, Op::Lt, 1000.0, "p99 under 1 s"),
        );
    }
    let peaks: Vec<f64> = rounds.iter().map(|r| r.peak_mib).collect();
    let mut peak = Figure::samples(
        format!("controller.peak_rss.{n}"),
        format!("controller peak RSS (VmHWM), {nodes} nodes"),
        Unit::MiB,
        &peaks,
    )
    .expect("peak samples");
    if n == 10_000 {
        peak = peak.target(Stat::Max, Op::Lt, 150.0, "under 150 MiB at 10,000 nodes");
    }
    out.push(peak);
    out
}

/// The controller process: runs until stdin closes, then prints VmHWM.
async fn child() {
    let url = std::env::var(URL).expect("url");
    let client =
        kube::Client::try_from(kube::Config::new(url.parse().expect("uri"))).expect("client");
    let config = plumbline_controller::ControllerConfig {
        namespace: "default".to_string(),
        identity: "bench".to_string(),
        resync: RESYNC,
        status_interval: Duration::from_secs(1),
        concurrency: CONCURRENCY,
        ..Default::default()
    };
    let shutdown = async {
        let mut buf = [0u8; 1];
        let _ = tokio::io::stdin().read(&mut buf).await;
    };
    plumbline_controller::run(config, client, shutdown)
        .await
        .expect("controller runs");
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: 0 kB");
    println!("{hwm}");
}

fn node(name: &str) -> Value {
    let images: Vec<Value> = (0..20)
        .map(|i| json!({"names": [format!("registry.example/img-{i}@sha256:{i:064}")], "sizeBytes": 1_000_000 + i}))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "pool": "bench",
                     "node.kubernetes.io/instance-type": "p5.48xlarge", "topology.kubernetes.io/zone": "zone-a"}},
        "spec": {"providerID": format!("aws:///zone-a/{name}")},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                 "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "ok",
                 "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "images": images,
            "capacity": {"cpu": "192", "memory": "2113280484Ki", "nvidia.com/gpu": "8"},
            "allocatable": {"cpu": "191", "memory": "2100000000Ki", "nvidia.com/gpu": "8"},
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Ubuntu 24.04", "kernelVersion": "6.8.0-51-generic",
                         "containerRuntimeVersion": "containerd://2.0.0", "architecture": "amd64",
                         "operatingSystem": "linux", "bootID": "b", "machineID": "m", "systemUUID": "s", "kubeProxyVersion": ""}
        }
    })
}

fn observed(driver: &str) -> Value {
    let gpus: Vec<Value> = (0..8)
        .map(|i| {
            json!({"index": i, "pciBusId": format!("0000:{:02x}:00.0", 0x18 + i),
                   "uuid": format!("GPU-{i:08}-0000-0000-0000-000000000000"), "product": "NVIDIA H100 80GB HBM3",
                   "architecture": "hopper", "computeCapability": "9.0"})
        })
        .collect();
    json!({
        "driver": {"loaded": true, "version": driver, "branch": driver[..3].parse::<u32>().unwrap_or(0),
                   "kernelModule": "open", "userspaceVersion": driver, "mismatch": false,
                   "cudaCeiling": if driver == GOOD { "13.0" } else { "12.8" }, "root": "/"},
        "gpus": gpus,
        "toolkits": [{"version": "12.8", "fullVersion": "12.8.93", "path": "/usr/local/cuda-12.8", "default": true}],
        "containerToolkit": {"installed": true, "version": "1.17.8", "mode": "auto", "configPath": "/etc/nvidia-container-runtime/config.toml"},
        "runtimes": [{"name": "containerd", "configPaths": ["/etc/containerd/config.toml"], "nvidiaHandler": true, "defaultRuntime": "runc", "cdiEnabled": true}],
        "kernel": {"release": "6.8.0-51-generic", "secureBoot": false},
        "os": {"id": "ubuntu", "versionId": "24.04", "prettyName": "Ubuntu 24.04.2 LTS"}
    })
}

fn baseline(name: &str, driver: &str) -> Value {
    let probes: Vec<Value> = [
        "kernelModule",
        "userspace",
        "cudaCeiling",
        "gpus",
        "toolkits",
        "containerToolkit",
        "runtimes",
        "cdi",
        "kernel",
        "os",
    ]
    .iter()
    .map(|p| json!({"name": p, "status": "Ok", "durationMicros": 120}))
    .collect();
    json!({
        "apiVersion": keys::API_VERSION, "kind": "NodeGpuBaseline",
        "metadata": {"name": name}, "spec": {"nodeName": name},
        "status": {"observed": observed(driver),
                   "probes": probes,
                   "lastHeartbeatTime": jiff::Timestamp::now().to_string(),
                   "agentVersion": "0.1.0", "observedHash": format!("h-{driver}")}
    })
}

struct ChildController {
    child: tokio::process::Child,
}

impl ChildController {
    fn spawn(url: &str) -> ChildController {
        let exe = std::env::current_exe().expect("current exe");
        let child = tokio::process::Command::new(exe)
            .env(ROLE, "controller")
            .env(URL, url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn controller");
        ChildController { child }
    }

    /// Closes stdin, waits, returns peak RSS in MiB.
    async fn stop(mut self) -> f64 {
        drop(self.child.stdin.take());
        let out = self.child.wait_with_output().await.expect("child output");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

fn controller_writes(sim: &Sim) -> (u64, u64, u64, u64) {
    let m = sim.metrics();
    (
        m.count_sub("patch", "nodes", ""),
        m.count_sub("patch", "nodes", "status"),
        m.count_sub("patch", "nodegpubaselines", "status"),
        m.writes("nodes")
            + m.writes("nodegpubaselines")
            + m.writes("gpufleetpolicies")
            + m.writes("events"),
    )
}

async fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn tainted_commit(c: &Committed, name: &str, want: bool) -> bool {
    c.resource == "nodes"
        && c.object["metadata"]["name"] == name
        && c.object["spec"]["taints"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["key"] == keys::taints::DRIFT))
            == want
}

async fn round(n: usize, drift_samples: usize) -> Round {
    let sim = Sim::start(SimConfig {
        history: 4 * n + 10_000,
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    for crd in plumbline_api::crds() {
        sim.store()
            .create(serde_json::to_value(&crd).expect("crd"))
            .expect("crd");
    }
    let drifting = n / 50; // 2%
    for i in 0..n {
        let name = format!("gpu-{i:05}");
        sim.store().create(node(&name)).expect("node");
        sim.store()
            .create(baseline(&name, if i < drifting { BAD } else { GOOD }))
            .expect("baseline");
    }
    sim.store()
        .create(json!({
            "apiVersion": keys::API_VERSION, "kind": "GpuFleetPolicy", "metadata": {"name": "bench"},
            "spec": {"nodeSelector": {"matchLabels": {"pool": "bench"}},
                     "requirements": {"driver": {"versions": ["580.*"]}},
                     "actions": {"onDrift": ["Label", "Condition", "Taint"], "maxUnavailable": "5%"}}
        }))
        .expect("policy");
    sim.metrics().reset();

    // Cold start.
    let started = Instant::now();
    let ctl = ChildController::spawn(&sim.url());
    let nn = n as u64;
    let ok = wait_for(Duration::from_secs(600), || {
        let (node, status, verdict, _) = controller_writes(&sim);
        node >= nn && status >= nn && verdict >= nn
    })
    .await;
    let cold = started.elapsed();
    assert!(ok, "did not converge");
    let tainted = sim
        .store()
        .list("v1", "Node", None)
        .iter()
        .filter(|n| {
            n["spec"]["taints"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
        })
        .count();
    assert_eq!(tainted, drifting, "drifting nodes tainted");
    let (w_node, w_status, w_verdict, _) = controller_writes(&sim);

    // Steady state: let the status pass and events settle, then count
    // over three resync periods.
    let mut steady = None;
    if drift_samples > 0 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = controller_writes(&sim).3;
        tokio::time::sleep(3 * RESYNC).await;
        steady = Some(controller_writes(&sim).3 - before);
    }

    // Drift-to-taint latency: one node at a time, reverted after.
    let mut lat = Vec::new();
    for k in 0..drift_samples {
        let name = format!("gpu-{:05}", drifting + 1 + k);
        let mut rx = sim.subscribe();
        let t0 = Instant::now();
        let b = baseline(&name, BAD);
        sim.store()
            .merge_patch(
                keys::API_VERSION,
                "NodeGpuBaseline",
                None,
                &name,
                &json!({"status": {"observed": b["status"]["observed"]}}),
                true,
            )
            .expect("drift");
        loop {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Ok(c)) if tainted_commit(&c, &name, true) => break,
                Ok(_) => continue,
                Err(_) => panic!("no taint on {name}"),
            }
        }
        lat.push(t0.elapsed());
        let b = baseline(&name, GOOD);
        sim.store()
            .merge_patch(
                keys::API_VERSION,
                "NodeGpuBaseline",
                None,
                &name,
                &json!({"status": {"observed": b["status"]["observed"]}}),
                true,
            )
            .expect("fix");
        loop {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Ok(c)) if tainted_commit(&c, &name, false) => break,
                Ok(_) => continue,
                Err(_) => panic!("no untaint on {name}"),
            }
        }
    }
    let peak_mib = ctl.stop().await;

    // The floor: the same writes, minimal, same concurrency, bare client.
    let client = sim.client().await;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let baselines: kube::Api<plumbline_api::NodeGpuBaseline> = kube::Api::all(client);
    let pp = kube::api::PatchParams::default();
    let floor_started = Instant::now();
    use futures::StreamExt;
    let jobs = (0..w_node)
        .map(|i| (0u8, i))
        .chain((0..w_status).map(|i| (1u8, i)))
        .chain((0..w_verdict).map(|i| (2u8, i)));
    futures::stream::iter(jobs)
        .for_each_concurrent(CONCURRENCY, |(kind, i)| {
            let (nodes, baselines, pp) = (nodes.clone(), baselines.clone(), pp.clone());
            async move {
                let name = format!("gpu-{:05}", i as usize % n);
                let r = match kind {
                    0 => nodes
                        .patch(&name, &pp, &kube::api::Patch::Merge(json!({"metadata": {"labels": {"bench/floor": i.to_string()}}})))
                        .await
                        .map(|_| ()),
                    1 => nodes
                        .patch_status(&name, &pp, &kube::api::Patch::Strategic(json!({"status": {"conditions": [{"type": "BenchFloor", "status": "True", "reason": "Floor", "message": i.to_string()}]}})))
                        .await
                        .map(|_| ()),
                    _ => baselines
                        .patch_status(&name, &pp, &kube::api::Patch::Merge(json!({"status": {"verdict": {"state": "Compliant", "policy": format!("floor-{i}")}}})))
                        .await
                        .map(|_| ()),
                };
                r.expect("floor write");
            }
        })
        .await;
    let floor = floor_started.elapsed();
    sim.shutdown().await;
    Round {
        cold,
        floor,
        writes: [w_node, w_status, w_verdict].map(|w| w as f64 / n as f64),
        steady,
        drift: lat,
        peak_mib,
    }
}
