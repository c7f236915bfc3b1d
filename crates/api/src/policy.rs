//! `GpuFleetPolicy`: what the GPU stack of a set of nodes must be, and what
//! happens when it is not.
//!
//! The schema carries every check a user could get wrong when writing a
//! policy (enums, version patterns, durations, and CEL rules for fields that
//! depend on each other), so `kubectl apply` of a bad policy fails with an
//! error naming the field instead of the controller discovering it later.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A driver version or a pattern with `*` standing for one whole dotted part:
/// `580.95.05`, `580.*`, `570.124.*`.
pub const VERSION_PATTERN: &str = r"^([0-9]+|\*)(\.([0-9]+|\*)){0,2}$";
/// An exact driver version with two or three parts.
pub const DRIVER_VERSION_PATTERN: &str = r"^[0-9]+\.[0-9]+(\.[0-9]+)?$";
/// A CUDA version, `major.minor`.
pub const CUDA_VERSION_PATTERN: &str = r"^[0-9]+\.[0-9]+$";
/// A toolkit or Container Toolkit version: two to four numeric parts.
pub const DOTTED_VERSION_PATTERN: &str = r"^[0-9]+(\.[0-9]+){1,3}$";
/// A Go-style duration as Kubernetes writes them: `30s`, `5m`, `1h30m`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// Selects nodes and states what their GPU stack must be.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "plumbline.dev",
    version = "v1alpha1",
    kind = "GpuFleetPolicy",
    plural = "gpufleetpolicies",
    singular = "gpufleetpolicy",
    shortname = "gfp",
    category = "plumbline",
    status = "GpuFleetPolicyStatus",
    derive = "Default",
    derive = "PartialEq",
    doc = "Declares the GPU software stack a set of nodes must run, and what Plumbline does to nodes that drift from it.",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(
        name = "Selected",
        type_ = "integer",
        json_path = ".status.selectedNodes"
    ),
    printcolumn(name = "Compliant", type_ = "integer", json_path = ".status.compliant"),
    printcolumn(name = "Drifting", type_ = "integer", json_path = ".status.drifting"),
    printcolumn(name = "Unknown", type_ = "integer", json_path = ".status.unknown"),
    printcolumn(
        name = "Held",
        type_ = "integer",
        json_path = ".status.heldBack",
        description = "Nodes whose disruptive actions the budget holds back"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct GpuFleetPolicySpec {
    /// Which nodes the policy governs. Empty selects every node that has a
    /// NodeGpuBaseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// When several policies select a node, the highest priority wins; a tie
    /// is reported as a conflict.
    #[serde(default)]
    pub priority: i32,
    /// `Enforce` acts on nodes; `DryRun` computes and reports only.
    #[serde(default)]
    pub mode: PolicyMode,
    /// What the GPU stack must be.
    #[serde(default)]
    pub requirements: Requirements,
    /// What drift does.
    #[serde(default)]
    pub actions: Actions,
}

/// Whether a policy acts on nodes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum PolicyMode {
    #[default]
    Enforce,
    DryRun,
}

/// Every requirement is optional; an absent one is not checked.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requirements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<DriverRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda: Option<CudaRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolkit: Option<ToolkitRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_toolkit: Option<ContainerToolkitRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdi: Option<CdiRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsRequirements>,
    /// Secure Boot state the nodes must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<SecureBootRequirement>,
    /// Fabric Manager: `auto` requires it, at the driver's version, where
    /// NVSwitches are present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric_manager: Option<FabricManagerRequirement>,
    /// Facts that must be equal on every selected node; the majority value is
    /// the reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub uniformity: Vec<UniformityKey>,
    /// Extra driver versions allowed until a deadline, for rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_window: Option<UpgradeWindow>,
}

/// Driver requirements.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriverRequirements {
    /// Allowed versions; `*` matches one whole dotted part (`580.*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^([0-9]+|\*)(\.([0-9]+|\*)){0,2}$")))]
    #[schemars(length(max = 64))]
    pub versions: Vec<String>,
    /// Allowed branches (first part of the version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(range(min = 1)))]
    pub branches: Vec<u32>,
    /// Lowest allowed version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+(\.[0-9]+)?$"))]
    pub min_version: Option<String>,
    /// Required kernel module flavour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_module: Option<KernelModuleRequirement>,
    /// Tolerate a userspace/kernel-module version mismatch (pending reboot).
    #[serde(default)]
    pub allow_mismatch: bool,
}

/// Kernel module flavour a policy requires.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KernelModuleRequirement {
    /// What the node's GPU architectures need (open on Grace-Hopper and
    /// Blackwell, proprietary on Maxwell/Pascal/Volta, open preferred from
    /// branch 560 on Turing and newer).
    Auto,
    Open,
    Proprietary,
    Any,
}

/// CUDA requirements.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CudaRequirements {
    /// The driver's CUDA ceiling must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+$"))]
    pub min_ceiling: Option<String>,
    /// Workloads that must be able to run on every selected node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[schemars(length(max = 64))]
    pub workloads: Vec<Workload>,
}

/// A workload built for a CUDA version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// CUDA version the workload was built with, `major.minor`.
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+$"))]
    pub cuda_version: String,
    /// The workload tolerates minor-version compatibility: the same CUDA
    /// major on a new-enough driver suffices.
    #[serde(default)]
    pub allow_minor_version_compat: bool,
}

/// Host CUDA toolkit requirements.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolkitRequirements {
    /// At least one host toolkit must be installed.
    #[serde(default)]
    pub required: bool,
    /// Allowed toolkit versions (`major.minor`, `*` allowed per part).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^([0-9]+|\*)(\.([0-9]+|\*)){0,2}$")))]
    pub versions: Vec<String>,
    /// No host toolkit may be newer than the driver's CUDA ceiling.
    #[serde(default)]
    pub not_newer_than_driver: bool,
}

/// NVIDIA Container Toolkit requirements.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerToolkitRequirements {
    /// Lowest allowed version, e.g. `1.17.8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+){1,3}$"))]
    pub min_version: Option<String>,
    /// The container engine that must have the nvidia handler registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeRequirement>,
    /// The nvidia handler must be the default runtime.
    #[serde(default)]
    pub require_default_runtime: bool,
    /// CDI must be enabled in the engine.
    #[serde(default)]
    pub require_cdi: bool,
}

/// Container engine a policy requires.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeRequirement {
    Containerd,
    Docker,
    Crio,
    /// Any engine found on the host.
    Any,
}

/// CDI requirements.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CdiRequirements {
    /// At least one CDI spec for `nvidia.com/gpu` must exist.
    #[serde(default)]
    pub required: bool,
    /// No CDI spec may be stale.
    #[serde(default)]
    pub require_fresh: bool,
}

/// Kernel requirements.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KernelRequirements {
    /// Allowed kernel releases; `*` matches any run of characters
    /// (`6.8.0-*-generic`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 128)))]
    pub versions: Vec<String>,
}

/// Operating system requirements (from `/etc/os-release`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OsRequirements {
    /// Allowed `ID`s, e.g. `ubuntu`, `rhel`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// Allowed `VERSION_ID`s; `*` matches one whole dotted part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
}

/// Secure Boot requirement.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecureBootRequirement {
    Any,
    Required,
    Disabled,
}

/// Fabric Manager requirement.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FabricManagerRequirement {
    /// Required, at the driver's version, where NVSwitches are present.
    Auto,
    /// Required on every selected node.
    Required,
    /// Not checked.
    Ignore,
}

/// A fact that must be uniform across the selected nodes.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum UniformityKey {
    DriverVersion,
    KernelModule,
    ContainerToolkitVersion,
    ToolkitVersions,
    KernelRelease,
}

impl UniformityKey {
    pub fn as_str(&self) -> &'static str {
        match self {
            UniformityKey::DriverVersion => "driverVersion",
            UniformityKey::KernelModule => "kernelModule",
            UniformityKey::ContainerToolkitVersion => "containerToolkitVersion",
            UniformityKey::ToolkitVersions => "toolkitVersions",
            UniformityKey::KernelRelease => "kernelRelease",
        }
    }
}

/// Extra driver versions allowed until a deadline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeWindow {
    /// Versions or patterns allowed in addition to
    /// `requirements.driver.versions` until `until`.
    #[schemars(inner(regex(pattern = r"^([0-9]+|\*)(\.([0-9]+|\*)){0,2}$")))]
    #[schemars(length(min = 1, max = 64))]
    pub driver_versions: Vec<String>,
    /// RFC 3339 time after which the extra versions are drift.
    pub until: Time,
}

/// An action Plumbline takes on a node.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum Action {
    /// Set `plumbline.dev/compliant` (fact labels are always kept).
    Label,
    /// Set the `GpuStackCompliant` node condition.
    Condition,
    /// Add the `plumbline.dev/drift` taint with `taintEffect`.
    Taint,
    /// Mark the node unschedulable.
    Cordon,
}

/// Effect of the drift taint.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum TaintEffect {
    #[default]
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn as_str(&self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }

    /// Whether the taint makes a node unavailable for the budget.
    pub fn is_disruptive(&self) -> bool {
        !matches!(self, TaintEffect::PreferNoSchedule)
    }
}

fn default_on_drift() -> Vec<Action> {
    vec![Action::Label, Action::Condition]
}

fn default_on_unknown() -> Vec<Action> {
    vec![Action::Label, Action::Condition]
}

fn default_stale_after() -> String {
    "15m".to_string()
}

/// What happens to nodes that drift or cannot be told.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(self.onDrift.exists(a, a == 'Cordon' || (a == 'Taint' && self.taintEffect != 'PreferNoSchedule'))) || has(self.maxUnavailable)",
        "message": "onDrift with Cordon, or Taint with a NoSchedule or NoExecute effect, needs maxUnavailable, so that drift can never take down the whole fleet",
        "fieldPath": ".maxUnavailable",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "!(self.onUnknown.exists(a, a == 'Cordon' || (a == 'Taint' && self.taintEffect != 'PreferNoSchedule'))) || has(self.maxUnavailable)",
        "message": "onUnknown with Cordon, or Taint with a NoSchedule or NoExecute effect, needs maxUnavailable, so that silent agents can never take down the whole fleet",
        "fieldPath": ".maxUnavailable",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "!has(self.maxUnavailable) || string(self.maxUnavailable).matches('^([0-9]+|(100|[1-9]?[0-9])%)$')",
        "message": "maxUnavailable must be a non-negative integer or a percentage from 0% to 100%",
        "fieldPath": ".maxUnavailable"
    }
]))]
pub struct Actions {
    /// Actions on drifting nodes. Default: `[Label, Condition]`.
    #[serde(default = "default_on_drift")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub on_drift: Vec<Action>,
    /// Actions on nodes whose state cannot be told (silent agent, no
    /// baseline, failed probes). Default: `[Label, Condition]`.
    #[serde(default = "default_on_unknown")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub on_unknown: Vec<Action>,
    /// Effect of the drift taint. Default: `NoSchedule`.
    #[serde(default)]
    pub taint_effect: TaintEffect,
    /// A baseline whose heartbeat is older than this is `Unknown`.
    /// Default: `15m`.
    #[serde(default = "default_stale_after")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub stale_after: String,
    /// Disruptive actions (`Taint` with `NoSchedule`/`NoExecute`, `Cordon`)
    /// wait until drift has persisted this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub grace_period: Option<String>,
    /// Most selected nodes that may be unavailable (unschedulable or carrying
    /// a disruptive Plumbline taint) at once: a count or a percentage.
    /// Required with `Cordon`, and with `Taint` unless the effect is
    /// `PreferNoSchedule`. A string must be a percentage (`"10%"`); the
    /// schema accepts a bare number in a string and the controller then
    /// refuses the policy, saying why in its `Valid` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

impl Default for Actions {
    fn default() -> Self {
        Actions {
            on_drift: default_on_drift(),
            on_unknown: default_on_unknown(),
            taint_effect: TaintEffect::default(),
            stale_after: default_stale_after(),
            grace_period: None,
            max_unavailable: None,
        }
    }
}

/// What the controller last saw of the policy's nodes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuFleetPolicyStatus {
    /// `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub selected_nodes: u32,
    #[serde(default)]
    pub compliant: u32,
    #[serde(default)]
    pub drifting: u32,
    #[serde(default)]
    pub unknown: u32,
    /// Nodes whose disruptive actions the budget holds back.
    #[serde(default)]
    pub held_back: u32,
    /// Names of held-back nodes (at most 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_back_nodes: Vec<String>,
    /// Budget in use: nodes of this policy unavailable now, and the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetStatus>,
    /// Version histograms across the selected nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<Histograms>,
    /// Most common findings across drifting nodes, rule id → node count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub findings: BTreeMap<String, u32>,
    /// In `DryRun`: what `Enforce` would have done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRunStatus>,
    /// `Valid`, `BudgetExhausted`, `Conflict`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Disruption budget of a policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    /// Selected nodes unavailable now, whoever made them so.
    pub unavailable: u32,
    /// `maxUnavailable` resolved against the selected node count.
    pub max_unavailable: u32,
}

/// Value → node count, per fact.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Histograms {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_versions: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kernel_modules: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cuda_ceilings: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub container_toolkit_versions: BTreeMap<String, u32>,
}

/// What an `Enforce` policy would have done.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRunStatus {
    #[serde(default)]
    pub would_taint: u32,
    #[serde(default)]
    pub would_cordon: u32,
    #[serde(default)]
    pub would_hold_back: u32,
    /// Some of the nodes concerned (at most 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}
