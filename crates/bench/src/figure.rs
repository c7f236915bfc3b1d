//! The one format every bench emits: a figure per JSON line.
//!
//! A bench builds a [`Figure`] from its samples, names the floor it is held
//! against (measured in the same run) and the targets the issues set, and
//! hands it to a [`Recorder`]. The recorder prints a line for people and,
//! when `PLUMBLINE_BENCH_OUT` names a file, appends the figure as one JSON
//! line there; `plumbline-bench` reads those files back to write the doc.
//! Whether a target is met is decided here, once, from the figure's own
//! numbers, so the terminal and the doc cannot disagree.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::BenchError;
use crate::stats::Summary;

/// Where a bench appends its figures (one JSON object per line).
pub const OUT_ENV: &str = "PLUMBLINE_BENCH_OUT";
/// Set (to anything but `0` or empty) for a short smoke run.
pub const QUICK_ENV: &str = "BENCH_QUICK";

/// True when the run is a smoke run: every bench shortens its phases.
pub fn quick() -> bool {
    std::env::var(QUICK_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// What a figure counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    #[serde(rename = "us")]
    Micros,
    #[serde(rename = "ms")]
    Millis,
    #[serde(rename = "s")]
    Seconds,
    #[serde(rename = "MiB")]
    MiB,
    #[serde(rename = "KiB")]
    KiB,
    #[serde(rename = "count")]
    Count,
    #[serde(rename = "percent")]
    Percent,
    #[serde(rename = "per_second")]
    PerSecond,
    #[serde(rename = "per_hour")]
    PerHour,
    #[serde(rename = "per_node")]
    PerNode,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Micros => " µs",
            Unit::Millis => " ms",
            Unit::Seconds => " s",
            Unit::MiB => " MiB",
            Unit::KiB => " KiB",
            Unit::Count => "",
            Unit::Percent => " %",
            Unit::PerSecond => " /s",
            Unit::PerHour => " /h",
            Unit::PerNode => " /node",
        }
    }

    /// A value as the doc prints it: about three significant digits, the
    /// unit after it.
    pub fn format(self, v: f64) -> String {
        let number = match self {
            Unit::Count if v.fract() == 0.0 => thousands(v),
            Unit::PerNode => format!("{v:.2}"),
            Unit::Percent if v.abs() < 0.1 => format!("{v:.3}"),
            _ => significant(v),
        };
        format!("{number}{}", self.suffix())
    }
}

fn significant(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        thousands(v)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Rounded to an integer, with thin separators people can read at a glance.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// The statistic of a figure a target bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    Median,
    P99,
    Max,
    /// The figure's median over its floor's median.
    Ratio,
}

/// How the statistic compares with the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Strictly under ("under 2 ms").
    Lt,
    /// At most ("within 3x").
    Le,
    /// Exactly ("zero writes").
    Eq,
}

/// A target an issue sets, with its verdict for this figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub stat: Stat,
    pub op: Op,
    pub bound: f64,
    /// How the issue states it, for the doc ("median under 2 ms").
    pub text: String,
    pub met: bool,
}

/// The figure this one is held against, measured in the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    pub id: String,
    pub median: f64,
    pub ratio: f64,
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// `<section>.<what>`; the section is the part before the first dot.
    pub id: String,
    pub label: String,
    pub unit: Unit,
    #[serde(flatten)]
    pub summary: Summary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<Floor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    /// What the reader needs to know to read this figure right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A breakdown figure: the doc lists it in a line under the table.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detail: bool,
}

impl Figure {
    /// A figure from its samples.
    pub fn samples(
        id: impl Into<String>,
        label: impl Into<String>,
        unit: Unit,
        samples: &[f64],
    ) -> Result<Figure, BenchError> {
        let id = id.into();
        let summary =
            Summary::of(samples).ok_or_else(|| BenchError::NoSamples { id: id.clone() })?;
        Ok(Figure::with_summary(id, label.into(), unit, summary))
    }

    /// A figure measured once (a count, a peak, one cold start).
    pub fn single(
        id: impl Into<String>,
        label: impl Into<String>,
        unit: Unit,
        value: f64,
    ) -> Figure {
        Figure::with_summary(id.into(), label.into(), unit, Summary::single(value))
    }

    fn with_summary(id: String, label: String, unit: Unit, summary: Summary) -> Figure {
        Figure {
            id,
            label,
            unit,
            summary,
            floor: None,
            targets: Vec::new(),
            note: None,
            detail: false,
        }
    }

    /// The section this figure belongs to.
    pub fn section(&self) -> &str {
        self.id.split('.').next().unwrap_or(&self.id)
    }

    /// Holds this figure against `floor`: ratio of the medians.
    pub fn against(mut self, floor: &Figure) -> Figure {
        let ratio = if floor.summary.median > 0.0 {
            self.summary.median / floor.summary.median
        } else {
            f64::INFINITY
        };
        self.floor = Some(Floor {
            id: floor.id.clone(),
            median: floor.summary.median,
            ratio,
        });
        self.evaluate();
        self
    }

    /// Adds a target; `met` is decided from this figure's numbers.
    pub fn target(mut self, stat: Stat, op: Op, bound: f64, text: impl Into<String>) -> Figure {
        self.targets.push(Target {
            stat,
            op,
            bound,
            text: text.into(),
            met: false,
        });
        self.evaluate();
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = Some(note.into());
        self
    }

    pub fn detail(mut self) -> Figure {
        self.detail = true;
        self
    }

    /// The value a target's statistic takes on this figure; `None` for a
    /// ratio without a floor.
    pub fn stat(&self, stat: Stat) -> Option<f64> {
        match stat {
            Stat::Median => Some(self.summary.median),
            Stat::P99 => Some(self.summary.p99),
            Stat::Max => Some(self.summary.max),
            Stat::Ratio => self.floor.as_ref().map(|f| f.ratio),
        }
    }

    /// Re-decides every target from the current numbers.
    pub fn evaluate(&mut self) {
        let values: Vec<Option<f64>> = self.targets.iter().map(|t| self.stat(t.stat)).collect();
        for (t, v) in self.targets.iter_mut().zip(values) {
            t.met = v.is_some_and(|v| match t.op {
                Op::Lt => v < t.bound,
                Op::Le => v <= t.bound,
                Op::Eq => v == t.bound,
            });
        }
    }

    /// One line for the terminal.
    pub fn human(&self) -> String {
        let s = &self.summary;
        let mut line = format!(
            "{:<64} median {:>12}",
            self.label,
            self.unit.format(s.median)
        );
        if s.n >= crate::stats::FEW_SAMPLES {
            line.push_str(&format!(
                "  p10 {}  p90 {}  p99 {}",
                self.unit.format(s.p10),
                self.unit.format(s.p90),
                self.unit.format(s.p99)
            ));
        } else if s.n > 1 {
            line.push_str(&format!(
                "  min {}  max {}",
                self.unit.format(s.min),
                self.unit.format(s.max)
            ));
        }
        line.push_str(&format!("  n={}", s.n));
        if let Some(f) = &self.floor {
            line.push_str(&format!("  {:.2}x floor", f.ratio));
        }
        for t in &self.targets {
            let verdict = if t.met { "met" } else { "NOT MET" };
            line.push_str(&format!("  [{}: {verdict}]", t.text));
        }
        line
    }
}

/// Prints figures and appends them to the file `PLUMBLINE_BENCH_OUT` names.
#[derive(Debug)]
pub struct Recorder {
    out: Option<(PathBuf, File)>,
}

impl Recorder {
    /// Reads `PLUMBLINE_BENCH_OUT`; without it, figures are only printed.
    pub fn from_env() -> Result<Recorder, BenchError> {
        match std::env::var_os(OUT_ENV) {
            Some(path) if !path.is_empty() => Recorder::to_file(Path::new(&path)),
            _ => Ok(Recorder { out: None }),
        }
    }

    /// Appends to `path`, creating it and its directory.
    pub fn to_file(path: &Path) -> Result<Recorder, BenchError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| BenchError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| BenchError::Write {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Recorder {
            out: Some((path.to_path_buf(), file)),
        })
    }

    /// Prints the figure and, when recording, appends it as one line.
    pub fn record(&mut self, mut figure: Figure) -> Result<Figure, BenchError> {
        figure.evaluate();
        println!("{}", figure.human());
        if let Some((path, file)) = &mut self.out {
            let line = serde_json::to_string(&figure).map_err(|source| BenchError::Encode {
                id: figure.id.clone(),
                source,
            })?;
            writeln!(file, "{line}")
                .and_then(|()| file.flush())
                .map_err(|source| BenchError::Write {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(figure)
    }
}

/// Reads the figures a bench appended (blank lines skipped).
pub fn read_figures(path: &Path) -> Result<Vec<Figure>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_figures(path, &text)
}

/// See [`read_figures`]; `path` is only for the error.
pub fn parse_figures(path: &Path, text: &str) -> Result<Vec<Figure>, BenchError> {
    let mut figures = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut figure: Figure =
            serde_json::from_str(line).map_err(|source| BenchError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })?;
        // The verdicts are re-decided rather than trusted, so a hand-edited
        // or stale results file cannot claim a target it misses.
        figure.evaluate();
        figures.push(figure);
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn pass() -> Figure {
        Figure::samples(
            "probe.pass.cold",
            "full pass",
            Unit::Micros,
            &[800.0, 900.0, 700.0],
        )
        .unwrap()
    }

    #[test]
    fn ratio_is_against_the_floor_median() {
        let floor =
            Figure::samples("probe.floor", "floor", Unit::Micros, &[100.0, 200.0, 150.0]).unwrap();
        let fig = pass().against(&floor);
        let f = fig.floor.as_ref().unwrap();
        assert_eq!(f.id, "probe.floor");
        assert_eq!(f.median, 150.0);
        assert!((f.ratio - 800.0 / 150.0).abs() < 1e-9);
    }

    #[test]
    fn targets_are_decided_from_the_numbers() {
        let floor = Figure::single("probe.floor", "floor", Unit::Micros, 400.0);
        let fig = pass()
            .target(Stat::Median, Op::Lt, 2000.0, "median under 2 ms")
            .against(&floor)
            .target(Stat::Ratio, Op::Le, 3.0, "within 3x the floor")
            .target(Stat::Max, Op::Lt, 900.0, "max under 900 µs");
        let met: Vec<bool> = fig.targets.iter().map(|t| t.met).collect();
        assert_eq!(met, vec![true, true, false]);
    }

    #[test]
    fn a_ratio_target_without_a_floor_is_not_met() {
        let fig = pass().target(Stat::Ratio, Op::Le, 3.0, "within 3x");
        assert!(!fig.targets[0].met);
    }

    #[test]
    fn equality_targets_need_the_exact_value() {
        let zero = Figure::single("controller.steady.1000", "steady", Unit::Count, 0.0).target(
            Stat::Median,
            Op::Eq,
            0.0,
            "zero writes",
        );
        assert!(zero.targets[0].met);
        let one = Figure::single("controller.steady.1000", "steady", Unit::Count, 1.0).target(
            Stat::Median,
            Op::Eq,
            0.0,
            "zero writes",
        );
        assert!(!one.targets[0].met);
    }

    #[test]
    fn no_samples_is_an_error_naming_the_figure() {
        let err = Figure::samples("agent.publish.file", "x", Unit::Millis, &[]).unwrap_err();
        assert_eq!(err.kind(), "no_samples");
        assert!(err.to_string().contains("agent.publish.file"));
    }

    #[test]
    fn json_lines_round_trip_and_verdicts_are_recomputed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/probe.jsonl");
        let mut rec = Recorder::to_file(&path).unwrap();
        let fig = rec
            .record(
                pass()
                    .target(Stat::Median, Op::Lt, 2000.0, "median under 2 ms")
                    .note("n"),
            )
            .unwrap();
        rec.record(Figure::single("probe.per_probe.cdi", "cdi", Unit::Micros, 300.0).detail())
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["median"], 800.0);
        assert_eq!(first["unit"], "us");
        assert_eq!(first["n"], 3);
        assert_eq!(first["targets"][0]["met"], true);
        let back = read_figures(&path).unwrap();
        assert_eq!(back[0], fig);
        assert!(back[1].detail);

        // A results file that lies about a verdict is corrected on reading.
        let lying = text.replacen("\"met\":true", "\"met\":false", 1);
        let fixed = parse_figures(&path, &lying).unwrap();
        assert!(fixed[0].targets[0].met);
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let err = parse_figures(Path::new("r.jsonl"), "\n{\"id\": 1}\n").unwrap_err();
        assert_eq!(err.kind(), "parse");
        assert!(err.to_string().contains("r.jsonl line 2"), "{err}");
    }

    #[test]
    fn values_print_with_about_three_digits() {
        assert_eq!(Unit::Micros.format(826.4), "826 µs");
        assert_eq!(Unit::Seconds.format(1.083), "1.08 s");
        assert_eq!(Unit::Millis.format(12.34), "12.3 ms");
        assert_eq!(Unit::Count.format(58301.0), "58,301");
        assert_eq!(Unit::Count.format(0.0), "0");
        assert_eq!(Unit::PerNode.format(3.0), "3.00 /node");
        assert_eq!(Unit::Percent.format(0.0167), "0.017 %");
        assert_eq!(Unit::PerSecond.format(2915.2), "2,915 /s");
        assert_eq!(Unit::MiB.format(-1234.0), "-1,234 MiB");
    }

    #[test]
    fn section_is_the_id_prefix() {
        assert_eq!(pass().section(), "probe");
        assert_eq!(
            Figure::single("bare", "x", Unit::Count, 1.0).section(),
            "bare"
        );
    }

    #[test]
    fn the_terminal_line_says_ratio_and_verdicts() {
        let floor = Figure::single("probe.floor", "floor", Unit::Micros, 100.0);
        let line = pass()
            .against(&floor)
            .target(Stat::Ratio, Op::Le, 3.0, "within 3x")
            .human();
        assert!(line.contains("8.00x floor"), "{line}");
        assert!(line.contains("[within 3x: NOT MET]"), "{line}");
        assert!(line.contains("min 700 µs  max 900 µs"), "{line}");
    }
}
