//! The fleet's GPU stacks side by side, as a plain value.
//!
//! [`build`] turns what the API server holds (baselines, Nodes, policies)
//! and the time into a [`FleetView`]: per governing policy, each field of
//! the stack (driver, module, CUDA ceiling, ...) with its values, how many
//! nodes hold each, which value is the majority and which nodes are the
//! outliers. It does no I/O and reads no clock, so the grouping is tested
//! with tables of made-up fleets; listing and printing live elsewhere.
//!
//! This is presentation, not judgement: the controller's verdicts are read
//! as they are (`status.verdict`), never recomputed. The one thing worked
//! out here is heartbeat age, against the governing policy's `staleAfter`,
//! because a controller that is down stops writing verdicts exactly when a
//! silent agent matters most.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use plumbline_api::keys::probes;
use plumbline_api::{
    Actions, GpuFleetPolicy, NodeGpuBaseline, Observed, ProbeResult, ProbeStatus, RuntimeName,
    VerdictState,
};
use serde::Serialize;

/// Version of the JSON document; bumped only when a field changes meaning
/// or goes away (new fields may appear without a bump).
pub const SCHEMA_VERSION: u32 = 1;

/// A Node as the view needs it: its name and labels (for the policy that
/// would govern it when it has no baseline).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Everything [`build`] looks at.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub baselines: &'a [NodeGpuBaseline],
    pub nodes: &'a [NodeInfo],
    pub policies: &'a [GpuFleetPolicy],
    /// `nodes` is every Node of the cluster (no label selector), so a
    /// baseline without a Node was left behind rather than filtered out.
    pub every_node: bool,
    /// Keep only nodes this policy governs.
    pub policy_filter: Option<&'a str>,
    pub now: Timestamp,
}

/// The whole view; serialised as the `--output json` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetView {
    pub schema_version: u32,
    pub generated_at: Timestamp,
    pub policy_filter: Option<String>,
    pub totals: Totals,
    pub attention: Attention,
    pub groups: Vec<Group>,
    pub nodes: Vec<NodeEntry>,
}

/// Node counts for the one-line header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Nodes with a baseline in the view.
    pub nodes: usize,
    pub verdicts: VerdictCounts,
    pub stale_heartbeats: usize,
    pub without_baseline: usize,
    pub baselines_without_node: usize,
    pub not_probed: usize,
    /// Nodes with no baseline that no policy selects (CPU nodes, usually):
    /// counted, never listed.
    pub other_nodes: usize,
}

/// Nodes per verdict; every key is always present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerdictCounts {
    pub compliant: usize,
    pub drifting: usize,
    pub unknown: usize,
    pub unmanaged: usize,
    /// Baselines the controller has not judged yet (no `status.verdict`).
    pub not_judged: usize,
}

impl VerdictCounts {
    fn add(&mut self, verdict: NodeVerdict) {
        match verdict {
            NodeVerdict::Compliant => self.compliant += 1,
            NodeVerdict::Drifting => self.drifting += 1,
            NodeVerdict::Unknown => self.unknown += 1,
            NodeVerdict::Unmanaged => self.unmanaged += 1,
            NodeVerdict::NotJudged => self.not_judged += 1,
        }
    }

    /// Non-zero counts in display order, with their display names.
    pub fn nonzero(&self) -> Vec<(&'static str, usize)> {
        [
            ("Compliant", self.compliant),
            ("Drifting", self.drifting),
            ("Unknown", self.unknown),
            ("Unmanaged", self.unmanaged),
            ("not judged", self.not_judged),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

/// A node's verdict as the view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NodeVerdict {
    Compliant,
    Drifting,
    Unknown,
    Unmanaged,
    NotJudged,
}

impl From<VerdictState> for NodeVerdict {
    fn from(state: VerdictState) -> Self {
        match state {
            VerdictState::Compliant => NodeVerdict::Compliant,
            VerdictState::Drifting => NodeVerdict::Drifting,
            VerdictState::Unknown => NodeVerdict::Unknown,
            VerdictState::Unmanaged => NodeVerdict::Unmanaged,
        }
    }
}

/// What needs a look before any version does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attention {
    pub stale_heartbeats: Vec<StaleHeartbeat>,
    /// Nodes a policy selects that have no baseline (no agent there).
    pub without_baseline: Vec<MissingBaseline>,
    /// Baselines whose Node is gone (only told when every Node was listed).
    pub baselines_without_node: Vec<String>,
    /// Baselines whose agent has not finished its first probe.
    pub not_probed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StaleHeartbeat {
    pub node: String,
    pub policy: Option<String>,
    pub last_heartbeat: Option<Timestamp>,
    /// Seconds since the last heartbeat; `null` when there never was one.
    pub age_seconds: Option<i64>,
    pub stale_after: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MissingBaseline {
    pub node: String,
    /// The policy that selects the node.
    pub policy: String,
}

/// The nodes one policy governs (or none: `policy` is `null`), as
/// [`NodeEntry::policy`] tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub policy: Option<String>,
    pub stale_after: String,
    pub nodes: usize,
    pub verdicts: VerdictCounts,
    pub fields: Vec<Field>,
    pub findings: Vec<FindingCount>,
}

/// One field of the stack across a group's probed nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    /// Stable id, e.g. `driver`, `runtime.containerd`.
    pub field: String,
    /// Short column label for people, e.g. `CTK`.
    pub label: String,
    /// Every node has the same value.
    pub uniform: bool,
    /// The value more nodes hold than any other; `null` on a tie.
    pub majority: Option<String>,
    /// Most common first; equal counts by value.
    pub values: Vec<ValueCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueCount {
    pub value: String,
    pub count: usize,
    /// Not the majority value (on a tie, every value is an outlier).
    pub outlier: bool,
    /// Wrong whatever the rest of the fleet runs: a failed probe, no loaded
    /// driver, a pending reboot, a runtime without the nvidia handler, a
    /// stale CDI spec.
    pub problem: bool,
    /// Every node holding the value, in natural order (`gpu-2` before
    /// `gpu-10`).
    pub nodes: Vec<String>,
}

impl ValueCount {
    /// Worth a reader's eye: the table marks it and names its nodes.
    pub fn flagged(&self) -> bool {
        self.outlier || self.problem
    }
}

/// A failed rule and the nodes of the group it fails on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingCount {
    pub rule: String,
    pub count: usize,
    pub nodes: Vec<String>,
}

/// One node with a baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeEntry {
    pub node: String,
    /// `status.verdict.policy`; for a node not judged yet, the policy
    /// whose selector matches its Node.
    pub policy: Option<String>,
    pub verdict: NodeVerdict,
    pub last_heartbeat: Option<Timestamp>,
    pub stale_heartbeat: bool,
    pub probed: bool,
    /// Field id to value, as in `groups[].fields[].values[].value`.
    pub values: BTreeMap<String, String>,
    /// Rule ids of the verdict's findings.
    pub findings: Vec<String>,
}

/// A field of the stack. Variant order is display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldKind {
    Driver,
    Module,
    CudaCeiling,
    Toolkits,
    ContainerToolkit,
    Runtime(RuntimeName),
    Cdi,
    Kernel,
    Gpus,
}

impl FieldKind {
    pub fn id(self) -> String {
        match self {
            FieldKind::Driver => "driver".to_string(),
            FieldKind::Module => "module".to_string(),
            FieldKind::CudaCeiling => "cudaCeiling".to_string(),
            FieldKind::Toolkits => "toolkits".to_string(),
            FieldKind::ContainerToolkit => "containerToolkit".to_string(),
            FieldKind::Runtime(name) => format!("runtime.{}", name.as_str()),
            FieldKind::Cdi => "cdi".to_string(),
            FieldKind::Kernel => "kernel".to_string(),
            FieldKind::Gpus => "gpus".to_string(),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FieldKind::Driver => "driver",
            FieldKind::Module => "module",
            FieldKind::CudaCeiling => "CUDA",
            FieldKind::Toolkits => "toolkits",
            FieldKind::ContainerToolkit => "CTK",
            FieldKind::Runtime(name) => name.as_str(),
            FieldKind::Cdi => "CDI",
            FieldKind::Kernel => "kernel",
            FieldKind::Gpus => "GPUs",
        }
    }
}

/// Value of a field on a node that lacks a runtime others in its group have.
pub const ABSENT: &str = "absent";
/// Value of a field whose probe failed on the node.
pub const PROBE_ERROR: &str = "probe error";

/// One node's value for one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub value: String,
    pub problem: bool,
}

fn cell(value: impl Into<String>) -> Cell {
    Cell {
        value: value.into(),
        problem: false,
    }
}

fn problem(value: impl Into<String>) -> Cell {
    Cell {
        value: value.into(),
        problem: true,
    }
}

fn probe_failed(results: &[ProbeResult], name: &str) -> bool {
    results
        .iter()
        .any(|p| p.name == name && p.status == ProbeStatus::Error)
}

/// The values of every field a node has, in display order. Runtimes the
/// node does not run are left out; the group fills them in as [`ABSENT`]
/// (or [`PROBE_ERROR`] when the runtimes probe failed).
pub fn node_cells(observed: &Observed, results: &[ProbeResult]) -> Vec<(FieldKind, Cell)> {
    let failed = |name: &str| probe_failed(results, name);
    let d = &observed.driver;
    let mut cells = Vec::new();

    let driver = if failed(probes::KERNEL_MODULE) {
        problem(PROBE_ERROR)
    } else if !d.loaded {
        problem("not loaded")
    } else {
        let version = d.version.as_deref().unwrap_or("unknown");
        match (&d.userspace_version, d.mismatch) {
            (Some(libs), true) => problem(format!("{version} (libs {libs}, reboot pending)")),
            (None, true) => problem(format!("{version} (reboot pending)")),
            _ => cell(version),
        }
    };
    cells.push((FieldKind::Driver, driver));

    let module = if failed(probes::KERNEL_MODULE) {
        problem(PROBE_ERROR)
    } else if !d.loaded {
        cell("-")
    } else {
        cell(d.kernel_module.as_str())
    };
    cells.push((FieldKind::Module, module));

    let cuda = if failed(probes::CUDA_CEILING) {
        problem(PROBE_ERROR)
    } else if !d.loaded {
        cell("-")
    } else {
        cell(d.cuda_ceiling.as_deref().unwrap_or("unknown"))
    };
    cells.push((FieldKind::CudaCeiling, cuda));

    let toolkits = if failed(probes::TOOLKITS) {
        problem(PROBE_ERROR)
    } else if observed.toolkits.is_empty() {
        cell("none")
    } else {
        let mut versions: Vec<(&str, bool)> = observed
            .toolkits
            .iter()
            .map(|t| (t.version.as_str(), t.default))
            .collect();
        versions.sort_by(|a, b| natural_cmp(a.0, b.0).then(a.1.cmp(&b.1)));
        versions.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                earlier.1 |= later.1;
                true
            } else {
                false
            }
        });
        cell(
            versions
                .iter()
                .map(|(v, default)| format!("{v}{}", if *default { "*" } else { "" }))
                .collect::<Vec<_>>()
                .join(", "),
        )
    };
    cells.push((FieldKind::Toolkits, toolkits));

    let ctk = &observed.container_toolkit;
    let ctk_cell = if failed(probes::CONTAINER_TOOLKIT) {
        problem(PROBE_ERROR)
    } else if !ctk.installed {
        cell("not installed")
    } else {
        let version = ctk.version.as_deref().unwrap_or("unknown");
        match ctk.mode.as_deref() {
            // `auto` is the default and says nothing about the wiring.
            Some(mode) if mode != "auto" => cell(format!("{version} ({mode} mode)")),
            _ => cell(version),
        }
    };
    cells.push((FieldKind::ContainerToolkit, ctk_cell));

    // When the probe failed, which runtimes exist is unknown: the group
    // fills every runtime column of the node with the error.
    if !failed(probes::RUNTIMES) {
        let mut runtimes: Vec<_> = observed.runtimes.iter().collect();
        runtimes.sort_by_key(|r| r.name);
        for r in runtimes {
            let default = r.default_runtime.as_deref().unwrap_or("unset");
            let cdi = if r.cdi_enabled { "on" } else { "off" };
            let text = if r.nvidia_handler {
                format!("nvidia handler, default={default}, cdi={cdi}")
            } else {
                format!("no nvidia handler, default={default}, cdi={cdi}")
            };
            let c = if r.nvidia_handler {
                cell(text)
            } else {
                problem(text)
            };
            cells.push((FieldKind::Runtime(r.name), c));
        }
    }

    let cdi = if failed(probes::CDI) {
        problem(PROBE_ERROR)
    } else if observed.cdi.specs.is_empty() {
        cell("none")
    } else if observed.cdi.specs.iter().any(|s| s.stale) {
        problem("stale")
    } else {
        cell("fresh")
    };
    cells.push((FieldKind::Cdi, cdi));

    let kernel = if failed(probes::KERNEL) {
        problem(PROBE_ERROR)
    } else {
        cell(observed.kernel.release.as_deref().unwrap_or("unknown"))
    };
    cells.push((FieldKind::Kernel, kernel));

    let gpus = if failed(probes::GPUS) {
        problem(PROBE_ERROR)
    } else {
        let summary = plumbline_api::Summary::from_observed(observed);
        cell(summary.gpus.unwrap_or_else(|| "none".to_string()))
    };
    cells.push((FieldKind::Gpus, gpus));
    cells
}

/// Compares names and versions with digit runs as numbers, so `gpu-2`
/// sorts before `gpu-10` and `12.9` before `12.10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a, b);
    loop {
        match (x.chars().next(), y.chars().next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let xe = x.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(x.len());
                let ye = y.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(y.len());
                let (xn, yn) = (
                    x[..xe].trim_start_matches('0'),
                    y[..ye].trim_start_matches('0'),
                );
                let by_number = xn.len().cmp(&yn.len()).then_with(|| xn.cmp(yn));
                if by_number != Ordering::Equal {
                    return by_number;
                }
                x = &x[xe..];
                y = &y[ye..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(&d);
                }
                x = &x[c.len_utf8()..];
                y = &y[d.len_utf8()..];
            }
        }
    }
}

fn sort_natural(names: &mut [String]) {
    names.sort_by(|a, b| natural_cmp(a, b));
}

/// `staleAfter` of a policy by name; the API's default for nodes no
/// policy governs or a policy that is gone.
fn stale_after_of(policies: &[GpuFleetPolicy], policy: Option<&str>) -> String {
    policy
        .and_then(|name| {
            policies
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name))
        })
        .map(|p| p.spec.actions.stale_after.clone())
        .unwrap_or_else(|| Actions::default().stale_after)
}

fn parse_stale_after(text: &str) -> SignedDuration {
    plumbline_policy::text::parse_duration(text)
        .or_else(|| plumbline_policy::text::parse_duration(&Actions::default().stale_after))
        .unwrap_or(SignedDuration::from_mins(15))
}

struct Row<'a> {
    node: String,
    policy: Option<String>,
    verdict: NodeVerdict,
    baseline: &'a NodeGpuBaseline,
    cells: Option<Vec<(FieldKind, Cell)>>,
}

/// Builds the view. Pure: same input, same view.
pub fn build(input: &Input<'_>) -> FleetView {
    let wanted = |policy: Option<&str>| match input.policy_filter {
        Some(filter) => policy == Some(filter),
        None => true,
    };
    let node_labels: BTreeMap<&str, &BTreeMap<String, String>> = input
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), &n.labels))
        .collect();

    let mut attention = Attention::default();
    let mut rows: Vec<Row<'_>> = Vec::new();
    let mut with_baseline: BTreeSet<String> = BTreeSet::new();
    for baseline in input.baselines {
        let node = if baseline.spec.node_name.is_empty() {
            baseline.metadata.name.clone().unwrap_or_default()
        } else {
            baseline.spec.node_name.clone()
        };
        with_baseline.insert(node.clone());
        let status = baseline.status.as_ref();
        let verdict = status.and_then(|s| s.verdict.as_ref());
        let policy = match verdict {
            Some(v) => v.policy.clone(),
            // Not judged yet (a new node, or no controller running): the
            // policy that will judge it, so pools stay apart meanwhile.
            None => node_labels.get(node.as_str()).and_then(|labels| {
                plumbline_policy::select_policy(labels, input.policies)
                    .policy_name()
                    .map(str::to_string)
            }),
        };
        if !wanted(policy.as_deref()) {
            continue;
        }
        if !node_labels.contains_key(node.as_str()) {
            if input.every_node {
                attention.baselines_without_node.push(node);
            }
            // Outside the selector, or left behind: either way not part of
            // the fleet being shown.
            continue;
        }
        let cells = status
            .and_then(|s| s.observed.as_ref())
            .map(|o| node_cells(o, status.map(|s| s.probes.as_slice()).unwrap_or_default()));
        rows.push(Row {
            node,
            policy,
            verdict: verdict.map_or(NodeVerdict::NotJudged, |v| v.state.into()),
            baseline,
            cells,
        });
    }
    rows.sort_by(|a, b| natural_cmp(&a.node, &b.node));

    let mut totals = Totals::default();
    for node in input.nodes {
        if with_baseline.contains(&node.name) {
            continue;
        }
        let selection = plumbline_policy::select_policy(&node.labels, input.policies);
        match selection.policy_name() {
            Some(policy) if wanted(Some(policy)) => {
                attention.without_baseline.push(MissingBaseline {
                    node: node.name.clone(),
                    policy: policy.to_string(),
                });
            }
            Some(_) => {}
            None if input.policy_filter.is_none() => totals.other_nodes += 1,
            None => {}
        }
    }
    attention
        .without_baseline
        .sort_by(|a, b| natural_cmp(&a.node, &b.node));
    sort_natural(&mut attention.baselines_without_node);

    let mut nodes = Vec::with_capacity(rows.len());
    for row in &rows {
        let status = row.baseline.status.as_ref();
        let stale_after = stale_after_of(input.policies, row.policy.as_deref());
        let beat = status
            .and_then(|s| s.last_heartbeat_time.as_ref())
            .map(|t| t.0);
        let age = beat.map(|b| input.now.duration_since(b));
        let stale = match age {
            Some(age) => age > parse_stale_after(&stale_after),
            // An agent that never probed is reported as such, not twice.
            None => row.cells.is_some(),
        };
        if stale {
            attention.stale_heartbeats.push(StaleHeartbeat {
                node: row.node.clone(),
                policy: row.policy.clone(),
                last_heartbeat: beat,
                age_seconds: age.map(|a| a.as_secs()),
                stale_after: stale_after.clone(),
            });
        }
        if row.cells.is_none() {
            attention.not_probed.push(row.node.clone());
        }
        totals.verdicts.add(row.verdict);
        nodes.push(NodeEntry {
            node: row.node.clone(),
            policy: row.policy.clone(),
            verdict: row.verdict,
            last_heartbeat: beat,
            stale_heartbeat: stale,
            probed: row.cells.is_some(),
            values: row
                .cells
                .iter()
                .flatten()
                .map(|(kind, c)| (kind.id(), c.value.clone()))
                .collect(),
            findings: status
                .and_then(|s| s.verdict.as_ref())
                .map(|v| v.findings.iter().map(|f| f.rule.clone()).collect())
                .unwrap_or_default(),
        });
    }

    let mut by_policy: BTreeMap<Option<String>, Vec<&Row<'_>>> = BTreeMap::new();
    for row in &rows {
        by_policy.entry(row.policy.clone()).or_default().push(row);
    }
    let mut groups: Vec<Group> = by_policy
        .into_iter()
        .map(|(policy, members)| group(policy, &members, input.policies))
        .collect();
    // The big pools first; nodes no policy governs last.
    groups.sort_by(|a, b| {
        a.policy
            .is_none()
            .cmp(&b.policy.is_none())
            .then(b.nodes.cmp(&a.nodes))
            .then_with(|| a.policy.cmp(&b.policy))
    });

    totals.nodes = rows.len();
    totals.stale_heartbeats = attention.stale_heartbeats.len();
    totals.without_baseline = attention.without_baseline.len();
    totals.baselines_without_node = attention.baselines_without_node.len();
    totals.not_probed = attention.not_probed.len();

    FleetView {
        schema_version: SCHEMA_VERSION,
        generated_at: input.now,
        policy_filter: input.policy_filter.map(str::to_string),
        totals,
        attention,
        groups,
        nodes,
    }
}

fn group(policy: Option<String>, members: &[&Row<'_>], policies: &[GpuFleetPolicy]) -> Group {
    let mut verdicts = VerdictCounts::default();
    for row in members {
        verdicts.add(row.verdict);
    }

    let probed: Vec<(&str, &Vec<(FieldKind, Cell)>)> = members
        .iter()
        .filter_map(|r| r.cells.as_ref().map(|c| (r.node.as_str(), c)))
        .collect();
    let mut kinds: BTreeSet<FieldKind> = probed
        .iter()
        .flat_map(|(_, cells)| cells.iter().map(|(k, _)| *k))
        .collect();
    let failed_runtimes: BTreeSet<&str> = members
        .iter()
        .filter(|r| {
            r.baseline
                .status
                .as_ref()
                .is_some_and(|s| probe_failed(&s.probes, probes::RUNTIMES))
        })
        .map(|r| r.node.as_str())
        .collect();
    let runtimes_failed = |node: &str| failed_runtimes.contains(node);
    let any_runtime = kinds.iter().any(|k| matches!(k, FieldKind::Runtime(_)));
    if !any_runtime && probed.iter().any(|(node, _)| runtimes_failed(node)) {
        // Nobody told which runtimes run here; containerd is what kubelets
        // use unless told otherwise, so the error shows under it.
        kinds.insert(FieldKind::Runtime(RuntimeName::Containerd));
    }
    let mut fields = Vec::new();
    for kind in kinds {
        // value -> (problem, nodes)
        let mut spread: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
        for (node, cells) in &probed {
            let c = match cells.iter().find(|(k, _)| *k == kind) {
                Some((_, c)) => c.clone(),
                None if runtimes_failed(node) => problem(PROBE_ERROR),
                None => cell(ABSENT),
            };
            let entry = spread.entry(c.value).or_default();
            entry.0 |= c.problem;
            entry.1.push((*node).to_string());
        }
        fields.push(field(kind, spread));
    }

    let mut findings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in members {
        let verdict = row
            .baseline
            .status
            .as_ref()
            .and_then(|s| s.verdict.as_ref());
        let rules: BTreeSet<&str> = verdict
            .map(|v| v.findings.iter().map(|f| f.rule.as_str()).collect())
            .unwrap_or_default();
        for rule in rules {
            findings
                .entry(rule.to_string())
                .or_default()
                .push(row.node.clone());
        }
    }
    let mut findings: Vec<FindingCount> = findings
        .into_iter()
        .map(|(rule, mut nodes)| {
            sort_natural(&mut nodes);
            FindingCount {
                rule,
                count: nodes.len(),
                nodes,
            }
        })
        .collect();
    findings.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.rule.cmp(&b.rule)));

    Group {
        stale_after: stale_after_of(policies, policy.as_deref()),
        policy,
        nodes: members.len(),
        verdicts,
        fields,
        findings,
    }
}

fn field(kind: FieldKind, spread: BTreeMap<String, (bool, Vec<String>)>) -> Field {
    let mut values: Vec<ValueCount> = spread
        .into_iter()
        .map(|(value, (problem, mut nodes))| {
            sort_natural(&mut nodes);
            ValueCount {
                value,
                count: nodes.len(),
                outlier: false,
                problem,
                nodes,
            }
        })
        .collect();
    values.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| natural_cmp(&a.value, &b.value))
    });
    let tie = values.len() > 1 && values[0].count == values[1].count;
    let majority = if tie {
        None
    } else {
        values.first().map(|v| v.value.clone())
    };
    for v in &mut values {
        v.outlier = majority.as_deref() != Some(v.value.as_str());
    }
    Field {
        field: kind.id(),
        label: kind.label().to_string(),
        uniform: values.len() == 1,
        majority,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
    use plumbline_api::{
        CdiObserved, CdiSpecObserved, ContainerToolkitObserved, DriverObserved, Finding,
        GpuFleetPolicySpec, KernelModule, KernelObserved, NodeGpuBaselineSpec,
        NodeGpuBaselineStatus, RuntimeObserved, ToolkitObserved, Verdict,
    };
    use pretty_assertions::assert_eq;

    const NOW: &str = "2026-03-01T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    /// A healthy H100 node on `driver`, probed a minute ago.
    fn observed(driver: &str) -> Observed {
        Observed {
            driver: DriverObserved {
                loaded: true,
                version: Some(driver.to_string()),
                branch: driver.split('.').next().and_then(|b| b.parse().ok()),
                kernel_module: KernelModule::Open,
                userspace_version: Some(driver.to_string()),
                mismatch: false,
                cuda_ceiling: Some(
                    if driver.starts_with("580") {
                        "13.0"
                    } else {
                        "12.8"
                    }
                    .to_string(),
                ),
                root: Some("/".to_string()),
            },
            toolkits: vec![ToolkitObserved {
                version: "12.9".to_string(),
                full_version: None,
                path: "/usr/local/cuda-12.9".to_string(),
                default: true,
            }],
            container_toolkit: ContainerToolkitObserved {
                installed: true,
                version: Some("1.17.8".to_string()),
                mode: Some("auto".to_string()),
                config_path: None,
            },
            runtimes: vec![RuntimeObserved {
                name: RuntimeName::Containerd,
                config_paths: vec![],
                nvidia_handler: true,
                default_runtime: Some("nvidia".to_string()),
                cdi_enabled: true,
            }],
            cdi: CdiObserved {
                specs: vec![CdiSpecObserved {
                    path: "/etc/cdi/nvidia.yaml".to_string(),
                    ..Default::default()
                }],
            },
            kernel: KernelObserved {
                release: Some("6.8.0-51-generic".to_string()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    struct B {
        name: &'static str,
        /// The Node's `pool` label; policy `h100` selects pool `h100`.
        pool: &'static str,
        observed: Option<Observed>,
        probes: Vec<ProbeResult>,
        verdict: Option<(VerdictState, Option<&'static str>, &'static [&'static str])>,
        heartbeat_ago_mins: Option<i64>,
    }

    fn b(name: &'static str, driver: &str, policy: &'static str) -> B {
        B {
            name,
            pool: policy,
            observed: Some(observed(driver)),
            probes: vec![],
            verdict: Some((VerdictState::Compliant, Some(policy), &[])),
            heartbeat_ago_mins: Some(1),
        }
    }

    fn with(mut b: B, change: impl FnOnce(&mut Observed)) -> B {
        if let Some(o) = b.observed.as_mut() {
            change(o);
        }
        b
    }

    fn drifting(mut b: B, rules: &'static [&'static str]) -> B {
        if let Some(v) = b.verdict.as_mut() {
            v.0 = VerdictState::Drifting;
            v.2 = rules;
        }
        b
    }

    fn baseline(b: &B) -> NodeGpuBaseline {
        let mut ngb = NodeGpuBaseline::new(
            b.name,
            NodeGpuBaselineSpec {
                node_name: b.name.to_string(),
            },
        );
        ngb.status = Some(NodeGpuBaselineStatus {
            observed: b.observed.clone(),
            probes: b.probes.clone(),
            last_heartbeat_time: b
                .heartbeat_ago_mins
                .map(|m| Time(now() - SignedDuration::from_mins(m))),
            verdict: b.verdict.map(|(state, policy, rules)| Verdict {
                state,
                policy: policy.map(str::to_string),
                findings: rules
                    .iter()
                    .map(|r| Finding {
                        rule: r.to_string(),
                        message: "m".to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        });
        ngb
    }

    fn node(name: &str, pool: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            labels: [("pool".to_string(), pool.to_string())].into(),
        }
    }

    fn policy(name: &str, pool: &str, stale_after: &str) -> GpuFleetPolicy {
        let mut spec = GpuFleetPolicySpec {
            node_selector: Some(LabelSelector {
                match_labels: Some([("pool".to_string(), pool.to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        spec.actions.stale_after = stale_after.to_string();
        GpuFleetPolicy::new(name, spec)
    }

    struct Fleet {
        baselines: Vec<B>,
        /// Nodes beyond those of the baselines: (name, pool).
        extra_nodes: Vec<(&'static str, &'static str)>,
        /// Baselines whose Node is not listed.
        missing_nodes: Vec<&'static str>,
        every_node: bool,
        filter: Option<&'static str>,
    }

    fn fleet(baselines: Vec<B>) -> Fleet {
        Fleet {
            baselines,
            extra_nodes: vec![],
            missing_nodes: vec![],
            every_node: true,
            filter: None,
        }
    }

    fn view(f: &Fleet) -> FleetView {
        let baselines: Vec<NodeGpuBaseline> = f.baselines.iter().map(baseline).collect();
        let mut nodes: Vec<NodeInfo> = f
            .baselines
            .iter()
            .filter(|b| !f.missing_nodes.contains(&b.name))
            .map(|b| node(b.name, b.pool))
            .collect();
        nodes.extend(f.extra_nodes.iter().map(|(n, p)| node(n, p)));
        let policies = vec![policy("h100", "h100", "15m"), policy("a100", "a100", "1h")];
        build(&Input {
            baselines: &baselines,
            nodes: &nodes,
            policies: &policies,
            every_node: f.every_node,
            policy_filter: f.filter,
            now: now(),
        })
    }

    /// `field=value:count[!|?]` per value, `!` outlier, `?` problem,
    /// with the nodes of flagged values in brackets.
    fn spread(view: &FleetView, policy: Option<&str>, field: &str) -> String {
        let Some(group) = view.groups.iter().find(|g| g.policy.as_deref() == policy) else {
            return format!("no group {policy:?}");
        };
        let Some(f) = group.fields.iter().find(|f| f.field == field) else {
            return format!("no field {field}");
        };
        f.values
            .iter()
            .map(|v| {
                let mut s = format!("{}:{}", v.value, v.count);
                if v.outlier {
                    s.push('!');
                }
                if v.problem {
                    s.push('?');
                }
                if v.flagged() {
                    s.push_str(&format!("[{}]", v.nodes.join(",")));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn grouping_by_policy_and_value_names_the_outliers() {
        struct Case {
            what: &'static str,
            fleet: Fleet,
            policy: Option<&'static str>,
            field: &'static str,
            want: &'static str,
        }
        let five_with_two_old = || {
            vec![
                b("gpu-1", "580.105.08", "h100"),
                b("gpu-2", "570.195.03", "h100"),
                b("gpu-3", "580.105.08", "h100"),
                b("gpu-10", "570.195.03", "h100"),
                b("gpu-11", "580.105.08", "h100"),
            ]
        };
        let cases = vec![
            Case {
                what: "a uniform field has one value and no outlier",
                fleet: fleet(five_with_two_old()),
                policy: Some("h100"),
                field: "module",
                want: "open:5",
            },
            Case {
                what: "the minority driver is the outlier, its nodes in natural order",
                fleet: fleet(five_with_two_old()),
                policy: Some("h100"),
                field: "driver",
                want: "580.105.08:3 570.195.03:2![gpu-2,gpu-10]",
            },
            Case {
                what: "the CUDA ceiling follows the driver",
                fleet: fleet(five_with_two_old()),
                policy: Some("h100"),
                field: "cudaCeiling",
                want: "13.0:3 12.8:2![gpu-2,gpu-10]",
            },
            Case {
                what: "a tie has no majority: every value is an outlier",
                fleet: fleet(vec![
                    b("a", "580.105.08", "h100"),
                    b("b", "570.195.03", "h100"),
                ]),
                policy: Some("h100"),
                field: "driver",
                want: "570.195.03:1![b] 580.105.08:1![a]",
            },
            Case {
                what: "each policy is its own pool: a value that is rare fleet-wide is the majority of its policy",
                fleet: fleet(vec![
                    b("h-1", "580.105.08", "h100"),
                    b("h-2", "580.105.08", "h100"),
                    b("a-1", "570.195.03", "a100"),
                ]),
                policy: Some("a100"),
                field: "driver",
                want: "570.195.03:1",
            },
            Case {
                what: "a node not judged yet groups under the policy that selects its Node",
                fleet: fleet(vec![
                    b("h-1", "580.105.08", "h100"),
                    B {
                        verdict: None,
                        ..b("new-1", "570.195.03", "h100")
                    },
                ]),
                policy: Some("h100"),
                field: "driver",
                want: "570.195.03:1![new-1] 580.105.08:1![h-1]",
            },
            Case {
                what: "a node not judged yet that no policy selects groups under no policy",
                fleet: fleet(vec![B {
                    verdict: None,
                    ..b("new-1", "580.105.08", "no-such-pool")
                }]),
                policy: None,
                field: "driver",
                want: "580.105.08:1",
            },
            Case {
                what: "a node whose runtimes probe failed shows the error under every runtime",
                fleet: fleet(vec![
                    b("a", "580.105.08", "h100"),
                    B {
                        probes: vec![ProbeResult {
                            name: probes::RUNTIMES.to_string(),
                            status: ProbeStatus::Error,
                            message: Some("config.toml: invalid TOML".to_string()),
                            duration_micros: 0,
                        }],
                        ..b("b", "580.105.08", "h100")
                    },
                    b("c", "580.105.08", "h100"),
                ]),
                policy: Some("h100"),
                field: "runtime.containerd",
                want: "nvidia handler, default=nvidia, cdi=on:2 probe error:1!?[b]",
            },
            Case {
                what: "when no node tells its runtimes, a failed probe still shows, under containerd",
                fleet: fleet(vec![B {
                    probes: vec![ProbeResult {
                        name: probes::RUNTIMES.to_string(),
                        status: ProbeStatus::Error,
                        message: Some("permission denied".to_string()),
                        duration_micros: 0,
                    }],
                    ..b("b", "580.105.08", "h100")
                }]),
                policy: Some("h100"),
                field: "runtime.containerd",
                want: "probe error:1?[b]",
            },
            Case {
                what: "a stale CDI spec is a problem even when most nodes have one",
                fleet: fleet(vec![
                    with(b("a", "580.105.08", "h100"), |o| {
                        o.cdi.specs[0].stale = true
                    }),
                    with(b("b", "580.105.08", "h100"), |o| {
                        o.cdi.specs[0].stale = true
                    }),
                    b("c", "580.105.08", "h100"),
                ]),
                policy: Some("h100"),
                field: "cdi",
                want: "stale:2?[a,b] fresh:1![c]",
            },
            Case {
                what: "a pending reboot shows the libraries' version and is a problem",
                fleet: fleet(vec![
                    b("a", "580.105.08", "h100"),
                    b("b", "580.105.08", "h100"),
                    with(b("c", "570.195.03", "h100"), |o| {
                        o.driver.userspace_version = Some("580.105.08".to_string());
                        o.driver.mismatch = true;
                    }),
                ]),
                policy: Some("h100"),
                field: "driver",
                want: "580.105.08:2 570.195.03 (libs 580.105.08, reboot pending):1!?[c]",
            },
            Case {
                what: "a runtime that lost its nvidia handler is named",
                fleet: fleet(vec![
                    b("a", "580.105.08", "h100"),
                    b("b", "580.105.08", "h100"),
                    with(b("c", "580.105.08", "h100"), |o| {
                        o.runtimes[0].nvidia_handler = false;
                        o.runtimes[0].default_runtime = Some("runc".to_string());
                    }),
                ]),
                policy: Some("h100"),
                field: "runtime.containerd",
                want: "nvidia handler, default=nvidia, cdi=on:2 no nvidia handler, default=runc, cdi=on:1!?[c]",
            },
            Case {
                what: "a runtime only some nodes run is absent on the others",
                fleet: fleet(vec![
                    b("a", "580.105.08", "h100"),
                    b("b", "580.105.08", "h100"),
                    with(b("c", "580.105.08", "h100"), |o| {
                        o.runtimes.push(RuntimeObserved {
                            name: RuntimeName::Docker,
                            config_paths: vec![],
                            nvidia_handler: true,
                            default_runtime: None,
                            cdi_enabled: false,
                        })
                    }),
                ]),
                policy: Some("h100"),
                field: "runtime.docker",
                want: "absent:2 nvidia handler, default=unset, cdi=off:1![c]",
            },
            Case {
                what: "a failed probe is a problem, not a version",
                fleet: fleet(vec![
                    b("a", "580.105.08", "h100"),
                    B {
                        probes: vec![ProbeResult {
                            name: probes::TOOLKITS.to_string(),
                            status: ProbeStatus::Error,
                            message: Some("permission denied".to_string()),
                            duration_micros: 0,
                        }],
                        ..b("b", "580.105.08", "h100")
                    },
                    b("c", "580.105.08", "h100"),
                ]),
                policy: Some("h100"),
                field: "toolkits",
                want: "12.9*:2 probe error:1!?[b]",
            },
            Case {
                what: "toolkits list every version in version order, the default starred",
                fleet: fleet(vec![with(b("a", "580.105.08", "h100"), |o| {
                    o.toolkits.push(ToolkitObserved {
                        version: "12.10".to_string(),
                        full_version: None,
                        path: "/usr/local/cuda-12.10".to_string(),
                        default: false,
                    })
                })]),
                policy: Some("h100"),
                field: "toolkits",
                want: "12.9*, 12.10:1",
            },
            Case {
                what: "a Container Toolkit in a non-default mode is a value of its own",
                fleet: fleet(vec![
                    b("a", "580.105.08", "h100"),
                    b("b", "580.105.08", "h100"),
                    with(b("c", "580.105.08", "h100"), |o| {
                        o.container_toolkit.mode = Some("cdi".to_string())
                    }),
                ]),
                policy: Some("h100"),
                field: "containerToolkit",
                want: "1.17.8:2 1.17.8 (cdi mode):1![c]",
            },
            Case {
                what: "no driver loaded is a problem; its module and ceiling say nothing",
                fleet: fleet(vec![
                    b("a", "580.105.08", "h100"),
                    b("b", "580.105.08", "h100"),
                    with(b("c", "580.105.08", "h100"), |o| o.driver.loaded = false),
                ]),
                policy: Some("h100"),
                field: "module",
                want: "open:2 -:1![c]",
            },
            Case {
                what: "the policy filter keeps only that policy's group",
                fleet: Fleet {
                    filter: Some("a100"),
                    ..fleet(vec![
                        b("h-1", "580.105.08", "h100"),
                        b("a-1", "570.195.03", "a100"),
                    ])
                },
                policy: Some("h100"),
                field: "driver",
                want: "no group Some(\"h100\")",
            },
        ];
        for case in cases {
            let v = view(&case.fleet);
            assert_eq!(
                spread(&v, case.policy, case.field),
                case.want,
                "{}",
                case.what
            );
        }
    }

    #[test]
    fn header_counts_and_attention() {
        struct Case {
            what: &'static str,
            fleet: Fleet,
            want_verdicts: VerdictCounts,
            want_totals: (usize, usize, usize, usize, usize, usize),
            want_attention: Vec<String>,
        }
        let cases = vec![
            Case {
                what: "verdicts are counted as the controller wrote them",
                fleet: fleet(vec![
                    b("a", "580.105.08", "h100"),
                    drifting(b("b", "570.195.03", "h100"), &["driver.version"]),
                    B {
                        verdict: Some((VerdictState::Unmanaged, None, &[])),
                        ..b("c", "580.105.08", "h100")
                    },
                    B {
                        verdict: None,
                        ..b("d", "580.105.08", "h100")
                    },
                ]),
                want_verdicts: VerdictCounts {
                    compliant: 1,
                    drifting: 1,
                    unknown: 0,
                    unmanaged: 1,
                    not_judged: 1,
                },
                want_totals: (4, 0, 0, 0, 0, 0),
                want_attention: vec![],
            },
            Case {
                what: "a heartbeat older than the governing policy's staleAfter is flagged; a newer one under a longer staleAfter is not",
                fleet: fleet(vec![
                    B {
                        heartbeat_ago_mins: Some(20),
                        ..b("h-1", "580.105.08", "h100")
                    },
                    B {
                        heartbeat_ago_mins: Some(20),
                        ..b("a-1", "580.105.08", "a100")
                    },
                    B {
                        heartbeat_ago_mins: None,
                        ..b("h-2", "580.105.08", "h100")
                    },
                ]),
                want_verdicts: VerdictCounts {
                    compliant: 3,
                    ..Default::default()
                },
                want_totals: (3, 2, 0, 0, 0, 0),
                want_attention: vec![
                    "stale h-1 20m>15m".to_string(),
                    "stale h-2 never>15m".to_string(),
                ],
            },
            Case {
                what: "nodes a policy selects without a baseline are named; other nodes only counted",
                fleet: Fleet {
                    extra_nodes: vec![
                        ("gpu-9", "h100"),
                        ("cpu-1", "general"),
                        ("cpu-2", "general"),
                    ],
                    ..fleet(vec![b("gpu-1", "580.105.08", "h100")])
                },
                want_verdicts: VerdictCounts {
                    compliant: 1,
                    ..Default::default()
                },
                want_totals: (1, 0, 1, 0, 0, 2),
                want_attention: vec!["missing gpu-9 h100".to_string()],
            },
            Case {
                what: "a baseline whose Node is gone is named when every Node was listed",
                fleet: Fleet {
                    missing_nodes: vec!["gone"],
                    ..fleet(vec![
                        b("gpu-1", "580.105.08", "h100"),
                        b("gone", "580.105.08", "h100"),
                    ])
                },
                want_verdicts: VerdictCounts {
                    compliant: 1,
                    ..Default::default()
                },
                want_totals: (1, 0, 0, 1, 0, 0),
                want_attention: vec!["orphan gone".to_string()],
            },
            Case {
                what: "under a label selector a baseline without a listed Node is just outside it",
                fleet: Fleet {
                    missing_nodes: vec!["elsewhere"],
                    every_node: false,
                    ..fleet(vec![
                        b("gpu-1", "580.105.08", "h100"),
                        b("elsewhere", "580.105.08", "h100"),
                    ])
                },
                want_verdicts: VerdictCounts {
                    compliant: 1,
                    ..Default::default()
                },
                want_totals: (1, 0, 0, 0, 0, 0),
                want_attention: vec![],
            },
            Case {
                what: "an agent that has not probed yet is listed once, not also as a stale heartbeat",
                fleet: fleet(vec![B {
                    observed: None,
                    heartbeat_ago_mins: None,
                    verdict: None,
                    ..b("fresh-node", "580.105.08", "h100")
                }]),
                want_verdicts: VerdictCounts {
                    not_judged: 1,
                    ..Default::default()
                },
                want_totals: (1, 0, 0, 0, 1, 0),
                want_attention: vec!["unprobed fresh-node".to_string()],
            },
            Case {
                what: "the policy filter narrows counts and attention to that policy",
                fleet: Fleet {
                    filter: Some("a100"),
                    extra_nodes: vec![("gpu-9", "h100"), ("cpu-1", "general")],
                    ..fleet(vec![
                        B {
                            heartbeat_ago_mins: Some(90),
                            ..b("h-1", "580.105.08", "h100")
                        },
                        b("a-1", "570.195.03", "a100"),
                    ])
                },
                want_verdicts: VerdictCounts {
                    compliant: 1,
                    ..Default::default()
                },
                want_totals: (1, 0, 0, 0, 0, 0),
                want_attention: vec![],
            },
        ];
        for case in cases {
            let v = view(&case.fleet);
            let t = &v.totals;
            assert_eq!(t.verdicts, case.want_verdicts, "{}", case.what);
            assert_eq!(
                (
                    t.nodes,
                    t.stale_heartbeats,
                    t.without_baseline,
                    t.baselines_without_node,
                    t.not_probed,
                    t.other_nodes
                ),
                case.want_totals,
                "{}",
                case.what
            );
            let a = &v.attention;
            let mut said: Vec<String> = Vec::new();
            for s in &a.stale_heartbeats {
                let age = s
                    .age_seconds
                    .map_or("never".to_string(), |secs| format!("{}m", secs / 60));
                said.push(format!("stale {} {age}>{}", s.node, s.stale_after));
            }
            for m in &a.without_baseline {
                said.push(format!("missing {} {}", m.node, m.policy));
            }
            for o in &a.baselines_without_node {
                said.push(format!("orphan {o}"));
            }
            for n in &a.not_probed {
                said.push(format!("unprobed {n}"));
            }
            assert_eq!(said, case.want_attention, "{}", case.what);
        }
    }

    #[test]
    fn groups_biggest_first_and_findings_counted() {
        let v = view(&fleet(vec![
            b("a-1", "570.195.03", "a100"),
            drifting(
                b("h-1", "570.195.03", "h100"),
                &["driver.version", "cuda.minCeiling"],
            ),
            drifting(b("h-2", "570.195.03", "h100"), &["driver.version"]),
            b("h-3", "580.105.08", "h100"),
            B {
                verdict: Some((VerdictState::Unmanaged, None, &[])),
                ..b("u-1", "580.105.08", "h100")
            },
        ]));
        let order: Vec<Option<&str>> = v.groups.iter().map(|g| g.policy.as_deref()).collect();
        assert_eq!(order, vec![Some("h100"), Some("a100"), None]);
        let h100 = &v.groups[0];
        assert_eq!(h100.stale_after, "15m");
        assert_eq!(v.groups[1].stale_after, "1h");
        let findings: Vec<(&str, usize, Vec<&str>)> = h100
            .findings
            .iter()
            .map(|f| {
                (
                    f.rule.as_str(),
                    f.count,
                    f.nodes.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            findings,
            vec![
                ("driver.version", 2, vec!["h-1", "h-2"]),
                ("cuda.minCeiling", 1, vec!["h-1"]),
            ]
        );
        // Two drifting nodes on the older driver are the majority of their
        // policy: the view counts, it does not judge.
        assert_eq!(
            spread(&v, Some("h100"), "driver"),
            "570.195.03:2 580.105.08:1![h-3]"
        );
        let h1 = v.nodes.iter().find(|n| n.node == "h-1");
        assert_eq!(
            h1.map(|n| (n.verdict, n.values.get("driver").cloned())),
            Some((NodeVerdict::Drifting, Some("570.195.03".to_string())))
        );
    }

    #[test]
    fn natural_order_reads_numbers_as_numbers() {
        let cases = [
            ("gpu-2", "gpu-10", Ordering::Less),
            ("12.9", "12.10", Ordering::Less),
            ("gpu-01", "gpu-1", Ordering::Less),
            ("a", "b", Ordering::Less),
            ("gpu-10", "gpu-10", Ordering::Equal),
            ("gpu-10a", "gpu-10", Ordering::Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(natural_cmp(a, b), want, "{a} vs {b}");
        }
    }
}
