//! Emulator benchmark: 10,000 Nodes and 10,000 baseline-like custom
//! objects, three watchers attached, concurrent clients sending small merge
//! patches, LIST latency at that size, and peak memory.
//!
//! `CARGO_TARGET_DIR=/work/target-sim cargo bench -p plumbline-sim --bench sim_bench`
//! (env `SIM_BENCH_OBJECTS`, `SIM_BENCH_SECONDS`, `SIM_BENCH_CLIENTS` override the size).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use plumbline_sim::{Sim, SimConfig};
use serde_json::json;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn node(i: u64) -> serde_json::Value {
    let name = format!("gpu-node-{i:05}");
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "node.kubernetes.io/instance-type": "p5.48xlarge",
            "topology.kubernetes.io/zone": format!("zone-{}", i % 3), "nvidia.com/gpu.present": "true"}},
        "spec": {"providerID": format!("aws:///zone/i-{i:017x}")},
        "status": {
            "capacity": {"cpu": "192", "memory": "2097152Ki", "nvidia.com/gpu": "8", "pods": "110"},
            "allocatable": {"cpu": "191", "memory": "2000000Ki", "nvidia.com/gpu": "8", "pods": "110"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available", "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure", "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Ubuntu 24.04.1 LTS", "kernelVersion": "6.8.0-1015-aws",
                         "containerRuntimeVersion": "containerd://2.0.0", "architecture": "amd64", "operatingSystem": "linux",
                         "bootID": "b", "machineID": "m", "systemUUID": "s", "kubeProxyVersion": ""}
        }
    })
}

fn baseline(i: u64) -> serde_json::Value {
    let name = format!("gpu-node-{i:05}");
    let gpus: Vec<_> = (0..8)
        .map(|g| json!({"index": g, "product": "NVIDIA H100 80GB HBM3"}))
        .collect();
    json!({
        "apiVersion": "sim.plumbline.dev/v1alpha1", "kind": "GpuBaseline",
        "metadata": {"name": name},
        "spec": {"nodeName": name, "kernelModule": "open"},
        "status": {"verdict": "Compliant", "observed": {"driver": {"version": "580.65.06"}}, "gpus": gpus,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Probed", "message": "all probes ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

async fn run() {
    let objects = env_or("SIM_BENCH_OBJECTS", 10_000);
    let seconds = env_or("SIM_BENCH_SECONDS", 10);
    let clients = env_or("SIM_BENCH_CLIENTS", 8);
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let crd: serde_json::Value = serde_saphyr::from_str(include_str!(
        "../tests/fixtures/gpubaselines.sim.plumbline.dev.yaml"
    ))
    .expect("crd");
    sim.store().create(crd).expect("crd");

    let t = Instant::now();
    for i in 0..objects {
        sim.store().create(node(i)).expect("node");
        sim.store().create(baseline(i)).expect("baseline");
    }
    let seed = t.elapsed();
    let rss_after_seed = status_kib("VmRSS:");

    let client = sim.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sim.plumbline.dev", "v1alpha1", "GpuBaseline"),
        "gpubaselines",
    );
    let baselines: Api<DynamicObject> = Api::all_with(client.clone(), &ar);

    // LIST latency at full size (kube client: request, transfer, decode).
    let mut node_lists = Vec::new();
    let mut gb_lists = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let l = nodes
            .list(&ListParams::default())
            .await
            .expect("list nodes");
        node_lists.push(t.elapsed());
        assert_eq!(l.items.len() as u64, objects);
        let t = Instant::now();
        let l = baselines
            .list(&ListParams::default())
            .await
            .expect("list baselines");
        gb_lists.push(t.elapsed());
        assert_eq!(l.items.len() as u64, objects);
    }
    node_lists.sort();
    gb_lists.sort();

    // Three watchers.
    let watched = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::new();
    for w in 0..3 {
        let watched = watched.clone();
        let nodes = nodes.clone();
        let baselines = baselines.clone();
        watchers.push(tokio::spawn(async move {
            if w < 2 {
                let mut s = watcher(nodes, watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while s.next().await.is_some() {
                    watched.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                let mut s = watcher(baselines, watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while s.next().await.is_some() {
                    watched.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let watched_before = watched.load(Ordering::Relaxed);
    let events_before = sim.metrics().watch_events_sent();

    // Sustained small merge patches from concurrent clients.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let nodes = nodes.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = c;
            while Instant::now() < deadline {
                let name = format!("gpu-node-{:05}", (i * 7919) % objects);
                let t = Instant::now();
                nodes
                    .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"plumbline.dev/heartbeat": i.to_string()}}})))
                    .await
                    .expect("patch");
                lat.push(t.elapsed());
                i += clients;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("join"));
    }
    lat.sort();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let patches = lat.len() as f64;
    let delivered = sim.metrics().watch_events_sent() - events_before;
    let _ = watched_before;

    println!("## plumbline-sim benchmark\n");
    println!("| measure | value |\n|---|---|");
    println!("| objects | {objects} Nodes + {objects} GpuBaselines |");
    println!(
        "| seed (library API, both kinds) | {:.2} s |",
        seed.as_secs_f64()
    );
    println!(
        "| LIST {objects} nodes (kube client, p50 / max of 5) | {:.0} ms / {:.0} ms |",
        percentile(&node_lists, 0.5).as_secs_f64() * 1e3,
        node_lists.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "| LIST {objects} baselines (p50 / max of 5) | {:.0} ms / {:.0} ms |",
        percentile(&gb_lists, 0.5).as_secs_f64() * 1e3,
        gb_lists.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "| merge patches, {clients} clients, {seconds} s, 3 watchers | {:.0} /s |",
        patches / seconds as f64
    );
    println!(
        "| patch latency p50 / p99 | {:.2} ms / {:.2} ms |",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    println!("| watch events delivered during the patch phase | {delivered} |");
    println!(
        "| RSS after seeding (VmRSS) | {} MiB |",
        rss_after_seed / 1024
    );
    println!(
        "| peak RSS, process incl. clients (VmHWM) | {} MiB |",
        status_kib("VmHWM:") / 1024
    );
    for w in watchers {
        w.abort();
    }
    sim.shutdown().await;
}
