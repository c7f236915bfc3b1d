//! `plumbline fleet`: the fleet's GPU stacks side by side, from any
//! cluster.
//!
//! The edge of the command: connect as every subcommand does (KUBECONFIG,
//! `~/.kube/config` or the pod's service account), list NodeGpuBaselines,
//! GpuFleetPolicies and Nodes page by page, and hand them to the pure
//! [`view::build`]; [`render`] prints the result. Every failure of the API
//! is turned into a sentence that names what is wrong and the command
//! that fixes it, because this is the command people run in an incident.
//!
//! The view lives in this binary rather than in `plumbline-policy`: it
//! decides nothing (verdicts are the controller's and are read as they
//! are), it is made of display strings, and nothing but this command
//! needs it.

pub mod render;
pub mod view;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use plumbline_api::{GpuFleetPolicy, NodeGpuBaseline};

#[derive(Args, Debug)]
pub struct FleetArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Show only the nodes this policy governs (`status.verdict.policy`).
    #[arg(long, value_name = "NAME")]
    pub policy: Option<String>,
    /// Show only Nodes matching this label selector, as `kubectl -l` takes
    /// it (e.g. `pool=h100,zone in (a,b)`).
    #[arg(long, short = 'l', value_name = "SELECTOR")]
    pub selector: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// Objects per list request: big fleets page instead of one huge answer.
const PAGE: u32 = 500;

/// What the listing brought back.
struct Snapshot {
    baselines: Vec<NodeGpuBaseline>,
    policies: Vec<GpuFleetPolicy>,
    nodes: Vec<view::NodeInfo>,
}

pub fn run(args: FleetArgs) -> anyhow::Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let snapshot = tokio.block_on(fetch(args.selector.as_deref()))?;
    let view = view::build(&view::Input {
        baselines: &snapshot.baselines,
        nodes: &snapshot.nodes,
        policies: &snapshot.policies,
        every_node: args.selector.is_none(),
        policy_filter: args.policy.as_deref(),
        now: jiff::Timestamp::now(),
    });
    let text = match args.output {
        Output::Json => render::json(&view)?,
        Output::Table => {
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            render::table(&view, colour)
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

async fn fetch(selector: Option<&str>) -> anyhow::Result<Snapshot> {
    let mut config = kube::Config::infer().await.context(
        "no Kubernetes API configuration found: set KUBECONFIG to a kubeconfig file \
         (for a local try: `plumbline sim --api-only --kubeconfig /tmp/plumbline.kubeconfig`, \
         then KUBECONFIG=/tmp/plumbline.kubeconfig), or run inside a pod with a service account",
    )?;
    // A one-shot command: an API server that accepts and never answers
    // must fail in seconds, not after kube's watch-sized default.
    config.connect_timeout = Some(std::time::Duration::from_secs(10));
    config.read_timeout = Some(std::time::Duration::from_secs(60));
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .with_context(|| format!("building a client for the API server at {server}"))?;

    // Baselines first: if the API server is unreachable or the CRDs are
    // missing, this is the request that says so.
    let baselines: Vec<NodeGpuBaseline> =
        list_all(&Api::all(client.clone()), ListParams::default())
            .await
            .map_err(|e| explain(e, Listing::Baselines, &server))?;
    let policies: Vec<GpuFleetPolicy> = list_all(&Api::all(client.clone()), ListParams::default())
        .await
        .map_err(|e| explain(e, Listing::Policies, &server))?;
    let mut node_params = ListParams::default();
    if let Some(selector) = selector {
        node_params = node_params.labels(selector);
    }
    let nodes: Vec<Node> = list_all(&Api::all(client), node_params)
        .await
        .map_err(|e| explain(e, Listing::Nodes { selector }, &server))?;
    let nodes = nodes
        .into_iter()
        .filter_map(|n| {
            Some(view::NodeInfo {
                name: n.metadata.name?,
                labels: n.metadata.labels.unwrap_or_else(BTreeMap::new),
            })
        })
        .collect();
    Ok(Snapshot {
        baselines,
        policies,
        nodes,
    })
}

async fn list_all<K>(api: &Api<K>, params: ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let mut params = params.limit(PAGE);
    let mut items = Vec::new();
    loop {
        let page = api.list(&params).await?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(items),
        }
    }
}

/// Which list failed.
#[derive(Debug, Clone, Copy)]
enum Listing<'a> {
    Baselines,
    Policies,
    Nodes { selector: Option<&'a str> },
}

impl Listing<'_> {
    fn resource(&self) -> &'static str {
        match self {
            Listing::Baselines => "nodegpubaselines.plumbline.dev",
            Listing::Policies => "gpufleetpolicies.plumbline.dev",
            Listing::Nodes { .. } => "nodes",
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Listing::Baselines => "NodeGpuBaseline",
            Listing::Policies => "GpuFleetPolicy",
            Listing::Nodes { .. } => "Node",
        }
    }
}

/// A sentence naming what is wrong and what fixes it.
fn explain(err: kube::Error, listing: Listing<'_>, server: &str) -> anyhow::Error {
    let resource = listing.resource();
    match &err {
        kube::Error::Api(status) if status.code == 404 => match listing {
            Listing::Nodes { .. } => anyhow::anyhow!(
                "the server at {server} does not serve Nodes (404): point KUBECONFIG at a \
                 Kubernetes API server"
            ),
            _ => anyhow::anyhow!(
                "the {} CRD is not installed in the cluster at {server} (listing {resource} \
                 answered 404): run `plumbline crds | kubectl apply -f -`",
                listing.kind()
            ),
        },
        kube::Error::Api(status) if status.code == 401 => anyhow::anyhow!(
            "the API server at {server} did not accept the credentials (401 {}): renew them \
             in your kubeconfig (e.g. log in to the cluster again)",
            status.message
        ),
        kube::Error::Api(status) if status.code == 403 => anyhow::anyhow!(
            "the credentials in use may not list {resource} at {server} (403 {}): grant \
             `list` on {resource} (the chart's plumbline-controller ClusterRole has it) or use \
             a kubeconfig that can",
            status.message
        ),
        kube::Error::Api(status) if status.code == 400 => match listing {
            Listing::Nodes {
                selector: Some(selector),
            } => anyhow::anyhow!(
                "the API server at {server} refused the label selector {selector:?} (400 {}): \
                 write it as `kubectl -l` takes it, e.g. `pool=h100` or `zone in (a,b)`",
                status.message
            ),
            _ => anyhow::anyhow!(
                "the API server at {server} refused to list {resource} (400 {})",
                status.message
            ),
        },
        kube::Error::Api(status) => anyhow::anyhow!(
            "listing {resource} at {server} failed ({} {}): check the API server's health \
             (`kubectl get --raw /readyz`) and try again",
            status.code,
            status.message
        ),
        _ => anyhow::Error::new(err).context(format!(
            "cannot reach the Kubernetes API server at {server}: check that the cluster is up \
             and that KUBECONFIG points at it (`kubectl cluster-info` tells the same), or start \
             a local one with `plumbline sim`"
        )),
    }
}
