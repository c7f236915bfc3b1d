//! `plumbline controller`: flags and environment onto
//! [`plumbline_controller::ControllerConfig`].

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::runtime;

#[derive(Args, Debug)]
pub struct ControllerArgs {
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "plumbline-system")]
    pub namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Serve /metrics, /healthz and /readyz here.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9401")]
    pub metrics_addr: SocketAddr,
    /// Reconcile every node at least this often.
    #[arg(long, default_value = "5m", value_parser = runtime::parse_duration)]
    pub resync: Duration,
    /// Treat every policy as DryRun: write verdicts and policy status, never Nodes.
    #[arg(long)]
    pub dry_run: bool,
    /// Act without leader election (a single replica only).
    #[arg(long)]
    pub no_leader_election: bool,
}

pub fn run(args: ControllerArgs) -> anyhow::Result<ExitCode> {
    runtime::init_logging();
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    tokio.block_on(async move {
        let client = runtime::client().await?;
        let mut config = plumbline_controller::ControllerConfig {
            namespace: args.namespace,
            metrics_addr: Some(args.metrics_addr),
            resync: args.resync,
            dry_run: args.dry_run,
            leader_election: !args.no_leader_election,
            ..Default::default()
        };
        if let Some(identity) = args.identity {
            config.identity = identity;
        }
        plumbline_controller::run(config, client, runtime::shutdown_signal())
            .await
            .context("the controller stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}
