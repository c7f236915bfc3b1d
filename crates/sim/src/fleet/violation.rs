//! What a simulated host was built to get wrong, and which policy rule
//! each mistake trips.
//!
//! Every violation has one rule it exists to trip, and says whether a
//! policy's requirements check that rule at all: a stale CDI spec under a
//! policy without `cdi.requireFresh` is a real problem nobody is looking
//! for, and the node is compliant. A scenario states what "converged as
//! expected" means from this: the governing policy's verdict on each node
//! holds exactly the rules its checked violations trip (and maybe more, as
//! a consequence: a module that did not reload also breaks uniformity).

use std::collections::BTreeSet;

use jiff::Timestamp;
use plumbline_api::keys::rules;
use plumbline_api::{
    FabricManagerRequirement, KernelModuleRequirement, Requirements, RuntimeRequirement,
};
use plumbline_compat::{CudaVersion, DriverVersion};

use super::catalog::Flavour;
use super::host::HostSpec;

/// The kinds of mistakes the generator makes, in the order pools list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViolationKind {
    PendingReboot,
    StaleCdi,
    LostNvidiaHandler,
    ToolkitNewerThanDriver,
    ModuleFlavour,
    OutdatedDriver,
    FabricManagerMismatch,
    LowCudaCeiling,
    UnsupportedGpu,
}

impl ViolationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::PendingReboot => "pending-reboot",
            ViolationKind::StaleCdi => "stale-cdi",
            ViolationKind::LostNvidiaHandler => "lost-nvidia-handler",
            ViolationKind::ToolkitNewerThanDriver => "toolkit-newer-than-driver",
            ViolationKind::ModuleFlavour => "module-flavour",
            ViolationKind::OutdatedDriver => "outdated-driver",
            ViolationKind::FabricManagerMismatch => "fabric-manager-mismatch",
            ViolationKind::LowCudaCeiling => "low-cuda-ceiling",
            ViolationKind::UnsupportedGpu => "unsupported-gpu",
        }
    }
}

/// One thing a host was built to get wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// New userspace libraries installed, the old module still loaded.
    PendingReboot { loaded: String, installed: String },
    /// A CDI spec that no longer matches the host.
    StaleCdi { path: String, why: String },
    /// The engine no longer has the `nvidia` runtime handler.
    LostNvidiaHandler { engine: &'static str, why: String },
    /// A host toolkit above the driver's CUDA ceiling.
    ToolkitNewerThanDriver {
        toolkit: &'static str,
        ceiling: String,
    },
    /// A module flavour the GPUs (or the pool's baseline) do not use.
    ModuleFlavour {
        loaded: Flavour,
        /// What the GPUs can only run with, if they have no choice.
        needs: Option<Flavour>,
    },
    /// An older driver build than the pool's.
    OutdatedDriver { version: String, baseline: String },
    /// Fabric Manager at another version than the driver.
    FabricManagerMismatch {
        fabric_manager: String,
        driver: String,
    },
    /// A driver whose CUDA ceiling is below what the pool needs.
    LowCudaCeiling { driver: String, ceiling: String },
    /// A driver branch newer than the last one supporting the GPUs.
    UnsupportedGpu {
        driver: String,
        architecture: &'static str,
    },
}

impl Violation {
    pub fn kind(&self) -> ViolationKind {
        match self {
            Violation::PendingReboot { .. } => ViolationKind::PendingReboot,
            Violation::StaleCdi { .. } => ViolationKind::StaleCdi,
            Violation::LostNvidiaHandler { .. } => ViolationKind::LostNvidiaHandler,
            Violation::ToolkitNewerThanDriver { .. } => ViolationKind::ToolkitNewerThanDriver,
            Violation::ModuleFlavour { .. } => ViolationKind::ModuleFlavour,
            Violation::OutdatedDriver { .. } => ViolationKind::OutdatedDriver,
            Violation::FabricManagerMismatch { .. } => ViolationKind::FabricManagerMismatch,
            Violation::LowCudaCeiling { .. } => ViolationKind::LowCudaCeiling,
            Violation::UnsupportedGpu { .. } => ViolationKind::UnsupportedGpu,
        }
    }

    /// The policy rule (from `plumbline_api::keys::rules`) it trips.
    pub fn rule(&self) -> &'static str {
        match self {
            Violation::PendingReboot { .. } => rules::DRIVER_MISMATCH,
            Violation::StaleCdi { .. } => rules::CDI_STALE,
            Violation::LostNvidiaHandler { .. } => rules::CONTAINER_TOOLKIT_RUNTIME,
            Violation::ToolkitNewerThanDriver { .. } => rules::TOOLKIT_NEWER_THAN_DRIVER,
            Violation::ModuleFlavour { .. } => rules::DRIVER_KERNEL_MODULE,
            Violation::OutdatedDriver { .. } => rules::DRIVER_VERSION,
            Violation::FabricManagerMismatch { .. } => rules::FABRIC_MANAGER,
            Violation::LowCudaCeiling { .. } => rules::CUDA_MIN_CEILING,
            Violation::UnsupportedGpu { .. } => rules::DRIVER_UNSUPPORTED_GPU,
        }
    }

    /// Whether a policy with these requirements checks the rule this
    /// violation trips (so the node must drift under it).
    pub fn checked_by(&self, req: &Requirements, now: Timestamp) -> bool {
        let driver = req.driver.as_ref();
        match self {
            Violation::PendingReboot { .. } => driver.is_some_and(|d| !d.allow_mismatch),
            Violation::StaleCdi { .. } => req.cdi.as_ref().is_some_and(|c| c.require_fresh),
            Violation::LostNvidiaHandler { engine, .. } => req
                .container_toolkit
                .as_ref()
                .and_then(|c| c.runtime)
                .is_some_and(|r| match r {
                    RuntimeRequirement::Any => true,
                    RuntimeRequirement::Containerd => *engine == "containerd",
                    RuntimeRequirement::Docker => *engine == "docker",
                    RuntimeRequirement::Crio => *engine == "crio",
                }),
            Violation::ToolkitNewerThanDriver { .. } => req
                .toolkit
                .as_ref()
                .is_some_and(|t| t.not_newer_than_driver),
            Violation::ModuleFlavour { loaded, needs } => {
                match driver.and_then(|d| d.kernel_module) {
                    Some(KernelModuleRequirement::Open) => *loaded != Flavour::Open,
                    Some(KernelModuleRequirement::Proprietary) => *loaded != Flavour::Proprietary,
                    Some(KernelModuleRequirement::Auto) => needs.is_some_and(|n| n != *loaded),
                    Some(KernelModuleRequirement::Any) | None => false,
                }
            }
            Violation::OutdatedDriver { version, .. } => driver_version_fails(req, version, now),
            Violation::FabricManagerMismatch { .. } => matches!(
                req.fabric_manager,
                Some(FabricManagerRequirement::Auto | FabricManagerRequirement::Required)
            ),
            Violation::LowCudaCeiling { ceiling, .. } => req
                .cuda
                .as_ref()
                .and_then(|c| c.min_ceiling.as_deref())
                .and_then(|m| CudaVersion::parse(m).ok())
                .zip(CudaVersion::parse(ceiling).ok())
                .is_some_and(|(min, have)| have < min),
            Violation::UnsupportedGpu { .. } => driver.is_some() || req.cuda.is_some(),
        }
    }

    /// One line for people: what is wrong on the host.
    pub fn describe(&self) -> String {
        match self {
            Violation::PendingReboot { loaded, installed } => format!(
                "driver {installed} installed, module {loaded} still loaded: reboot pending"
            ),
            Violation::StaleCdi { path, why } => format!("CDI spec {path} is stale: {why}"),
            Violation::LostNvidiaHandler { engine, why } => {
                format!("{engine} lost its nvidia runtime handler: {why}")
            }
            Violation::ToolkitNewerThanDriver { toolkit, ceiling } => {
                format!("host toolkit CUDA {toolkit} is newer than the driver's ceiling {ceiling}")
            }
            Violation::ModuleFlavour { loaded, needs } => match needs {
                Some(n) => format!(
                    "{} kernel module loaded on GPUs that need the {} one",
                    loaded.as_str(),
                    n.as_str()
                ),
                None => {
                    let pool = match loaded {
                        Flavour::Open => Flavour::Proprietary,
                        Flavour::Proprietary => Flavour::Open,
                    };
                    format!(
                        "{} kernel module loaded; the pool runs the {} one",
                        loaded.as_str(),
                        pool.as_str()
                    )
                }
            },
            Violation::OutdatedDriver { version, baseline } => {
                format!("driver {version} is older than the pool's {baseline}")
            }
            Violation::FabricManagerMismatch {
                fabric_manager,
                driver,
            } => format!("Fabric Manager {fabric_manager} does not match driver {driver}"),
            Violation::LowCudaCeiling { driver, ceiling } => {
                format!("driver {driver} supports CUDA only up to {ceiling}")
            }
            Violation::UnsupportedGpu {
                driver,
                architecture,
            } => format!("driver {driver} no longer supports {architecture} GPUs"),
        }
    }
}

/// The rules a policy with `req` must report on a host built with these
/// violations: those its requirements check, and `driver.version` when the
/// loaded driver is outside the policy's versions (a property of the
/// policy as much as of the host: a fleet-wide pin drifts every node not on
/// it).
pub fn expected_rules(
    violations: &[Violation],
    host: &HostSpec,
    req: &Requirements,
    now: Timestamp,
) -> BTreeSet<&'static str> {
    let mut out: BTreeSet<&'static str> = violations
        .iter()
        .filter(|v| v.checked_by(req, now))
        .map(Violation::rule)
        .collect();
    if driver_version_fails(req, &host.module, now) {
        out.insert(rules::DRIVER_VERSION);
    }
    out
}

/// Whether the loaded driver `version` is outside the policy's
/// `driver.versions`, `branches` and `minVersion`, and not let in by an
/// open upgrade window (docs/policy.md, "Version patterns" and "Upgrade
/// windows").
pub fn driver_version_fails(req: &Requirements, version: &str, now: Timestamp) -> bool {
    let Some(d) = &req.driver else {
        return false;
    };
    if d.versions.is_empty() && d.branches.is_empty() && d.min_version.is_none() {
        return false;
    }
    let Ok(v) = DriverVersion::parse(version) else {
        return false;
    };
    let window_allows = req.upgrade_window.as_ref().is_some_and(|w| {
        w.until.0 > now && w.driver_versions.iter().any(|p| pattern_matches(p, &v))
    });
    if window_allows {
        return false;
    }
    let versions_ok = d.versions.is_empty() || d.versions.iter().any(|p| pattern_matches(p, &v));
    let branch_ok = d.branches.is_empty() || d.branches.contains(&v.branch());
    let min_ok = d
        .min_version
        .as_deref()
        .and_then(|m| DriverVersion::parse(m).ok())
        .is_none_or(|m| v >= m);
    !(versions_ok && branch_ok && min_ok)
}

/// A version pattern: dotted parts, each a number or `*`; an inner `*` is
/// one part, a trailing `*` one or more.
fn pattern_matches(pattern: &str, version: &DriverVersion) -> bool {
    let pat: Vec<&str> = pattern.split('.').collect();
    let parts = version.parts();
    let trailing = pat.last() == Some(&"*");
    let fits = if trailing {
        parts.len() >= pat.len()
    } else {
        parts.len() == pat.len()
    };
    fits && pat
        .iter()
        .zip(parts)
        .all(|(p, n)| *p == "*" || p.parse::<u32>().ok() == Some(*n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Requirements {
        serde_saphyr::from_str(yaml).expect("requirements parse")
    }

    fn now() -> Timestamp {
        "2026-11-22T00:00:00Z".parse().expect("time parses")
    }

    #[test]
    fn patterns_follow_the_policy_reference() {
        let v = |s: &str| DriverVersion::parse(s).expect("version parses");
        assert!(pattern_matches("595.*", &v("595.58.03")));
        assert!(pattern_matches("595.*", &v("595.58")));
        assert!(!pattern_matches("595.*", &v("580.95.05")));
        assert!(pattern_matches("580.*.05", &v("580.95.05")));
        assert!(!pattern_matches("580.95", &v("580.95.05")));
        assert!(pattern_matches("580.95.5", &v("580.95.05")));
    }

    #[test]
    fn driver_versions_with_minimum_branches_and_window() {
        let pin = parse("driver: {branches: [580], minVersion: \"580.95.05\"}");
        assert!(!driver_version_fails(&pin, "580.95.05", now()));
        assert!(!driver_version_fails(&pin, "580.105.08", now()));
        assert!(driver_version_fails(&pin, "580.82.07", now()));
        assert!(driver_version_fails(&pin, "595.58.03", now()));
        let rollout = parse(
            "driver: {versions: [\"595.*\"]}\nupgradeWindow: {driverVersions: [\"580.95.05\"], until: \"2027-01-15T00:00:00Z\"}",
        );
        assert!(!driver_version_fails(&rollout, "580.95.05", now()));
        assert!(!driver_version_fails(&rollout, "595.58.03", now()));
        assert!(driver_version_fails(&rollout, "570.172.08", now()));
        let after: Timestamp = "2027-02-01T00:00:00Z".parse().expect("time parses");
        assert!(driver_version_fails(&rollout, "580.95.05", after));
        assert!(!driver_version_fails(
            &parse("driver: {kernelModule: auto}"),
            "1.0",
            now()
        ));
    }

    #[test]
    fn each_violation_is_checked_only_by_the_requirement_that_covers_it() {
        let flavour = parse("driver: {kernelModule: auto}\nfabricManager: auto");
        let open = parse("driver: {kernelModule: open}");
        let inference = parse(
            "cuda: {minCeiling: \"12.8\"}\ntoolkit: {notNewerThanDriver: true}\ncontainerToolkit: {runtime: containerd}\ncdi: {requireFresh: true}",
        );
        let reboot = Violation::PendingReboot {
            loaded: "580.82.07".into(),
            installed: "580.95.05".into(),
        };
        assert!(reboot.checked_by(&flavour, now()));
        assert!(!reboot.checked_by(&inference, now()));
        let proprietary_h100 = Violation::ModuleFlavour {
            loaded: Flavour::Proprietary,
            needs: None,
        };
        assert!(!proprietary_h100.checked_by(&flavour, now()));
        assert!(proprietary_h100.checked_by(&open, now()));
        let open_v100 = Violation::ModuleFlavour {
            loaded: Flavour::Open,
            needs: Some(Flavour::Proprietary),
        };
        assert!(open_v100.checked_by(&flavour, now()));
        let stale = Violation::StaleCdi {
            path: "/var/run/cdi/nvidia.yaml".into(),
            why: "generated for 570.133.20".into(),
        };
        assert!(stale.checked_by(&inference, now()));
        assert!(!stale.checked_by(&flavour, now()));
        let lost = |engine| Violation::LostNvidiaHandler {
            engine,
            why: "main file replaced".into(),
        };
        assert!(lost("containerd").checked_by(&inference, now()));
        assert!(!lost("docker").checked_by(&inference, now()));
        let low = Violation::LowCudaCeiling {
            driver: "550.163.01".into(),
            ceiling: "12.4".into(),
        };
        assert!(low.checked_by(&inference, now()));
        assert!(!low.checked_by(&flavour, now()));
        let fm = Violation::FabricManagerMismatch {
            fabric_manager: "580.82.07".into(),
            driver: "580.95.05".into(),
        };
        assert!(fm.checked_by(&flavour, now()));
        assert!(!fm.checked_by(&open, now()));
        let newer = Violation::ToolkitNewerThanDriver {
            toolkit: "13.0",
            ceiling: "12.8".into(),
        };
        assert!(newer.checked_by(&inference, now()));
        assert!(!newer.checked_by(&flavour, now()));
        let unsupported = Violation::UnsupportedGpu {
            driver: "590.48.01".into(),
            architecture: "Volta",
        };
        assert!(unsupported.checked_by(&flavour, now()));
        assert!(!unsupported.checked_by(&parse("cdi: {required: true}"), now()));
    }
}
