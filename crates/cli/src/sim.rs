//! `plumbline sim`: the Kubernetes API server emulator on this machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::runtime;

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Serve only the API (with Plumbline's CRDs installed), no simulated fleet.
    #[arg(long)]
    pub api_only: bool,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Where to write a kubeconfig for kubectl.
    #[arg(long, default_value = "plumbline-sim.kubeconfig")]
    pub kubeconfig: PathBuf,
}

pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    if !args.api_only {
        anyhow::bail!(
            "the simulated fleet is not built yet; run `plumbline sim --api-only` for the API server emulator"
        );
    }
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
