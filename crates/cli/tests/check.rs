//! `plumbline check` as a user runs it: the built binary on every fixture
//! host, compared with the fixture's expected output, judged against the
//! built-in default policy and against example policies.

use std::path::{Path, PathBuf};
use std::process::Command;

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_plumbline");

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hosts");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    cases.sort();
    cases
}

fn check(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("check")
        .args(args)
        .output()
        .expect("plumbline runs")
}

/// Fixture host, exit code, verdict state, rules that fail (in rule order).
type ExpectedVerdict = (&'static str, i32, &'static str, &'static [&'static str]);

/// Verdict of each fixture host under the built-in default policy.
const DEFAULT_POLICY_VERDICTS: &[ExpectedVerdict] = &[
    ("a100-pcie-535-docker", 0, "Compliant", &[]),
    (
        "broken-host",
        3,
        "Unknown",
        &[
            "probe.error",
            "probe.error",
            "probe.error",
            "probe.error",
            "probe.error",
        ],
    ),
    (
        "gb200-arm64-containerd2-undeclared-dropin",
        1,
        "Drifting",
        &["containerToolkit.runtime"],
    ),
    ("gpu-operator-a10-570", 0, "Compliant", &[]),
    ("hgx-h100-580-open", 0, "Compliant", &[]),
    (
        "l4-debian-toolkit-newer-than-driver",
        1,
        "Drifting",
        &["toolkit.newerThanDriver"],
    ),
    (
        "l40s-pending-reboot",
        1,
        "Drifting",
        &["driver.mismatch", "cdi.stale"],
    ),
    (
        "no-driver",
        1,
        "Drifting",
        &[
            "driver.present",
            "containerToolkit.present",
            "containerToolkit.runtime",
        ],
    ),
    (
        "rtx-pro-blackwell-duplicate-cdi",
        1,
        "Drifting",
        &["cdi.stale"],
    ),
    ("v100-rhel-crio-550", 0, "Compliant", &[]),
];

fn rules_of(verdict: &Value) -> Vec<String> {
    verdict["findings"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|f| f["rule"].as_str().expect("rule").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn json_output_matches_every_fixture() {
    let cases = fixtures();
    assert_eq!(
        cases.len(),
        DEFAULT_POLICY_VERDICTS.len(),
        "a fixture without an expected verdict"
    );
    for case in cases {
        let name = case.file_name().expect("name").to_str().expect("utf-8");
        let (_, code, state, rules) = DEFAULT_POLICY_VERDICTS
            .iter()
            .find(|(n, ..)| *n == name)
            .unwrap_or_else(|| panic!("{name} has no expected verdict"));
        let root = case.join("host");
        let out = check(&[
            "--host-root",
            root.to_str().expect("utf-8 path"),
            "--output",
            "json",
            "--no-nvml",
        ]);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut got: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
        assert_eq!(got["verdict"]["state"], json!(state), "{name}");
        assert_eq!(
            got["verdict"]["policy"],
            json!("plumbline-default"),
            "{name}"
        );
        assert_eq!(rules_of(&got["verdict"]), *rules, "{name}");
        for p in got["probes"].as_array_mut().expect("probes") {
            p["durationMicros"] = json!(0);
        }
        let want: Value = serde_json::from_str(
            &std::fs::read_to_string(case.join("expected.json")).expect("expected.json"),
        )
        .expect("JSON");
        assert_eq!(got["observed"], want["observed"], "{}", case.display());
        assert_eq!(got["probes"], want["probes"], "{}", case.display());
    }
}

#[test]
fn yaml_and_table_outputs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hosts/l40s-pending-reboot/host");
    let root = root.to_str().expect("utf-8");
    let out = check(&["--host-root", root, "--output", "yaml", "--no-nvml"]);
    assert_eq!(out.status.code(), Some(1), "a pending reboot is drift");
    let yaml: Value = serde_saphyr::from_slice(&out.stdout).expect("YAML");
    assert_eq!(
        yaml["observed"]["driver"]["userspaceVersion"],
        json!("550.120")
    );

    let out = check(&["--host-root", root, "--no-nvml"]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        table.contains("verdict: Drifting against plumbline-default\n! driver.mismatch: "),
        "{table}"
    );
    // Not a terminal: markers, no colour.
    assert!(!table.contains('\x1b'), "{table}");
    assert!(
        table.contains("! driver             550.54.15 (proprietary module), userspace 550.120 under / — kernel/userspace mismatch, reboot pending"),
        "{table}"
    );
    assert!(table.contains("! CDI "), "{table}");
    assert!(table.contains("  CUDA ceiling       12.4"), "{table}");
}

#[test]
fn a_host_without_a_driver_says_so_plainly() {
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hosts/no-driver/host");
    let out = check(&["--host-root", root.to_str().expect("utf-8"), "--no-nvml"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no driver is drift under the default policy"
    );
    let table = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        table.contains("! driver             no NVIDIA driver is loaded\n"),
        "{table}"
    );
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let out = check(&["--host-root", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--host-root /definitely/not/here must be a directory"),
        "{err}"
    );

    let out = check(&["--output", "xml"]);
    assert_eq!(out.status.code(), Some(2));

    let out = check(&["--compat-data", "/definitely/not/here.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("loading --compat-data /definitely/not/here.toml"),
        "{err}"
    );
}

#[test]
fn the_fake_nvml_mismatch_through_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("host");
    let lib_dir = root.join("usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&lib_dir).expect("mkdir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../probe/tests/nvml-fake/fake_nvml.c");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(lib_dir.join("libnvidia-ml.so.580.95.05"))
        .arg(source)
        .status()
        .expect("gcc");
    assert!(status.success());
    std::os::unix::fs::symlink(
        "libnvidia-ml.so.580.95.05",
        lib_dir.join("libnvidia-ml.so.1"),
    )
    .expect("link");
    let out = Command::new(BIN)
        .args(["check", "--output", "json", "--host-root"])
        .arg(&root)
        .env("FAKE_NVML_MODE", "mismatch")
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "this host has no kernel module: drift"
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(got["observed"]["driver"]["mismatch"], json!(true));
    let nvml = got["probes"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "nvml"))
        .expect("nvml");
    assert_eq!(nvml["status"], json!("Ok"));
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/examples")
        .join(name)
        .to_str()
        .expect("utf-8")
        .to_string()
}

fn host(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hosts")
        .join(name)
        .join("host")
        .to_str()
        .expect("utf-8")
        .to_string()
}

#[test]
fn a_policy_file_judges_the_host() {
    struct PolicyCase {
        what: &'static str,
        policy: &'static str,
        host: &'static str,
        code: i32,
        state: &'static str,
        failing_rule: Option<&'static str>,
    }
    let cases = [
        PolicyCase {
            what: "auto: a proprietary module on an Ampere A100 is what it may run",
            policy: "require-open-module.yaml",
            host: "a100-pcie-535-docker",
            code: 0,
            state: "Compliant",
            failing_rule: None,
        },
        PolicyCase {
            what: "auto: the HGX H100 with the open module and Fabric Manager",
            policy: "require-open-module.yaml",
            host: "hgx-h100-580-open",
            code: 0,
            state: "Compliant",
            failing_rule: None,
        },
        PolicyCase {
            what: "pinned to branch 580: the L4 on 550 drifts",
            policy: "pin-driver-branch.yaml",
            host: "l4-debian-toolkit-newer-than-driver",
            code: 1,
            state: "Drifting",
            failing_rule: Some("driver.version"),
        },
        PolicyCase {
            what: "a CUDA 12.8 workload cannot run on a driver whose ceiling is 12.4",
            policy: "gate-cuda-12-8-workload.yaml",
            host: "l40s-pending-reboot",
            code: 1,
            state: "Drifting",
            failing_rule: Some("cuda.workload"),
        },
    ];
    for PolicyCase {
        what,
        policy,
        host: host_name,
        code,
        state,
        failing_rule,
    } in cases
    {
        let out = check(&[
            "--host-root",
            &host(host_name),
            "--no-nvml",
            "--output",
            "json",
            "--policy",
            &example(policy),
        ]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(got["verdict"]["state"], json!(state), "{what}");
        if let Some(rule) = failing_rule {
            assert!(
                rules_of(&got["verdict"]).contains(&rule.to_string()),
                "{what}: {}",
                got["verdict"]
            );
        }
    }
}

#[test]
fn an_inline_policy_requiring_the_open_module() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("open.yaml");
    std::fs::write(
        &path,
        "apiVersion: plumbline.dev/v1alpha1\nkind: GpuFleetPolicy\nmetadata:\n  name: open-only\nspec:\n  requirements:\n    driver:\n      kernelModule: open\n",
    )
    .expect("write");
    let path = path.to_str().expect("utf-8");
    for (host_name, code) in [("a100-pcie-535-docker", 1), ("hgx-h100-580-open", 0)] {
        let out = check(&[
            "--host-root",
            &host(host_name),
            "--no-nvml",
            "--output",
            "json",
            "--policy",
            path,
        ]);
        assert_eq!(out.status.code(), Some(code), "{host_name}");
        let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(got["verdict"]["policy"], json!("open-only"));
        assert_eq!(
            rules_of(&got["verdict"]).contains(&"driver.kernelModule".to_string()),
            code == 1,
            "{host_name}: {}",
            got["verdict"]
        );
    }
}

#[test]
fn a_bad_policy_file_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        "apiVersion: plumbline.dev/v1alpha1\nkind: GpuFleetPolicy\nmetadata:\n  name: typo\nspec:\n  requirements:\n    driver:\n      kernelModule: opne\n",
    )
    .expect("write");
    let out = check(&[
        "--host-root",
        &host("no-driver"),
        "--policy",
        path.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.requirements.driver.kernelModule"),
        "{err}"
    );
    assert!(err.contains("opne"), "{err}");
    assert!(out.stdout.is_empty(), "nothing is printed for a bad policy");
}
