//! Emulator benchmark: 10,000 Nodes and 10,000 baseline-like custom
//! objects, three watchers attached, concurrent clients sending small merge
//! patches, LIST latency at that size, and peak memory.
//!
//! `cargo bench -p plumbline-sim --bench sim_bench` prints each figure and,
//! with `PLUMBLINE_BENCH_OUT`, appends it as a JSON line for `make bench`
//! (env `SIM_BENCH_OBJECTS`, `SIM_BENCH_SECONDS`, `SIM_BENCH_CLIENTS` override
//! the size; `BENCH_QUICK=1` makes 2,000 objects and 3 s the defaults).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use plumbline_bench::stats::millis;
use plumbline_bench::{Figure, Recorder, Unit};
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

fn main() {
    // `cargo test` runs bench targets without `--bench`: nothing to measure.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

async fn run() {
    let quick = plumbline_bench::quick();
    let objects = env_or("SIM_BENCH_OBJECTS", if quick { 2_000 } else { 10_000 });
    let seconds = env_or("SIM_BENCH_SECONDS", if quick { 3 } else { 10 });
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
    let patch_started = Instant::now();
    let deadline = patch_started + Duration::from_secs(seconds);
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
    let patch_secs = patch_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let patches = lat.len() as f64;
    let delivered = sim.metrics().watch_events_sent() - events_before;
    let _ = watched_before;

    let mut rec = Recorder::from_env().expect("results file opens");
    let count = |v: u64| Unit::Count.format(v as f64);
    let (objs, total) = (count(objects), count(2 * objects));
    let ms = |v: &[Duration]| millis(v);
    let figures = [
        Figure::single(
            "sim.seed",
            format!("seed {objs} Nodes + {objs} baselines (library API)"),
            Unit::Seconds,
            seed.as_secs_f64(),
        ),
        Figure::samples(
            "sim.list.nodes",
            format!("LIST {objs} Nodes (kube client, decode included)"),
            Unit::Millis,
            &ms(&node_lists),
        )
        .expect("list samples"),
        Figure::samples(
            "sim.list.baselines",
            format!("LIST {objs} baselines"),
            Unit::Millis,
            &ms(&gb_lists),
        )
        .expect("list samples"),
        Figure::single(
            "sim.patch.rate",
            format!("merge patches, {clients} clients, 3 watchers attached"),
            Unit::PerSecond,
            patches / patch_secs,
        )
        .note(format!(
            "{} patches in {patch_secs:.1} s",
            Unit::Count.format(patches)
        )),
        Figure::samples(
            "sim.patch.latency",
            "merge patch latency",
            Unit::Millis,
            &ms(&lat),
        )
        .expect("patch samples"),
        Figure::single(
            "sim.watch.events",
            "watch events delivered during the patch phase",
            Unit::Count,
            delivered as f64,
        ),
        Figure::single(
            "sim.rss.seeded",
            format!("RSS after seeding {total} objects (VmRSS)"),
            Unit::MiB,
            rss_after_seed as f64 / 1024.0,
        ),
        Figure::single(
            "sim.rss.peak",
            "peak RSS of the process, clients' lists included (VmHWM)",
            Unit::MiB,
            status_kib("VmHWM:") as f64 / 1024.0,
        ),
    ];
    for f in figures {
        rec.record(f).expect("figure recorded");
    }
    for w in watchers {
        w.abort();
    }
    sim.shutdown().await;
}
