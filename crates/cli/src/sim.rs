//! `plumbline sim`: the whole system on one machine — the API server
//! emulator, a simulated fleet of GPU hosts, one real agent per node and
//! the real controller, under the example policies.
//!
//! ```text
//!   scenario + seed ─► fleet::generate ─► host trees on disk (one per node)
//!                                           │ real probes (HostTreeProbe)
//!   emulator ◄── Nodes, CRDs, policies      ▼
//!      ▲  ◄──────────────────────────── agents (one per node, in-process)
//!      │  ◄──────────────────────────── controller (in-process)
//!      └── read back every second ──► progress, convergence check ─► summary
//!   host poller, rollout, --drift-every ─► change trees ─► agents re-probe
//! ```
//!
//! "Converged" means every node's verdict is what the scenario expects from
//! what its host was built to violate (see `sim/scenario.rs`), every
//! policy's status agrees, and the taints, cordons and held-back nodes are
//! what the budget allows. `--api-only` serves the emulator alone.

mod agents;
mod cluster;
mod drift;
mod hosts;
mod scenario;
mod summary;

use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use jiff::Timestamp;
use plumbline_api::{GpuFleetPolicy, VerdictState};
use plumbline_sim::fleet;
use plumbline_sim::{Sim, SimConfig};
use tokio::sync::watch;

use crate::runtime;
use cluster::{ClusterView, LiveView, NodeExpectation};
use hosts::{HostsDir, SimNode};
use scenario::{AppliedPolicy, Scenario};
use summary::SummaryNode;

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Serve only the API (with Plumbline's CRDs installed), no simulated fleet.
    #[arg(long, conflicts_with_all = [
        "nodes", "scenario", "seed", "hosts_dir", "exit_when_converged", "timeout", "drift_every",
    ])]
    pub api_only: bool,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Where to write a kubeconfig for kubectl.
    #[arg(long, default_value = "plumbline-sim.kubeconfig")]
    pub kubeconfig: PathBuf,
    /// Simulated nodes [default: 50, or 2000 for --scenario scale].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20000))]
    pub nodes: Option<u32>,
    /// What to simulate.
    #[arg(long, value_enum, default_value_t = Scenario::Mixed)]
    pub scenario: Scenario,
    /// Seed of the generated fleet: the same seed builds the same hosts.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the host trees here (kept) instead of a temporary directory
    /// (removed on exit).
    #[arg(long, value_name = "DIR")]
    pub hosts_dir: Option<PathBuf>,
    /// Print the summary and exit once the fleet has converged as the
    /// scenario expects (exit 0), or exit 1 saying why not at --timeout.
    #[arg(long)]
    pub exit_when_converged: bool,
    /// How long to wait for convergence.
    #[arg(long, default_value = "5m", value_parser = runtime::parse_duration)]
    pub timeout: Duration,
    /// Every DURATION, break a random healthy host (or repair a broken one)
    /// by changing its files, so changes flow through agent and controller.
    #[arg(long, value_name = "DURATION", value_parser = runtime::parse_duration)]
    pub drift_every: Option<Duration>,
}

pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    if args.api_only {
        return api_only(&args);
    }
    init_quiet_logging();
    if args
        .drift_every
        .is_some_and(|d| d < Duration::from_millis(100))
    {
        anyhow::bail!("--drift-every must be at least 100ms");
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Probes run on blocking threads; thousands of agents starting at
        // once must queue, not each get a thread.
        .max_blocking_threads(8)
        .build()
        .context("starting the async runtime")?;
    // Ctrl-C and SIGTERM are caught from the start, so that even a stop
    // during start-up drops the simulation cleanly (and with it the
    // temporary host trees) instead of killing the process.
    tokio.block_on(async {
        tokio::select! {
            result = simulate(args) => result,
            () = runtime::shutdown_signal() => {
                eprintln!();
                println!("stopping");
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn api_only(args: &SimArgs) -> anyhow::Result<ExitCode> {
    runtime::init_logging();
    let crds = plumbline_api::crds()
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .context("serializing the CRDs")?;
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    tokio
        .block_on(plumbline_sim::run_api_only(
            args.listen,
            &args.kubeconfig,
            crds,
        ))
        .with_context(|| format!("serving the emulator on {}", args.listen))?;
    Ok(ExitCode::SUCCESS)
}

/// Thousands of agents log their start at `info`; the simulation shows
/// its own progress, so only warnings and errors get through unless
/// `RUST_LOG` says otherwise.
fn init_quiet_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Progress on stderr: one line rewritten in place on a terminal; a line
/// every few seconds, when something changed, otherwise.
struct Progress {
    tty: bool,
    last: String,
    last_at: Option<Instant>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            last: String::new(),
            last_at: None,
        }
    }

    fn show(&mut self, line: &str) {
        if self.tty {
            eprint!("\r{line}\x1b[K");
            let _ = std::io::stderr().flush();
        } else if line != self.last
            && self
                .last_at
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(3))
        {
            eprintln!("{line}");
            self.last = line.to_string();
            self.last_at = Some(Instant::now());
        }
    }

    /// Ends the in-place line before other output.
    fn finish(&mut self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// Everything the running simulation keeps.
struct Running {
    scenario: Scenario,
    nodes: Vec<Arc<SimNode>>,
    policies: Vec<AppliedPolicy>,
    typed: Vec<GpuFleetPolicy>,
    rollout: Option<Arc<drift::Rollout>>,
}

impl Running {
    fn expectations(&self, now: Timestamp) -> Vec<(NodeExpectation, SummaryNode)> {
        self.nodes
            .iter()
            .map(|n| {
                let node = n.snapshot();
                let expected = scenario::expected(&node, &self.typed, now);
                (
                    NodeExpectation {
                        name: node.name.clone(),
                        expected: expected.clone(),
                        driver: node.host.module.clone(),
                    },
                    SummaryNode { node, expected },
                )
            })
            .collect()
    }

    /// Why the cluster is not yet what the scenario expects.
    fn differences(&self, view: &ClusterView, expect: &[NodeExpectation]) -> Vec<String> {
        let mut out = cluster::differences(view, expect, &self.typed);
        if let Some(r) = &self.rollout {
            if !r.done.load(Ordering::Relaxed) {
                out.push(format!("not done yet: {}", r.status()));
            }
            out.extend(r.missed());
        }
        if let Some(bad) = self.scenario.bad_policy()
            && let Some(p) = view.policy(bad)
        {
            let (used, max) = p.budget.unwrap_or((0, 0));
            let disrupted = view
                .nodes
                .values()
                .filter(|n| n.policy.as_deref() == Some(bad) && n.disrupted())
                .count() as u32;
            if disrupted > max || used > max {
                out.push(format!(
                    "{bad}: {disrupted} nodes disrupted, more than maxUnavailable {max}"
                ));
            }
            if p.held_back == 0 {
                out.push(format!("{bad}: the budget has held nothing back yet"));
            }
        }
        out
    }
}

async fn simulate(args: SimArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let scenario = args.scenario;
    let count = args.nodes.map_or(scenario.default_nodes(), |n| n as usize);
    if scenario == Scenario::BadPolicy && count < 2 {
        anyhow::bail!(
            "--scenario bad-policy needs at least 2 nodes: its budget always lets one node be cordoned, so with one node there is nothing for it to hold back"
        );
    }
    let spec = scenario.fleet(count, args.seed);
    let now = Timestamp::now();
    let policies = scenario::load_policies(scenario, now)?;
    let typed: Vec<GpuFleetPolicy> = policies.iter().map(|p| p.policy.clone()).collect();

    // Hosts.
    let hosts = HostsDir::prepare(args.hosts_dir.as_deref())?;
    let generated = fleet::generate(&spec);
    let nodes: Vec<Arc<SimNode>> = generated
        .into_iter()
        .map(|n| Arc::new(SimNode::new(n, hosts.path())))
        .collect();
    {
        let nodes = nodes.clone();
        let total = nodes.len();
        tokio::task::spawn_blocking(move || {
            hosts::write_all(&nodes, |done| {
                if total >= 500 && done.is_multiple_of(500) {
                    eprintln!("hosts written: {done}/{total}");
                }
            })
        })
        .await
        .context("writing the simulated hosts")??;
    }

    // The API server, the CRDs, the Nodes and the policies.
    let sim = Sim::start(SimConfig {
        listen: args.listen,
        ..SimConfig::default()
    })
    .await
    .with_context(|| format!("starting the emulator on {}", args.listen))?;
    sim.write_kubeconfig(&args.kubeconfig)
        .with_context(|| format!("writing {}", args.kubeconfig.display()))?;
    let kubeconfig = args
        .kubeconfig
        .canonicalize()
        .unwrap_or_else(|_| args.kubeconfig.clone());
    let store = sim.store();
    for crd in plumbline_api::crds() {
        store
            .create(serde_json::to_value(crd).context("serializing a CRD")?)
            .context("installing the CRDs")?;
    }
    let stamp = now.to_string();
    for node in &nodes {
        store
            .create(node.snapshot().node_object(&stamp))
            .with_context(|| format!("creating Node {}", node.name))?;
    }
    for p in &policies {
        store
            .create(serde_json::to_value(&p.policy).context("serializing a policy")?)
            .with_context(|| format!("applying {}", p.file))?;
    }

    let live = LiveView::start(&sim);
    print_header(&args, scenario, count, &sim, &kubeconfig, &hosts, &policies);

    // Agents first, so that the controller's first pass finds baselines
    // rather than reporting every node as missing one; then the controller.
    let (stop_tx, stop) = watch::channel(false);
    let client = sim.try_client().context("a client for the agents")?;
    let total = nodes.len();
    let agent_tasks = agents::start_agents(&nodes, &client, &store, &stop, |n| {
        if total > 200 {
            eprintln!("agents started: {n}/{total}");
        }
    })
    .await?;
    let controller_client = sim.try_client().context("a client for the controller")?;
    let controller = agents::start_controller(controller_client, &stop);
    let poll_stop = Arc::new(AtomicBool::new(false));
    let poller = hosts::spawn_poller(nodes.clone(), Duration::from_secs(1), poll_stop.clone())
        .context("starting the host poller")?;
    let rollout = (scenario == Scenario::RollingUpgrade).then(|| {
        let state = Arc::new(drift::Rollout::default());
        tokio::spawn(drift::rollout(
            nodes.clone(),
            scenario::ROLLOUT_TO,
            live.clone(),
            state.clone(),
            stop.clone(),
        ));
        state
    });
    if let Some(every) = args.drift_every {
        tokio::spawn(drift::drift(nodes.clone(), every, args.seed, stop.clone()));
    }

    let running = Running {
        scenario,
        nodes,
        policies,
        typed,
        rollout,
    };
    let code = watch_fleet(&args, &running, &live, &kubeconfig, &hosts, started).await;

    // Shut down: agents and controller first, then the server.
    let _ = stop_tx.send(true);
    poll_stop.store(true, Ordering::Relaxed);
    let shutdown = async {
        for t in agent_tasks {
            let _ = t.await;
        }
        let _ = controller.await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), shutdown).await;
    let _ = poller.join();
    sim.shutdown().await;
    drop(hosts);
    code
}

fn print_header(
    args: &SimArgs,
    scenario: Scenario,
    count: usize,
    sim: &Sim,
    kubeconfig: &Path,
    hosts: &HostsDir,
    policies: &[AppliedPolicy],
) {
    println!(
        "plumbline sim: scenario {}, {count} nodes, seed {}",
        scenario.as_str(),
        args.seed
    );
    println!("  API server  {}", sim.url());
    println!("  kubeconfig  {}", kubeconfig.display());
    println!(
        "  hosts       {} (one directory per node{})",
        hosts.path().display(),
        if hosts.is_temporary() {
            "; removed on exit"
        } else {
            ""
        }
    );
    for (i, p) in policies.iter().enumerate() {
        let label = if i == 0 { "policies" } else { "" };
        println!("  {label:<10}  {} ({})", p.name(), p.file);
        for note in &p.notes {
            println!("  {:<10}    {note}", "");
        }
    }
    if let Some(every) = args.drift_every {
        println!("  drift       a random host changes every {every:?}");
    }
}

/// Shows progress until the fleet converges and, unless told to exit,
/// keeps going (the caller stops it on Ctrl-C). Returns the exit code.
async fn watch_fleet(
    args: &SimArgs,
    running: &Running,
    live: &LiveView,
    kubeconfig: &Path,
    hosts: &HostsDir,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let total = running.nodes.len();
    let mut progress = Progress::new();
    let every = if total > 500 {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(500)
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut converged_once = false;
    let mut timeout_reported = false;
    loop {
        tick.tick().await;
        let view = live.snapshot();
        let now = Timestamp::now();
        let pairs = running.expectations(now);
        let (expect, summary_nodes): (Vec<NodeExpectation>, Vec<SummaryNode>) =
            pairs.into_iter().unzip();
        let problems = running.differences(&view, &expect);
        let extra = running
            .rollout
            .as_ref()
            .map(|r| format!("  {}", r.status()))
            .unwrap_or_default();
        let seconds = started.elapsed().as_secs_f64();
        progress.show(&summary::progress_line(&view, total, seconds, &extra));

        if problems.is_empty() && !converged_once {
            converged_once = true;
            progress.finish();
            let mut headline = format!(
                "\nConverged as the {} scenario expects in {seconds:.1} s ({total} nodes).",
                running.scenario.as_str()
            );
            if let Some(r) = &running.rollout {
                headline.push_str(&format!(
                    "\nRollout to {}: {} nodes went through a pending reboot (Drifting) and back to Compliant.",
                    scenario::ROLLOUT_TO,
                    r.seen()
                ));
            }
            print!(
                "{}",
                summary::render(&headline, &view, &summary_nodes, &running.policies)
            );
            if args.exit_when_converged {
                return Ok(ExitCode::SUCCESS);
            }
            let example = summary_nodes.iter().find(|n| {
                n.node.violations.is_empty()
                    && n.expected.state == VerdictState::Compliant
                    && running
                        .typed
                        .iter()
                        .find(|p| p.metadata.name == n.expected.policy)
                        .is_some_and(|p| {
                            p.spec
                                .requirements
                                .driver
                                .as_ref()
                                .is_some_and(|d| !d.allow_mismatch)
                        })
            });
            print!(
                "{}",
                summary::usage(kubeconfig, hosts.path(), hosts.is_temporary(), example)
            );
            println!("Serving until Ctrl-C.");
        }
        if !problems.is_empty()
            && !converged_once
            && !timeout_reported
            && started.elapsed() > args.timeout
        {
            timeout_reported = true;
            progress.finish();
            let mut reasons = format!(
                "\nNot converged as the {} scenario expects after {:.0} s:",
                running.scenario.as_str(),
                args.timeout.as_secs_f64()
            );
            for p in problems.iter().take(12) {
                reasons.push_str(&format!("\n  - {p}"));
            }
            if problems.len() > 12 {
                reasons.push_str(&format!("\n  … and {} more", problems.len() - 12));
            }
            print!(
                "{}",
                summary::render(&reasons, &view, &summary_nodes, &running.policies)
            );
            if args.exit_when_converged {
                return Ok(ExitCode::from(1));
            }
            println!("Serving anyway until Ctrl-C.");
        }
    }
}
