//! Every string Plumbline writes on a Node or reads back from one.
//!
//! Labels, taints, annotations, condition types, reasons, event reasons and
//! finding rule ids are part of Plumbline's contract with schedulers, alerting
//! rules and people: they live here, once, so that a rename is a compile
//! error rather than a silent split between the agent, the controller, the
//! chart and the docs.

/// API group of both custom resources.
pub const GROUP: &str = "plumbline.dev";
/// API version of both custom resources.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of both custom resources.
pub const API_VERSION: &str = "plumbline.dev/v1alpha1";

/// Every key Plumbline owns on a Node starts with this. Nothing outside it is
/// ever changed, except `spec.unschedulable` for cordons Plumbline made.
pub const PREFIX: &str = "plumbline.dev/";

/// Field manager name used by the controller for every write.
pub const CONTROLLER_MANAGER: &str = "plumbline-controller";
/// Field manager name used by the agent for every write.
pub const AGENT_MANAGER: &str = "plumbline-agent";

/// Fact labels: what the node's GPU stack is, for nodeSelectors and
/// nodeAffinity. Values are always valid label values.
pub mod labels {
    /// Driver branch, e.g. `580`.
    pub const DRIVER_BRANCH: &str = "plumbline.dev/driver.branch";
    /// Full loaded driver version, e.g. `580.95.05`.
    pub const DRIVER_VERSION: &str = "plumbline.dev/driver.version";
    /// Kernel module flavour: `open` or `proprietary`.
    pub const DRIVER_MODULE: &str = "plumbline.dev/driver.module";
    /// CUDA ceiling of the loaded driver as `major.minor`, e.g. `13.0`.
    pub const CUDA_CEILING: &str = "plumbline.dev/cuda.ceiling";
    /// CUDA ceiling as an integer `100*major + minor` (`1300`, `1208`), so a
    /// nodeAffinity `Gt` can say "at least CUDA 12.6" (`Gt 1205`).
    pub const CUDA_CEILING_CODE: &str = "plumbline.dev/cuda.ceiling.code";
    /// GPU architecture of the node's GPUs: lower case with spaces as
    /// dashes (`hopper`, `ada-lovelace`); `mixed` when they differ.
    pub const GPU_ARCHITECTURE: &str = "plumbline.dev/gpu.architecture";
    /// NVIDIA Container Toolkit version, e.g. `1.17.8`.
    pub const CONTAINER_TOOLKIT_VERSION: &str = "plumbline.dev/container-toolkit.version";
    /// `true` when the node satisfies its policy, `false` when it drifts,
    /// `unknown` when it cannot be told.
    pub const COMPLIANT: &str = "plumbline.dev/compliant";
    /// Name of the policy that governs the node.
    pub const POLICY: &str = "plumbline.dev/policy";

    /// Every fact label, for cleanup when a node leaves a policy.
    pub const ALL: &[&str] = &[
        DRIVER_BRANCH,
        DRIVER_VERSION,
        DRIVER_MODULE,
        CUDA_CEILING,
        CUDA_CEILING_CODE,
        GPU_ARCHITECTURE,
        CONTAINER_TOOLKIT_VERSION,
        COMPLIANT,
        POLICY,
    ];

    /// Value of [`COMPLIANT`] for a compliant node.
    pub const VALUE_TRUE: &str = "true";
    /// Value of [`COMPLIANT`] for a drifting node.
    pub const VALUE_FALSE: &str = "false";
    /// Value of [`COMPLIANT`] when the node's state cannot be told.
    pub const VALUE_UNKNOWN: &str = "unknown";
}

/// Taints Plumbline puts on drifting nodes.
pub mod taints {
    /// The drift taint; its effect comes from the policy and its value is
    /// the name of the policy that asked for it.
    pub const DRIFT: &str = "plumbline.dev/drift";
}

/// Annotations Plumbline writes.
pub mod annotations {
    /// On a Node: present when the cordon (`spec.unschedulable`) was made by
    /// Plumbline. Only such cordons are ever lifted by Plumbline. Value: the
    /// RFC 3339 time of the cordon.
    pub const CORDONED_BY_PLUMBLINE: &str = "plumbline.dev/cordoned";
    /// On a Node: an admin uncordoned a node Plumbline had cordoned; Plumbline
    /// will not cordon it again until it has been compliant once.
    pub const UNCORDON_RESPECTED: &str = "plumbline.dev/uncordon-respected";
    /// On a Node: RFC 3339 time since which the node has been drifting, used
    /// for `gracePeriod`.
    pub const DRIFTING_SINCE: &str = "plumbline.dev/drifting-since";
    /// On a NodeGpuBaseline or Node: set to `true` to make the controller
    /// leave the node alone (verdict `Unmanaged`).
    pub const UNMANAGED: &str = "plumbline.dev/unmanaged";
}

/// Node condition types and their reasons.
pub mod conditions {
    /// Node condition: the node's GPU stack satisfies its policy.
    pub const GPU_STACK_COMPLIANT: &str = "GpuStackCompliant";

    /// Policy condition: the policy passed validation.
    pub const VALID: &str = "Valid";
    /// Policy condition: the disruption budget is fully used.
    pub const BUDGET_EXHAUSTED: &str = "BudgetExhausted";
    /// Policy condition: another policy of equal priority selects some of the
    /// same nodes.
    pub const CONFLICT: &str = "Conflict";

    /// Baseline condition: the agent probed the host successfully.
    pub const PROBED: &str = "Probed";

    /// Policy condition: a `uniformity` key has no single majority value
    /// (two or more values tie), so no node is judged on it.
    pub const UNIFORMITY_TIE: &str = "UniformityTie";
}

/// Machine-readable reasons for conditions and Events.
pub mod reasons {
    pub const COMPLIANT: &str = "Compliant";
    pub const DRIFTING: &str = "Drifting";
    pub const UNKNOWN: &str = "Unknown";
    pub const STALE_BASELINE: &str = "StaleBaseline";
    pub const NO_BASELINE: &str = "NoBaseline";
    pub const HELD_BACK: &str = "HeldBackByBudget";
    pub const CORDONED: &str = "Cordoned";
    pub const UNCORDONED: &str = "Uncordoned";
    pub const TAINTED: &str = "Tainted";
    pub const UNTAINTED: &str = "Untainted";
    pub const POLICY_VALID: &str = "PolicyValid";
    pub const POLICY_INVALID: &str = "PolicyInvalid";
    pub const BUDGET_AVAILABLE: &str = "BudgetAvailable";
    pub const BUDGET_EXHAUSTED: &str = "BudgetExhausted";
    pub const NO_CONFLICT: &str = "NoConflict";
    pub const PRIORITY_TIE: &str = "PriorityTie";
    pub const PROBE_ERRORS: &str = "ProbeErrors";
    pub const ALL_PROBES_OK: &str = "AllProbesOk";
    pub const RELEASED: &str = "Released";
    /// Disruptive actions wait for `gracePeriod`.
    pub const GRACE_PERIOD: &str = "GracePeriod";
    /// An admin uncordoned a node Plumbline had cordoned.
    pub const UNCORDON_RESPECTED: &str = "UncordonRespected";
    /// A uniformity key has tied values.
    pub const TIED_MAJORITY: &str = "TiedMajority";
    /// Every uniformity key has a single majority value.
    pub const CLEAR_MAJORITY: &str = "ClearMajority";
}

/// Stable ids of policy findings. A finding's rule id never changes meaning;
/// alerting and dashboards key on it.
pub mod rules {
    pub const DRIVER_PRESENT: &str = "driver.present";
    pub const DRIVER_VERSION: &str = "driver.version";
    pub const DRIVER_MISMATCH: &str = "driver.mismatch";
    pub const DRIVER_KERNEL_MODULE: &str = "driver.kernelModule";
    pub const DRIVER_UNSUPPORTED_GPU: &str = "driver.unsupportedGpu";
    pub const CUDA_MIN_CEILING: &str = "cuda.minCeiling";
    pub const CUDA_WORKLOAD: &str = "cuda.workload";
    pub const TOOLKIT_REQUIRED: &str = "toolkit.required";
    pub const TOOLKIT_VERSION: &str = "toolkit.version";
    pub const TOOLKIT_NEWER_THAN_DRIVER: &str = "toolkit.newerThanDriver";
    pub const CONTAINER_TOOLKIT_PRESENT: &str = "containerToolkit.present";
    pub const CONTAINER_TOOLKIT_MIN_VERSION: &str = "containerToolkit.minVersion";
    pub const CONTAINER_TOOLKIT_RUNTIME: &str = "containerToolkit.runtime";
    pub const CONTAINER_TOOLKIT_DEFAULT_RUNTIME: &str = "containerToolkit.defaultRuntime";
    pub const CONTAINER_TOOLKIT_CDI: &str = "containerToolkit.cdi";
    pub const CDI_REQUIRED: &str = "cdi.required";
    pub const CDI_STALE: &str = "cdi.stale";
    pub const KERNEL_VERSION: &str = "kernel.version";
    pub const OS_VERSION: &str = "os.version";
    pub const SECURE_BOOT: &str = "secureBoot";
    pub const FABRIC_MANAGER: &str = "fabricManager";
    pub const UNIFORMITY: &str = "uniformity";
    pub const PROBE_ERROR: &str = "probe.error";
    pub const HEARTBEAT_STALE: &str = "agent.heartbeat";
    pub const BASELINE_MISSING: &str = "agent.baseline";

    /// Every rule id, for docs and exhaustive tests.
    pub const ALL: &[&str] = &[
        DRIVER_PRESENT,
        DRIVER_VERSION,
        DRIVER_MISMATCH,
        DRIVER_KERNEL_MODULE,
        DRIVER_UNSUPPORTED_GPU,
        CUDA_MIN_CEILING,
        CUDA_WORKLOAD,
        TOOLKIT_REQUIRED,
        TOOLKIT_VERSION,
        TOOLKIT_NEWER_THAN_DRIVER,
        CONTAINER_TOOLKIT_PRESENT,
        CONTAINER_TOOLKIT_MIN_VERSION,
        CONTAINER_TOOLKIT_RUNTIME,
        CONTAINER_TOOLKIT_DEFAULT_RUNTIME,
        CONTAINER_TOOLKIT_CDI,
        CDI_REQUIRED,
        CDI_STALE,
        KERNEL_VERSION,
        OS_VERSION,
        SECURE_BOOT,
        FABRIC_MANAGER,
        UNIFORMITY,
        PROBE_ERROR,
        HEARTBEAT_STALE,
        BASELINE_MISSING,
    ];
}

/// Names of the host probes, as they appear in `status.probes[].name`.
pub mod probes {
    pub const KERNEL_MODULE: &str = "kernelModule";
    pub const USERSPACE: &str = "userspace";
    pub const CUDA_CEILING: &str = "cudaCeiling";
    pub const GPUS: &str = "gpus";
    pub const TOOLKITS: &str = "toolkits";
    pub const CONTAINER_TOOLKIT: &str = "containerToolkit";
    pub const RUNTIMES: &str = "runtimes";
    pub const CDI: &str = "cdi";
    pub const KERNEL: &str = "kernel";
    pub const OS: &str = "os";
    pub const FABRIC_MANAGER: &str = "fabricManager";
    pub const NVML: &str = "nvml";
}

/// The `GpuStackCompliant` condition and friends are written by this
/// component name in Events (`reportingController`).
pub const REPORTING_CONTROLLER: &str = "plumbline.dev/controller";
