//! Fixtures shared by the policy tests: a realistic HGX H100 node, built in
//! code so each case states only what it changes.

#![allow(dead_code)]

use jiff::Timestamp;
use plumbline_api::keys::probes;
use plumbline_api::*;

/// The fixed "now" of every test.
pub fn now() -> Timestamp {
    "2026-11-22T12:00:00Z"
        .parse()
        .expect("valid timestamp literal")
}

/// An 8x H100 HGX node on 580.95.05 (open module), CUDA 12.9 and 13.0
/// toolkits, Container Toolkit 1.17.8 wired into containerd, a fresh CDI
/// spec, Ubuntu 24.04 with Secure Boot on, Fabric Manager at the driver's
/// version.
pub fn h100_node() -> Observed {
    Observed {
        driver: DriverObserved {
            loaded: true,
            version: Some("580.95.05".into()),
            branch: Some(580),
            kernel_module: KernelModule::Open,
            userspace_version: Some("580.95.05".into()),
            mismatch: false,
            cuda_ceiling: Some("13.0".into()),
            root: Some("/".into()),
        },
        gpus: (0..8)
            .map(|i| gpu(i, "NVIDIA H100 80GB HBM3", "Hopper", "9.0"))
            .collect(),
        toolkits: vec![
            ToolkitObserved {
                version: "12.9".into(),
                full_version: Some("12.9.79".into()),
                path: "/usr/local/cuda-12.9".into(),
                default: false,
            },
            ToolkitObserved {
                version: "13.0".into(),
                full_version: Some("13.0.48".into()),
                path: "/usr/local/cuda-13.0".into(),
                default: true,
            },
        ],
        container_toolkit: ContainerToolkitObserved {
            installed: true,
            version: Some("1.17.8".into()),
            mode: Some("auto".into()),
            config_path: Some("/etc/nvidia-container-runtime/config.toml".into()),
        },
        runtimes: vec![RuntimeObserved {
            name: RuntimeName::Containerd,
            config_paths: vec!["/etc/containerd/config.toml".into()],
            nvidia_handler: true,
            default_runtime: Some("nvidia".into()),
            cdi_enabled: true,
        }],
        cdi: CdiObserved {
            specs: vec![CdiSpecObserved {
                path: "/var/run/cdi/nvidia.yaml".into(),
                kind: Some("nvidia.com/gpu".into()),
                cdi_version: Some("0.5.0".into()),
                devices: vec!["0".into(), "all".into()],
                driver_versions: vec!["580.95.05".into()],
                stale: false,
                problems: vec![],
            }],
        },
        kernel: KernelObserved {
            release: Some("6.8.0-45-generic".into()),
            secure_boot: Some(true),
            tainted: Some(4096),
        },
        os: OsObserved {
            id: Some("ubuntu".into()),
            version_id: Some("24.04".into()),
            pretty_name: Some("Ubuntu 24.04.1 LTS".into()),
        },
        fabric_manager: FabricManagerObserved {
            required: true,
            installed: true,
            version: Some("580.95.05".into()),
            matches_driver: Some(true),
        },
    }
}

pub fn gpu(index: u32, product: &str, arch: &str, cc: &str) -> GpuObserved {
    GpuObserved {
        index,
        pci_bus_id: format!("0000:{:02x}:00.0", 0x18 + index),
        uuid: Some(format!("GPU-{index:08}")),
        product: product.into(),
        architecture: Some(arch.into()),
        compute_capability: Some(cc.into()),
        ..GpuObserved::default()
    }
}

/// Replaces every GPU with `n` of one product.
pub fn set_gpus(o: &mut Observed, n: u32, product: &str, arch: &str, cc: &str) {
    o.gpus = (0..n).map(|i| gpu(i, product, arch, cc)).collect();
}

/// Puts a driver on the node (kernel module and userspace alike).
pub fn set_driver(o: &mut Observed, version: &str, ceiling: Option<&str>) {
    o.driver.version = Some(version.into());
    o.driver.userspace_version = Some(version.into());
    o.driver.branch = version.split('.').next().and_then(|b| b.parse().ok());
    o.driver.cuda_ceiling = ceiling.map(str::to_string);
    o.fabric_manager.version = Some(version.into());
    for spec in &mut o.cdi.specs {
        spec.driver_versions = vec![version.into()];
    }
}

/// Every probe `Ok`, except those named, which are `Error`.
pub fn probes_with_errors(errors: &[&str]) -> Vec<ProbeResult> {
    [
        probes::KERNEL_MODULE,
        probes::USERSPACE,
        probes::CUDA_CEILING,
        probes::GPUS,
        probes::TOOLKITS,
        probes::CONTAINER_TOOLKIT,
        probes::RUNTIMES,
        probes::CDI,
        probes::KERNEL,
        probes::OS,
        probes::FABRIC_MANAGER,
        probes::NVML,
    ]
    .into_iter()
    .map(|name| {
        let failed = errors.contains(&name);
        ProbeResult {
            name: name.to_string(),
            status: if failed {
                ProbeStatus::Error
            } else {
                ProbeStatus::Ok
            },
            message: failed.then(|| format!("reading {name}: permission denied")),
            duration_micros: 10,
        }
    })
    .collect()
}

/// A policy with these requirements and default actions.
pub fn policy_with(requirements: Requirements) -> GpuFleetPolicy {
    GpuFleetPolicy::new(
        "gpu-baseline",
        GpuFleetPolicySpec {
            requirements,
            ..GpuFleetPolicySpec::default()
        },
    )
}

/// A baseline status for `observed` with a heartbeat `age_secs` before now.
pub fn status(observed: Observed, age_secs: i64) -> NodeGpuBaselineStatus {
    NodeGpuBaselineStatus {
        observed: Some(observed),
        probes: probes_with_errors(&[]),
        last_heartbeat_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            now() - jiff::SignedDuration::from_secs(age_secs),
        )),
        ..NodeGpuBaselineStatus::default()
    }
}
