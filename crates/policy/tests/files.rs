//! Policies as files: the example policies in deploy/examples, deliberately
//! invalid ones in tests/fixtures/invalid, the built-in default policy, and
//! `plumbline check`'s exit codes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use plumbline_api::keys::probes;
use plumbline_api::keys::rules;
use plumbline_api::*;
use plumbline_compat::CompatDb;
use plumbline_policy::*;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_policy_parses_and_validates() {
    let files = yaml_files(&examples_dir());
    assert!(files.len() >= 4, "{files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(&path).unwrap();
        let policy = parse_policy(&text, &name).unwrap_or_else(|e| panic!("{e}"));
        assert!(policy.metadata.name.is_some(), "{name}");
        // Each example must say something about the reference node.
        let verdict = evaluate_host(
            &policy,
            &h100_node(),
            &probes_with_errors(&[]),
            now(),
            CompatDb::embedded(),
        );
        assert_ne!(verdict.state, VerdictState::Unmanaged, "{name}");
    }
}

#[test]
fn examples_judge_the_reference_node_as_documented() {
    let load = |file: &str| {
        let text = fs::read_to_string(examples_dir().join(file)).unwrap();
        parse_policy(&text, file).unwrap()
    };
    let check = |policy: &GpuFleetPolicy, observed: &Observed| {
        evaluate_host(
            policy,
            observed,
            &probes_with_errors(&[]),
            now(),
            CompatDb::embedded(),
        )
    };
    let pin = load("pin-driver-branch.yaml");
    assert_eq!(check(&pin, &h100_node()).state, VerdictState::Compliant);
    let mut old = h100_node();
    set_driver(&mut old, "570.124.06", Some("12.8"));
    assert_eq!(check(&pin, &old).state, VerdictState::Drifting);

    let gate = load("gate-cuda-12-8-workload.yaml");
    assert_eq!(check(&gate, &h100_node()).state, VerdictState::Compliant);
    let mut o550 = h100_node();
    set_driver(&mut o550, "550.54.15", Some("12.4"));
    o550.toolkits.clear();
    let v = check(&gate, &o550);
    let rules_hit: Vec<&str> = v.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(
        rules_hit,
        [rules::CUDA_MIN_CEILING, rules::CUDA_WORKLOAD],
        "batch-embeddings runs by minor-version compatibility"
    );

    // The window is open on the test's "now" (2026-11-22): both builds pass.
    let window = load("upgrade-window.yaml");
    assert_eq!(check(&window, &h100_node()).state, VerdictState::Compliant);
    let mut new = h100_node();
    set_driver(&mut new, "595.58.03", Some("13.2"));
    assert_eq!(check(&window, &new).state, VerdictState::Compliant);
    let after: jiff::Timestamp = "2027-02-01T00:00:00Z".parse().unwrap();
    let late = evaluate_host(
        &window,
        &h100_node(),
        &probes_with_errors(&[]),
        after,
        CompatDb::embedded(),
    );
    assert_eq!(
        late.state,
        VerdictState::Drifting,
        "a straggler after the window closes"
    );
}

#[test]
fn every_invalid_fixture_fails_with_its_expected_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let files = yaml_files(&dir);
    assert!(files.len() >= 10, "{files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{name} has no `# expect:` first line"));
        let err = parse_policy(&text, &name).expect_err(&name);
        let shown = err.to_string();
        let want = if expect.starts_with(&name) {
            expect.to_string()
        } else {
            format!("{name}: {expect}")
        };
        assert!(
            shown.contains(&want),
            "{name}:\n got: {shown}\nwant: {want}"
        );
        assert!(!err.kind().is_empty());
    }
}

#[test]
fn the_issue_example_error_is_exact() {
    let text = "apiVersion: plumbline.dev/v1alpha1\nkind: GpuFleetPolicy\nmetadata:\n  name: p\nspec:\n  requirements:\n    driver:\n      kernelModule: opne\n";
    let err = parse_policy(text, "policy.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy.yaml: spec.requirements.driver.kernelModule: unknown value \"opne\", expected one of auto, open, proprietary, any"
    );
    assert_eq!(err.kind(), "schema");
    assert_eq!(
        err.field_errors()[0].field,
        "spec.requirements.driver.kernelModule"
    );
}

#[test]
fn several_errors_are_all_reported() {
    let text = "apiVersion: plumbline.dev/v1alpha1\nkind: GpuFleetPolicy\nmetadata:\n  name: p\nspec:\n  actions:\n    staleAfter: soon\n    gracePeriod: later\n";
    let err = parse_policy(text, "p.yaml").unwrap_err();
    assert_eq!(err.kind(), "invalid");
    assert_eq!(err.field_errors().len(), 2);
    assert_eq!(err.to_string().lines().count(), 2);
}

#[test]
fn default_policy_round_trips_through_yaml_and_is_documented() {
    let policy = default_policy();
    assert_eq!(policy.metadata.name.as_deref(), Some(DEFAULT_POLICY_NAME));
    validate_policy(&policy.spec).unwrap();
    let yaml = serde_saphyr::to_string(&policy).unwrap();
    let parsed = parse_policy(&yaml, "default.yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(parsed.spec, policy.spec);
    let docs =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/policy.md"))
            .unwrap();
    assert!(
        docs.contains(DEFAULT_POLICY_NAME),
        "docs/policy.md documents the default policy"
    );
    for rule in rules::ALL {
        assert!(
            docs.contains(&format!("`{rule}`")),
            "docs/policy.md documents rule {rule}"
        );
    }
}

#[test]
fn default_policy_on_hosts() {
    let compat = CompatDb::embedded();
    let policy = default_policy();
    let check = |o: &Observed, errors: &[&str]| {
        evaluate_host(&policy, o, &probes_with_errors(errors), now(), compat)
    };
    let v = check(&h100_node(), &[]);
    assert_eq!(v.state, VerdictState::Compliant, "{:?}", v.findings);
    assert_eq!(exit_code(&v.state), 0);

    let mut pending_reboot = h100_node();
    pending_reboot.driver.mismatch = true;
    let v = check(&pending_reboot, &[]);
    assert_eq!(v.state, VerdictState::Drifting);
    assert_eq!(exit_code(&v.state), 1);

    let mut no_ctk = h100_node();
    no_ctk.container_toolkit = ContainerToolkitObserved::default();
    no_ctk.runtimes[0].nvidia_handler = false;
    let got: Vec<String> = check(&no_ctk, &[])
        .findings
        .into_iter()
        .map(|f| f.rule)
        .collect();
    assert_eq!(
        got,
        [
            rules::CONTAINER_TOOLKIT_PRESENT,
            rules::CONTAINER_TOOLKIT_RUNTIME
        ]
    );

    let mut no_fm = h100_node();
    no_fm.fabric_manager.installed = false;
    assert_eq!(check(&no_fm, &[]).findings[0].rule, rules::FABRIC_MANAGER);

    let v = check(&h100_node(), &[probes::KERNEL_MODULE]);
    assert_eq!(v.state, VerdictState::Unknown);
    assert_eq!(exit_code(&v.state), 3);

    let mut bare = h100_node();
    bare.driver = DriverObserved::default();
    assert_eq!(check(&bare, &[]).findings[0].rule, rules::DRIVER_PRESENT);
    assert_eq!(exit_code(&VerdictState::Unmanaged), EXIT_UNKNOWN);
    assert_eq!(EXIT_USAGE, 2);
}
