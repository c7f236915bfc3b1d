//! `plumbline-bench`: runs every benchmark and rewrites docs/benchmarks.md.
//!
//! `make bench` is `plumbline-bench run`. Each section's bench is built and
//! run with `cargo bench`, appending its figures to
//! `target/bench-results/<section>.jsonl`; the run record (machine, load,
//! timings) goes to `run.json` beside them, and the doc is rendered from
//! both. `render` re-renders from those files; `check-rss` is the one
//! section measured here rather than in a bench, because it needs the
//! release `plumbline` binary; `peak-rss` is its helper process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use plumbline_bench::figure::{OUT_ENV, QUICK_ENV, read_figures};
use plumbline_bench::machine::{Machine, load_average};
use plumbline_bench::report::{BUILD, RunRecord, SectionRecord, render};
use plumbline_bench::sections::{Run, SECTIONS, Section};
use plumbline_bench::{Figure, Op, Recorder, Stat, Unit};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(
    name = "plumbline-bench",
    about = "Run Plumbline's benchmarks and write docs/benchmarks.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benches (all, or --only some) and write the doc.
    Run {
        /// Smoke run: short phases (also set by BENCH_QUICK=1).
        #[arg(long)]
        quick: bool,
        /// Sections to run, comma-separated (probe, check, sim, agent, controller).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Where the figures go [default: $CARGO_TARGET_DIR/bench-results].
        #[arg(long)]
        results: Option<PathBuf>,
        /// The doc to write [default: docs/benchmarks.md for a full run,
        /// <results>/benchmarks.md for a quick or partial one].
        #[arg(long)]
        doc: Option<PathBuf>,
    },
    /// Rewrite the doc from the results of the last run, measuring nothing.
    Render {
        #[arg(long)]
        results: Option<PathBuf>,
        #[arg(long)]
        doc: Option<PathBuf>,
    },
    /// Peak memory of the release `plumbline check` on fixture hosts.
    CheckRss {
        /// The binary [default: $CARGO_TARGET_DIR/release/plumbline].
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Runs per case [default: 5, 2 when quick].
        #[arg(long)]
        runs: Option<usize>,
    },
    /// Internal: run a command and print its peak RSS as JSON.
    #[command(hide = true)]
    PeakRss {
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Run {
            quick,
            only,
            results,
            doc,
        } => run(quick, &only, results, doc),
        Cmd::Render { results, doc } => render_saved(results, doc),
        Cmd::CheckRss { binary, runs } => check_rss(binary, runs),
        Cmd::PeakRss { command } => peak_rss(&command),
    }
}

/// The workspace root, wherever this is run from.
fn repo() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => repo().join(d),
        _ => repo().join("target"),
    }
}

fn results_dir(results: Option<PathBuf>) -> PathBuf {
    results.unwrap_or_else(|| target_dir().join("bench-results"))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn run(
    quick_flag: bool,
    only: &[String],
    results: Option<PathBuf>,
    doc: Option<PathBuf>,
) -> anyhow::Result<()> {
    let quick = quick_flag || plumbline_bench::quick();
    for key in only {
        if plumbline_bench::sections::find(key).is_none() {
            let keys: Vec<&str> = SECTIONS.iter().map(|s| s.key).collect();
            bail!("no section {key:?}; sections are {}", keys.join(", "));
        }
    }
    let chosen: Vec<&Section> = SECTIONS
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|k| k == s.key))
        .collect();
    let results = results_dir(results);
    std::fs::create_dir_all(&results).with_context(|| format!("creating {}", results.display()))?;
    let started_wall = Instant::now();
    let mut record = RunRecord {
        machine: Machine::collect(&repo()),
        started: jiff::Timestamp::now()
            .strftime("%Y-%m-%d %H:%M UTC")
            .to_string(),
        load_start: load_average(),
        load_end: None,
        wall_seconds: 0.0,
        quick,
        sections: Vec::new(),
    };
    // Build everything first, so that each section's time is its run and
    // a compile error shows before anything is measured.
    eprintln!("\n==> build");
    let t = Instant::now();
    let load_before_build = load_average();
    let built = build(&chosen);
    record.sections.push(SectionRecord {
        key: BUILD.to_string(),
        command: build_commands(&chosen).join(" && "),
        seconds: t.elapsed().as_secs_f64(),
        load_start: load_before_build,
        error: built.as_ref().err().map(|e| format!("{e:#}")),
    });
    for section in chosen.iter().filter(|_| built.is_ok()) {
        eprintln!("\n==> {} ({})", section.title, section.key);
        let out = results.join(format!("{}.jsonl", section.key));
        if out.exists() {
            std::fs::remove_file(&out).with_context(|| format!("removing {}", out.display()))?;
        }
        let load_start = load_average();
        let t = Instant::now();
        let (command, outcome) = run_section(section, &out, quick);
        let error = outcome
            .err()
            .map(|e| format!("{e:#}"))
            .or_else(|| match read_figures(&out) {
                Ok(f) if !f.is_empty() => None,
                Ok(_) => Some("the bench wrote no figures".to_string()),
                Err(e) => Some(e.to_string()),
            });
        if let Some(e) = &error {
            eprintln!("!! {}: {e}", section.key);
        }
        record.sections.push(SectionRecord {
            key: section.key.to_string(),
            command,
            seconds: t.elapsed().as_secs_f64(),
            load_start,
            error,
        });
    }
    record.load_end = load_average();
    record.wall_seconds = started_wall.elapsed().as_secs_f64();
    let run_json = results.join("run.json");
    std::fs::write(&run_json, serde_json::to_string_pretty(&record)?)
        .with_context(|| format!("writing {}", run_json.display()))?;
    let partial = quick || !only.is_empty();
    let doc = write_doc(&record, &results, doc, partial)?;
    eprintln!(
        "\nmake bench: {} in {:.0} s; wrote {}",
        if partial { "partial run" } else { "full run" },
        record.wall_seconds,
        doc.display()
    );
    let failed: Vec<&str> = record
        .sections
        .iter()
        .filter(|s| s.error.is_some())
        .map(|s| s.key.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("sections failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Every package with a bench section. Each bench is built and run with
/// all of them selected, so cargo unifies dependency features the same way
/// every time and compiles the shared dependencies once, not per bench.
fn bench_packages() -> Vec<&'static str> {
    SECTIONS
        .iter()
        .filter_map(|s| match s.run {
            Run::CargoBench { package, .. } => Some(package),
            Run::CheckRss => None,
        })
        .collect()
}

/// `cargo bench -p <every bench package> <rest>`.
fn cargo_bench_args(rest: &[&str]) -> Vec<String> {
    let mut args = vec!["bench".to_string()];
    for p in bench_packages() {
        args.extend(["-p".to_string(), p.to_string()]);
    }
    args.extend(rest.iter().map(|r| (*r).to_string()));
    args
}

fn build_commands(chosen: &[&Section]) -> Vec<String> {
    let mut cmds = Vec::new();
    if chosen.iter().any(|s| s.run == Run::CheckRss) {
        cmds.push("cargo build --release -p plumbline".to_string());
    }
    if chosen
        .iter()
        .any(|s| matches!(s.run, Run::CargoBench { .. }))
    {
        cmds.push(format!(
            "cargo {}",
            cargo_bench_args(&["--no-run"]).join(" ")
        ));
    }
    cmds
}

fn build(chosen: &[&Section]) -> anyhow::Result<()> {
    if chosen.iter().any(|s| s.run == Run::CheckRss) {
        status(
            Command::new(cargo())
                .args(["build", "--release", "-p", "plumbline"])
                .current_dir(repo()),
        )?;
    }
    if chosen
        .iter()
        .any(|s| matches!(s.run, Run::CargoBench { .. }))
    {
        status(
            Command::new(cargo())
                .args(cargo_bench_args(&["--no-run"]))
                .current_dir(repo()),
        )?;
    }
    Ok(())
}

/// Runs one section; returns the command as the doc records it.
fn run_section(section: &Section, out: &Path, quick: bool) -> (String, anyhow::Result<()>) {
    let env = format!(
        "{}{OUT_ENV}={}",
        if quick { "BENCH_QUICK=1 " } else { "" },
        out.display()
    );
    let mut cmd = match section.run {
        Run::CargoBench { bench, .. } => {
            let mut cmd = Command::new(cargo());
            cmd.args(cargo_bench_args(&["--bench", bench]))
                .current_dir(repo());
            cmd
        }
        Run::CheckRss => match std::env::current_exe() {
            Ok(me) => {
                let mut cmd = Command::new(me);
                cmd.arg("check-rss");
                cmd
            }
            Err(e) => {
                return (
                    "plumbline-bench check-rss".to_string(),
                    Err(anyhow::Error::new(e).context("finding plumbline-bench itself")),
                );
            }
        },
    };
    let shown = match section.run {
        Run::CargoBench { bench, .. } => {
            format!(
                "{env} cargo {}",
                cargo_bench_args(&["--bench", bench]).join(" ")
            )
        }
        Run::CheckRss => format!("{env} plumbline-bench check-rss"),
    };
    cmd.env(OUT_ENV, out);
    if quick {
        cmd.env(QUICK_ENV, "1");
    }
    (shown, status(&mut cmd))
}

fn status(cmd: &mut Command) -> anyhow::Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !st.success() {
        bail!("{:?} exited with {st}", cmd.get_program());
    }
    Ok(())
}

/// Renders the run and writes the doc; returns its path.
fn write_doc(
    record: &RunRecord,
    results: &Path,
    doc: Option<PathBuf>,
    partial: bool,
) -> anyhow::Result<PathBuf> {
    let mut figures: Vec<Figure> = Vec::new();
    for s in &record.sections {
        let path = results.join(format!("{}.jsonl", s.key));
        if path.exists() {
            figures.extend(read_figures(&path)?);
        }
    }
    let doc = doc.unwrap_or_else(|| {
        if partial {
            results.join("benchmarks.md")
        } else {
            repo().join("docs/benchmarks.md")
        }
    });
    std::fs::write(&doc, render(record, &figures))
        .with_context(|| format!("writing {}", doc.display()))?;
    Ok(doc)
}

fn render_saved(results: Option<PathBuf>, doc: Option<PathBuf>) -> anyhow::Result<()> {
    let results = results_dir(results);
    let run_json = results.join("run.json");
    let text = std::fs::read_to_string(&run_json)
        .with_context(|| format!("reading {} (run `make bench` first)", run_json.display()))?;
    let record: RunRecord =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", run_json.display()))?;
    let ran = record.sections.iter().filter(|s| s.key != BUILD).count();
    let partial = record.quick || ran < SECTIONS.len();
    let doc = write_doc(&record, &results, doc, partial)?;
    eprintln!("wrote {}", doc.display());
    Ok(())
}

/// What the `peak-rss` helper reports.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PeakRss {
    max_rss_kib: i64,
    exit_code: Option<i32>,
}

/// Runs the command as this process's only child, so that the children's
/// maximum RSS `getrusage` reports is that command's own.
fn peak_rss(command: &[String]) -> anyhow::Result<()> {
    let (program, args) = command.split_first().context("no command given")?;
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("starting {program}"))?;
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .context("getrusage")?;
    let report = PeakRss {
        // Linux reports ru_maxrss in KiB.
        max_rss_kib: usage.max_rss(),
        exit_code: status.code(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The cases `check-rss` measures: id, label, arguments after `check`.
fn check_cases(repo: &Path) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let host = |case: &str| {
        repo.join("tests/fixtures/hosts")
            .join(case)
            .join("host")
            .display()
            .to_string()
    };
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    let hgx = host("hgx-h100-580-open");
    let none = host("no-driver");
    vec![
        (
            "hgx_json",
            "hgx-h100-580-open, `--output json --no-nvml`",
            args(&["--host-root", &hgx, "--output", "json", "--no-nvml"]),
        ),
        (
            "hgx_table_nvml",
            "hgx-h100-580-open, table, NVML on (library present, not loadable)",
            args(&["--host-root", &hgx]),
        ),
        (
            "no_driver_json",
            "no-driver, `--output json --no-nvml`",
            args(&["--host-root", &none, "--output", "json", "--no-nvml"]),
        ),
        (
            "root_table",
            "this build machine (`/`), table",
            args(&["--host-root", "/"]),
        ),
    ]
}

/// Exit codes of `plumbline check` that mean it ran: compliant, drifting,
/// unknown. 2 is a usage or input error, so not a measurement.
const CHECK_VERDICT_CODES: [i32; 3] = [0, 1, 3];

fn check_rss(binary: Option<PathBuf>, runs: Option<usize>) -> anyhow::Result<()> {
    let binary = binary.unwrap_or_else(|| target_dir().join("release/plumbline"));
    if !binary.is_file() {
        bail!(
            "{} is missing; build it with `cargo build --release -p plumbline`",
            binary.display()
        );
    }
    let runs = runs.unwrap_or(if plumbline_bench::quick() { 2 } else { 5 });
    let me = std::env::current_exe().context("finding plumbline-bench itself")?;
    let mut recorder = Recorder::from_env()?;
    for (id, label, args) in check_cases(&repo()) {
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let out = Command::new(&me)
                .arg("peak-rss")
                .arg("--")
                .arg(&binary)
                .arg("check")
                .args(&args)
                .stderr(Stdio::inherit())
                .output()
                .context("running the peak-rss helper")?;
            if !out.status.success() {
                bail!("peak-rss helper failed for {label}: {}", out.status);
            }
            let report: PeakRss = serde_json::from_slice(&out.stdout)
                .context("reading the peak-rss helper's report")?;
            match report.exit_code {
                Some(c) if CHECK_VERDICT_CODES.contains(&c) => {}
                other => bail!("plumbline check {} ended with {other:?}", args.join(" ")),
            }
            samples.push(report.max_rss_kib as f64 / 1024.0);
        }
        recorder.record(
            Figure::samples(format!("check.rss.{id}"), label, Unit::MiB, &samples)?.target(
                Stat::Max,
                Op::Lt,
                15.0,
                "under 15 MiB",
            ),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bench_runs_with_the_same_package_selection() {
        let probe = cargo_bench_args(&["--bench", "probe_bench"]);
        let agent = cargo_bench_args(&["--bench", "agent_bench"]);
        assert_eq!(probe[..probe.len() - 2], agent[..agent.len() - 2]);
        for p in [
            "plumbline-probe",
            "plumbline-sim",
            "plumbline-agent",
            "plumbline-controller",
        ] {
            assert!(probe.iter().any(|a| a == p), "{p} selected");
        }
    }

    #[test]
    fn only_what_the_chosen_sections_need_is_built() {
        let check = plumbline_bench::sections::find("check").unwrap();
        let probe = plumbline_bench::sections::find("probe").unwrap();
        assert_eq!(
            build_commands(&[check]),
            vec!["cargo build --release -p plumbline".to_string()]
        );
        let both = build_commands(&[probe, check]);
        assert_eq!(both.len(), 2);
        assert!(both[1].starts_with("cargo bench -p ") && both[1].ends_with("--no-run"));
    }

    #[test]
    fn check_cases_point_at_fixture_hosts_that_exist() {
        for (_, _, args) in check_cases(&repo()) {
            let root = &args[1];
            assert!(Path::new(root).is_dir(), "{root}");
        }
    }
}
