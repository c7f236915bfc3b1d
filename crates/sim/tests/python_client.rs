//! The official Python `kubernetes` client (from PyPI, in the virtualenv
//! that `make test` creates at `.venv`) against the emulator.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_kubernetes_client_list_watch_patch() {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test` (it creates the virtualenv with the `kubernetes` package), \
         or `python3 -m venv .venv && .venv/bin/pip install kubernetes` at the repository root",
        python.display()
    );
    let sim = start_with_fixture().await;
    for (i, pool) in ["a", "a", "b"].iter().enumerate() {
        let mut n = node(&format!("py-{i}"));
        n["metadata"]["labels"]["pool"] = json!(pool);
        sim.store().create(n).expect("seed node");
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let kubeconfig = tmp.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_test.py");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script)
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", tmp.path());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(sim.metrics().count("watch", "nodes") >= 1);
    assert!(sim.metrics().count("patch", "nodes") >= 2);
    sim.shutdown().await;
}
