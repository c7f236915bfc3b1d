//! Simulated GPU fleets: whole host trees for N nodes, generated from a
//! seed, that the real probes read as they would read real machines.
//!
//! `plumbline sim` needs a fleet that looks like one: several GPU
//! generations on several driver branches, open and proprietary kernel
//! modules, containerd 1.7 and 2.x, Docker and CRI-O, CDI specs in both
//! directories, and the mistakes real fleets carry — a reboot that never
//! happened after a driver upgrade, a CDI spec left over from the previous
//! driver, a containerd config that lost its `nvidia` handler when a
//! package replaced it, a host toolkit newer than the driver. Each node is
//! built in two steps: its *pool*'s baseline stack (the stack the pool is
//! meant to run), then maybe one mistake from the pool's list, recorded as
//! a [`Violation`] so that a scenario can say what the controller must
//! conclude about the node ([`violation::expected_rules`]).
//!
//! ```text
//!   FleetSpec { nodes, seed, profile, violation_percent }
//!        │ generate (pure, deterministic: same seed, same fleet)
//!        ▼
//!   GeneratedNode { name, pool, labels, baseline: HostSpec, host: HostSpec, violations }
//!        │ host.files() → FileMap          node_object() → a Node for the API
//!        ▼
//!   write_tree(root, files)  ── later ──  sync_tree(root, old files, new files)
//!   (proc/, sys/, dev/, etc/, usr/, lib/, run/, var/ as on a real host)
//! ```
//!
//! Hosts change the way machines do ([`GeneratedNode::break_host`],
//! [`GeneratedNode::repair`], [`GeneratedNode::install_driver`],
//! [`GeneratedNode::reboot`]): the spec changes, and the difference in
//! files is written with renames, so an agent watching the tree sees a
//! package upgrade, not a torn file. The generator is pure; only
//! [`write_tree`] and [`sync_tree`] touch the disk.
//!
//! Randomness comes from [`Rng`] (SplitMix64), not `rand`, so that a seed
//! names the same fleet in every release.

pub mod catalog;
mod error;
pub mod host;
mod rng;
pub mod violation;
mod write;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use plumbline_compat::{CudaVersion, DriverVersion};
use serde_json::{Value, json};

pub use catalog::{CpuArch, Flavour, GpuModel, OsImage, Toolkit};
pub use error::FleetError;
pub use host::{CdiDir, CdiSpecFile, Entry, FileMap, Gpu, HostSpec, Runtime};
pub use rng::Rng;
pub use violation::{Violation, ViolationKind, driver_version_fails, expected_rules};
pub use write::{sync_tree, write_tree};

use catalog::*;
use host::{CONTAINERD_CONF_D, CONTAINERD_CONFIG_D};

/// Node label GPU Feature Discovery sets to the product name.
pub const LABEL_GPU_PRODUCT: &str = "nvidia.com/gpu.product";
/// Node label GPU Feature Discovery sets to the GPU count.
pub const LABEL_GPU_COUNT: &str = "nvidia.com/gpu.count";
/// Node label GPU Feature Discovery sets to the memory per GPU, MiB.
pub const LABEL_GPU_MEMORY: &str = "nvidia.com/gpu.memory";
/// Node label GPU Feature Discovery sets to the architecture family.
pub const LABEL_GPU_FAMILY: &str = "nvidia.com/gpu.family";
/// Node label GPU Feature Discovery sets on GPU nodes.
pub const LABEL_GPU_PRESENT: &str = "nvidia.com/gpu.present";
/// The extended resource the device plugin advertises.
pub const RESOURCE_GPU: &str = "nvidia.com/gpu";
/// The team label the example policies select on (`workload-class: inference`).
pub const LABEL_WORKLOAD_CLASS: &str = "workload-class";

/// The driver build a rollout fleet starts on: the one
/// `deploy/examples/upgrade-window.yaml` keeps allowed during its window.
pub const ROLLOUT_FROM: &str = "580.95.05";

/// What kind of fleet to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Every pool on its own branch and stack, with mistakes.
    Mixed,
    /// Every pool (Volta aside, which newer branches drop) on
    /// [`ROLLOUT_FROM`], ready for a branch upgrade.
    Rollout,
}

/// How to build a fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetSpec {
    pub nodes: usize,
    pub seed: u64,
    pub profile: Profile,
    /// Share of each pool's nodes built with a mistake, at most just under
    /// half the pool so that the pool's baseline stays the majority (the
    /// reference of `uniformity` rules).
    pub violation_percent: u32,
}

/// A group of identical machines with one purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pool {
    H100Train,
    Inference,
    A100Train,
    B200Train,
    V100Batch,
    Gb200Train,
    A10Dev,
}

impl Pool {
    pub fn as_str(self) -> &'static str {
        match self {
            Pool::H100Train => "h100-train",
            Pool::Inference => "inference",
            Pool::A100Train => "a100-train",
            Pool::B200Train => "b200-train",
            Pool::V100Batch => "v100-batch",
            Pool::Gb200Train => "gb200-train",
            Pool::A10Dev => "a10-dev",
        }
    }

    /// The `workload-class` label of the pool's nodes.
    pub fn workload_class(self) -> &'static str {
        match self {
            Pool::H100Train | Pool::A100Train | Pool::B200Train | Pool::Gb200Train => "training",
            Pool::Inference => "inference",
            Pool::V100Batch => "batch",
            Pool::A10Dev => "dev",
        }
    }

    /// The mistakes this pool's machines are built with, most telling
    /// first (small fleets only get the first few).
    pub fn violations(self) -> &'static [ViolationKind] {
        use ViolationKind::*;
        match self {
            Pool::H100Train => &[
                PendingReboot,
                ModuleFlavour,
                OutdatedDriver,
                FabricManagerMismatch,
            ],
            Pool::Inference => &[
                StaleCdi,
                LostNvidiaHandler,
                ToolkitNewerThanDriver,
                LowCudaCeiling,
                PendingReboot,
            ],
            Pool::A100Train => &[
                PendingReboot,
                FabricManagerMismatch,
                StaleCdi,
                LostNvidiaHandler,
            ],
            Pool::B200Train => &[ModuleFlavour, PendingReboot, FabricManagerMismatch],
            Pool::V100Batch => &[ModuleFlavour, UnsupportedGpu, PendingReboot],
            Pool::Gb200Train => &[LostNvidiaHandler, PendingReboot, ModuleFlavour],
            Pool::A10Dev => &[ToolkitNewerThanDriver, StaleCdi, PendingReboot],
        }
    }

    fn weights(profile: Profile) -> &'static [(Pool, u32)] {
        match profile {
            Profile::Mixed => &[
                (Pool::H100Train, 24),
                (Pool::Inference, 20),
                (Pool::A100Train, 16),
                (Pool::B200Train, 12),
                (Pool::V100Batch, 10),
                (Pool::Gb200Train, 8),
                (Pool::A10Dev, 10),
            ],
            Profile::Rollout => &[
                (Pool::H100Train, 28),
                (Pool::Inference, 24),
                (Pool::A100Train, 20),
                (Pool::B200Train, 14),
                (Pool::Gb200Train, 6),
                (Pool::A10Dev, 8),
            ],
        }
    }
}

/// One simulated node: its Node labels, the stack its pool means it to
/// have, the stack it has, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedNode {
    pub name: String,
    pub pool: Pool,
    pub labels: BTreeMap<String, String>,
    /// The pool's intended stack for this machine (its GPUs, its UUIDs).
    pub baseline: HostSpec,
    /// The stack as built.
    pub host: HostSpec,
    pub violations: Vec<Violation>,
}

/// Builds a fleet. Pure and deterministic: the same spec gives the same
/// nodes, byte for byte.
pub fn generate(spec: &FleetSpec) -> Vec<GeneratedNode> {
    let mut rng = Rng::new(spec.seed);
    let weights = Pool::weights(spec.profile);
    let counts = apportion(spec.nodes, weights);
    let width = counts
        .iter()
        .map(|c| c.to_string().len())
        .max()
        .unwrap_or(1)
        .max(3);
    let mut nodes = Vec::with_capacity(spec.nodes);
    for (i, ((pool, _), count)) in weights.iter().zip(&counts).enumerate() {
        let mut pool_rng = rng.fork(i as u64);
        let mut members: Vec<GeneratedNode> = (0..*count)
            .map(|n| {
                let host = baseline(*pool, spec.profile, &mut pool_rng);
                let short = host.gpu.label.rsplit('-').next().unwrap_or("gpu");
                let prefix = match pool {
                    Pool::Inference => format!("infer-{}", short.to_ascii_lowercase()),
                    other => other.as_str().to_string(),
                };
                let name = format!("{prefix}-{:0width$}", n + 1);
                let labels = node_labels(&name, *pool, &host, &mut pool_rng);
                GeneratedNode {
                    name,
                    pool: *pool,
                    labels,
                    baseline: host.clone(),
                    host,
                    violations: Vec::new(),
                }
            })
            .collect();
        let wanted = (*count as u64 * u64::from(spec.violation_percent) + 50) / 100;
        let cap = count.saturating_sub(1) / 2;
        let violators = (wanted as usize).min(cap);
        let mut order: Vec<usize> = (0..*count).collect();
        pool_rng.shuffle(&mut order);
        let kinds = pool.violations();
        for (j, index) in order.into_iter().take(violators).enumerate() {
            let kind = j.checked_rem(kinds.len()).and_then(|k| kinds.get(k));
            if let (Some(node), Some(kind)) = (members.get_mut(index), kind) {
                // Every kind applies to its own pool's baseline.
                let _ = node.apply(*kind, &mut pool_rng);
            }
        }
        nodes.append(&mut members);
    }
    nodes
}

/// Splits `n` by weight, largest remainders first.
fn apportion(n: usize, weights: &[(Pool, u32)]) -> Vec<usize> {
    let total: u64 = weights
        .iter()
        .map(|(_, w)| u64::from(*w))
        .sum::<u64>()
        .max(1);
    let mut counts: Vec<usize> = weights
        .iter()
        .map(|(_, w)| (n as u64 * u64::from(*w) / total) as usize)
        .collect();
    let mut rest: Vec<(u64, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, (_, w))| (n as u64 * u64::from(*w) % total, i))
        .collect();
    rest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut left = n.saturating_sub(counts.iter().sum());
    for (_, i) in rest {
        if left == 0 {
            break;
        }
        if let Some(c) = counts.get_mut(i) {
            *c += 1;
            left -= 1;
        }
    }
    counts
}

/// The previous build of the same branch: what a node ran before its last
/// upgrade, or still runs when the upgrade missed it.
pub fn previous_build(version: &str) -> &'static str {
    match version {
        "580.95.05" => "580.82.07",
        "570.172.08" => "570.133.20",
        "575.57.08" => "575.51.03",
        "535.247.01" => "535.230.02",
        "595.58.03" => "595.45.04",
        "550.163.01" => "550.144.03",
        "550.144.03" => "550.127.05",
        "590.48.01" => "590.44.01",
        _ => "580.82.07",
    }
}

/// A random GPU UUID in the driver's format.
fn gpu_uuid(rng: &mut Rng) -> String {
    let h = rng.hex(16);
    format!(
        "GPU-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The toolkits of `toolkits` the driver `version` can run, keeping the
/// default if it survives.
fn toolkits_for(version: &str, toolkits: &[Toolkit]) -> Vec<Toolkit> {
    let ceiling = DriverVersion::parse(version)
        .ok()
        .and_then(|d| plumbline_compat::CompatDb::embedded().cuda_ceiling(&d));
    toolkits
        .iter()
        .filter(|t| {
            let v = CudaVersion::parse(t.version).ok();
            matches!((v, ceiling), (Some(v), Some(c)) if v <= c)
        })
        .copied()
        .collect()
}

/// A pool's machine, before the per-node details (GPU UUIDs).
struct Stack {
    cpu: CpuArch,
    os: OsImage,
    kernel: &'static str,
    secure_boot: Option<bool>,
    gpu: GpuModel,
    count: usize,
    switches: u32,
    driver: &'static str,
    flavour: Flavour,
    toolkits: Vec<Toolkit>,
    default: &'static str,
    ctk: &'static str,
    runtime: Runtime,
    /// CDI specs: directory and JSON or not.
    cdi: Vec<(CdiDir, bool)>,
}

fn stack(pool: Pool, rng: &mut Rng) -> Stack {
    let containerd2 = Runtime::Containerd2 {
        dropin: CONTAINERD_CONF_D,
        imports: true,
    };
    match pool {
        Pool::H100Train => Stack {
            cpu: CpuArch::X86_64,
            os: UBUNTU_2404,
            kernel: "6.8.0-85-generic",
            secure_boot: Some(false),
            gpu: H100,
            count: 8,
            switches: 4,
            driver: "580.95.05",
            flavour: Flavour::Open,
            toolkits: vec![CUDA_12_8, CUDA_13_0],
            default: "13.0",
            ctk: "1.18.1",
            runtime: containerd2,
            cdi: vec![(CdiDir::Run, false)],
        },
        Pool::Inference if rng.chance(70) => Stack {
            cpu: CpuArch::X86_64,
            os: UBUNTU_2204,
            kernel: "6.8.0-60-generic",
            secure_boot: Some(true),
            gpu: L40S,
            count: 4,
            switches: 0,
            driver: "570.172.08",
            flavour: Flavour::Open,
            toolkits: vec![CUDA_12_8],
            default: "12.8",
            ctk: "1.18.1",
            runtime: containerd2,
            cdi: vec![(CdiDir::Run, false)],
        },
        Pool::Inference => Stack {
            cpu: CpuArch::X86_64,
            os: DEBIAN_12,
            kernel: "6.1.0-37-cloud-amd64",
            secure_boot: Some(true),
            gpu: L4,
            count: 1,
            switches: 0,
            driver: "575.57.08",
            flavour: Flavour::Open,
            toolkits: vec![CUDA_12_9],
            default: "12.9",
            ctk: "1.17.8",
            runtime: Runtime::Containerd17 {
                handler: true,
                enable_cdi: true,
            },
            cdi: vec![(CdiDir::Run, false)],
        },
        Pool::A100Train => Stack {
            cpu: CpuArch::X86_64,
            os: UBUNTU_2204,
            kernel: "5.15.0-144-generic",
            secure_boot: None,
            gpu: A100,
            count: 8,
            switches: 6,
            driver: "535.247.01",
            flavour: Flavour::Proprietary,
            toolkits: vec![CUDA_11_8, CUDA_12_2],
            default: "12.2",
            ctk: "1.17.8",
            runtime: Runtime::Containerd17 {
                handler: true,
                enable_cdi: false,
            },
            cdi: Vec::new(),
        },
        Pool::B200Train => Stack {
            cpu: CpuArch::X86_64,
            os: UBUNTU_2404,
            kernel: "6.8.0-85-generic",
            secure_boot: Some(false),
            gpu: B200,
            count: 8,
            switches: 2,
            driver: "595.58.03",
            flavour: Flavour::Open,
            toolkits: vec![CUDA_13_0, CUDA_13_2],
            default: "13.0",
            ctk: "1.18.1",
            runtime: containerd2,
            cdi: vec![(CdiDir::Run, false)],
        },
        Pool::V100Batch => Stack {
            cpu: CpuArch::X86_64,
            os: UBUNTU_2204,
            kernel: "5.15.0-139-generic",
            secure_boot: None,
            gpu: V100,
            count: 8,
            switches: 0,
            driver: "550.163.01",
            flavour: Flavour::Proprietary,
            toolkits: vec![CUDA_11_8, CUDA_12_4],
            default: "12.4",
            ctk: "1.18.1",
            runtime: Runtime::Crio,
            cdi: vec![(CdiDir::Etc, false)],
        },
        Pool::Gb200Train => Stack {
            cpu: CpuArch::Aarch64,
            os: UBUNTU_2404,
            kernel: "6.8.0-1031-nvidia-64k",
            secure_boot: Some(true),
            gpu: GB200,
            count: 4,
            switches: 0,
            driver: "580.95.05",
            flavour: Flavour::Open,
            toolkits: vec![CUDA_13_0],
            default: "13.0",
            ctk: "1.18.1",
            runtime: containerd2,
            cdi: vec![(CdiDir::Run, false)],
        },
        Pool::A10Dev => Stack {
            cpu: CpuArch::X86_64,
            os: DEBIAN_12,
            kernel: "6.1.0-37-amd64",
            secure_boot: Some(false),
            gpu: A10,
            count: if rng.chance(50) { 1 } else { 2 },
            switches: 0,
            driver: "550.144.03",
            flavour: Flavour::Proprietary,
            toolkits: vec![CUDA_12_4],
            default: "12.4",
            ctk: "1.17.8",
            runtime: Runtime::Docker { cdi: true },
            cdi: vec![(CdiDir::Etc, true)],
        },
    }
}

/// The stack a pool's machine is meant to run.
fn baseline(pool: Pool, profile: Profile, rng: &mut Rng) -> HostSpec {
    let s = stack(pool, rng);
    let driver = match profile {
        Profile::Mixed => s.driver,
        Profile::Rollout => ROLLOUT_FROM,
    };
    let toolkits = toolkits_for(driver, &s.toolkits);
    let default_toolkit = toolkits
        .iter()
        .find(|t| t.version == s.default)
        .or(toolkits.last())
        .map(|t| t.version);
    let gpus = gpu_bus_ids(s.cpu, s.count)
        .into_iter()
        .enumerate()
        .map(|(i, bus_id)| Gpu {
            index: i as u32,
            bus_id,
            uuid: gpu_uuid(rng),
        })
        .collect();
    let mut host = HostSpec {
        cpu: s.cpu,
        os: s.os,
        kernel_release: s.kernel.to_string(),
        secure_boot: s.secure_boot,
        gpu: s.gpu,
        gpus,
        nvswitches: s.switches,
        module: driver.to_string(),
        flavour: s.flavour,
        userspace: driver.to_string(),
        fabric_manager: (s.switches > 0).then(|| driver.to_string()),
        toolkits,
        default_toolkit,
        container_toolkit: s.ctk.to_string(),
        runtime: s.runtime,
        cdi: Vec::new(),
    };
    host.cdi = s
        .cdi
        .iter()
        .map(|(dir, json)| host.fresh_cdi(*dir, *json))
        .collect();
    host
}

fn node_labels(name: &str, pool: Pool, host: &HostSpec, rng: &mut Rng) -> BTreeMap<String, String> {
    let zone = rng.pick(&["a", "b", "c"]).copied().unwrap_or("a");
    let mut labels = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        labels.insert(k.to_string(), v);
    };
    put("kubernetes.io/hostname", name.to_string());
    put("kubernetes.io/os", "linux".into());
    put("kubernetes.io/arch", host.cpu.goarch().into());
    put(
        "node.kubernetes.io/instance-type",
        instance_type(pool, host).into(),
    );
    put("topology.kubernetes.io/zone", format!("zone-{zone}"));
    put("node-role.kubernetes.io/gpu", String::new());
    put(LABEL_GPU_PRESENT, "true".into());
    put(LABEL_GPU_PRODUCT, host.gpu.label.into());
    put(LABEL_GPU_COUNT, host.gpus.len().to_string());
    put(LABEL_GPU_MEMORY, host.gpu.memory_mib.to_string());
    put(LABEL_GPU_FAMILY, host.gpu.family.into());
    put(LABEL_WORKLOAD_CLASS, pool.workload_class().into());
    labels
}

fn instance_type(pool: Pool, host: &HostSpec) -> &'static str {
    match pool {
        Pool::H100Train => "p5.48xlarge",
        Pool::Inference if host.gpu == L4 => "g6.2xlarge",
        Pool::Inference => "g6e.12xlarge",
        Pool::A100Train => "p4de.24xlarge",
        Pool::B200Train => "p6-b200.48xlarge",
        Pool::V100Batch => "p3dn.24xlarge",
        Pool::Gb200Train => "gb200-nvl72-tray",
        Pool::A10Dev => "a10-devbox",
    }
}

/// CPU cores and memory of the pool's machines, as the kubelet reports them.
fn machine(pool: Pool, host: &HostSpec) -> (&'static str, &'static str) {
    match pool {
        Pool::H100Train => ("192", "2063731148Ki"),
        Pool::Inference if host.gpu == L4 => ("8", "32386780Ki"),
        Pool::Inference => ("48", "393215172Ki"),
        Pool::A100Train => ("96", "1176602628Ki"),
        Pool::B200Train => ("192", "2113959656Ki"),
        Pool::V100Batch => ("96", "791385108Ki"),
        Pool::Gb200Train => ("144", "883938412Ki"),
        Pool::A10Dev => ("16", "65617448Ki"),
    }
}

impl GeneratedNode {
    /// The Node object a kubelet on this machine would have registered,
    /// Ready, with GPU Feature Discovery's labels and the device plugin's
    /// capacity. `now` is an RFC 3339 time for the condition timestamps.
    pub fn node_object(&self, now: &str) -> Value {
        let (cpu, memory) = machine(self.pool, &self.host);
        let gpus = self.host.gpus.len().to_string();
        let resources = json!({
            "cpu": cpu, "memory": memory, "ephemeral-storage": "3748750868Ki",
            "pods": "110", RESOURCE_GPU: gpus, "hugepages-2Mi": "0", "hugepages-1Gi": "0",
        });
        let runtime = match self.host.runtime {
            Runtime::Containerd2 { .. } => "containerd://2.1.4",
            Runtime::Containerd17 { .. } => "containerd://1.7.27",
            Runtime::Docker { .. } => "docker://28.3.3",
            Runtime::Crio => "cri-o://1.32.4",
        };
        let condition = |kind: &str, status: &str, reason: &str, message: &str| {
            json!({"type": kind, "status": status, "reason": reason, "message": message,
                   "lastHeartbeatTime": now, "lastTransitionTime": now})
        };
        let id = self
            .host
            .gpus
            .first()
            .map(|g| g.uuid.trim_start_matches("GPU-").replace('-', ""))
            .unwrap_or_default();
        // FNV-1a of the name: a stable, unique-enough address per node.
        let hash = self
            .name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
            .to_be_bytes();
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": self.labels},
            "spec": {"providerID": format!("sim:///{}", self.name)},
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [
                    condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "addresses": [
                    {"type": "InternalIP", "address": format!("10.{}.{}.{}", hash[0] % 64, hash[1], hash[2] % 250 + 2)},
                    {"type": "Hostname", "address": self.name},
                ],
                "nodeInfo": {
                    "architecture": self.host.cpu.goarch(),
                    "bootID": format!("{}-boot", id.get(..12).unwrap_or("0")),
                    "containerRuntimeVersion": runtime,
                    "kernelVersion": self.host.kernel_release,
                    "kubeProxyVersion": "",
                    "kubeletVersion": "v1.33.4",
                    "machineID": id,
                    "operatingSystem": "linux",
                    "osImage": self.host.os.pretty_name,
                    "systemUUID": id.get(..16).unwrap_or("0"),
                },
            },
        })
    }

    /// Builds one mistake of `kind` into the host. `None` when the kind
    /// does not apply to this machine (no NVSwitches for Fabric Manager,
    /// no containerd for a lost containerd handler).
    pub fn apply(&mut self, kind: ViolationKind, rng: &mut Rng) -> Option<Vec<Violation>> {
        let host = &mut self.host;
        let prev = previous_build(&host.userspace).to_string();
        let mut added = Vec::new();
        match kind {
            ViolationKind::PendingReboot => {
                host.module = prev.clone();
                added.push(Violation::PendingReboot {
                    loaded: prev.clone(),
                    installed: host.userspace.clone(),
                });
                // nvidia-cdi-refresh runs nvidia-smi first, which fails
                // while the reboot is pending: the old spec stays.
                for spec in &mut host.cdi {
                    spec.driver = prev.clone();
                    added.push(Violation::StaleCdi {
                        path: spec.path(),
                        why: format!(
                            "generated for driver {prev}, whose libraries were replaced; the refresh fails until the reboot"
                        ),
                    });
                }
            }
            ViolationKind::StaleCdi => {
                if host.cdi.is_empty() {
                    let mut spec = host.fresh_cdi(CdiDir::Etc, false);
                    spec.driver = prev.clone();
                    host.cdi.push(spec);
                }
                let swap = rng.chance(50) && !host.gpus.is_empty();
                let spec = host.cdi.first_mut()?;
                let why = if swap {
                    let old = gpu_uuid(rng);
                    let (_, uuid) = spec.gpus.first_mut()?;
                    let gone = std::mem::replace(uuid, old.clone());
                    format!("names {old}, the GPU that {gone} replaced")
                } else {
                    spec.driver = prev.clone();
                    format!(
                        "generated for driver {prev} and not regenerated after the upgrade to {}",
                        host.userspace
                    )
                };
                added.push(Violation::StaleCdi {
                    path: spec.path(),
                    why,
                });
            }
            ViolationKind::LostNvidiaHandler => {
                let why = match &mut host.runtime {
                    Runtime::Containerd2 { dropin, imports } => {
                        if self.pool == Pool::Gb200Train {
                            *dropin = CONTAINERD_CONFIG_D;
                            format!(
                                "nvidia-ctk 1.18.0 wrote {CONTAINERD_CONFIG_D}, which config.toml does not import"
                            )
                        } else {
                            *imports = false;
                            "a containerd upgrade replaced config.toml and dropped its imports line; the nvidia drop-in is no longer read".to_string()
                        }
                    }
                    Runtime::Containerd17 {
                        handler,
                        enable_cdi,
                    } => {
                        *handler = false;
                        *enable_cdi = false;
                        "config.toml was regenerated with `containerd config default`".to_string()
                    }
                    Runtime::Docker { .. } | Runtime::Crio => return None,
                };
                added.push(Violation::LostNvidiaHandler {
                    engine: host.runtime.engine(),
                    why,
                });
            }
            ViolationKind::ToolkitNewerThanDriver => {
                let ceiling = host.cuda_ceiling()?;
                let newer = [CUDA_12_8, CUDA_12_9, CUDA_13_0, CUDA_13_2]
                    .into_iter()
                    .find(|t| CudaVersion::parse(t.version).is_ok_and(|v| v > ceiling))?;
                if !host.toolkits.contains(&newer) {
                    host.toolkits.push(newer);
                }
                host.default_toolkit = Some(newer.version);
                added.push(Violation::ToolkitNewerThanDriver {
                    toolkit: newer.version,
                    ceiling: ceiling.to_string(),
                });
            }
            ViolationKind::ModuleFlavour => {
                let loaded = match host.flavour {
                    Flavour::Open => Flavour::Proprietary,
                    Flavour::Proprietary => Flavour::Open,
                };
                host.flavour = loaded;
                added.push(Violation::ModuleFlavour {
                    loaded,
                    needs: host.gpu.needs,
                });
            }
            ViolationKind::OutdatedDriver => {
                let baseline = host.userspace.clone();
                set_driver(host, &prev);
                added.push(Violation::OutdatedDriver {
                    version: prev,
                    baseline,
                });
            }
            ViolationKind::FabricManagerMismatch => {
                let fm = host.fabric_manager.as_mut()?;
                *fm = prev.clone();
                added.push(Violation::FabricManagerMismatch {
                    fabric_manager: prev,
                    driver: host.module.clone(),
                });
            }
            ViolationKind::LowCudaCeiling => {
                let old = "550.163.01";
                set_driver(host, old);
                host.toolkits = toolkits_for(old, &host.toolkits);
                if host.toolkits.is_empty() {
                    host.toolkits.push(CUDA_12_4);
                }
                host.default_toolkit = host.toolkits.last().map(|t| t.version);
                let ceiling = host.cuda_ceiling()?;
                added.push(Violation::LowCudaCeiling {
                    driver: old.to_string(),
                    ceiling: ceiling.to_string(),
                });
            }
            ViolationKind::UnsupportedGpu => {
                let new = "590.48.01";
                set_driver(host, new);
                added.push(Violation::UnsupportedGpu {
                    driver: new.to_string(),
                    architecture: host.gpu.architecture,
                });
            }
        }
        self.violations.extend(added.iter().cloned());
        Some(added)
    }

    /// Builds one random mistake from the pool's list into a host that has
    /// none. `None` when the host already has one.
    pub fn break_host(&mut self, rng: &mut Rng) -> Option<Vec<Violation>> {
        if !self.violations.is_empty() {
            return None;
        }
        let kinds = self.pool.violations();
        let start = rng.below(kinds.len());
        for k in 0..kinds.len() {
            let Some(kind) = kinds.get((start + k) % kinds.len()) else {
                continue;
            };
            let before = self.host.clone();
            if let Some(added) = self.apply(*kind, rng) {
                return Some(added);
            }
            self.host = before;
        }
        None
    }

    /// Puts the pool's stack back (a reimage, or an admin fixing the
    /// node). Returns the violations that were cleared.
    pub fn repair(&mut self) -> Vec<Violation> {
        self.host = self.baseline.clone();
        std::mem::take(&mut self.violations)
    }

    /// Installs driver `version`'s userspace (and Fabric Manager) without
    /// reloading the module: a reboot is now pending, and the CDI specs,
    /// which cannot be refreshed until then, are stale. The pool's
    /// baseline moves to `version`.
    pub fn install_driver(&mut self, version: &str) {
        let loaded = self.host.module.clone();
        self.host.userspace = version.to_string();
        if let Some(fm) = &mut self.host.fabric_manager {
            *fm = version.to_string();
        }
        self.violations.push(Violation::PendingReboot {
            loaded: loaded.clone(),
            installed: version.to_string(),
        });
        for spec in &self.host.cdi {
            self.violations.push(Violation::StaleCdi {
                path: spec.path(),
                why: format!("generated for driver {loaded}; the refresh fails until the reboot"),
            });
        }
        set_driver(&mut self.baseline, version);
    }

    /// Reboots: the installed driver's module loads and the CDI specs are
    /// regenerated at boot.
    pub fn reboot(&mut self) {
        self.host.module = self.host.userspace.clone();
        let fresh: Vec<CdiSpecFile> = self
            .host
            .cdi
            .iter()
            .map(|s| self.host.fresh_cdi(s.dir, s.json))
            .collect();
        self.host.cdi = fresh;
        self.violations.retain(|v| {
            !matches!(
                v,
                Violation::PendingReboot { .. } | Violation::StaleCdi { .. }
            )
        });
    }
}

/// Installs and loads driver `version` (same flavour), with its Fabric
/// Manager and freshly generated CDI specs.
fn set_driver(host: &mut HostSpec, version: &str) {
    host.module = version.to_string();
    host.userspace = version.to_string();
    if let Some(fm) = &mut host.fabric_manager {
        *fm = version.to_string();
    }
    let fresh: Vec<CdiSpecFile> = host
        .cdi
        .iter()
        .map(|s| host.fresh_cdi(s.dir, s.json))
        .collect();
    host.cdi = fresh;
}
