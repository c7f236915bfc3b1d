//! The rendered manifests applied to the API server emulator with the real
//! `kubectl` (the oldest and the newest installed minor), as an admin who
//! installs without Helm would: `deploy/plumbline.yaml` client-side, then
//! server-side; every object then served by `kubectl get` in the right
//! scope; the CRDs it carries then serve `ngb` and `gfp`, the example
//! policies apply, and `kubectl delete -f` removes it all. The chart with
//! every option on (ServiceMonitors, PrometheusRule, NetworkPolicies, NVML,
//! a policy) applies too, after the Prometheus Operator's CRDs.
//!
//! Needs `kubectl` on PATH (the versioned `kubectl.1.NN` binaries beside it
//! are preferred) and, for the chart with options on, the `.venv` that
//! `make tools` creates (Helm renders it).

// Test helpers read fixed, committed files: a missing piece is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use plumbline_sim::{Sim, SimConfig};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `kubectl.1.27` (the oldest client the project supports) and the newest
/// `kubectl.1.NN` beside the `kubectl` on PATH; that `kubectl` alone when
/// there are no versioned ones.
fn kubectls() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|p| p.is_file());
    let Some(kubectl) = found else {
        panic!(
            "kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/), \
             this test applies the rendered manifests with it"
        );
    };
    let dir = kubectl
        .canonicalize()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut minors: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let minor = path.file_name()?.to_str()?.strip_prefix("kubectl.1.")?;
            Some((minor.parse().ok()?, path))
        })
        .collect();
    minors.sort();
    let mut out: Vec<PathBuf> = minors
        .iter()
        .filter(|(m, _)| *m == 27)
        .chain(minors.last())
        .map(|(_, p)| p.clone())
        .collect();
    out.dedup();
    if out.is_empty() {
        out.push(kubectl);
    }
    out
}

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
    async fn run(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .arg(format!("--cache-dir={}", self.home.join("cache").display()))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .current_dir(repo());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "{} {} failed:\nstdout: {}\nstderr: {}",
            self.bin.display(),
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all).await).unwrap()
    }
}

async fn setup(bin: &Path, tmp: &Path) -> (Sim, Kubectl) {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let kubeconfig = tmp.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let kubectl = Kubectl {
        bin: bin.to_path_buf(),
        kubeconfig,
        home: tmp.to_path_buf(),
    };
    (sim, kubectl)
}

/// `(kind, namespace, name)` of every document of a manifest stream.
fn objects(text: &str) -> BTreeSet<(String, String, String)> {
    text.split("\n---\n")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .filter(|doc| doc.get("kind").is_some())
        .map(|doc| key(&doc))
        .collect()
}

fn key(obj: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    (
        s(&obj["kind"]),
        s(&obj["metadata"]["namespace"]),
        s(&obj["metadata"]["name"]),
    )
}

/// Every object of `file` as the server has it, by `(kind, namespace, name)`.
async fn served(k: &Kubectl, file: &str) -> BTreeMap<(String, String, String), Value> {
    let list = k.json(&["get", "-f", file, "--show-managed-fields"]).await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (key(o), o.clone()))
        .collect()
}

const DEPLOY: &str = "deploy/plumbline.yaml";
const CLUSTER_SCOPED: &[&str] = &[
    "CustomResourceDefinition",
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "GpuFleetPolicy",
];

async fn apply_default_manifests(bin: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let (sim, k) = setup(bin, tmp.path()).await;
    let label = bin.display().to_string();

    // Before the CRDs, kubectl does not know the short names.
    let before = k.run(&["get", "ngb"]).await;
    assert!(!before.ok, "{label}: ngb served before its CRD");
    assert!(
        before
            .stderr
            .contains("the server doesn't have a resource type \"ngb\""),
        "{label}: {}",
        before.stderr
    );

    let text = std::fs::read_to_string(repo().join(DEPLOY)).unwrap();
    let want = objects(&text);
    let kinds: BTreeSet<&str> = want.iter().map(|(kind, _, _)| kind.as_str()).collect();
    for kind in [
        "CustomResourceDefinition",
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "DaemonSet",
        "Deployment",
        "PodDisruptionBudget",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert!(kinds.contains(kind), "{DEPLOY} has no {kind}");
    }

    // Client-side apply: every object created, in file order (the
    // Namespace before what lives in it).
    let out = k.ok(&["apply", "-f", DEPLOY]).await;
    let created = out.lines().filter(|l| l.ends_with(" created")).count();
    assert_eq!(created, want.len(), "{label}: not all created:\n{out}");
    let first = served(&k, DEPLOY).await;
    assert_eq!(
        first.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "{label}: kubectl get -f serves every object"
    );
    for ((kind, namespace, name), obj) in &first {
        let cluster = CLUSTER_SCOPED.contains(&kind.as_str());
        assert_eq!(
            namespace.is_empty(),
            cluster,
            "{label}: {kind} {name} in the wrong scope"
        );
        assert!(
            obj["metadata"]["resourceVersion"]
                .as_str()
                .is_some_and(|rv| !rv.is_empty()),
            "{label}: {kind} {name} has no resourceVersion"
        );
    }

    // Server-side apply of the same file: the same objects, updated in place.
    let out = k.ok(&["apply", "--server-side", "-f", DEPLOY]).await;
    let applied = out
        .lines()
        .filter(|l| l.ends_with(" serverside-applied"))
        .count();
    assert_eq!(applied, want.len(), "{label}:\n{out}");
    let second = served(&k, DEPLOY).await;
    for (id, obj) in &second {
        assert_eq!(
            obj["metadata"]["uid"], first[id]["metadata"]["uid"],
            "{label}: {id:?} was recreated"
        );
    }
    // kubectl moved the client-side apply's fields to its apply manager.
    let managers: Vec<&str> = second[&(
        "DaemonSet".to_string(),
        "plumbline-system".to_string(),
        "plumbline-agent".to_string(),
    )]["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, ["kubectl"], "{label}");
    // Tables of every kind print (kubectl's RESTMapper and the server's
    // Table rendering for each).
    let table = k.ok(&["get", "-f", DEPLOY]).await;
    for (_, _, name) in &want {
        assert!(table.contains(name.as_str()), "{label}: {name}:\n{table}");
    }
    let sa = k
        .ok(&[
            "get",
            "serviceaccounts",
            "-n",
            "plumbline-system",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(
        sa.lines().collect::<Vec<_>>(),
        [
            "serviceaccount/plumbline-agent",
            "serviceaccount/plumbline-controller"
        ],
        "{label}"
    );

    // The CRDs from the manifest now serve the custom resources.
    for short in ["ngb", "gfp"] {
        let out = k.run(&["get", short]).await;
        assert!(out.ok, "{label}: get {short}: {}", out.stderr);
        assert!(
            out.stderr.contains("No resources found"),
            "{label}: {}",
            out.stderr
        );
    }
    let out = k.ok(&["apply", "-f", "deploy/examples/"]).await;
    let examples: Vec<String> = std::fs::read_dir(repo().join("deploy/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .flat_map(|p| objects(&std::fs::read_to_string(p).unwrap()))
        .map(|(_, _, name)| name)
        .collect();
    assert!(examples.len() >= 5, "{examples:?}");
    for name in &examples {
        assert!(
            out.contains(&format!("gpufleetpolicy.plumbline.dev/{name} created")),
            "{label}: {name}:\n{out}"
        );
    }
    let out = k
        .ok(&["apply", "--server-side", "-f", "deploy/examples/"])
        .await;
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with(" serverside-applied"))
            .count(),
        examples.len(),
        "{label}:\n{out}"
    );
    let names = k.ok(&["get", "gfp", "-o", "name"]).await;
    let mut listed: Vec<&str> = names.lines().collect();
    listed.sort();
    let mut expected: Vec<String> = examples
        .iter()
        .map(|n| format!("gpufleetpolicy.plumbline.dev/{n}"))
        .collect();
    expected.sort();
    assert_eq!(listed, expected, "{label}");

    // Removal as documented for plain YAML. The emulator empties a deleted
    // namespace at once, so the objects after it in the file are gone by
    // the time kubectl gets to them.
    k.ok(&["delete", "gfp", "--all"]).await;
    k.ok(&["delete", "--ignore-not-found", "-f", DEPLOY]).await;
    let gone = k.run(&["get", "-f", DEPLOY]).await;
    assert!(
        gone.stdout.trim().is_empty() && gone.stderr.contains("NotFound"),
        "{label}: objects left after delete -f:\n{}\n{}",
        gone.stdout,
        gone.stderr
    );
    assert_eq!(sim.store().count("v1", "ServiceAccount"), 0, "{label}");
    sim.shutdown().await;
}

/// The chart with every option on, rendered by Helm through `tools/chart.py`.
fn render_non_default(dir: &Path) -> String {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make tools` (it creates the virtualenv with Helm's SDK)",
        python.display()
    );
    let out = Command::new(&python)
        .args(["tools/chart.py", "show", "non-default"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chart.py show non-default: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("non-default.yaml");
    std::fs::write(&path, &out.stdout).unwrap();
    path.display().to_string()
}

async fn apply_chart_with_every_option(bin: &Path, manifest: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (sim, k) = setup(bin, tmp.path()).await;
    let label = bin.display().to_string();
    let operator_crds = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/prometheus-operator-crds.yaml")
        .display()
        .to_string();
    k.ok(&["apply", "-f", &operator_crds]).await;
    // As Helm does with a chart's crds/: CRDs first, then the rest.
    k.ok(&["apply", "-f", "charts/plumbline/crds/"]).await;
    let out = k.ok(&["apply", "--server-side", "-f", manifest]).await;
    let want = objects(&std::fs::read_to_string(manifest).unwrap());
    let kinds: BTreeSet<&str> = want.iter().map(|(kind, _, _)| kind.as_str()).collect();
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "GpuFleetPolicy",
    ] {
        assert!(kinds.contains(kind), "the options render no {kind}");
    }
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with(" serverside-applied"))
            .count(),
        want.len(),
        "{label}:\n{out}"
    );
    let got = served(&k, manifest).await;
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "{label}"
    );
    let rule = k
        .json(&["get", "promrule", "plumbline", "-n", "plumbline-system"])
        .await;
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert!(
        alerts.contains(&"PlumblineControllerNoLeader") && alerts.len() >= 4,
        "{label}: {alerts:?}"
    );
    let ds = &got[&(
        "DaemonSet".to_string(),
        "plumbline-system".to_string(),
        "plumbline-agent".to_string(),
    )];
    assert_eq!(ds["spec"]["template"]["spec"]["runtimeClassName"], "nvidia");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_manifests_apply_with_kubectl_and_serve_the_crds() {
    for bin in kubectls() {
        apply_default_manifests(&bin).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_with_every_option_applies_with_kubectl() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = render_non_default(tmp.path());
    for bin in kubectls() {
        apply_chart_with_every_option(&bin, &manifest).await;
    }
}
