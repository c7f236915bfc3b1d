//! The real `kubectl` (oldest and newest installed minor) against the
//! emulator: apply (client-side and server-side, default validation),
//! printer columns, nodes, describe with events, cordon, taint, label,
//! watch, delete, and schema errors.
//!
//! Skips, saying so, only when no kubectl is installed at all.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .arg(format!("--cache-dir={}", self.home.join("cache").display()))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .env_remove("KUBECTL_EXTERNAL_DIFF");
        c
    }

    async fn run(&self, args: &[&str]) -> Out {
        let mut c = self.command(args);
        let out = tokio::task::spawn_blocking(move || c.output())
            .await
            .expect("join")
            .expect("kubectl runs");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert!(
            o.ok,
            "kubectl {} failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            self.bin.display(),
            o.stdout,
            o.stderr
        );
        o.stdout
    }
}

fn kubectl_versions() -> Option<Vec<PathBuf>> {
    let Some(dir) = kubectl_dir() else {
        println!("SKIPPED: kubectl is not installed on this machine (not on PATH)");
        return None;
    };
    let mut out = Vec::new();
    for v in ["kubectl.1.27", "kubectl.1.33"] {
        let p = dir.join(v);
        if p.exists() {
            out.push(p);
        }
    }
    if out.is_empty() {
        // Only the unversioned binary is installed; test that one.
        out.push(dir.join("kubectl"));
    }
    Some(out)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write manifest");
    p.display().to_string()
}

async fn exercise(bin: PathBuf) {
    let sim = start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let kubeconfig = tmp.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let k = Kubectl {
        bin: bin.clone(),
        kubeconfig,
        home: tmp.path().to_path_buf(),
    };
    let crd_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gpubaselines.sim.plumbline.dev.yaml")
        .display()
        .to_string();

    // CRDs: client-side apply, then server-side apply of the same file.
    let out = k.ok(&["apply", "-f", &crd_path]).await;
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/gpubaselines.sim.plumbline.dev created"
        ),
        "{out}"
    );
    let out = k.ok(&["apply", "--server-side", "-f", &crd_path]).await;
    assert!(out.contains("serverside-applied"), "{out}");
    let out = k
        .ok(&[
            "get",
            "crd",
            "gpubaselines.sim.plumbline.dev",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ])
        .await;
    assert_eq!(out.trim(), "True");
    // The project's CRDs: server-side first, then client-side over it.
    // (The other order conflicts on `.spec.versions`, as it would on a real
    // server: client-side apply drops the `null` inside a schema `default`,
    // so the server-side apply then asks for a different value.)
    for (path, _) in project_crds() {
        let p = path.display().to_string();
        let out = k.ok(&["apply", "--server-side", "-f", &p]).await;
        assert!(out.contains("serverside-applied"), "{out}");
        k.ok(&["apply", "-f", &p]).await;
    }
    for (_, crd) in project_crds() {
        // Served at once: short names resolve and listing works.
        if let Some(short) = crd
            .pointer("/spec/names/shortNames/0")
            .and_then(|s| s.as_str())
        {
            let o = k.run(&["get", short]).await;
            assert!(
                o.ok && o.stderr.contains("No resources found"),
                "{}{}",
                o.stdout,
                o.stderr
            );
        }
    }

    // Nodes, with a Ready condition.
    for n in ["gpu-a", "gpu-b"] {
        sim.store().create(node(n)).expect("node");
    }
    let out = k.ok(&["get", "nodes"]).await;
    let header: Vec<&str> = out
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("gpu-a") && l.contains("Ready") && l.contains("v1.33.0")),
        "{out}"
    );

    // A custom object, applied with default (strict, server-side) validation.
    let good = write(
        tmp.path(),
        "gb.yaml",
        "apiVersion: sim.plumbline.dev/v1alpha1\nkind: GpuBaseline\nmetadata:\n  name: gpu-a\nspec:\n  nodeName: gpu-a\n  kernelModule: open\n",
    );
    let out = k.ok(&["apply", "-f", &good]).await;
    assert!(
        out.contains("gpubaseline.sim.plumbline.dev/gpu-a created"),
        "{out}"
    );
    let out = k.ok(&["apply", "-f", &good]).await;
    assert!(out.contains("unchanged"), "{out}");
    sim.store()
        .merge_patch(
            "sim.plumbline.dev/v1alpha1",
            "GpuBaseline",
            None,
            "gpu-a",
            &json!({"status": {"observed": {"driver": {"version": "580.65.06"}}, "gpus": [{"index": 0, "product": "H100"}]}}),
            true,
        )
        .expect("status");
    let out = k.ok(&["get", "gb"]).await;
    let header: Vec<&str> = out
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        vec!["NAME", "DRIVER", "MODULE", "GPUS", "AGE"],
        "{out}"
    );
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .expect("row")
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], &["gpu-a", "580.65.06", "open", "H100"], "{out}");
    let out = k.ok(&["get", "gb", "-o", "wide"]).await;
    assert!(
        out.lines().next().expect("header").contains("VERDICT"),
        "{out}"
    );

    // Invalid objects are refused with the schema's field error.
    let bad = write(
        tmp.path(),
        "bad.yaml",
        "apiVersion: sim.plumbline.dev/v1alpha1\nkind: GpuBaseline\nmetadata:\n  name: bad\nspec:\n  nodeName: gpu-b\n  kernelModule: nouveau\n",
    );
    let o = k.run(&["apply", "-f", &bad]).await;
    assert!(!o.ok, "invalid object accepted: {}", o.stdout);
    assert!(
        o.stderr
            .contains("spec.kernelModule: Unsupported value: \"nouveau\""),
        "{}",
        o.stderr
    );
    let unknown = write(
        tmp.path(),
        "unknown.yaml",
        "apiVersion: sim.plumbline.dev/v1alpha1\nkind: GpuBaseline\nmetadata:\n  name: unknown\nspec:\n  nodeName: gpu-b\n  bogus: 1\n",
    );
    let o = k.run(&["apply", "-f", &unknown]).await;
    assert!(!o.ok && o.stderr.contains("unknown field"), "{}", o.stderr);

    // Node operations.
    let out = k.ok(&["cordon", "gpu-a"]).await;
    assert!(out.contains("node/gpu-a cordoned"), "{out}");
    let out = k.ok(&["get", "node", "gpu-a"]).await;
    assert!(out.contains("Ready,SchedulingDisabled"), "{out}");
    let out = k.ok(&["uncordon", "gpu-a"]).await;
    assert!(out.contains("node/gpu-a uncordoned"), "{out}");
    let out = k
        .ok(&[
            "taint",
            "nodes",
            "gpu-a",
            "plumbline.dev/drift=true:NoSchedule",
        ])
        .await;
    assert!(out.contains("node/gpu-a tainted"), "{out}");
    let out = k
        .ok(&["label", "nodes", "gpu-a", "plumbline.dev/compliant=false"])
        .await;
    assert!(out.contains("node/gpu-a labeled"), "{out}");
    let n = sim.store().get("v1", "Node", None, "gpu-a").expect("node");
    assert_eq!(n["spec"]["taints"][0]["key"], "plumbline.dev/drift");
    assert_eq!(n["metadata"]["labels"]["plumbline.dev/compliant"], "false");
    assert!(n["spec"].get("unschedulable").is_none_or(|u| u == false));

    // describe shows events written through events.k8s.io/v1.
    let uid = n["metadata"]["uid"].as_str().expect("uid").to_string();
    sim.store()
        .create(json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "gpu-a.drift", "namespace": "default"},
            "regarding": {"kind": "Node", "name": "gpu-a", "uid": uid, "apiVersion": "v1"},
            "reason": "DriftDetected", "note": "driver below policy minimum", "type": "Warning",
            "action": "Taint", "reportingController": "plumbline-controller", "reportingInstance": "c-0",
            "eventTime": "2026-01-01T00:00:00.000000Z",
        }))
        .expect("event");
    let out = k.ok(&["describe", "node", "gpu-a"]).await;
    assert!(
        out.contains("Taints:") && out.contains("plumbline.dev/drift=true:NoSchedule"),
        "{out}"
    );
    assert!(
        out.contains("DriftDetected") && out.contains("driver below policy minimum"),
        "{out}"
    );

    // get -w sees a change.
    let mut child = k
        .command(&["get", "nodes", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    let mut stdout = child.stdout.take().expect("stdout");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    // Change the Node only once kubectl's watch is open: kubectl starts
    // slowly on a busy machine, and a change before the watch would show
    // up as the initial list instead.
    let opened = std::time::Instant::now();
    while sim.metrics().watches_active("nodes") < 1 {
        assert!(
            opened.elapsed() < Duration::from_secs(30),
            "kubectl get -w never opened a watch"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.store()
        .merge_patch(
            "v1",
            "Node",
            None,
            "gpu-b",
            &json!({"spec": {"unschedulable": true}}),
            false,
        )
        .expect("cordon via store");
    let shows_change = |s: &str| {
        s.lines()
            .any(|l| l.starts_with("gpu-b") && l.contains("SchedulingDisabled"))
    };
    let changed = std::time::Instant::now();
    while !seen.lock().map(|s| shows_change(&s)).unwrap_or(false)
        && changed.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    reader.join().expect("reader");
    let watched = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        shows_change(&watched),
        "kubectl get -w did not show the change:\n{watched}"
    );

    let out = k.ok(&["delete", "gb", "gpu-a"]).await;
    assert!(out.contains("deleted"), "{out}");
    assert!(
        sim.store()
            .get("sim.plumbline.dev/v1alpha1", "GpuBaseline", None, "gpu-a")
            .is_none()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_oldest_and_newest() {
    let Some(bins) = kubectl_versions() else {
        return;
    };
    for bin in bins {
        println!("testing {}", bin.display());
        exercise(bin).await;
    }
}
