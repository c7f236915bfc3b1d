//! `plumbline-bench`: every benchmark of Plumbline as one reproducible
//! pipeline, ending in docs/benchmarks.md.
//!
//! Each bench (`crates/*/benches/*.rs`, custom harness) measures one
//! component and reports *figures*: a median with its spread and sample
//! count, the floor it is held against when it has one (measured in the
//! same run, so the ratio survives a loaded machine), and the targets its
//! issue sets, each with a verdict. Figures travel as JSON lines
//! ([`figure`]), one file per section, so a bench is a plain program that
//! anyone can run alone and read on the terminal, and the doc is a pure
//! rendering of saved results ([`report`]) that tests can check without
//! measuring anything.
//!
//! ```text
//!   make bench ─► plumbline-bench run
//!                   ├─ machine, load average, commit        (machine)
//!                   ├─ cargo bench -p <crate> --bench <b>   PLUMBLINE_BENCH_OUT=target/bench-results/<section>.jsonl
//!                   │     └─ Recorder::record(Figure)       (figure: one JSON line per figure)
//!                   ├─ check-rss: the release `plumbline check`, peak RSS via getrusage
//!                   └─ render(run, figures) ─► docs/benchmarks.md   (report + sections' fixed prose)
//! ```
//!
//! The prose of every section lives in [`sections`] next to the command
//! that reproduces it, so a regenerated doc keeps its explanations, and a
//! number can only appear in the doc if a bench measured it in that run.

pub mod error;
pub mod figure;
pub mod machine;
pub mod report;
pub mod sections;
pub mod stats;

pub use error::BenchError;
pub use figure::{Figure, Op, Recorder, Stat, Unit, quick};
pub use stats::Summary;
