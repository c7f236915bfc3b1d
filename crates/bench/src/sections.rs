//! The fixed text of docs/benchmarks.md: one entry per section.
//!
//! The doc is regenerated whole by every `make bench`, so the prose that
//! explains a section lives here, beside the command that reproduces it.
//! It states what is measured and why the figures fall where they do; it
//! never quotes a number, because the numbers come from the run.

/// One section of the doc, and the bench behind it.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// The figure id prefix (`probe` for `probe.pass.cold`).
    pub key: &'static str,
    pub title: &'static str,
    /// The issue that sets this section's targets.
    pub issue: u32,
    /// What `plumbline-bench` runs for this section.
    pub run: Run,
    /// Commands a reader types to reproduce the section alone.
    pub commands: &'static [&'static str],
    /// Markdown before the table: the setup.
    pub setup: &'static str,
    /// Markdown after the table: why the figures are what they are.
    pub explain: &'static str,
}

/// How a section is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// `cargo bench -p <package> --bench <bench>`.
    CargoBench {
        package: &'static str,
        bench: &'static str,
    },
    /// The peak memory of the release `plumbline check`, measured by
    /// `plumbline-bench check-rss`.
    CheckRss,
}

pub const PROBE: Section = Section {
    key: "probe",
    title: "Probes",
    issue: 3,
    run: Run::CargoBench {
        package: "plumbline-probe",
        bench: "probe_bench",
    },
    commands: &["cargo bench -p plumbline-probe --bench probe_bench"],
    setup: "\
The full probe pass on the 8-GPU HGX fixture host
(`tests/fixtures/hosts/hgx-h100-580-open`: 8x H100, 4 NVSwitches, one CDI spec
of 8 devices), beside its floor: the time to merely read the same files
(recorded with `HostRoot::with_read_log`, then read with `std::fs::read`).
NVML is off (the fixture has no real library). Each sample is one pass,
after warm-up passes. *Cold*: nothing cached between passes, as
`plumbline check` runs. *Warm*: a `ParseCache` kept between passes, as the
agent runs. The breakdown under the table is each probe's own time (its
`durationMicros`) in further cold passes.",
    explain: "\
Where the time between the floor and the pass goes:

- The CDI spec's YAML parse (serde-saphyr) is the largest single cost (see
  `cdi` in the breakdown), about 20x what serde_json takes on the same
  content. `ParseCache` reuses a parsed spec only when the file's bytes are
  identical, so the agent pays it once per change; `plumbline check` pays it
  once.
- The floor reads files; the pass also lists 10 directories and checks ~40
  paths for existence (every CDI `hostPath`, device node and hook, the
  toolkit binaries, the library search directories under both roots), each
  resolved inside the host root. Within a pass, `HostRoot` remembers which
  directories are real directories and which paths are missing, and opens a
  file under known directories with `O_NOFOLLOW` in one call.

On a loaded machine the p99 column is mostly scheduling noise: a pass is
shorter than one scheduler time slice, so a single preemption can multiply
it.",
};

pub const CHECK: Section = Section {
    key: "check",
    title: "`plumbline check` peak memory",
    issue: 3,
    run: Run::CheckRss,
    commands: &["cargo run --release -p plumbline-bench -- check-rss"],
    setup: "\
The shipped binary (`cargo build --release -p plumbline`) run to completion
on fixture hosts and on this machine. Peak memory is the process's maximum
resident set size, read with `getrusage(RUSAGE_CHILDREN)` by a helper process
that runs nothing else (the counter `/usr/bin/time -v` prints as *Maximum
resident set size*; the helper's own pages count until the exec, a floor well
under what the binary uses). Each case runs several times; the target bounds
the largest run.",
    explain: "\
The binary holds one host's observations, the embedded compatibility data
and the rendered output; the HGX host (8 GPUs, a CDI spec of 8 devices) is
the largest fixture, `no-driver` the smallest. NVML on, with a library
present but not loadable, costs the failed `dlopen` and nothing else.",
};

pub const SIM: Section = Section {
    key: "sim",
    title: "Emulator (`plumbline-sim`)",
    issue: 5,
    run: Run::CargoBench {
        package: "plumbline-sim",
        bench: "sim_bench",
    },
    commands: &[
        "cargo bench -p plumbline-sim --bench sim_bench",
        "SIM_BENCH_OBJECTS=2000 SIM_BENCH_SECONDS=5 SIM_BENCH_CLIENTS=4 cargo bench -p plumbline-sim --bench sim_bench",
    ],
    setup: "\
The floor under every API figure below: what the emulator itself costs. One
process: the emulator, Nodes with realistic status (capacity, conditions,
addresses, nodeInfo) and as many GpuBaseline objects (the test fixture CRD;
8 GPUs and a condition each), seeded through the library API; then kube
clients over HTTP: LIST of each kind (5 times), three
`kube::runtime::watcher`s attached (two on Nodes, one on baselines), and
concurrent clients sending one-label merge patches to random Nodes for a
fixed time. RSS figures are for the whole process, clients included
(VmRSS/VmHWM from `/proc/self/status`).",
    explain: "\
Objects are kept as `serde_json::Value` with their `managedFields`, and the
watch history (10,000 events per resource by default) keeps old versions of
patched objects alive; `SimConfig::history` trades replay depth for memory.
The peak includes the clients' decoded copies of each full LIST.
Every patch is delivered to both Node watchers, so watch events are about
twice the patches.",
};

pub const AGENT: Section = Section {
    key: "agent",
    title: "Agent",
    issue: 6,
    run: Run::CargoBench {
        package: "plumbline-agent",
        bench: "agent_bench",
    },
    commands: &[
        "cargo bench -p plumbline-agent --bench agent_bench",
        "BENCH_QUICK=1 cargo bench -p plumbline-agent --bench agent_bench   # smoke run",
    ],
    setup: "\
The emulator (`plumbline-sim`) runs in the bench process; the agent runs
alone in a child process (the bench binary re-executed), so CPU and memory
are its own: one tokio worker thread, default settings (60 s probe timer,
inotify on, 1 s kernel poll, metrics server on) except a 10 s heartbeat,
probing a copy of the HGX fixture host
(`tests/fixtures/hosts/hgx-h100-580-open`). CPU is utime+stime and peak
memory is `VmHWM`, both read from `/proc/<pid>/` (the counters `getrusage`
reports). *Change → published*: from writing the host file to the emulator
holding the new value in `status.observed`.",
    explain: "\
A watched file is published after the 200 ms debounce plus a probe pass and
one status patch, so its latency sits just above 200 ms by design: the
debounce coalesces the burst of writes a package upgrade makes. A module
reload is seen at the next 1 s kernel poll, so 0.2–1.2 s; the bench's
samples are evenly spaced, so they land at one phase of the poll and the
spread understates that range. Idle API traffic is the heartbeat and
nothing else (no reads, no watches), so the hourly figure scales with
`--heartbeat-interval` alone. The in-process fleet runs its agents the way
`plumbline sim` does (no inotify, no kernel poll, no server, shared
metrics) but with a fixed observation (`StaticProbe`) instead of the real
probes over a host tree; its memory per agent includes the emulator's copy
of each baseline. The shipped `plumbline agent` binary has the CLI on top of the
agent measured here.",
};

pub const CONTROLLER: Section = Section {
    key: "controller",
    title: "Controller",
    issue: 7,
    run: Run::CargoBench {
        package: "plumbline-controller",
        bench: "controller_bench",
    },
    commands: &[
        "cargo bench -p plumbline-controller --bench controller_bench            # 1k, 5k, 10k nodes",
        "PLUMBLINE_BENCH_SIZES=1000 cargo bench -p plumbline-controller --bench controller_bench",
    ],
    setup: "\
Emulator (`plumbline-sim`) in the bench process, the controller in a child
process (so its peak RSS is its own), release build. Each node carries
realistic bulk (20 images, capacity, nodeInfo, kubelet conditions); each
baseline 8 H100s and 10 probe results. One Enforce policy (`driver 580.*`,
`onDrift: [Label, Condition, Taint]`, `maxUnavailable: 5%`); 2% of nodes
drift from the start. *Cold start* runs from spawning the controller until
every node has its labels and condition and every verdict is written
(drifting nodes tainted). *Floor*: a bare kube client sends the same number
of minimal writes of the same kinds (node merge patch, node status strategic
patch, baseline status merge patch) to the same emulator in the same round
with the same concurrency (32). Each size runs a few rounds on a fresh
emulator (cold start and floor in every round); *steady state* (writes of
any kind over three resync periods of 2 s after convergence) and
*drift → taint* (from a baseline changing to the committed Node write adding
the taint, one node at a time) are measured in the first round. Labels,
taint and cordon go in one Node write, so drift → taint is also drift →
label.",
    explain: "\
Cold start is bounded below by the writes themselves: three per node, which
is exactly what the floor sends, so the ratio is the controller's own cost
(lists, reflector stores, evaluation, planning) on top of the API's. Peak
memory has not been profiled yet; the likely contributors are the typed
baseline cache (baselines are kept whole because the evaluator reads all of
`status`) and transient copies during the initial lists and the first
batches (full Node objects are deserialized before they are stripped).",
};

/// Every section, in the order the doc and the run take them.
pub const SECTIONS: &[Section] = &[PROBE, CHECK, SIM, AGENT, CONTROLLER];

/// The section with this key.
pub fn find(key: &str) -> Option<&'static Section> {
    SECTIONS.iter().find(|s| s.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_findable() {
        for s in SECTIONS {
            assert_eq!(find(s.key).map(|f| f.title), Some(s.title));
            assert_eq!(SECTIONS.iter().filter(|o| o.key == s.key).count(), 1);
        }
        assert!(find("nope").is_none());
    }

    #[test]
    fn every_cargo_bench_is_named_in_its_own_command() {
        for s in SECTIONS {
            if let Run::CargoBench { package, bench } = s.run {
                let first = s.commands[0];
                assert!(first.contains(package) && first.contains(bench), "{first}");
                let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join(package.trim_start_matches("plumbline-"))
                    .join("benches")
                    .join(format!("{bench}.rs"));
                assert!(manifest.is_file(), "{} is missing", manifest.display());
            }
        }
    }

    #[test]
    fn prose_quotes_no_measured_numbers() {
        // A figure in fixed prose would go stale at the next run; the
        // tables carry the numbers.
        for s in SECTIONS {
            for text in [s.setup, s.explain] {
                for unit in [" µs", " MiB", " KiB"] {
                    assert!(!text.contains(unit), "{}: {unit:?} in prose", s.key);
                }
            }
        }
    }
}
