//! The generator against the real probes: every generated host, written to
//! disk and read by `plumbline_probe::probe_host`, must report exactly the
//! stack the generator meant.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use plumbline_api::{KernelModule, Observed, ProbeResult, ProbeStatus, RuntimeName};
use plumbline_probe::{HostRoot, Options, probe_host};

use super::*;

fn probe(root: &Path) -> (Observed, Vec<ProbeResult>) {
    let host = HostRoot::new(root).expect("host root opens");
    let options = Options {
        nvml: false,
        ..Options::default()
    };
    probe_host(&host, &options)
}

/// A scratch directory, in memory where possible: these tests write a few
/// hundred host trees, and removing them from a disk mounted with
/// `discard` takes minutes.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("temp dir")
}

/// Asserts that what the probes read from `root` is what `spec` says.
fn assert_reads_as_built(name: &str, spec: &HostSpec, root: &Path) {
    let (observed, results) = probe(root);
    for r in &results {
        assert_ne!(
            r.status,
            ProbeStatus::Error,
            "{name}: probe {} failed: {:?}",
            r.name,
            r.message
        );
    }
    let d = &observed.driver;
    assert!(d.loaded, "{name}: module loaded");
    assert_eq!(
        d.version.as_deref(),
        Some(spec.module.as_str()),
        "{name}: module"
    );
    assert_eq!(
        d.userspace_version.as_deref(),
        Some(spec.userspace.as_str()),
        "{name}: userspace"
    );
    assert_eq!(d.mismatch, spec.mismatch(), "{name}: mismatch");
    let flavour = match spec.flavour {
        Flavour::Open => KernelModule::Open,
        Flavour::Proprietary => KernelModule::Proprietary,
    };
    assert_eq!(d.kernel_module, flavour, "{name}: flavour");
    assert_eq!(
        d.cuda_ceiling,
        spec.cuda_ceiling().map(|c| c.to_string()),
        "{name}: ceiling"
    );

    assert_eq!(observed.gpus.len(), spec.gpus.len(), "{name}: GPU count");
    for (seen, built) in observed.gpus.iter().zip(&spec.gpus) {
        assert_eq!(seen.index, built.index, "{name}: GPU index");
        assert_eq!(seen.pci_bus_id, built.bus_id, "{name}: bus id");
        assert_eq!(
            seen.uuid.as_deref(),
            Some(built.uuid.as_str()),
            "{name}: uuid"
        );
        assert_eq!(seen.product, spec.gpu.product, "{name}: product");
        assert_eq!(
            seen.architecture.as_deref(),
            Some(spec.gpu.architecture),
            "{name}: architecture"
        );
    }

    let toolkits: BTreeSet<&str> = observed
        .toolkits
        .iter()
        .map(|t| t.version.as_str())
        .collect();
    let built: BTreeSet<&str> = spec.toolkits.iter().map(|t| t.version).collect();
    assert_eq!(toolkits, built, "{name}: toolkits");
    let default = observed
        .toolkits
        .iter()
        .find(|t| t.default)
        .map(|t| t.version.as_str());
    assert_eq!(default, spec.default_toolkit, "{name}: default toolkit");
    for t in &observed.toolkits {
        let full = spec
            .toolkits
            .iter()
            .find(|b| b.version == t.version)
            .map(|b| b.full);
        assert_eq!(
            t.full_version.as_deref(),
            full,
            "{name}: toolkit full version"
        );
    }

    let ctk = &observed.container_toolkit;
    assert!(ctk.installed, "{name}: CTK installed");
    assert_eq!(
        ctk.version.as_deref(),
        Some(spec.container_toolkit.as_str()),
        "{name}: CTK version"
    );

    let engine = match spec.runtime.engine() {
        "docker" => RuntimeName::Docker,
        "crio" => RuntimeName::Crio,
        _ => RuntimeName::Containerd,
    };
    let runtime = observed
        .runtimes
        .iter()
        .find(|r| r.name == engine)
        .unwrap_or_else(|| panic!("{name}: no {engine:?} runtime in {:?}", observed.runtimes));
    assert_eq!(
        runtime.nvidia_handler,
        spec.runtime.nvidia_handler(),
        "{name}: handler"
    );
    assert_eq!(
        runtime.default_runtime.as_deref(),
        Some(spec.runtime.default_runtime()),
        "{name}: default runtime"
    );
    assert_eq!(
        runtime.cdi_enabled,
        spec.runtime.cdi_enabled(),
        "{name}: CDI on"
    );

    let specs: BTreeMap<&str, bool> = observed
        .cdi
        .specs
        .iter()
        .map(|s| (s.path.as_str(), s.stale))
        .collect();
    let built: BTreeMap<String, bool> = spec
        .cdi
        .iter()
        .map(|s| (s.path(), spec.cdi_stale(s)))
        .collect();
    let built: BTreeMap<&str, bool> = built.iter().map(|(p, s)| (p.as_str(), *s)).collect();
    assert_eq!(specs, built, "{name}: CDI specs and staleness");

    assert_eq!(
        observed.kernel.release.as_deref(),
        Some(spec.kernel_release.as_str()),
        "{name}: kernel"
    );
    assert_eq!(
        observed.kernel.secure_boot, spec.secure_boot,
        "{name}: Secure Boot"
    );
    assert_eq!(observed.os.id.as_deref(), Some(spec.os.id), "{name}: OS id");
    assert_eq!(
        observed.os.version_id.as_deref(),
        Some(spec.os.version_id),
        "{name}: OS version"
    );

    let fm = &observed.fabric_manager;
    assert_eq!(fm.required, spec.nvswitches > 0, "{name}: FM required");
    assert_eq!(
        fm.installed,
        spec.fabric_manager.is_some(),
        "{name}: FM installed"
    );
    assert_eq!(
        fm.version.as_deref(),
        spec.fabric_manager_seen(),
        "{name}: FM version"
    );
    if let Some(version) = spec.fabric_manager_seen() {
        assert_eq!(
            fm.matches_driver,
            Some(version == spec.module),
            "{name}: FM matches"
        );
    }
}

/// Every entry under `root`: file contents, link targets, directories.
fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        for entry in std::fs::read_dir(dir).expect("dir readable") {
            let path = entry.expect("dir entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                out.insert(rel, Entry::Link(target.to_string_lossy().into_owned()));
            } else if meta.is_dir() {
                out.insert(rel, Entry::Dir);
                walk(root, &path, out);
            } else {
                out.insert(rel, Entry::File(std::fs::read(&path).expect("read")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn every_generated_host_reads_back_as_built() {
    for spec in [
        FleetSpec {
            nodes: 60,
            seed: 11,
            profile: Profile::Mixed,
            violation_percent: 30,
        },
        FleetSpec {
            nodes: 12,
            seed: 5,
            profile: Profile::Rollout,
            violation_percent: 0,
        },
    ] {
        let fleet = generate(&spec);
        assert_eq!(fleet.len(), spec.nodes);
        let dir = scratch();
        for node in &fleet {
            let root = dir.path().join(&node.name);
            write_tree(&root, &node.host.files()).expect("host written");
            assert_reads_as_built(&node.name, &node.host, &root);
        }
    }
}

#[test]
fn the_same_seed_builds_the_same_fleet() {
    let spec = FleetSpec {
        nodes: 40,
        seed: 3,
        profile: Profile::Mixed,
        violation_percent: 30,
    };
    let a = generate(&spec);
    let b = generate(&spec);
    assert_eq!(a, b);
    let files = |f: &[GeneratedNode]| f.iter().map(|n| n.host.files()).collect::<Vec<_>>();
    assert_eq!(files(&a), files(&b));
    let c = generate(&FleetSpec { seed: 4, ..spec });
    assert_ne!(
        a.iter().map(|n| &n.host.gpus).collect::<Vec<_>>(),
        c.iter().map(|n| &n.host.gpus).collect::<Vec<_>>()
    );
}

#[test]
fn a_mixed_fleet_of_fifty_carries_every_kind_of_stack_and_mistake() {
    let fleet = generate(&FleetSpec {
        nodes: 50,
        seed: 1,
        profile: Profile::Mixed,
        violation_percent: 30,
    });
    let kinds: BTreeSet<ViolationKind> = fleet
        .iter()
        .flat_map(|n| n.violations.iter().map(Violation::kind))
        .collect();
    for want in [
        ViolationKind::PendingReboot,
        ViolationKind::StaleCdi,
        ViolationKind::LostNvidiaHandler,
        ViolationKind::ToolkitNewerThanDriver,
        ViolationKind::ModuleFlavour,
        ViolationKind::FabricManagerMismatch,
    ] {
        assert!(kinds.contains(&want), "no {want:?} in {kinds:?}");
    }
    let products: BTreeSet<&str> = fleet.iter().map(|n| n.host.gpu.product).collect();
    assert!(products.len() >= 6, "{products:?}");
    let branches: BTreeSet<&str> = fleet
        .iter()
        .filter_map(|n| n.host.module.split('.').next())
        .collect();
    assert!(branches.len() >= 5, "{branches:?}");
    let flavours: BTreeSet<&str> = fleet.iter().map(|n| n.host.flavour.as_str()).collect();
    assert_eq!(flavours.len(), 2);
    // The baseline stays every pool's majority, so uniformity rules judge
    // the broken nodes and never the healthy ones.
    for pool in fleet.iter().map(|n| n.pool).collect::<BTreeSet<_>>() {
        let members: Vec<_> = fleet.iter().filter(|n| n.pool == pool).collect();
        let broken = members.iter().filter(|n| !n.violations.is_empty()).count();
        assert!(
            broken * 2 < members.len().max(1),
            "{pool:?}: {broken} of {}",
            members.len()
        );
    }
    let names: BTreeSet<&str> = fleet.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names.len(), fleet.len(), "node names are unique");
}

#[test]
fn changes_are_written_as_differences_that_read_back_as_built() {
    let mut fleet = generate(&FleetSpec {
        nodes: 30,
        seed: 9,
        profile: Profile::Mixed,
        violation_percent: 0,
    });
    let dir = scratch();
    let fresh = scratch();
    let mut rng = Rng::new(99);
    for node in fleet.iter_mut() {
        let root = dir.path().join(&node.name);
        write_tree(&root, &node.host.files()).expect("host written");
        let steps = ["install", "reboot", "break", "repair", "break", "repair"];
        for (n, step) in steps.into_iter().enumerate() {
            let before = node.host.files();
            match step {
                "install" if node.host.userspace == "595.58.03" => node.install_driver("610.43.02"),
                "install" => node.install_driver("595.58.03"),
                "reboot" => node.reboot(),
                "break" => {
                    node.break_host(&mut rng);
                }
                _ => {
                    node.repair();
                }
            }
            let changed = sync_tree(&root, &before, &node.host.files()).expect("synced");
            if step == "install" {
                assert!(
                    changed.iter().any(|p| p.ends_with("libnvidia-ml.so.1")),
                    "{}: {changed:?}",
                    node.name
                );
            }
            let what = format!("{} after {step}", node.name);
            assert_reads_as_built(&what, &node.host, &root);
            // The changed tree is the tree a fresh write would make.
            let clean = fresh.path().join(format!("{}-{n}", node.name));
            write_tree(&clean, &node.host.files()).expect("fresh written");
            let (got, want) = (snapshot(&root), snapshot(&clean));
            let differ: Vec<&String> = got
                .keys()
                .chain(want.keys())
                .filter(|k| got.get(*k) != want.get(*k))
                .collect();
            assert!(
                differ.is_empty(),
                "{what} ({:?}): these paths differ from a fresh write: {:?}",
                node.violations,
                differ
                    .iter()
                    .map(|k| (k, got.contains_key(*k), want.contains_key(*k)))
                    .collect::<Vec<_>>()
            );
        }
        assert!(node.violations.is_empty(), "{}: repaired", node.name);
    }
}

#[test]
fn a_rollout_goes_pending_then_clean() {
    let mut fleet = generate(&FleetSpec {
        nodes: 6,
        seed: 2,
        profile: Profile::Rollout,
        violation_percent: 0,
    });
    for node in fleet.iter_mut() {
        assert_eq!(node.host.module, ROLLOUT_FROM);
        node.install_driver("595.58.03");
        assert!(node.host.mismatch());
        assert!(
            node.violations
                .iter()
                .any(|v| v.kind() == ViolationKind::PendingReboot)
        );
        assert!(node.host.cdi.iter().all(|s| node.host.cdi_stale(s)));
        node.reboot();
        assert_eq!(node.host.module, "595.58.03");
        assert!(node.violations.is_empty(), "{:?}", node.violations);
        assert!(node.host.cdi.iter().all(|s| !node.host.cdi_stale(s)));
        assert_eq!(
            node.host, node.baseline,
            "{}: reboot reaches the new baseline",
            node.name
        );
    }
}

#[test]
fn nodes_are_kubernetes_nodes_with_gpu_labels_and_capacity() {
    let fleet = generate(&FleetSpec {
        nodes: 20,
        seed: 1,
        profile: Profile::Mixed,
        violation_percent: 30,
    });
    for node in &fleet {
        let value = node.node_object("2026-11-22T00:00:00Z");
        let typed: k8s_openapi::api::core::v1::Node =
            serde_json::from_value(value.clone()).expect("a valid Node");
        let labels = typed.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get(LABEL_GPU_PRODUCT).map(String::as_str),
            Some(node.host.gpu.label)
        );
        let status = typed.status.expect("status");
        let gpus = status
            .capacity
            .unwrap_or_default()
            .get(RESOURCE_GPU)
            .map(|q| q.0.clone());
        assert_eq!(gpus, Some(node.host.gpus.len().to_string()));
        assert_eq!(
            status.node_info.map(|i| i.kernel_version),
            Some(node.host.kernel_release.clone())
        );
    }
}

#[test]
fn expected_rules_follow_the_governing_policys_requirements() {
    let fleet = generate(&FleetSpec {
        nodes: 50,
        seed: 1,
        profile: Profile::Mixed,
        violation_percent: 30,
    });
    let now: jiff::Timestamp = "2026-11-22T00:00:00Z".parse().expect("time");
    let flavour: plumbline_api::Requirements =
        serde_saphyr::from_str("driver: {kernelModule: auto}\nfabricManager: auto").expect("parse");
    let pin: plumbline_api::Requirements =
        serde_saphyr::from_str("driver: {versions: [\"595.*\"]}").expect("parse");
    for node in &fleet {
        let under_flavour = expected_rules(&node.violations, &node.host, &flavour, now);
        if node.violations.is_empty() {
            assert!(under_flavour.is_empty(), "{}: {under_flavour:?}", node.name);
        }
        if node
            .violations
            .iter()
            .any(|v| v.kind() == ViolationKind::PendingReboot)
        {
            assert!(under_flavour.contains(plumbline_api::keys::rules::DRIVER_MISMATCH));
        }
        let under_pin = expected_rules(&node.violations, &node.host, &pin, now);
        assert_eq!(
            under_pin.contains(plumbline_api::keys::rules::DRIVER_VERSION),
            !node.host.module.starts_with("595."),
            "{}",
            node.name
        );
    }
}
