//! `NodeGpuBaseline`: what one node's GPU stack is, as its agent observed it.
//!
//! The agent owns `spec`, `status.observed`, `status.probes`,
//! `status.summary`, the heartbeat and the hash; the controller owns
//! `status.verdict`. Field names under `status.observed` are a contract with
//! tools and people (`kubectl get ngb -o jsonpath=...`), so they change only
//! with a new API version.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One node's observed GPU stack. Named after the node and owned by it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "plumbline.dev",
    version = "v1alpha1",
    kind = "NodeGpuBaseline",
    plural = "nodegpubaselines",
    singular = "nodegpubaseline",
    shortname = "ngb",
    category = "plumbline",
    status = "NodeGpuBaselineStatus",
    derive = "Default",
    derive = "PartialEq",
    doc = "The GPU software stack of one node as its Plumbline agent observed it, and the controller's verdict on it.",
    printcolumn(
        name = "Driver",
        type_ = "string",
        json_path = ".status.observed.driver.version",
        description = "Loaded kernel module version"
    ),
    printcolumn(
        name = "Module",
        type_ = "string",
        json_path = ".status.observed.driver.kernelModule",
        description = "Kernel module flavour"
    ),
    printcolumn(
        name = "CUDA",
        type_ = "string",
        json_path = ".status.observed.driver.cudaCeiling",
        description = "Newest CUDA the driver supports"
    ),
    printcolumn(
        name = "Toolkit",
        type_ = "string",
        json_path = ".status.summary.toolkit",
        description = "Default host CUDA toolkit"
    ),
    printcolumn(
        name = "CTK",
        type_ = "string",
        json_path = ".status.observed.containerToolkit.version",
        description = "NVIDIA Container Toolkit version"
    ),
    printcolumn(
        name = "CDI",
        type_ = "string",
        json_path = ".status.summary.cdi",
        description = "CDI specs: fresh, stale or none"
    ),
    printcolumn(
        name = "Verdict",
        type_ = "string",
        json_path = ".status.verdict.state",
        description = "Controller verdict"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Policy",
        type_ = "string",
        json_path = ".status.verdict.policy",
        priority = 1,
        description = "Policy governing the node"
    ),
    printcolumn(
        name = "GPUs",
        type_ = "string",
        json_path = ".status.summary.gpus",
        priority = 1,
        description = "GPUs present"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NodeGpuBaselineSpec {
    /// Name of the Node this baseline describes (equal to the object name).
    #[schemars(length(min = 1, max = 253))]
    pub node_name: String,
}

/// Everything the agent and the controller report about one node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeGpuBaselineStatus {
    /// What the probes found on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
    /// One entry per probe, in registry order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub probes: Vec<ProbeResult>,
    /// Short display strings derived from `observed`, for printer columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Last time the agent confirmed this status, even when nothing changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<Time>,
    /// Version of the agent that wrote `observed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// Hash of `observed` and `probes` (without durations); the agent writes
    /// status only when it changes, apart from heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_hash: Option<String>,
    /// The controller's judgement of `observed` against the node's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Standard conditions (`Probed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The host's NVIDIA stack. Every field is filled by one probe; a probe that
/// failed leaves its part at the default and says why in `status.probes`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    #[serde(default)]
    pub driver: DriverObserved,
    #[serde(default)]
    pub gpus: Vec<GpuObserved>,
    #[serde(default)]
    pub toolkits: Vec<ToolkitObserved>,
    #[serde(default)]
    pub container_toolkit: ContainerToolkitObserved,
    #[serde(default)]
    pub runtimes: Vec<RuntimeObserved>,
    #[serde(default)]
    pub cdi: CdiObserved,
    #[serde(default)]
    pub kernel: KernelObserved,
    #[serde(default)]
    pub os: OsObserved,
    #[serde(default)]
    pub fabric_manager: FabricManagerObserved,
}

/// Kernel module flavour.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KernelModule {
    Open,
    Proprietary,
    #[default]
    Unknown,
}

impl KernelModule {
    pub fn as_str(&self) -> &'static str {
        match self {
            KernelModule::Open => "open",
            KernelModule::Proprietary => "proprietary",
            KernelModule::Unknown => "unknown",
        }
    }
}

/// The NVIDIA driver: kernel module and userspace libraries.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriverObserved {
    /// A kernel module is loaded.
    #[serde(default)]
    pub loaded: bool,
    /// Version of the loaded kernel module, e.g. `580.95.05` or `550.120`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Driver branch: the first part of the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<u32>,
    /// Kernel module flavour.
    #[serde(default)]
    pub kernel_module: KernelModule,
    /// Version the userspace libraries (`libnvidia-ml.so.1`,
    /// `libcuda.so.1`) resolve to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userspace_version: Option<String>,
    /// Userspace and kernel module versions differ: a reboot is pending.
    #[serde(default)]
    pub mismatch: bool,
    /// Newest CUDA version the loaded driver supports, `major.minor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_ceiling: Option<String>,
    /// Where the userspace driver lives: `/` or a driver-container root such
    /// as `/run/nvidia/driver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// One GPU as the driver reports it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuObserved {
    /// Device minor number (`/dev/nvidiaN`).
    pub index: u32,
    /// PCI bus id, e.g. `0000:3b:00.0`.
    pub pci_bus_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Product name as the driver reports it, e.g. `NVIDIA H100 80GB HBM3`.
    pub product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Compute capability, `major.minor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<String>,
    /// The GPU is excluded from use by the driver.
    #[serde(default)]
    pub excluded: bool,
    /// Total memory in MiB (NVML only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "memoryMiB")]
    pub memory_mib: Option<u64>,
    /// MIG mode is enabled (NVML only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mig_enabled: Option<bool>,
    /// ECC is enabled (NVML only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_enabled: Option<bool>,
}

/// One host CUDA toolkit under `/usr/local`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolkitObserved {
    /// `major.minor`, e.g. `12.9`.
    pub version: String,
    /// Full version, e.g. `12.9.79`, when the toolkit says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_version: Option<String>,
    /// Installation directory, e.g. `/usr/local/cuda-12.9`.
    pub path: String,
    /// `/usr/local/cuda` resolves to this toolkit.
    #[serde(default)]
    pub default: bool,
}

/// The NVIDIA Container Toolkit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerToolkitObserved {
    #[serde(default)]
    pub installed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `nvidia-container-runtime.mode`: `auto`, `legacy`, `csv` or `cdi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The `config.toml` that was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
}

/// A container engine.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeName {
    Containerd,
    Docker,
    Crio,
}

impl RuntimeName {
    pub fn as_str(&self) -> &'static str {
        match self {
            RuntimeName::Containerd => "containerd",
            RuntimeName::Docker => "docker",
            RuntimeName::Crio => "crio",
        }
    }
}

/// How one container engine is wired to the NVIDIA runtime.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeObserved {
    pub name: RuntimeName,
    /// Every config file that was read, main file first, then drop-ins.
    #[serde(default)]
    pub config_paths: Vec<String>,
    /// An `nvidia` runtime handler is registered.
    #[serde(default)]
    pub nvidia_handler: bool,
    /// Name of the default runtime, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_runtime: Option<String>,
    /// CDI device injection is enabled.
    #[serde(default)]
    pub cdi_enabled: bool,
}

/// CDI specs on the host.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CdiObserved {
    #[serde(default)]
    pub specs: Vec<CdiSpecObserved>,
}

/// One CDI spec file.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CdiSpecObserved {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdi_version: Option<String>,
    /// Device names, e.g. `0`, `GPU-…`, `all`.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Driver versions referenced by library mounts and hook arguments.
    #[serde(default)]
    pub driver_versions: Vec<String>,
    /// The spec no longer matches the host.
    #[serde(default)]
    pub stale: bool,
    /// Why the spec is stale, one line each.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// The running kernel.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KernelObserved {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// `true`/`false` on UEFI hosts, `null` when it cannot be told (BIOS boot).
    #[serde(default)]
    pub secure_boot: Option<bool>,
    /// `/proc/sys/kernel/tainted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tainted: Option<u64>,
}

/// The host operating system, from `/etc/os-release`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OsObserved {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
}

/// NVIDIA Fabric Manager (NVSwitch systems).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FabricManagerObserved {
    /// NVSwitches are present, so Fabric Manager is needed.
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub installed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Fabric Manager's version equals the driver's; null when either is
    /// unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches_driver: Option<bool>,
}

/// Outcome of one probe.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ProbeStatus {
    /// The probe read what it looks for.
    Ok,
    /// What the probe looks for is not on this host (not an error).
    Absent,
    /// The probe could not read or understand the host; see `message`.
    Error,
}

/// One probe's result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    pub name: String,
    pub status: ProbeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub duration_micros: u64,
}

/// Display strings for `kubectl get ngb`, derived from `observed` by
/// [`Summary::from_observed`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Default host toolkit version, else the newest, else `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolkit: Option<String>,
    /// `fresh`, `stale` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdi: Option<String>,
    /// e.g. `8x H100 80GB HBM3`, or `2x A100, 1x T4` for mixed nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<String>,
}

impl Summary {
    /// Derives the display strings; pure, so agent and tests agree.
    pub fn from_observed(observed: &Observed) -> Summary {
        let toolkit = observed
            .toolkits
            .iter()
            .find(|t| t.default)
            .or_else(|| observed.toolkits.last())
            .map(|t| t.version.clone())
            .unwrap_or_else(|| "none".to_string());
        let cdi = if observed.cdi.specs.is_empty() {
            "none"
        } else if observed.cdi.specs.iter().any(|s| s.stale) {
            "stale"
        } else {
            "fresh"
        };
        let mut counts: Vec<(String, usize)> = Vec::new();
        for gpu in &observed.gpus {
            let name = gpu.product.trim_start_matches("NVIDIA ").to_string();
            match counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name, 1)),
            }
        }
        let gpus = if counts.is_empty() {
            "none".to_string()
        } else {
            counts
                .iter()
                .map(|(n, c)| format!("{c}x {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Summary {
            toolkit: Some(toolkit),
            cdi: Some(cdi.to_string()),
            gpus: Some(gpus),
        }
    }
}

/// The controller's judgement of a node.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    JsonSchema,
)]
pub enum VerdictState {
    /// Every rule of the policy holds.
    Compliant,
    /// At least one rule fails.
    Drifting,
    /// The state cannot be told: a probe a rule needs failed, the agent is
    /// silent, or there is no baseline.
    #[default]
    Unknown,
    /// No policy selects the node, or it is marked unmanaged.
    Unmanaged,
}

impl VerdictState {
    pub fn as_str(&self) -> &'static str {
        match self {
            VerdictState::Compliant => "Compliant",
            VerdictState::Drifting => "Drifting",
            VerdictState::Unknown => "Unknown",
            VerdictState::Unmanaged => "Unmanaged",
        }
    }
}

/// The controller's verdict, written to `status.verdict`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub state: VerdictState,
    /// The policy that governs the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Other policies of the same priority that also select the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicting_policies: Vec<String>,
    /// Failed rules, in rule order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// When `state` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
}

/// One failed rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Stable rule id from [`crate::keys::rules`].
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// What is wrong and what to do about it.
    pub message: String,
}
