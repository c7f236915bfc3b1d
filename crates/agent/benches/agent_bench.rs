//! Agent benchmark: `cargo bench -p plumbline-agent`.
//!
//! Measures, against the emulator on 127.0.0.1:
//! - change-to-published latency (p50/p99) for a watched file (containerd
//!   drop-in, inotify) and a polled one (the module version in sysfs);
//! - idle CPU over a minute and peak memory of the agent in its own process
//!   (this binary re-runs itself as the agent, so the emulator's own cost is
//!   not counted), from `/proc/<pid>/stat` and `/proc/<pid>/status`
//!   (`VmHWM`), the counters `getrusage` reads;
//! - API requests per hour when idle (requests per heartbeat, times the
//!   heartbeats in an hour at the default interval);
//! - what one more simulated agent costs inside one process (`plumbline sim`).
//!
//! Each figure is printed and, with `PLUMBLINE_BENCH_OUT`, appended as a
//! JSON line for `make bench`. Targets (issue 6): changes published within
//! 2 s, peak memory under 20 MiB, only heartbeats when idle, SIGTERM to exit
//! within a second. `BENCH_QUICK=1` shortens every phase (for a smoke run).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plumbline_agent::{AgentConfig, SharedMetrics, StaticProbe};
use plumbline_api::{Observed, ProbeResult, ProbeStatus};
use plumbline_bench::stats::millis;
use plumbline_bench::{Figure, Op, Recorder, Stat, Unit};
use plumbline_sim::{Sim, SimConfig};
use serde_json::{Value, json};

const CHILD_ENV: &str = "PLUMBLINE_AGENT_BENCH_CHILD";
const NODE: &str = "bench-node";
const FIXTURE: &str = "hgx-h100-580-open";

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    // `cargo bench` passes `--bench`; anything else (cargo test) is a no-op.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let quick = plumbline_bench::quick();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    rt.block_on(parent(quick));
}

/// The agent alone in this process: `url|node|host_root|heartbeat_secs`.
fn child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [url, node, root, heartbeat] = parts[..] else {
        eprintln!("bad {CHILD_ENV}: {spec}");
        std::process::exit(2);
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    // One worker thread, as the DaemonSet's small CPU request would give.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    rt.block_on(async {
        let uri = url.parse().expect("emulator URL parses");
        let client = kube::Client::try_from(kube::Config::new(uri)).expect("client builds");
        let config = AgentConfig {
            node_name: node.to_string(),
            host_root: PathBuf::from(root),
            heartbeat_interval: Duration::from_secs(heartbeat.parse().unwrap_or(300)),
            metrics_addr: "127.0.0.1:0".parse().ok(),
            ..AgentConfig::default()
        };
        // Stop on SIGTERM, as in a pod.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        let shutdown = async move {
            term.recv().await;
        };
        if let Err(e) = plumbline_agent::run(config, client, shutdown).await {
            eprintln!("agent failed: {e}");
            std::process::exit(1);
        }
    });
}

async fn parent(quick: bool) {
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    for crd in plumbline_api::crds() {
        sim.store()
            .create(serde_json::to_value(crd).expect("CRD serializes"))
            .expect("CRD created");
    }
    add_node(&sim, NODE);
    let host = tempfile::tempdir().expect("temp dir");
    copy_tree(&fixture(), host.path());

    let (file_n, kernel_n, idle) = if quick {
        (10, 5, Duration::from_secs(10))
    } else {
        (100, 40, Duration::from_secs(60))
    };
    let heartbeat = Duration::from_secs(10);
    let mut agent = ChildGuard(spawn_child(&sim, host.path(), heartbeat));
    wait(&sim, Duration::from_secs(20), |b| {
        b.pointer("/status/observedHash").is_some()
    })
    .await;

    // Change-to-published latency.
    let dropin = host.path().join("etc/containerd/conf.d/99-nvidia.toml");
    let original = std::fs::read_to_string(&dropin).expect("fixture drop-in");
    let mut file_lat = Vec::new();
    for i in 0..file_n {
        let runtime = format!("rt-{i}");
        std::fs::write(
            &dropin,
            original.replace(
                "default_runtime_name = \"nvidia\"",
                &format!("default_runtime_name = \"{runtime}\""),
            ),
        )
        .expect("edit drop-in");
        let started = Instant::now();
        wait(&sim, Duration::from_secs(10), |b| {
            b.pointer("/status/observed/runtimes/0/defaultRuntime") == Some(&json!(runtime))
        })
        .await;
        file_lat.push(started.elapsed());
        // Let the debounce window close so samples are independent.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let proc_text = std::fs::read_to_string(host.path().join("proc/driver/nvidia/version"))
        .expect("fixture version");
    let mut kernel_lat = Vec::new();
    for i in 0..kernel_n {
        let version = format!("580.105.{i}");
        std::fs::write(
            host.path().join("sys/module/nvidia/version"),
            format!("{version}\n"),
        )
        .expect("write version");
        std::fs::write(
            host.path().join("proc/driver/nvidia/version"),
            proc_text.replace("580.95.05", &version),
        )
        .expect("write version");
        let started = Instant::now();
        wait(&sim, Duration::from_secs(10), |b| {
            b.pointer("/status/observed/driver/version") == Some(&json!(version))
        })
        .await;
        kernel_lat.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(137)).await;
    }

    // Idle: nothing changes for `idle`; heartbeats every `heartbeat`.
    tokio::time::sleep(Duration::from_secs(1)).await;
    sim.metrics().reset();
    let pid = agent.0.id();
    let cpu0 = cpu_ticks(pid);
    let t0 = Instant::now();
    tokio::time::sleep(idle).await;
    let cpu1 = cpu_ticks(pid);
    let wall = t0.elapsed();
    let requests = sim.metrics().total();
    let heartbeats = wall.as_secs_f64() / heartbeat.as_secs_f64();
    let per_heartbeat = requests as f64 / heartbeats.floor().max(1.0);
    let per_hour_default = per_heartbeat * 3600.0 / 300.0;
    let hwm = peak_rss_kib(pid);
    let stop_started = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = agent.0.wait();
    let stop_took = stop_started.elapsed();

    // Many agents in one process, as `plumbline sim` runs them.
    let fleet = if quick { 200 } else { 1000 };
    let (per_agent_kib, fleet_publish) = in_process_fleet(&sim, fleet).await;

    let ticks = clock_ticks_per_second();
    let cpu_secs = (cpu1.saturating_sub(cpu0)) as f64 / ticks;
    let within_2s = |f: Figure| f.target(Stat::P99, Op::Lt, 2000.0, "published within 2 s (p99)");
    let figures = [
        within_2s(
            Figure::samples(
                "agent.publish.file",
                "change → published, watched file (containerd drop-in, inotify)",
                Unit::Millis,
                &millis(&file_lat),
            )
            .expect("file samples"),
        ),
        within_2s(
            Figure::samples(
                "agent.publish.kernel",
                "change → published, module version (1 s kernel poll)",
                Unit::Millis,
                &millis(&kernel_lat),
            )
            .expect("kernel samples"),
        ),
        Figure::single(
            "agent.idle.cpu",
            "idle CPU, share of one core (own process)",
            Unit::Percent,
            100.0 * cpu_secs / wall.as_secs_f64(),
        )
        .note(format!(
            "{cpu_secs:.3} s of CPU over {:.0} s idle",
            wall.as_secs_f64()
        )),
        Figure::single(
            "agent.rss.peak",
            "peak memory (VmHWM, own process)",
            Unit::MiB,
            hwm as f64 / 1024.0,
        )
        .target(Stat::Max, Op::Lt, 20.0, "under 20 MiB"),
        Figure::single(
            "agent.idle.requests_per_heartbeat",
            "API requests per heartbeat when idle",
            Unit::Count,
            per_heartbeat,
        )
        .target(
            Stat::Max,
            Op::Le,
            1.0,
            "heartbeats only (at most 1 per heartbeat)",
        )
        .note(format!(
            "requests counted: {requests} in {:.0} s with a {} s heartbeat",
            wall.as_secs_f64(),
            heartbeat.as_secs()
        )),
        Figure::single(
            "agent.idle.requests_per_hour",
            "API requests per hour when idle, default 5 min heartbeat",
            Unit::PerHour,
            per_hour_default,
        ),
        Figure::single(
            "agent.shutdown",
            "SIGTERM → process exit",
            Unit::Millis,
            stop_took.as_secs_f64() * 1e3,
        )
        .target(Stat::Max, Op::Lt, 1000.0, "within a second"),
        Figure::single(
            "agent.fleet.per_agent",
            format!("in-process fleet of {fleet}: RSS per simulated agent"),
            Unit::KiB,
            per_agent_kib,
        ),
        Figure::single(
            "agent.fleet.publish_all",
            format!("in-process fleet of {fleet}: start → all published"),
            Unit::Millis,
            fleet_publish.as_secs_f64() * 1e3,
        ),
    ];
    let mut rec = Recorder::from_env().expect("results file opens");
    for f in figures {
        rec.record(f).expect("figure recorded");
    }
}

/// Kills the agent child if the benchmark fails half-way.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(sim: &Sim, root: &Path, heartbeat: Duration) -> Child {
    let exe = std::env::current_exe().expect("own path");
    Command::new(exe)
        .env(
            CHILD_ENV,
            format!(
                "{}|{NODE}|{}|{}",
                sim.url(),
                root.display(),
                heartbeat.as_secs()
            ),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("agent child starts")
}

async fn in_process_fleet(sim: &Sim, n: usize) -> (f64, Duration) {
    let rss0 = rss_kib(std::process::id());
    let shared = SharedMetrics::new();
    let client = sim.client().await;
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        let name = format!("fleet-{i}");
        add_node(sim, &name);
        let mut observed = Observed::default();
        observed.driver.version = Some("580.95.05".into());
        let probes = vec![ProbeResult {
            name: "kernelModule".into(),
            status: ProbeStatus::Ok,
            message: None,
            duration_micros: 1,
        }];
        let config = AgentConfig {
            node_name: name,
            watch_files: false,
            kernel_poll_interval: None,
            metrics_addr: None,
            metrics: Some(shared.clone()),
            probe: Some(Arc::new(StaticProbe::new(observed, probes))),
            ..AgentConfig::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        tasks.push(tokio::spawn(plumbline_agent::run(
            config,
            client.clone(),
            async move {
                let _ = rx.await;
            },
        )));
    }
    loop {
        let done = sim
            .store()
            .list("plumbline.dev/v1alpha1", "NodeGpuBaseline", None)
            .iter()
            .filter(|b| {
                b["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("fleet-"))
                    && b.pointer("/status/observedHash").is_some()
            })
            .count();
        if done == n || started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    // Let allocations settle (published objects live in the emulator too,
    // so this over-counts the agents slightly).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss1 = rss_kib(std::process::id());
    for tx in stops {
        let _ = tx.send(());
    }
    for t in tasks {
        let _ = t.await;
    }
    ((rss1.saturating_sub(rss0)) as f64 / n as f64, took)
}

async fn wait(sim: &Sim, limit: Duration, ok: impl Fn(&Value) -> bool) {
    let started = Instant::now();
    loop {
        if sim
            .store()
            .get("plumbline.dev/v1alpha1", "NodeGpuBaseline", None, NODE)
            .is_some_and(|b| ok(&b))
        {
            return;
        }
        assert!(started.elapsed() < limit, "timed out waiting for a publish");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn add_node(sim: &Sim, name: &str) {
    sim.store()
        .create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {}}))
        .expect("node created");
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hosts")
        .join(FIXTURE)
        .join("host")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("fixture readable") {
        let entry = entry.expect("entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).expect("readlink"), &dst)
                .expect("symlink");
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at
    // field 3; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}
