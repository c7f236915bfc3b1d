//! `plumbline agent`: flags and environment onto
//! [`plumbline_agent::AgentConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::runtime;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Name of the Node this agent runs on (downward API: spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Where the host's filesystem is mounted.
    #[arg(long, env = "HOST_ROOT", default_value = "/host")]
    pub host_root: PathBuf,
    /// Probe at least this often (changes to watched files are seen at once).
    #[arg(long, default_value = "60s", value_parser = runtime::parse_duration)]
    pub probe_interval: Duration,
    /// Confirm an unchanged baseline this often.
    #[arg(long, default_value = "5m", value_parser = runtime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// Also query NVML (needs the nvidia runtime class; see docs/install.md).
    #[arg(long)]
    pub nvml: bool,
    /// NVML library to load, as a path in the agent's own filesystem.
    #[arg(long, value_name = "PATH")]
    pub nvml_library: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz here.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9400")]
    pub metrics_addr: SocketAddr,
}

pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    runtime::init_logging();
    let config = plumbline_agent::AgentConfig {
        node_name: args.node_name.unwrap_or_default(),
        host_root: args.host_root,
        probe_interval: args.probe_interval,
        heartbeat_interval: args.heartbeat_interval,
        nvml: args.nvml,
        nvml_library: args.nvml_library,
        metrics_addr: Some(args.metrics_addr),
        ..Default::default()
    };
    // Settings are checked before any connection, so a wrong flag is
    // reported as such and not as an API error.
    plumbline_agent::validate_config(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    tokio.block_on(async move {
        let client = runtime::client().await?;
        plumbline_agent::run(config, client, runtime::shutdown_signal())
            .await
            .context("the agent stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}
