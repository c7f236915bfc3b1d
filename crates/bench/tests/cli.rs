//! The `plumbline-bench` binary end to end, without running a bench: the
//! peak-RSS helper, and rendering the doc from saved results.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use plumbline_bench::machine::Machine;
use plumbline_bench::report::{BUILD, RunRecord, SectionRecord};
use plumbline_bench::{Figure, Op, Recorder, Stat, Unit};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plumbline-bench"))
}

#[test]
fn peak_rss_reports_the_child_and_its_exit_code() {
    let out = bin()
        .args(["peak-rss", "--", "/bin/sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["exitCode"], 3);
    assert!(report["maxRssKib"].as_i64().unwrap() > 0);
}

#[test]
fn peak_rss_sees_a_child_that_allocates() {
    // A shell building a 64 MiB string must show at least that much.
    let script = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x} >/dev/null";
    let out = bin()
        .args(["peak-rss", "--", "/bin/sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["exitCode"], 0);
    assert!(
        report["maxRssKib"].as_i64().unwrap() >= 64 * 1024,
        "{report}"
    );
}

#[test]
fn an_unknown_section_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["run", "--only", "nope", "--results"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no section \"nope\""), "{err}");
    assert!(!dir.path().join("run.json").exists());
}

fn save(dir: &Path) {
    let mut rec = Recorder::to_file(&dir.join("probe.jsonl")).unwrap();
    let floor = Figure::samples("probe.floor", "floor", Unit::Micros, &[100.0, 110.0]).unwrap();
    rec.record(
        Figure::samples(
            "probe.pass.cold",
            "full pass, cold",
            Unit::Micros,
            &[500.0, 520.0],
        )
        .unwrap()
        .against(&floor)
        .target(Stat::Ratio, Op::Le, 3.0, "within 3× the floor"),
    )
    .unwrap();
    rec.record(floor).unwrap();
    let record = RunRecord {
        machine: Machine::collect(Path::new(env!("CARGO_MANIFEST_DIR"))),
        started: "2026-11-22 10:00 UTC".into(),
        load_start: Some([1.0, 1.0, 1.0]),
        load_end: Some([1.0, 1.0, 1.0]),
        wall_seconds: 90.0,
        quick: false,
        sections: [BUILD, "probe"]
            .iter()
            .map(|k| SectionRecord {
                key: (*k).into(),
                command: format!("cargo {k}"),
                seconds: 45.0,
                load_start: None,
                error: None,
            })
            .collect(),
    };
    std::fs::write(
        dir.join("run.json"),
        serde_json::to_string(&record).unwrap(),
    )
    .unwrap();
}

#[test]
fn render_rewrites_the_doc_from_saved_results() {
    let dir = tempfile::tempdir().unwrap();
    save(dir.path());
    let doc = dir.path().join("out.md");
    let out = bin()
        .args(["render", "--results"])
        .arg(dir.path())
        .arg("--doc")
        .arg(&doc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&doc).unwrap();
    assert!(text.contains("| full pass, cold | 500 µs | 500 µs – 520 µs (min–max) | — | 2 | 100 µs | 5.00× | within 3× the floor | **not met** |"), "{text}");
    assert!(text.contains("in this run: 0 of 1 met"));
    assert!(
        text.contains("*Not run in this run.*"),
        "sections not in the run say so"
    );
}

#[test]
fn render_without_a_run_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["render", "--results"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `make bench` first"));
}
