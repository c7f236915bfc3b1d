//! Every rule of `spec.requirements`, one table row per behaviour: the
//! policy edit, the node edit, the probes that failed, and the verdict.

mod common;

use std::collections::BTreeSet;

use common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use plumbline_api::keys::probes;
use plumbline_api::keys::rules::*;
use plumbline_api::*;
use plumbline_compat::CompatDb;
use plumbline_policy::evaluate_host;

struct Case {
    what: &'static str,
    policy: fn(&mut Requirements),
    node: fn(&mut Observed),
    /// Probes reported as `Error`.
    errors: &'static [&'static str],
    state: VerdictState,
    /// Rule ids of the findings, in order.
    rules: &'static [&'static str],
    /// Text every one of which some finding's message must contain.
    says: &'static [&'static str],
}

fn no_edit(_: &mut Observed) {}

fn drv(r: &mut Requirements) -> &mut DriverRequirements {
    r.driver.get_or_insert_with(Default::default)
}
fn cuda(r: &mut Requirements) -> &mut CudaRequirements {
    r.cuda.get_or_insert_with(Default::default)
}
fn tk(r: &mut Requirements) -> &mut ToolkitRequirements {
    r.toolkit.get_or_insert_with(Default::default)
}
fn ctk(r: &mut Requirements) -> &mut ContainerToolkitRequirements {
    r.container_toolkit.get_or_insert_with(Default::default)
}
fn cdi(r: &mut Requirements) -> &mut CdiRequirements {
    r.cdi.get_or_insert_with(Default::default)
}
fn workload(name: &str, version: &str, compat: bool) -> Workload {
    Workload {
        name: name.into(),
        cuda_version: version.into(),
        allow_minor_version_compat: compat,
    }
}
fn window(r: &mut Requirements, versions: &[&str], until: &str) {
    r.upgrade_window = Some(UpgradeWindow {
        driver_versions: versions.iter().map(|s| s.to_string()).collect(),
        until: Time(until.parse().expect("valid timestamp literal")),
    });
}

const OK: VerdictState = VerdictState::Compliant;
const DRIFT: VerdictState = VerdictState::Drifting;
const UNKNOWN: VerdictState = VerdictState::Unknown;

fn cases() -> Vec<Case> {
    vec![
        // -- no requirements ---------------------------------------------------
        Case {
            what: "an empty policy checks nothing, even on a node without a driver",
            policy: |_| {},
            node: |o| o.driver = DriverObserved::default(),
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "the reference node satisfies a policy that uses every requirement",
            policy: |r| {
                drv(r).versions = vec!["580.*".into()];
                drv(r).kernel_module = Some(KernelModuleRequirement::Auto);
                cuda(r).min_ceiling = Some("12.8".into());
                cuda(r).workloads = vec![workload("vllm", "12.9", false)];
                tk(r).required = true;
                tk(r).not_newer_than_driver = true;
                ctk(r).min_version = Some("1.17.8".into());
                ctk(r).runtime = Some(RuntimeRequirement::Containerd);
                ctk(r).require_default_runtime = true;
                ctk(r).require_cdi = true;
                cdi(r).required = true;
                cdi(r).require_fresh = true;
                r.kernel = Some(KernelRequirements {
                    versions: vec!["6.8.0-*-generic".into()],
                });
                r.os = Some(OsRequirements {
                    ids: vec!["ubuntu".into()],
                    versions: vec!["24.04".into()],
                });
                r.secure_boot = Some(SecureBootRequirement::Required);
                r.fabric_manager = Some(FabricManagerRequirement::Auto);
            },
            node: no_edit,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        // -- driver.present ------------------------------------------------------
        Case {
            what: "no driver loaded under a driver requirement",
            policy: |r| {
                drv(r);
            },
            node: |o| o.driver = DriverObserved::default(),
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_PRESENT],
            says: &["no NVIDIA kernel module is loaded"],
        },
        Case {
            what: "no driver loaded under a CUDA-only requirement",
            policy: |r| cuda(r).min_ceiling = Some("12.0".into()),
            node: |o| o.driver = DriverObserved::default(),
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_PRESENT],
            says: &["modprobe nvidia"],
        },
        Case {
            what: "a loaded driver whose version does not parse is unknown, not compliant",
            policy: |r| drv(r).versions = vec!["580.*".into()],
            node: |o| o.driver.version = Some("580.xx".into()),
            errors: &[],
            state: UNKNOWN,
            rules: &[DRIVER_VERSION],
            says: &["cannot be read", "580.xx"],
        },
        Case {
            what: "a failed kernelModule probe makes driver rules unknown",
            policy: |r| drv(r).versions = vec!["580.*".into()],
            node: |o| o.driver = DriverObserved::default(),
            errors: &[probes::KERNEL_MODULE],
            state: UNKNOWN,
            rules: &[PROBE_ERROR],
            says: &["probe `kernelModule` failed", "driver.present"],
        },
        // -- driver.version --------------------------------------------------------
        Case {
            what: "a version pattern that matches",
            policy: |r| drv(r).versions = vec!["570.*".into(), "580.*".into()],
            node: no_edit,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "an exact version matches with different zero padding",
            policy: |r| drv(r).versions = vec!["580.95.5".into()],
            node: no_edit,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "a version outside the patterns",
            policy: |r| drv(r).versions = vec!["570.*".into()],
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_VERSION],
            says: &["driver 580.95.05 is not one of 570.*"],
        },
        Case {
            what: "a branch outside the allowed branches",
            policy: |r| drv(r).branches = vec![570, 575],
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_VERSION],
            says: &["is on branch 580, not 570 or 575"],
        },
        Case {
            what: "an allowed branch",
            policy: |r| drv(r).branches = vec![580],
            node: no_edit,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "a version below minVersion says to upgrade",
            policy: |r| drv(r).min_version = Some("580.105.08".into()),
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_VERSION],
            says: &["older than the minimum 580.105.08", "upgrade the driver"],
        },
        Case {
            what: "a version equal to minVersion",
            policy: |r| drv(r).min_version = Some("580.95.05".into()),
            node: no_edit,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "an open upgrade window allows its extra versions",
            policy: |r| {
                drv(r).versions = vec!["570.*".into()];
                window(r, &["580.95.05"], "2026-12-01T00:00:00Z");
            },
            node: no_edit,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "a closed upgrade window makes its versions drift",
            policy: |r| {
                drv(r).versions = vec!["570.*".into()];
                window(r, &["580.*"], "2026-11-01T00:00:00Z");
            },
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_VERSION],
            says: &["upgrade window until 2026-11-01T00:00:00Z, which has closed"],
        },
        Case {
            what: "an open window does not allow versions it does not list",
            policy: |r| {
                drv(r).branches = vec![570];
                window(r, &["590.*"], "2026-12-01T00:00:00Z");
            },
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_VERSION],
            says: &["is on branch 580, not 570"],
        },
        // -- driver.mismatch --------------------------------------------------------
        Case {
            what: "a pending reboot (agent-reported mismatch)",
            policy: |r| {
                drv(r);
            },
            node: |o| {
                o.driver.mismatch = true;
                o.driver.userspace_version = Some("580.105.08".into());
            },
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_MISMATCH],
            says: &[
                "userspace driver libraries are 580.105.08 but the loaded kernel module is 580.95.05",
                "reboot",
            ],
        },
        Case {
            what: "a mismatch the agent did not flag is still caught from the versions",
            policy: |r| {
                drv(r);
            },
            node: |o| o.driver.userspace_version = Some("580.105.08".into()),
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_MISMATCH],
            says: &["a reboot is pending"],
        },
        Case {
            what: "allowMismatch tolerates a pending reboot",
            policy: |r| drv(r).allow_mismatch = true,
            node: |o| o.driver.mismatch = true,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "a failed userspace probe makes the mismatch rule unknown",
            policy: |r| {
                drv(r);
            },
            node: no_edit,
            errors: &[probes::USERSPACE],
            state: UNKNOWN,
            rules: &[PROBE_ERROR],
            says: &["driver.mismatch cannot be checked"],
        },
        // -- driver.kernelModule ------------------------------------------------------
        Case {
            what: "open required, open loaded",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Open),
            node: no_edit,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "proprietary required, open loaded",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Proprietary),
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_KERNEL_MODULE],
            says: &["the open kernel module is loaded but the policy requires the proprietary one"],
        },
        Case {
            what: "open required, proprietary loaded",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Open),
            node: |o| o.driver.kernel_module = KernelModule::Proprietary,
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_KERNEL_MODULE],
            says: &["install the open flavour of driver 580.95.05"],
        },
        Case {
            what: "any accepts either flavour",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Any),
            node: |o| o.driver.kernel_module = KernelModule::Proprietary,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "an unknown flavour cannot be judged",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Open),
            node: |o| o.driver.kernel_module = KernelModule::Unknown,
            errors: &[],
            state: UNKNOWN,
            rules: &[DRIVER_KERNEL_MODULE],
            says: &["cannot be told"],
        },
        Case {
            what: "auto: proprietary on Hopper at 580 is not drift (open is only preferred)",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Auto),
            node: |o| o.driver.kernel_module = KernelModule::Proprietary,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "auto: Blackwell needs the open module",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Auto),
            node: |o| {
                set_gpus(o, 8, "NVIDIA B200", "Blackwell", "10.0");
                o.driver.kernel_module = KernelModule::Proprietary;
            },
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_KERNEL_MODULE],
            says: &["NVIDIA B200 (Blackwell) need the open kernel module"],
        },
        Case {
            what: "auto: Grace-Hopper needs the open module although Hopper alone does not",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Auto),
            node: |o| {
                set_gpus(o, 1, "NVIDIA GH200 480GB", "Hopper", "9.0");
                o.driver.kernel_module = KernelModule::Proprietary;
            },
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_KERNEL_MODULE],
            says: &["NVIDIA GH200 480GB (Grace-coupled) need the open kernel module"],
        },
        Case {
            what: "auto: Volta needs the proprietary module",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Auto),
            node: |o| set_gpus(o, 8, "Tesla V100-SXM2-16GB", "Volta", "7.0"),
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_KERNEL_MODULE],
            says: &[
                "need the proprietary kernel module",
                "Turing and newer only",
            ],
        },
        Case {
            what: "auto: a node mixing Volta and Blackwell cannot be satisfied",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Auto),
            node: |o| {
                o.gpus = vec![
                    gpu(0, "Tesla V100-SXM2-16GB", "Volta", "7.0"),
                    gpu(1, "NVIDIA B200", "Blackwell", "10.0"),
                ];
            },
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_KERNEL_MODULE],
            says: &["no single driver drives both"],
        },
        Case {
            what: "auto: an excluded Volta does not constrain the module",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Auto),
            node: |o| {
                let mut v100 = gpu(1, "Tesla V100-SXM2-16GB", "Volta", "7.0");
                v100.excluded = true;
                o.gpus = vec![gpu(0, "NVIDIA B200", "Blackwell", "10.0"), v100];
            },
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "auto: a GPU nobody can identify is unknown",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Auto),
            node: |o| {
                o.gpus = vec![GpuObserved {
                    product: "NVIDIA Mystery 9000".into(),
                    ..GpuObserved::default()
                }];
            },
            errors: &[],
            state: UNKNOWN,
            rules: &[DRIVER_KERNEL_MODULE],
            says: &["NVIDIA Mystery 9000", "add the product to the compat data"],
        },
        Case {
            what: "auto: an unparseable architecture from the node falls back on the product table",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Auto),
            node: |o| {
                set_gpus(o, 1, "NVIDIA B200", "???", "x.y");
                o.driver.kernel_module = KernelModule::Proprietary;
            },
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_KERNEL_MODULE],
            says: &["need the open kernel module"],
        },
        Case {
            what: "auto: a failed gpus probe makes the module rule unknown",
            policy: |r| drv(r).kernel_module = Some(KernelModuleRequirement::Auto),
            node: no_edit,
            errors: &[probes::GPUS],
            state: UNKNOWN,
            rules: &[PROBE_ERROR],
            says: &["probe `gpus` failed"],
        },
        // -- driver.unsupportedGpu ---------------------------------------------------------
        Case {
            what: "a V100 on branch 590 is past Volta's last branch",
            policy: |r| {
                drv(r);
            },
            node: |o| {
                set_gpus(o, 8, "Tesla V100-SXM2-16GB", "Volta", "7.0");
                set_driver(o, "590.44.01", Some("13.1"));
                o.driver.kernel_module = KernelModule::Proprietary;
            },
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_UNSUPPORTED_GPU],
            says: &[
                "driver 590.44.01 no longer supports Volta GPUs (Tesla V100-SXM2-16GB); the last branch that does is 580",
            ],
        },
        Case {
            what: "a V100 on 580 is still supported",
            policy: |r| {
                drv(r);
            },
            node: |o| {
                set_gpus(o, 8, "Tesla V100-SXM2-16GB", "Volta", "7.0");
                o.driver.kernel_module = KernelModule::Proprietary;
            },
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "a K80 on 535 is past Kepler's last branch 470",
            policy: |r| cuda(r).min_ceiling = Some("11.0".into()),
            node: |o| {
                set_gpus(o, 2, "Tesla K80", "Kepler", "3.7");
                set_driver(o, "535.216.01", Some("12.2"));
            },
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_UNSUPPORTED_GPU],
            says: &["the last branch that does is 470"],
        },
        // -- cuda.minCeiling --------------------------------------------------------------
        Case {
            what: "a ceiling above the minimum",
            policy: |r| cuda(r).min_ceiling = Some("12.8".into()),
            node: no_edit,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "a ceiling below the minimum names the branch to upgrade to",
            policy: |r| cuda(r).min_ceiling = Some("12.8".into()),
            node: |o| set_driver(o, "550.54.15", Some("12.4")),
            errors: &[],
            state: DRIFT,
            rules: &[CUDA_MIN_CEILING],
            says: &[
                "driver 550.54.15 supports CUDA up to 12.4; the policy needs at least 12.8: upgrade the driver to branch 570 or newer",
            ],
        },
        Case {
            what: "without the node's report the ceiling comes from the compat data",
            policy: |r| cuda(r).min_ceiling = Some("12.5".into()),
            node: |o| set_driver(o, "550.54.15", None),
            errors: &[],
            state: DRIFT,
            rules: &[CUDA_MIN_CEILING],
            says: &["supports CUDA up to 12.4"],
        },
        Case {
            what: "a branch the compat data does not know, with no report, is unknown",
            policy: |r| cuda(r).min_ceiling = Some("12.8".into()),
            node: |o| set_driver(o, "999.1.2", None),
            errors: &[],
            state: UNKNOWN,
            rules: &[CUDA_MIN_CEILING],
            says: &["branch 999 is not in the compat data"],
        },
        Case {
            what: "an unknown branch with the driver's own ceiling report is judged on it",
            policy: |r| cuda(r).min_ceiling = Some("13.0".into()),
            node: |o| set_driver(o, "999.1.2", Some("13.5")),
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "an unparseable reported ceiling falls back on the compat data",
            policy: |r| cuda(r).min_ceiling = Some("13.0".into()),
            node: |o| o.driver.cuda_ceiling = Some("thirteen".into()),
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "a failed cudaCeiling probe makes CUDA rules unknown",
            policy: |r| cuda(r).min_ceiling = Some("12.0".into()),
            node: no_edit,
            errors: &[probes::CUDA_CEILING],
            state: UNKNOWN,
            rules: &[PROBE_ERROR],
            says: &["cuda.minCeiling cannot be checked"],
        },
        // -- cuda.workload -------------------------------------------------------------------
        Case {
            what: "a workload newer than the ceiling (the issue's example message)",
            policy: |r| cuda(r).workloads = vec![workload("trtllm", "12.6", false)],
            node: |o| set_driver(o, "550.54.15", Some("12.4")),
            errors: &[],
            state: DRIFT,
            rules: &[CUDA_WORKLOAD],
            says: &[
                "driver 550.54.15 supports CUDA up to 12.4; workload `trtllm` needs 12.6: upgrade the driver to branch 560 or newer",
            ],
        },
        Case {
            what: "minor-version compatibility runs 12.6 on a 12.4 driver",
            policy: |r| cuda(r).workloads = vec![workload("trtllm", "12.6", true)],
            node: |o| set_driver(o, "550.54.15", Some("12.4")),
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "minor-version compatibility does not cross a CUDA major",
            policy: |r| cuda(r).workloads = vec![workload("sglang", "13.0", true)],
            node: |o| set_driver(o, "550.54.15", Some("12.4")),
            errors: &[],
            state: DRIFT,
            rules: &[CUDA_WORKLOAD],
            says: &[
                "minor-version compatibility only helps within CUDA 13",
                "branch 580",
            ],
        },
        Case {
            what: "a workload at the ceiling runs",
            policy: |r| cuda(r).workloads = vec![workload("vllm", "13.0", false)],
            node: no_edit,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "CUDA 13 no longer supports a V100, whatever the driver",
            policy: |r| cuda(r).workloads = vec![workload("train", "13.0", false)],
            node: |o| {
                set_gpus(o, 8, "Tesla V100-SXM2-16GB", "Volta", "7.0");
                o.driver.kernel_module = KernelModule::Proprietary;
            },
            errors: &[],
            state: DRIFT,
            rules: &[CUDA_WORKLOAD],
            says: &[
                "CUDA 13 does not support Volta GPUs (Tesla V100-SXM2-16GB, compute capability 7.0)",
            ],
        },
        Case {
            what: "CUDA 11 does not support Blackwell",
            policy: |r| cuda(r).workloads = vec![workload("legacy", "11.8", false)],
            node: |o| set_gpus(o, 8, "NVIDIA B200", "Blackwell", "10.0"),
            errors: &[],
            state: DRIFT,
            rules: &[CUDA_WORKLOAD],
            says: &["CUDA 11 does not support Blackwell GPUs"],
        },
        Case {
            what: "one finding per failing workload, passing ones silent",
            policy: |r| {
                cuda(r).workloads = vec![
                    workload("a", "12.8", false),
                    workload("b", "12.2", false),
                    workload("c", "13.0", false),
                ]
            },
            node: |o| set_driver(o, "550.54.15", Some("12.4")),
            errors: &[],
            state: DRIFT,
            rules: &[CUDA_WORKLOAD, CUDA_WORKLOAD],
            says: &["workload `a` needs 12.8", "workload `c` needs 13.0"],
        },
        Case {
            what: "a workload on an unknown branch without a report is unknown",
            policy: |r| cuda(r).workloads = vec![workload("a", "12.8", false)],
            node: |o| set_driver(o, "999.1", None),
            errors: &[],
            state: UNKNOWN,
            rules: &[CUDA_WORKLOAD],
            says: &["workload `a` cannot be checked"],
        },
        // -- toolkit.* --------------------------------------------------------------------------
        Case {
            what: "toolkit required, none installed",
            policy: |r| tk(r).required = true,
            node: |o| o.toolkits.clear(),
            errors: &[],
            state: DRIFT,
            rules: &[TOOLKIT_REQUIRED],
            says: &["no host CUDA toolkit is installed"],
        },
        Case {
            what: "toolkit versions: an installed toolkit outside the list",
            policy: |r| tk(r).versions = vec!["12.*".into()],
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[TOOLKIT_VERSION],
            says: &["host toolkit 13.0 (/usr/local/cuda-13.0) is not allowed"],
        },
        Case {
            what: "toolkit versions: every toolkit listed, one by its full version",
            policy: |r| tk(r).versions = vec!["12.9".into(), "13.0.48".into()],
            node: no_edit,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "a host toolkit newer than the driver's ceiling",
            policy: |r| tk(r).not_newer_than_driver = true,
            node: |o| set_driver(o, "570.124.06", Some("12.8")),
            errors: &[],
            state: DRIFT,
            rules: &[TOOLKIT_NEWER_THAN_DRIVER],
            says: &[
                "host toolkit 12.9 (/usr/local/cuda-12.9), 13.0 (/usr/local/cuda-13.0) is newer than driver 570.124.06 supports (CUDA 12.8)",
                "upgrade the driver to 580.65.06 or newer",
            ],
        },
        Case {
            what: "toolkits at or below the ceiling",
            policy: |r| tk(r).not_newer_than_driver = true,
            node: no_edit,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "a failed toolkits probe makes toolkit rules unknown",
            policy: |r| tk(r).not_newer_than_driver = true,
            node: no_edit,
            errors: &[probes::TOOLKITS],
            state: UNKNOWN,
            rules: &[PROBE_ERROR],
            says: &["toolkit.newerThanDriver cannot be checked"],
        },
        // -- containerToolkit.* ----------------------------------------------------------------
        Case {
            what: "Container Toolkit missing",
            policy: |r| {
                ctk(r);
            },
            node: |o| o.container_toolkit = ContainerToolkitObserved::default(),
            errors: &[],
            state: DRIFT,
            rules: &[CONTAINER_TOOLKIT_PRESENT],
            says: &["not installed", "nvidia-ctk runtime configure"],
        },
        Case {
            what: "Container Toolkit older than the minimum",
            policy: |r| ctk(r).min_version = Some("1.18.0".into()),
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[CONTAINER_TOOLKIT_MIN_VERSION],
            says: &["NVIDIA Container Toolkit 1.17.8 is older than the minimum 1.18.0"],
        },
        Case {
            what: "Container Toolkit installed without a readable version",
            policy: |r| ctk(r).min_version = Some("1.17.0".into()),
            node: |o| o.container_toolkit.version = None,
            errors: &[],
            state: UNKNOWN,
            rules: &[CONTAINER_TOOLKIT_MIN_VERSION],
            says: &["cannot be read"],
        },
        Case {
            what: "Container Toolkit version that does not parse",
            policy: |r| ctk(r).min_version = Some("1.17.0".into()),
            node: |o| o.container_toolkit.version = Some("1.17.8-rc.1".into()),
            errors: &[],
            state: UNKNOWN,
            rules: &[CONTAINER_TOOLKIT_MIN_VERSION],
            says: &["cannot be compared"],
        },
        Case {
            what: "the required engine is not on the node",
            policy: |r| ctk(r).runtime = Some(RuntimeRequirement::Crio),
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[CONTAINER_TOOLKIT_RUNTIME],
            says: &["crio was not found on the node (found: containerd)"],
        },
        Case {
            what: "the engine has no nvidia handler",
            policy: |r| ctk(r).runtime = Some(RuntimeRequirement::Containerd),
            node: |o| o.runtimes[0].nvidia_handler = false,
            errors: &[],
            state: DRIFT,
            rules: &[CONTAINER_TOOLKIT_RUNTIME],
            says: &["nvidia-ctk runtime configure --runtime=containerd"],
        },
        Case {
            what: "any engine: one of two has the handler",
            policy: |r| ctk(r).runtime = Some(RuntimeRequirement::Any),
            node: |o| {
                o.runtimes[0].nvidia_handler = false;
                o.runtimes.push(RuntimeObserved {
                    name: RuntimeName::Docker,
                    config_paths: vec!["/etc/docker/daemon.json".into()],
                    nvidia_handler: true,
                    default_runtime: None,
                    cdi_enabled: false,
                });
            },
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "any engine, and none was found",
            policy: |r| ctk(r).runtime = Some(RuntimeRequirement::Any),
            node: |o| o.runtimes.clear(),
            errors: &[],
            state: DRIFT,
            rules: &[CONTAINER_TOOLKIT_RUNTIME],
            says: &["no container engine configuration"],
        },
        Case {
            what: "nvidia is not the default runtime",
            policy: |r| ctk(r).require_default_runtime = true,
            node: |o| o.runtimes[0].default_runtime = Some("runc".into()),
            errors: &[],
            state: DRIFT,
            rules: &[CONTAINER_TOOLKIT_DEFAULT_RUNTIME],
            says: &["containerd default runc", "--set-as-default"],
        },
        Case {
            what: "CDI disabled in the engine",
            policy: |r| ctk(r).require_cdi = true,
            node: |o| o.runtimes[0].cdi_enabled = false,
            errors: &[],
            state: DRIFT,
            rules: &[CONTAINER_TOOLKIT_CDI],
            says: &["CDI is not enabled in containerd"],
        },
        Case {
            what: "a failed runtimes probe makes engine rules unknown",
            policy: |r| ctk(r).runtime = Some(RuntimeRequirement::Containerd),
            node: no_edit,
            errors: &[probes::RUNTIMES],
            state: UNKNOWN,
            rules: &[PROBE_ERROR],
            says: &["containerToolkit.runtime cannot be checked"],
        },
        // -- cdi.* ------------------------------------------------------------------------------
        Case {
            what: "no CDI spec at all",
            policy: |r| cdi(r).required = true,
            node: |o| o.cdi.specs.clear(),
            errors: &[],
            state: DRIFT,
            rules: &[CDI_REQUIRED],
            says: &["nvidia-ctk cdi generate"],
        },
        Case {
            what: "only a GPU Operator management spec is not a spec for nvidia.com/gpu",
            policy: |r| cdi(r).required = true,
            node: |o| o.cdi.specs[0].kind = Some("management.nvidia.com/gpu".into()),
            errors: &[],
            state: DRIFT,
            rules: &[CDI_REQUIRED],
            says: &["no CDI spec for nvidia.com/gpu"],
        },
        Case {
            what: "a spec the agent marked stale",
            policy: |r| cdi(r).require_fresh = true,
            node: |o| {
                o.cdi.specs[0].stale = true;
                o.cdi.specs[0].problems = vec![
                    "hostPath /usr/lib/x86_64-linux-gnu/libcuda.so.570.124.06 does not exist"
                        .into(),
                ];
            },
            errors: &[],
            state: DRIFT,
            rules: &[CDI_STALE],
            says: &[
                "/var/run/cdi/nvidia.yaml",
                "libcuda.so.570.124.06 does not exist",
            ],
        },
        Case {
            what: "a spec referencing another driver is stale even unflagged",
            policy: |r| cdi(r).require_fresh = true,
            node: |o| o.cdi.specs[0].driver_versions = vec!["570.124.06".into()],
            errors: &[],
            state: DRIFT,
            rules: &[CDI_STALE],
            says: &["references driver 570.124.06, the loaded driver is 580.95.05"],
        },
        Case {
            what: "requireFresh with no specs at all is fine (fresh where present)",
            policy: |r| cdi(r).require_fresh = true,
            node: |o| o.cdi.specs.clear(),
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        // -- kernel, os, secureBoot -------------------------------------------------------------
        Case {
            what: "kernel outside the globs",
            policy: |r| {
                r.kernel = Some(KernelRequirements {
                    versions: vec!["6.8.0-*-generic".into()],
                })
            },
            node: |o| o.kernel.release = Some("6.5.0-1024-nvidia".into()),
            errors: &[],
            state: DRIFT,
            rules: &[KERNEL_VERSION],
            says: &["kernel 6.5.0-1024-nvidia is not allowed"],
        },
        Case {
            what: "kernel release unreadable",
            policy: |r| {
                r.kernel = Some(KernelRequirements {
                    versions: vec!["*".into()],
                })
            },
            node: |o| o.kernel.release = None,
            errors: &[],
            state: UNKNOWN,
            rules: &[KERNEL_VERSION],
            says: &["cannot be read"],
        },
        Case {
            what: "OS id not allowed",
            policy: |r| {
                r.os = Some(OsRequirements {
                    ids: vec!["rhel".into(), "rocky".into()],
                    versions: vec![],
                })
            },
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[OS_VERSION],
            says: &["the OS is ubuntu 24.04, which is not allowed (id rhel or rocky)"],
        },
        Case {
            what: "OS version not allowed; versions match as written",
            policy: |r| {
                r.os = Some(OsRequirements {
                    ids: vec!["Ubuntu".into()],
                    versions: vec!["22.04".into(), "24.4".into()],
                })
            },
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[OS_VERSION],
            says: &["VERSION_ID 22.04 or 24.4"],
        },
        Case {
            what: "OS version pattern",
            policy: |r| {
                r.os = Some(OsRequirements {
                    ids: vec![],
                    versions: vec!["24.*".into()],
                })
            },
            node: no_edit,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "OS unreadable",
            policy: |r| {
                r.os = Some(OsRequirements {
                    ids: vec!["ubuntu".into()],
                    versions: vec![],
                })
            },
            node: |o| o.os = OsObserved::default(),
            errors: &[],
            state: UNKNOWN,
            rules: &[OS_VERSION],
            says: &["/etc/os-release"],
        },
        Case {
            what: "Secure Boot required but off",
            policy: |r| r.secure_boot = Some(SecureBootRequirement::Required),
            node: |o| o.kernel.secure_boot = Some(false),
            errors: &[],
            state: DRIFT,
            rules: &[SECURE_BOOT],
            says: &["Secure Boot is off but the policy requires it"],
        },
        Case {
            what: "Secure Boot required on a BIOS-booted node",
            policy: |r| r.secure_boot = Some(SecureBootRequirement::Required),
            node: |o| o.kernel.secure_boot = None,
            errors: &[],
            state: DRIFT,
            rules: &[SECURE_BOOT],
            says: &["not UEFI or unreadable"],
        },
        Case {
            what: "Secure Boot must be off and is on",
            policy: |r| r.secure_boot = Some(SecureBootRequirement::Disabled),
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[SECURE_BOOT],
            says: &["requires it off"],
        },
        Case {
            what: "Secure Boot disabled is satisfied by a BIOS boot",
            policy: |r| r.secure_boot = Some(SecureBootRequirement::Disabled),
            node: |o| o.kernel.secure_boot = None,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        // -- fabricManager -----------------------------------------------------------------------
        Case {
            what: "NVSwitches present, Fabric Manager missing",
            policy: |r| r.fabric_manager = Some(FabricManagerRequirement::Auto),
            node: |o| {
                o.fabric_manager.installed = false;
                o.fabric_manager.version = None;
                o.fabric_manager.matches_driver = None;
            },
            errors: &[],
            state: DRIFT,
            rules: &[FABRIC_MANAGER],
            says: &[
                "NVSwitches are present but Fabric Manager is not installed",
                "580",
            ],
        },
        Case {
            what: "Fabric Manager at another version than the driver",
            policy: |r| r.fabric_manager = Some(FabricManagerRequirement::Auto),
            node: |o| {
                o.fabric_manager.version = Some("580.82.07".into());
                o.fabric_manager.matches_driver = Some(false);
            },
            errors: &[],
            state: DRIFT,
            rules: &[FABRIC_MANAGER],
            says: &["Fabric Manager 580.82.07 does not match the loaded driver 580.95.05"],
        },
        Case {
            what: "auto without NVSwitches needs no Fabric Manager",
            policy: |r| r.fabric_manager = Some(FabricManagerRequirement::Auto),
            node: |o| o.fabric_manager = FabricManagerObserved::default(),
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "required on a node without NVSwitches",
            policy: |r| r.fabric_manager = Some(FabricManagerRequirement::Required),
            node: |o| o.fabric_manager = FabricManagerObserved::default(),
            errors: &[],
            state: DRIFT,
            rules: &[FABRIC_MANAGER],
            says: &["the policy requires it but Fabric Manager is not installed"],
        },
        Case {
            what: "Fabric Manager version unknown and no agent judgement",
            policy: |r| r.fabric_manager = Some(FabricManagerRequirement::Auto),
            node: |o| {
                o.fabric_manager.version = None;
                o.fabric_manager.matches_driver = None;
            },
            errors: &[],
            state: UNKNOWN,
            rules: &[FABRIC_MANAGER],
            says: &["cannot tell whether Fabric Manager's version matches"],
        },
        Case {
            what: "ignore checks nothing",
            policy: |r| r.fabric_manager = Some(FabricManagerRequirement::Ignore),
            node: |o| o.fabric_manager.installed = false,
            errors: &[],
            state: OK,
            rules: &[],
            says: &[],
        },
        // -- states combined ---------------------------------------------------------------------
        Case {
            what: "known drift wins over an unknown elsewhere",
            policy: |r| {
                drv(r).versions = vec!["570.*".into()];
                r.os = Some(OsRequirements {
                    ids: vec!["ubuntu".into()],
                    versions: vec![],
                });
            },
            node: no_edit,
            errors: &[probes::OS],
            state: DRIFT,
            rules: &[DRIVER_VERSION, PROBE_ERROR],
            says: &["os.version cannot be checked"],
        },
        Case {
            what: "a failed probe no rule needs does not matter",
            policy: |r| drv(r).versions = vec!["580.*".into()],
            node: no_edit,
            errors: &[probes::NVML, probes::OS],
            state: OK,
            rules: &[],
            says: &[],
        },
        Case {
            what: "findings come in rule order",
            policy: |r| {
                r.secure_boot = Some(SecureBootRequirement::Disabled);
                drv(r).branches = vec![570];
                cuda(r).min_ceiling = Some("13.1".into());
            },
            node: no_edit,
            errors: &[],
            state: DRIFT,
            rules: &[DRIVER_VERSION, CUDA_MIN_CEILING, SECURE_BOOT],
            says: &["upgrade the driver to branch 590 or newer"],
        },
    ]
}

#[test]
fn every_rule_case() {
    let compat = CompatDb::embedded();
    let cases = cases();
    assert!(cases.len() >= 80, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let mut requirements = Requirements::default();
        (case.policy)(&mut requirements);
        let mut observed = h100_node();
        (case.node)(&mut observed);
        let policy = policy_with(requirements);
        let verdict = evaluate_host(
            &policy,
            &observed,
            &probes_with_errors(case.errors),
            now(),
            compat,
        );
        let rules: Vec<&str> = verdict.findings.iter().map(|f| f.rule.as_str()).collect();
        let messages: Vec<&str> = verdict
            .findings
            .iter()
            .map(|f| f.message.as_str())
            .collect();
        let mut problems = Vec::new();
        if verdict.state != case.state {
            problems.push(format!("state {:?}, want {:?}", verdict.state, case.state));
        }
        if rules != case.rules {
            problems.push(format!("rules {rules:?}, want {:?}", case.rules));
        }
        for text in case.says {
            if !messages.iter().any(|m| m.contains(text)) {
                problems.push(format!("no message says {text:?}"));
            }
        }
        for f in &verdict.findings {
            if f.message.is_empty() || f.message.ends_with('.') {
                problems.push(format!("message style: {:?}", f.message));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}:\n    {}\n    findings: {messages:#?}",
                case.what,
                problems.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_requirement_rule_has_a_failing_case() {
    let covered: BTreeSet<&str> = cases()
        .iter()
        .flat_map(|c| c.rules.iter().copied())
        .collect();
    // Rules produced outside requirements are covered in tests/evaluate.rs.
    let elsewhere = [UNIFORMITY, HEARTBEAT_STALE, BASELINE_MISSING];
    for rule in ALL {
        assert!(
            covered.contains(rule) || elsewhere.contains(rule),
            "no table case produces {rule}"
        );
    }
}

#[test]
fn drifting_findings_carry_expected_and_observed() {
    let compat = CompatDb::embedded();
    let mut requirements = Requirements::default();
    cuda(&mut requirements).workloads = vec![workload("trtllm", "12.6", false)];
    let mut observed = h100_node();
    set_driver(&mut observed, "550.54.15", Some("12.4"));
    let verdict = evaluate_host(
        &policy_with(requirements),
        &observed,
        &probes_with_errors(&[]),
        now(),
        compat,
    );
    let f = &verdict.findings[0];
    assert_eq!(
        f.expected.as_deref(),
        Some("workload trtllm runs (CUDA 12.6)")
    );
    assert_eq!(f.observed.as_deref(), Some("ceiling 12.4"));
    assert_eq!(verdict.policy.as_deref(), Some("gpu-baseline"));
}
