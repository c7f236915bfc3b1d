//! The full probe pass on the 8-GPU HGX fixture host, beside its floor: the
//! time to merely read the files the pass reads.
//!
//! `cargo bench -p plumbline-probe --bench probe_bench` prints each figure
//! (median, spread, ratio to the floor, targets) and, with
//! `PLUMBLINE_BENCH_OUT`, appends it as a JSON line for `make bench`.
//! Targets (issue 3): median under 2 ms, within 3x the floor.
//! `BENCH_QUICK=1` takes a tenth of the samples.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use plumbline_bench::stats::micros;
use plumbline_bench::{Figure, Op, Recorder, Stat, Unit};
use plumbline_probe::{HostRoot, Options, ParseCache, probe_host};

const RUNS: usize = 2000;
const WARMUP: usize = 100;
const PER_PROBE_PASSES: usize = 201;

/// `runs` single-call samples after `warmup` unmeasured calls.
fn measure(warmup: usize, runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..warmup {
        f();
    }
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect()
}

fn main() {
    // `cargo test` runs bench targets without `--bench`: nothing to measure.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let quick = plumbline_bench::quick();
    let (runs, warmup, per_probe) = if quick {
        (RUNS / 10, WARMUP / 10, PER_PROBE_PASSES / 10)
    } else {
        (RUNS, WARMUP, PER_PROBE_PASSES)
    };
    let mut rec = Recorder::from_env().expect("results file opens");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hosts/hgx-h100-580-open/host");
    let host = HostRoot::new(&root).expect("the HGX fixture host exists");
    let options = Options {
        nvml: false,
        ..Options::default()
    };

    // Which files does one pass read?
    let logged = host.clone().with_read_log();
    let (observed, _) = probe_host(&logged, &options);
    assert_eq!(observed.gpus.len(), 8, "the HGX fixture has 8 GPUs");
    let files = logged.files_read();

    let cold = measure(warmup, runs, || {
        black_box(probe_host(&host, &options));
    });
    // The agent keeps a parse cache between passes: steady state.
    let cache = ParseCache::new();
    let warm_options = Options {
        cache: Some(&cache),
        ..options
    };
    let warm = measure(warmup, runs, || {
        black_box(probe_host(&host, &warm_options));
    });
    let floor_samples = measure(warmup, runs, || {
        for f in &files {
            black_box(std::fs::read(f).ok());
        }
    });

    let floor = Figure::samples(
        "probe.floor",
        format!("floor: read the {} files", files.len()),
        Unit::Micros,
        &micros(&floor_samples),
    )
    .expect("floor samples");
    for (id, label, samples) in [
        ("probe.pass.cold", "full pass, cold (nothing cached)", &cold),
        (
            "probe.pass.warm",
            "full pass, warm (`ParseCache` kept, as the agent runs)",
            &warm,
        ),
    ] {
        let fig = Figure::samples(id, label, Unit::Micros, &micros(samples))
            .expect("pass samples")
            .target(Stat::Median, Op::Lt, 2000.0, "median under 2 ms")
            .against(&floor)
            .target(Stat::Ratio, Op::Le, 3.0, "within 3× the floor");
        rec.record(fig).expect("figure recorded");
    }
    rec.record(floor).expect("figure recorded");

    // Where the time goes: each probe's own duration over a few cold passes.
    let mut per: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..per_probe {
        let (_, results) = probe_host(&host, &options);
        for r in results {
            let d = r.duration_micros as f64;
            match per.iter_mut().find(|(n, _)| *n == r.name) {
                Some((_, v)) => v.push(d),
                None => per.push((r.name, vec![d])),
            }
        }
    }
    per.sort_by(|a, b| {
        let median = |v: &[f64]| plumbline_bench::Summary::of(v).map_or(0.0, |s| s.median);
        median(&b.1).total_cmp(&median(&a.1))
    });
    for (name, samples) in per {
        let fig = Figure::samples(
            format!("probe.per_probe.{name}"),
            name,
            Unit::Micros,
            &samples,
        )
        .expect("per-probe samples")
        .detail();
        rec.record(fig).expect("figure recorded");
    }
}
