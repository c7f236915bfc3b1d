//! Helpers for the agent's emulator tests: fixture host copies, an
//! emulator with Plumbline's CRDs and a Node, and an agent that can be
//! stopped.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plumbline_agent::{AgentConfig, AgentError};
use plumbline_sim::{Sim, SimConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const NGB_API: &str = "plumbline.dev/v1alpha1";
pub const NGB_KIND: &str = "NodeGpuBaseline";
pub const NGB_RESOURCE: &str = "nodegpubaselines";

/// A fixture host tree (`tests/fixtures/hosts/<case>/host`).
pub fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hosts")
        .join(case)
        .join("host")
}

/// A private, writable copy of a fixture host (symlinks kept as symlinks).
pub fn host_copy(case: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_tree(&fixture(case), dir.path());
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("fixture dir readable") {
        let entry = entry.expect("dir entry");
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            let target = std::fs::read_link(&src).expect("readlink");
            std::os::unix::fs::symlink(target, &dst).expect("symlink");
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// Writes `contents` to `path` the way tools do: a temporary file in the
/// same directory, renamed over the old one.
pub fn replace_file(path: &Path, contents: &str) {
    let tmp = path.with_extension("plumbline-test-tmp");
    std::fs::write(&tmp, contents).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename over");
}

/// An emulator serving Plumbline's CRDs, with one Ready Node.
pub async fn sim_with_node(node: &str) -> Sim {
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    for crd in plumbline_api::crds() {
        sim.store()
            .create(serde_json::to_value(crd).expect("CRD serializes"))
            .expect("CRD created");
    }
    add_node(&sim, node);
    sim
}

pub fn add_node(sim: &Sim, name: &str) -> Value {
    sim.store()
        .create(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "ready", "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .expect("node created")
}

pub fn baseline(sim: &Sim, name: &str) -> Option<Value> {
    sim.store().get(NGB_API, NGB_KIND, None, name)
}

pub fn status_field<'a>(obj: &'a Value, pointer: &str) -> Option<&'a Value> {
    obj.pointer(&format!("/status{pointer}"))
}

/// Test settings: no metrics server, short retries, the host at `root`.
pub fn config(node: &str, root: &Path) -> AgentConfig {
    AgentConfig {
        node_name: node.to_string(),
        host_root: root.to_path_buf(),
        metrics_addr: None,
        api_timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(800),
        ..AgentConfig::default()
    }
}

/// A running agent; `stop` sends the shutdown signal and waits.
pub struct Agent {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), AgentError>>,
}

impl Agent {
    pub fn start(config: AgentConfig, client: kube::Client) -> Agent {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(plumbline_agent::run(config, client, async move {
            let _ = rx.await;
        }));
        Agent {
            stop: Some(tx),
            task,
        }
    }

    /// Signals shutdown and returns how long the agent took to return.
    pub async fn stop(mut self) -> Duration {
        let started = Instant::now();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("agent stops within 5 s")
            .expect("agent task did not panic");
        result.expect("agent returned Ok");
        started.elapsed()
    }

    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

/// Polls `check` every 10 ms until it returns `Some`, or panics after
/// `limit` with `what`.
pub async fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if started.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`wait_for`] but returns how long it took, or `None` at `limit`.
pub async fn time_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if check() {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits for the first published status (an `observedHash`).
pub async fn published(sim: &Sim, node: &str) -> Value {
    wait_for(Duration::from_secs(10), "the first publish", || {
        baseline(sim, node).filter(|b| status_field(b, "/observedHash").is_some())
    })
    .await
}

/// A raw HTTP/1.0 GET: (status code, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Sums `apiserver_request_total` lines of the emulator's `/metrics` for
/// `resource` whose labels contain every one of `labels` (`verb="patch"`).
pub fn count_requests(metrics_text: &str, resource: &str, labels: &[&str]) -> u64 {
    metrics_text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| l.contains(&format!("resource=\"{resource}\"")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()))
        .sum()
}

/// Runs `fut` with a limit so that a stuck test fails instead of hanging.
pub async fn bounded<T>(limit: Duration, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .expect("test step finished in time")
}

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr")
}
