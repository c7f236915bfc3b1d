//! `promtool check metrics` on real scrapes of `plumbline agent` and
//! `plumbline controller`: the built binary against the API server
//! emulator, scraped after both have worked (baselines published and
//! judged, probes failed, API requests refused), so that every metric
//! family is in the scrape that is linted. The metric names the docs list
//! and the alerts and runbook use are held to what the processes export.
//!
//! promtool comes from Debian's `prometheus` package (`make tools`); the
//! test fails, saying how to install it, when it is not on PATH.

// Test helpers read fixed, committed files and local processes: a missing
// piece is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use plumbline_sim::{Faults, Sim, SimConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_plumbline");
const POLICY: &str = "h100-pin-580";
const PRODUCT: &str = "NVIDIA-H100-80GB-HBM3";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";
/// Generous for a loaded 2-core machine; conditions are polled.
const PATIENCE: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn promtool() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "promtool is not on PATH: run `make tools`, which installs it \
                 (Debian package prometheus: `sudo apt-get install prometheus`)"
            )
        })
}

/// A `plumbline` process, killed when dropped; its log is kept for failures.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn start(name: &'static str, args: &[String], kubeconfig: &Path, dir: &Path) -> Process {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Process { name, child, log }
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} log ---\n{text}", self.name)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Distinct free ports: all are held until each is known, then released
/// for the processes to bind.
fn free_addrs<const N: usize>() -> [SocketAddr; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap())
}

struct Scrape {
    code: u16,
    content_type: String,
    body: String,
}

/// `GET path` over HTTP/1.0 with an optional `Accept` header.
async fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Option<Scrape> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.0\r\nHost: lint\r\n{accept}\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Some(Scrape {
        code,
        content_type,
        body: body.to_string(),
    })
}

/// The metrics text (no `Accept` header, as `curl` and promtool users ask).
async fn metrics(addr: SocketAddr) -> String {
    get(addr, "/metrics", None)
        .await
        .map(|s| s.body)
        .unwrap_or_default()
}

/// Polls `check` on `addr`'s metrics until it holds.
async fn wait_for(what: &str, addr: SocketAddr, procs: &[&Process], check: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = metrics(addr).await;
        if check(&text) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let logs: Vec<String> = procs.iter().map(|p| p.log()).collect();
            panic!(
                "timed out waiting for {what}; last scrape of {addr}:\n{text}\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A sample of `name` whose label set starts with `first_label`.
fn has_sample(text: &str, name: &str, first_label: &str) -> bool {
    let start = format!("{{{first_label}");
    text.lines().any(|l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(&start))
    })
}

/// `(family, type)` of every `# TYPE` line.
fn families(text: &str) -> BTreeSet<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|r| r.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// Metric names in the first column of the tables under `heading` in a doc,
/// completed with `prefix` where the doc leaves it out.
fn documented(doc: &str, heading: &str, prefix: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join(doc)).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("{doc} has no section {heading:?}"));
    let mut names = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cell = row.split('|').nth(1).unwrap_or("");
        for token in cell.split('`').skip(1).step_by(2) {
            if token.starts_with(prefix) {
                names.insert(token.to_string());
            } else {
                names.insert(format!("{prefix}{token}"));
            }
        }
    }
    names
}

/// Every `plumbline_agent_*` / `plumbline_controller_*` name in a file.
fn names_used(path: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    let mut out = BTreeSet::new();
    for start in ["plumbline_agent_", "plumbline_controller_"] {
        for (i, _) in text.match_indices(start) {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // "All metrics start with `plumbline_controller_`" names no metric.
            if !name.ends_with('_') {
                out.insert(name);
            }
        }
    }
    out
}

async fn lint(label: &str, addr: SocketAddr, promtool: &Path) -> String {
    let text = get(addr, "/metrics", None).await.unwrap();
    assert_eq!(text.code, 200, "{label}");
    assert_eq!(
        text.content_type, "text/plain; version=0.0.4; charset=utf-8",
        "{label}: without Accept, /metrics is the Prometheus text format"
    );
    let om = get(addr, "/metrics", Some(OPENMETRICS)).await.unwrap();
    assert!(
        om.content_type.starts_with("application/openmetrics-text"),
        "{label}: Prometheus asks for OpenMetrics and gets it: {}",
        om.content_type
    );
    assert!(om.body.ends_with("# EOF\n"), "{label}:\n{}", om.body);

    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let body = text.body.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::io::Write::write_all(&mut stdin, body.as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let problems = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && problems.trim().is_empty(),
        "promtool check metrics on the {label} scrape ({}): {problems}\n{}",
        out.status,
        text.body
    );
    text.body
}

async fn emulator() -> Sim {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let store = sim.store();
    for crd in plumbline_api::crds() {
        store.create(serde_json::to_value(&crd).unwrap()).unwrap();
    }
    store
        .create(json!({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "plumbline-system"}}))
        .unwrap();
    for name in ["gpu-0", "gpu-1"] {
        store
            .create(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name, "nvidia.com/gpu.product": PRODUCT}},
                "spec": {}
            }))
            .unwrap();
    }
    let text =
        std::fs::read_to_string(repo().join("deploy/examples/pin-driver-branch.yaml")).unwrap();
    let policy: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(policy["metadata"]["name"], POLICY);
    store.create(policy).unwrap();
    sim
}

fn agent_args(node: &str, host: &str, addr: SocketAddr) -> Vec<String> {
    let root = repo().join("tests/fixtures/hosts").join(host).join("host");
    vec![
        "agent".into(),
        format!("--node-name={node}"),
        format!("--host-root={}", root.display()),
        // Heartbeats keep the agent writing, so refused writes show up.
        "--heartbeat-interval=1s".into(),
        format!("--metrics-addr={addr}"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_agent_and_controller_scrapes() {
    let promtool = promtool();
    let sim = emulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();

    let [healthy_addr, broken_addr, controller_addr] = free_addrs();
    let healthy = Process::start(
        "agent gpu-0",
        &agent_args("gpu-0", "hgx-h100-580-open", healthy_addr),
        &kubeconfig,
        tmp.path(),
    );
    let broken = Process::start(
        "agent gpu-1",
        &agent_args("gpu-1", "broken-host", broken_addr),
        &kubeconfig,
        tmp.path(),
    );
    let controller = Process::start(
        "controller",
        &[
            "controller".into(),
            "--namespace=plumbline-system".into(),
            "--identity=lint-0".into(),
            format!("--metrics-addr={controller_addr}"),
        ],
        &kubeconfig,
        tmp.path(),
    );
    let procs = [&healthy, &broken, &controller];

    // Work done: both baselines published and judged, probe errors counted.
    wait_for(
        "the healthy node judged Compliant",
        controller_addr,
        &procs,
        |t| {
            t.lines().any(|l| {
                l == format!(
                    "plumbline_controller_nodes{{policy=\"{POLICY}\",verdict=\"Compliant\"}} 1"
                )
            }) && t.lines().any(|l| {
                l == format!(
                    "plumbline_controller_nodes{{policy=\"{POLICY}\",verdict=\"Unknown\"}} 1"
                )
            })
        },
    )
    .await;
    wait_for(
        "probe errors on the broken host",
        broken_addr,
        &procs,
        |t| has_sample(t, "plumbline_agent_probe_errors_total", "probe="),
    )
    .await;

    // Refused writes: the agents' heartbeats and the controller's lease.
    sim.faults().set(Faults {
        error_rate: 1.0,
        resources: vec!["nodegpubaselines".into(), "leases".into()],
        verbs: vec![
            "patch".into(),
            "update".into(),
            "create".into(),
            "apply".into(),
        ],
        ..Faults::default()
    });
    wait_for("agent API errors", healthy_addr, &procs, |t| {
        has_sample(t, "plumbline_agent_api_errors_total", "kind=")
    })
    .await;
    wait_for("controller errors", controller_addr, &procs, |t| {
        has_sample(t, "plumbline_controller_errors_total", "kind=")
    })
    .await;
    sim.faults().clear();

    let mut agent_families = BTreeSet::new();
    for (label, addr) in [("agent gpu-0", healthy_addr), ("agent gpu-1", broken_addr)] {
        agent_families.extend(families(&lint(label, addr, &promtool).await));
    }
    let controller_families = families(&lint("controller", controller_addr, &promtool).await);

    // What is exported is what the docs list, no more and no less.
    let exported = |set: &BTreeSet<(String, String)>| -> BTreeSet<String> {
        set.iter().map(|(n, _)| n.clone()).collect()
    };
    assert_eq!(
        exported(&agent_families),
        documented("docs/agent.md", "Endpoints and metrics", "plumbline_agent_"),
        "agent metrics differ from the table in docs/agent.md"
    );
    assert_eq!(
        exported(&controller_families),
        documented("docs/controller.md", "Metrics", "plumbline_controller_"),
        "controller metrics differ from the table in docs/controller.md"
    );

    // Every name the alerts and the runbook query is exported (histogram
    // series carry a suffix on the family's name).
    let all: BTreeSet<(String, String)> = agent_families
        .union(&controller_families)
        .cloned()
        .collect();
    let series = |name: &str| {
        all.iter().any(|(family, kind)| {
            name == family
                || (kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{family}{s}")))
        })
    };
    for file in ["charts/plumbline/files/alerts.yaml", "docs/runbook.md"] {
        let unknown: Vec<String> = names_used(file)
            .into_iter()
            .filter(|n| !series(n))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics nobody exports: {unknown:?}"
        );
    }
    sim.shutdown().await;
}
