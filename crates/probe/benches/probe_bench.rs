//! The full probe pass on the 8-GPU HGX fixture host, beside its floor: the
//! time to merely read the files the pass reads.
//!
//! `cargo bench -p plumbline-probe` prints median and p99 of both, and the
//! ratio. Targets (docs/benchmarks.md): median under 2 ms, within 3x the
//! floor.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use plumbline_probe::{HostRoot, Options, ParseCache, probe_host};

const RUNS: usize = 2000;
const WARMUP: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn measure(mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..WARMUP {
        f();
    }
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        f();
        times.push(start.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
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

    let (pass_median, pass_p99) = measure(|| {
        black_box(probe_host(&host, &options));
    });
    // The agent keeps a parse cache between passes: steady state.
    let cache = ParseCache::new();
    let warm = Options {
        cache: Some(&cache),
        ..options
    };
    let (warm_median, warm_p99) = measure(|| {
        black_box(probe_host(&host, &warm));
    });
    let (floor_median, floor_p99) = measure(|| {
        for f in &files {
            black_box(std::fs::read(f).ok());
        }
    });
    println!(
        "probe pass on hgx-h100-580-open (8 GPUs, {} files read, {RUNS} runs)",
        files.len()
    );
    println!(
        "  full pass, cold median {:>8.1} us   p99 {:>8.1} us",
        micros(pass_median),
        micros(pass_p99)
    );
    println!(
        "  full pass, warm median {:>8.1} us   p99 {:>8.1} us   (parse cache, as the agent runs)",
        micros(warm_median),
        micros(warm_p99)
    );
    println!(
        "  floor (reads)   median {:>8.1} us   p99 {:>8.1} us",
        micros(floor_median),
        micros(floor_p99)
    );
    // Where the time goes: per-probe durations, median over a few passes.
    let mut per_probe: Vec<(String, Vec<u64>)> = Vec::new();
    for _ in 0..201 {
        let (_, results) = probe_host(&host, &options);
        for r in results {
            match per_probe.iter_mut().find(|(n, _)| *n == r.name) {
                Some((_, v)) => v.push(r.duration_micros),
                None => per_probe.push((r.name, vec![r.duration_micros])),
            }
        }
    }
    for (name, mut v) in per_probe {
        v.sort_unstable();
        println!("    {name:<18} median {:>6} us", v[v.len() / 2]);
    }
    println!(
        "  ratio to floor  cold {:>6.2}x   warm {:>6.2}x",
        pass_median.as_secs_f64() / floor_median.as_secs_f64(),
        warm_median.as_secs_f64() / floor_median.as_secs_f64()
    );
}
