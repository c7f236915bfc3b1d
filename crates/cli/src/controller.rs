//! `plumbline controller`: flags and environment onto
//! [`plumbline_controller::ControllerConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use plumbline_compat::CompatDb;

use crate::runtime;

#[derive(Args, Debug)]
pub struct ControllerArgs {
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "plumbline-system")]
    pub namespace: String,
    /// Namespace the controller's Events go to. They are about Nodes and
    /// policies, which are cluster-scoped; Kubernetes puts such Events in
    /// `default`.
    #[arg(long, value_name = "NAMESPACE", default_value = "default")]
    pub events_namespace: String,
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
    /// Compatibility data file to use instead of the embedded one. Read once
    /// at start; a changed file takes a restart.
    #[arg(long, value_name = "FILE")]
    pub compat_data: Option<PathBuf>,
}

pub fn run(args: ControllerArgs) -> anyhow::Result<ExitCode> {
    runtime::init_logging();
    let config = config(args)?;
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    tokio.block_on(async move {
        let client = runtime::client().await?;
        plumbline_controller::run(config, client, runtime::shutdown_signal())
            .await
            .context("the controller stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The controller's configuration from its arguments. The compatibility
/// data is loaded here, before any connection is made, so a bad file is
/// reported at once and on its own.
fn config(args: ControllerArgs) -> anyhow::Result<plumbline_controller::ControllerConfig> {
    let compat = match &args.compat_data {
        Some(path) => Some(std::sync::Arc::new(CompatDb::load(path).with_context(|| {
            format!(
                "loading --compat-data {} (check the file, or omit the flag to use the embedded data)",
                path.display()
            )
        })?)),
        None => None,
    };
    let mut config = plumbline_controller::ControllerConfig {
        namespace: args.namespace,
        events_namespace: args.events_namespace,
        metrics_addr: Some(args.metrics_addr),
        resync: args.resync,
        dry_run: args.dry_run,
        leader_election: !args.no_leader_election,
        compat,
        ..Default::default()
    };
    if let Some(identity) = args.identity {
        config.identity = identity;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: ControllerArgs,
    }

    fn parse(argv: &[&str]) -> ControllerArgs {
        let mut full = vec!["controller"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full) {
            Ok(cli) => cli.args,
            Err(e) => panic!("{argv:?} should parse: {e}"),
        }
    }

    #[test]
    fn without_compat_data_the_embedded_data_is_used_and_events_go_to_default() {
        let config = match config(parse(&[])) {
            Ok(c) => c,
            Err(e) => panic!("default config: {e:#}"),
        };
        assert!(config.compat.is_none());
        assert_eq!(config.events_namespace, "default");
    }

    #[test]
    fn compat_data_is_loaded_from_the_named_file() {
        let path = std::env::temp_dir().join(format!(
            "plumbline-controller-cli-{}.toml",
            std::process::id()
        ));
        std::fs::write(&path, plumbline_compat::EMBEDDED_TOML).expect("write compat data");
        let loaded = config(parse(&[
            "--compat-data",
            path.to_str().expect("utf-8 temp path"),
            "--events-namespace",
            "plumbline-system",
        ]));
        std::fs::remove_file(&path).expect("remove compat data");
        let config = match loaded {
            Ok(c) => c,
            Err(e) => panic!("loading a copy of the embedded data: {e:#}"),
        };
        let compat = config.compat.expect("compat data loaded");
        assert_eq!(compat.origin(), path.display().to_string());
        assert_eq!(config.events_namespace, "plumbline-system");
    }

    #[test]
    fn a_missing_compat_data_file_is_named_in_the_error() {
        let err = match config(parse(&["--compat-data", "/definitely/not/here.toml"])) {
            Ok(_) => panic!("a missing file must not load"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("loading --compat-data /definitely/not/here.toml"),
            "{err}"
        );
        assert!(err.contains("No such file"), "{err}");
    }
}
