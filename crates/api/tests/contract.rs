//! The field names of `status.observed`, the policy spec and the keys are a
//! contract with tools and people; these tests pin them.

use plumbline_api::*;
use pretty_assertions::assert_eq;
use serde_json::json;

fn full_observed() -> Observed {
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
        gpus: vec![GpuObserved {
            index: 0,
            pci_bus_id: "0000:3b:00.0".into(),
            uuid: Some("GPU-1".into()),
            product: "NVIDIA H100 80GB HBM3".into(),
            architecture: Some("Hopper".into()),
            compute_capability: Some("9.0".into()),
            excluded: false,
            memory_mib: None,
            mig_enabled: None,
            ecc_enabled: None,
        }],
        toolkits: vec![ToolkitObserved {
            version: "12.9".into(),
            full_version: Some("12.9.79".into()),
            path: "/usr/local/cuda-12.9".into(),
            default: true,
        }],
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
            secure_boot: None,
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

#[test]
fn observed_field_names_are_the_contract() {
    let value = serde_json::to_value(full_observed()).unwrap();
    let expected = json!({
        "driver": {"loaded": true, "version": "580.95.05", "branch": 580, "kernelModule": "open",
                   "userspaceVersion": "580.95.05", "mismatch": false, "cudaCeiling": "13.0", "root": "/"},
        "gpus": [{"index": 0, "pciBusId": "0000:3b:00.0", "uuid": "GPU-1", "product": "NVIDIA H100 80GB HBM3",
                  "architecture": "Hopper", "computeCapability": "9.0", "excluded": false}],
        "toolkits": [{"version": "12.9", "fullVersion": "12.9.79", "path": "/usr/local/cuda-12.9", "default": true}],
        "containerToolkit": {"installed": true, "version": "1.17.8", "mode": "auto",
                             "configPath": "/etc/nvidia-container-runtime/config.toml"},
        "runtimes": [{"name": "containerd", "configPaths": ["/etc/containerd/config.toml"], "nvidiaHandler": true,
                      "defaultRuntime": "nvidia", "cdiEnabled": true}],
        "cdi": {"specs": [{"path": "/var/run/cdi/nvidia.yaml", "kind": "nvidia.com/gpu", "cdiVersion": "0.5.0",
                           "devices": ["0", "all"], "driverVersions": ["580.95.05"], "stale": false, "problems": []}]},
        "kernel": {"release": "6.8.0-45-generic", "secureBoot": null, "tainted": 4096},
        "os": {"id": "ubuntu", "versionId": "24.04", "prettyName": "Ubuntu 24.04.1 LTS"},
        "fabricManager": {"required": true, "installed": true, "version": "580.95.05", "matchesDriver": true}
    });
    assert_eq!(value, expected);
    let back: Observed = serde_json::from_value(value).unwrap();
    assert_eq!(back, full_observed());
}

#[test]
fn probe_result_and_verdict_field_names() {
    let probe = ProbeResult {
        name: keys::probes::CDI.into(),
        status: ProbeStatus::Error,
        message: Some("reading /etc/cdi/x.yaml: permission denied".into()),
        duration_micros: 120,
    };
    assert_eq!(
        serde_json::to_value(&probe).unwrap(),
        json!({"name": "cdi", "status": "Error", "message": "reading /etc/cdi/x.yaml: permission denied", "durationMicros": 120})
    );
    let verdict = Verdict {
        state: VerdictState::Drifting,
        policy: Some("h100-prod".into()),
        conflicting_policies: vec![],
        findings: vec![Finding {
            rule: keys::rules::DRIVER_MISMATCH.into(),
            expected: Some("580.95.05".into()),
            observed: Some("580.82.07".into()),
            message: "reboot pending".into(),
        }],
        since: None,
    };
    assert_eq!(
        serde_json::to_value(&verdict).unwrap(),
        json!({"state": "Drifting", "policy": "h100-prod",
               "findings": [{"rule": "driver.mismatch", "expected": "580.95.05", "observed": "580.82.07", "message": "reboot pending"}]})
    );
}

#[test]
fn policy_spec_round_trips_from_yaml_with_defaults() {
    let yaml = r#"
apiVersion: plumbline.dev/v1alpha1
kind: GpuFleetPolicy
metadata:
  name: h100-prod
spec:
  nodeSelector:
    matchLabels:
      nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3
  priority: 10
  requirements:
    driver:
      branches: [580]
      kernelModule: auto
    cuda:
      workloads:
        - name: trtllm
          cudaVersion: "12.8"
          allowMinorVersionCompat: true
    uniformity: [driverVersion, kernelModule]
    upgradeWindow:
      driverVersions: ["590.*"]
      until: "2026-12-01T00:00:00Z"
  actions:
    onDrift: [Label, Condition, Taint]
    maxUnavailable: "10%"
"#;
    let policy: GpuFleetPolicy = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(
        policy.spec.mode,
        PolicyMode::Enforce,
        "mode defaults to Enforce"
    );
    assert_eq!(policy.spec.priority, 10);
    let req = &policy.spec.requirements;
    assert_eq!(
        req.driver.as_ref().unwrap().kernel_module,
        Some(KernelModuleRequirement::Auto)
    );
    assert_eq!(req.cuda.as_ref().unwrap().workloads[0].cuda_version, "12.8");
    assert_eq!(
        req.uniformity,
        vec![UniformityKey::DriverVersion, UniformityKey::KernelModule]
    );
    assert_eq!(
        policy.spec.actions.on_unknown,
        vec![Action::Label, Action::Condition],
        "onUnknown default"
    );
    assert_eq!(policy.spec.actions.stale_after, "15m", "staleAfter default");
    assert_eq!(policy.spec.actions.taint_effect, TaintEffect::NoSchedule);
    let json = serde_json::to_value(&policy.spec).unwrap();
    assert_eq!(json["actions"]["maxUnavailable"], json!("10%"));
    assert_eq!(
        json["requirements"]["upgradeWindow"]["until"],
        json!("2026-12-01T00:00:00Z")
    );
}

#[test]
fn summary_is_derived_from_observed() {
    struct Case {
        description: &'static str,
        edit: fn(&mut Observed),
        toolkit: &'static str,
        cdi: &'static str,
        gpus: &'static str,
    }
    let cases = [
        Case {
            description: "full host",
            edit: |_| {},
            toolkit: "12.9",
            cdi: "fresh",
            gpus: "1x H100 80GB HBM3",
        },
        Case {
            description: "no toolkit, no CDI, no GPUs",
            edit: |o| {
                o.toolkits.clear();
                o.cdi.specs.clear();
                o.gpus.clear();
            },
            toolkit: "none",
            cdi: "none",
            gpus: "none",
        },
        Case {
            description: "one stale spec makes CDI stale",
            edit: |o| {
                let mut stale = o.cdi.specs[0].clone();
                stale.stale = true;
                o.cdi.specs.push(stale);
            },
            toolkit: "12.9",
            cdi: "stale",
            gpus: "1x H100 80GB HBM3",
        },
        Case {
            description: "no default toolkit: the last listed (newest) one",
            edit: |o| {
                o.toolkits[0].default = false;
                let mut t = o.toolkits[0].clone();
                t.version = "13.0".into();
                o.toolkits.push(t);
            },
            toolkit: "13.0",
            cdi: "fresh",
            gpus: "1x H100 80GB HBM3",
        },
        Case {
            description: "mixed GPUs are counted per product, in order of appearance",
            edit: |o| {
                let mut t4 = o.gpus[0].clone();
                t4.product = "Tesla T4".into();
                o.gpus.push(o.gpus[0].clone());
                o.gpus.push(t4);
            },
            toolkit: "12.9",
            cdi: "fresh",
            gpus: "2x H100 80GB HBM3, 1x Tesla T4",
        },
    ];
    for case in cases {
        let mut observed = full_observed();
        (case.edit)(&mut observed);
        let summary = Summary::from_observed(&observed);
        assert_eq!(
            summary.toolkit.as_deref(),
            Some(case.toolkit),
            "{}",
            case.description
        );
        assert_eq!(
            summary.cdi.as_deref(),
            Some(case.cdi),
            "{}",
            case.description
        );
        assert_eq!(
            summary.gpus.as_deref(),
            Some(case.gpus),
            "{}",
            case.description
        );
    }
}

#[test]
fn every_node_key_is_under_the_prefix_and_is_a_valid_label_key() {
    let mut all: Vec<&str> = keys::labels::ALL.to_vec();
    all.extend([
        keys::taints::DRIFT,
        keys::annotations::CORDONED_BY_PLUMBLINE,
        keys::annotations::UNCORDON_RESPECTED,
        keys::annotations::DRIFTING_SINCE,
        keys::annotations::UNMANAGED,
    ]);
    for key in all {
        let name = key
            .strip_prefix(keys::PREFIX)
            .unwrap_or_else(|| panic!("{key} is not under {}", keys::PREFIX));
        assert!(
            !name.is_empty() && name.len() <= 63,
            "{key}: name part must be 1-63 chars"
        );
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{key}: name part has characters a label key may not"
        );
        assert!(
            name.chars().next().unwrap().is_ascii_alphanumeric(),
            "{key}"
        );
        assert!(
            name.chars().last().unwrap().is_ascii_alphanumeric(),
            "{key}"
        );
    }
}

#[test]
fn rule_ids_are_unique() {
    let mut ids = keys::rules::ALL.to_vec();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "duplicate rule id");
}

#[test]
fn crds_are_cluster_scoped_with_status_and_short_names() {
    let crds = crds();
    let names: Vec<_> = crds
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "nodegpubaselines.plumbline.dev",
            "gpufleetpolicies.plumbline.dev"
        ]
    );
    for (crd, short) in crds.iter().zip(["ngb", "gfp"]) {
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_string()][..])
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
    }
    let columns: Vec<_> = crds[0].spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.as_str(), c.priority.unwrap_or(0)))
        .collect();
    assert_eq!(
        columns,
        [
            ("Driver", 0),
            ("Module", 0),
            ("CUDA", 0),
            ("Toolkit", 0),
            ("CTK", 0),
            ("CDI", 0),
            ("Verdict", 0),
            ("Age", 0),
            ("Policy", 1),
            ("GPUs", 1)
        ]
    );
}

#[test]
fn status_schemas_carry_no_defaults() {
    // `value` is a schema; under `properties` the keys are field names (a
    // field may well be called `default`), and each value is a schema.
    fn walk(schema: &serde_json::Value, path: &str) {
        let Some(map) = schema.as_object() else {
            return;
        };
        assert!(!map.contains_key("default"), "default at {path}");
        if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
            for (name, child) in props {
                walk(child, &format!("{path}.{name}"));
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = map.get(key) {
                walk(child, &format!("{path}[{key}]"));
            }
        }
    }
    for crd in crds() {
        let json = serde_json::to_value(&crd).unwrap();
        let status =
            &json["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
        assert!(
            status.is_object(),
            "{:?} has a status schema",
            crd.metadata.name
        );
        walk(status, "status");
    }
}
