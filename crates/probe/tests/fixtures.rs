//! Every fixture host under `tests/fixtures/hosts/<case>/host` probed, and
//! the result compared field by field with `<case>/expected.json`, which was
//! written by hand from what each host contains.

use std::path::{Path, PathBuf};

use plumbline_probe::{HostRoot, Options, ParseCache, probe_host};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hosts")
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    cases.sort();
    cases
}

/// `{"observed", "probes"}` with every duration set to zero.
fn output(case: &Path) -> Value {
    let host = HostRoot::new(case.join("host")).expect("fixture host root");
    let options = Options {
        nvml: false,
        ..Options::default()
    };
    let (observed, probes) = probe_host(&host, &options);
    let mut value = json!({ "observed": observed, "probes": probes });
    zero_durations(&mut value);
    value
}

fn zero_durations(value: &mut Value) {
    if let Some(probes) = value.get_mut("probes").and_then(Value::as_array_mut) {
        for p in probes {
            p["durationMicros"] = json!(0);
        }
    }
}

#[test]
fn there_are_at_least_ten_fixture_hosts() {
    assert!(cases().len() >= 10, "{:?}", cases());
}

#[test]
fn every_fixture_host_matches_its_expected_output() {
    let mut failures = Vec::new();
    for case in cases() {
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(case.join("expected.json")).expect("expected.json"),
        )
        .expect("expected.json is JSON");
        let got = output(&case);
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Field by field, so a failure names the part that differs; every
        // case is checked before failing.
        let keys = [
            "driver",
            "gpus",
            "toolkits",
            "containerToolkit",
            "runtimes",
            "cdi",
            "kernel",
            "os",
            "fabricManager",
        ];
        for key in keys {
            if got["observed"][key] != expected["observed"][key] {
                failures.push(format!(
                    "{name}: observed.{key}\n  got:  {}\n  want: {}",
                    got["observed"][key], expected["observed"][key]
                ));
            }
        }
        let empty = Vec::new();
        let got_probes = got["probes"].as_array().unwrap_or(&empty);
        let want_probes = expected["probes"].as_array().unwrap_or(&empty);
        if got_probes.len() != want_probes.len() {
            failures.push(format!("{name}: probe count"));
        }
        for (g, w) in got_probes.iter().zip(want_probes) {
            if g != w {
                failures.push(format!(
                    "{name}: probe {}\n  got:  {g}\n  want: {w}",
                    w["name"]
                ));
            }
        }
        if failures.is_empty() {
            assert_eq!(got, expected, "{name}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_parse_cache_changes_nothing_and_notices_changed_files() {
    let cache = ParseCache::new();
    let cached = Options {
        nvml: false,
        cache: Some(&cache),
        ..Options::default()
    };
    for case in cases() {
        let host = HostRoot::new(case.join("host")).expect("root");
        let plain = probe_host(
            &host,
            &Options {
                nvml: false,
                ..Options::default()
            },
        )
        .0;
        assert_eq!(probe_host(&host, &cached).0, plain, "{}", case.display());
        assert_eq!(probe_host(&host, &cached).0, plain, "{}", case.display());
    }
    // Same path, new bytes: parsed again.
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("etc/cdi/x.yaml");
    std::fs::create_dir_all(spec.parent().expect("parent")).expect("mkdir");
    std::fs::write(&spec, "kind: example.com/a\ncdiVersion: 0.5.0\n").expect("write");
    let host = HostRoot::new(dir.path()).expect("root");
    assert_eq!(
        probe_host(&host, &cached).0.cdi.specs[0].kind.as_deref(),
        Some("example.com/a")
    );
    std::fs::write(&spec, "kind: example.com/b\ncdiVersion: 0.5.0\n").expect("write");
    assert_eq!(
        probe_host(&host, &cached).0.cdi.specs[0].kind.as_deref(),
        Some("example.com/b")
    );
}
