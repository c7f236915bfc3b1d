//! Shared helpers for the emulator's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use plumbline_sim::{Sim, SimConfig};
use serde_json::Value;

pub const FIXTURE_CRD: &str = include_str!("../fixtures/gpubaselines.sim.plumbline.dev.yaml");

pub fn fixture_crd() -> Value {
    serde_saphyr::from_str(FIXTURE_CRD).expect("fixture CRD parses")
}

/// The repository root (for `crds/*.yaml`).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&root).unwrap_or(root)
}

/// The project's committed CRDs, when they exist.
pub fn project_crds() -> Vec<(PathBuf, Value)> {
    let dir = repo_root().join("crds");
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).expect("read crd");
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("crd yaml parses");
            for d in docs {
                if d.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
                    out.push((p.clone(), d));
                }
            }
        }
    }
    out
}

pub async fn start() -> Sim {
    Sim::start(SimConfig::default()).await.expect("sim starts")
}

pub async fn start_with_fixture() -> Sim {
    let sim = start().await;
    sim.store()
        .create(fixture_crd())
        .expect("fixture CRD created");
    sim
}

pub fn node(name: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Ubuntu 24.04", "kernelVersion": "6.8.0",
                         "containerRuntimeVersion": "containerd://2.0.0", "architecture": "amd64",
                         "operatingSystem": "linux", "bootID": "", "machineID": "", "systemUUID": "",
                         "kubeProxyVersion": ""}
        }
    })
}

/// Minimal raw HTTP/1.1 GET (chunked bodies decoded); for checks that
/// need the exact wire form (status line, headers, watch lines).
pub async fn raw_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("response completes within 30s")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").expect("http response");
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((len, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    (code, head.to_string(), body)
}

/// The directory holding `kubectl.1.27` … `kubectl.1.33`, if kubectl exists.
pub fn kubectl_dir() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        let k = dir.join("kubectl");
        if k.exists() {
            let real = std::fs::canonicalize(&k).ok()?;
            return real.parent().map(Path::to_path_buf);
        }
    }
    None
}
