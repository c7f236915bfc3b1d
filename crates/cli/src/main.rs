//! `plumbline`: the one binary.
//!
//! Each subcommand is a thin shell around a library crate: argument parsing,
//! output formatting and exit codes live here, decisions live in the crates.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod agent;
mod check;
mod controller;
mod fleet;
mod runtime;
mod sim;

#[derive(Parser, Debug)]
#[command(
    name = "plumbline",
    version,
    about = "Keep every GPU node of a Kubernetes fleet true to a declared baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Probe this host (or a host tree under --host-root) and print its GPU stack.
    Check(check::CheckArgs),
    /// Run the node agent (a DaemonSet on every GPU node).
    Agent(agent::AgentArgs),
    /// Run the fleet controller (a Deployment in the cluster).
    Controller(controller::ControllerArgs),
    /// Run the Kubernetes API server emulator.
    Sim(sim::SimArgs),
    /// Show the fleet's GPU stacks side by side, by policy, with the outliers named.
    Fleet(fleet::FleetArgs),
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD.
    Crds {
        /// Write `<name>.yaml` files into this directory instead of printing.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Check(args) => return check::run(&args),
        Command::Agent(args) => return agent::run(args),
        Command::Controller(args) => return controller::run(args),
        Command::Sim(args) => return sim::run(args),
        Command::Fleet(args) => return fleet::run(args),
        Command::Crds { out_dir } => crds(out_dir)?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn crds(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
    match out_dir {
        None => {
            let yaml = plumbline_api::crds_yaml().context("rendering CRDs")?;
            print!("{yaml}");
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in plumbline_api::crds() {
                let path = dir.join(plumbline_api::crd_file_name(&crd));
                let yaml = plumbline_api::crd_yaml(&crd).context("rendering CRDs")?;
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}
