//! CDI specs in `/etc/cdi` and `/var/run/cdi`: what they define, which
//! driver they were generated for, and whether they still match the host.
//!
//! A spec is stale when it references a driver version other than the
//! loaded one (library mounts such as `libcuda.so.550.54.15`, firmware
//! directories, `--host-driver-version=` hook arguments), when a path it
//! mounts or runs does not exist on the host, when its GPU devices (names
//! and `/dev/nvidiaN` nodes) do not match the GPUs present, or when another
//! file defines the same kind and device name.

use std::collections::{BTreeMap, BTreeSet};

use plumbline_api::keys::probes as names;
use plumbline_api::{CdiObserved, CdiSpecObserved, GpuObserved, Observed, ProbeStatus};
use plumbline_compat::DriverVersion;
use serde::Deserialize;

use super::{ParseError, finish};
use crate::{Context, HostRoot, Outcome};

/// Spec directories, static first, then the one regenerated at boot.
pub const SPEC_DIRS: &[&str] = &["/etc/cdi", "/var/run/cdi"];
/// Most problems listed per spec; the rest are counted.
const MAX_PROBLEMS: usize = 20;

/// The parts of a CDI spec Plumbline reads. Unknown fields are ignored, so
/// any `cdiVersion` from 0.3.0 to 1.1.0 parses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CdiSpec {
    pub cdi_version: Option<String>,
    pub kind: Option<String>,
    pub devices: Vec<CdiDevice>,
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CdiDevice {
    pub name: String,
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerEdits {
    pub device_nodes: Vec<DeviceNode>,
    pub hooks: Vec<Hook>,
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceNode {
    pub path: String,
    pub host_path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Hook {
    pub hook_name: String,
    pub path: String,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
}

impl CdiSpec {
    /// Every set of container edits: the spec's, then each device's.
    fn edits(&self) -> impl Iterator<Item = &ContainerEdits> {
        std::iter::once(&self.container_edits)
            .chain(self.devices.iter().map(|d| &d.container_edits))
    }
}

/// Parses a spec, as JSON when `json` is set, else as YAML.
pub fn parse_cdi_spec(text: &str, json: bool) -> Result<CdiSpec, ParseError> {
    let spec: CdiSpec = if json {
        serde_json::from_str(text).map_err(|e| ParseError::invalid("CDI spec", e))?
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let message = e.to_string();
            let first = message.lines().next().unwrap_or("").trim();
            ParseError::invalid(
                "CDI spec",
                first.strip_prefix("error: ").unwrap_or(first).to_owned(),
            )
        })?
    };
    if spec.kind.as_deref().is_none_or(str::is_empty) {
        return Err(ParseError::Missing { field: "kind" });
    }
    Ok(spec)
}

/// A driver version in a library file name (`libcuda.so.550.54.15`).
/// Other libraries' versions (`libnvidia-egl-wayland.so.1.1.13`) have a
/// first part far below any driver branch and are skipped.
fn version_in_file_name(name: &str) -> Option<DriverVersion> {
    let (_, rest) = name.split_once(".so.")?;
    let v = DriverVersion::parse(rest).ok()?;
    (v.branch() >= 100).then_some(v)
}

/// The driver versions a spec references, sorted and unique.
pub fn driver_versions(spec: &CdiSpec) -> Vec<DriverVersion> {
    let mut found = BTreeSet::new();
    for edits in spec.edits() {
        for mount in &edits.mounts {
            let mut parts = mount.host_path.split('/').peekable();
            while let Some(part) = parts.next() {
                if let Some(v) = version_in_file_name(part) {
                    found.insert(v);
                }
                // `/lib/firmware/nvidia/<version>/gsp_*.bin`
                if part == "firmware"
                    && parts.next_if_eq(&"nvidia").is_some()
                    && let Some(v) = parts.peek().and_then(|p| DriverVersion::parse(p).ok())
                {
                    found.insert(v);
                }
            }
        }
        for hook in &edits.hooks {
            let mut args = hook.args.iter();
            while let Some(arg) = args.next() {
                let value = match arg.strip_prefix("--host-driver-version") {
                    Some(rest) if rest.starts_with('=') => Some(&rest[1..]),
                    Some("") => args.next().map(String::as_str),
                    _ => None,
                };
                if let Some(v) = value.and_then(|v| DriverVersion::parse(v).ok()) {
                    found.insert(v);
                }
            }
        }
    }
    found.into_iter().collect()
}

/// The GPU index in `/dev/nvidiaN`.
fn dev_minor(path: &str) -> Option<u32> {
    path.strip_prefix("/dev/nvidia")?.parse().ok()
}

/// Problems with one spec against the host, without duplicates across files.
fn problems(
    host: &HostRoot,
    spec: &CdiSpec,
    versions: &[DriverVersion],
    driver: Option<&DriverVersion>,
    gpus: Option<&[GpuObserved]>,
) -> Vec<String> {
    let mut out = Vec::new();
    for v in versions {
        match driver {
            Some(d) if d == v => {}
            Some(d) => out.push(format!(
                "references driver {v} but the loaded driver is {d}"
            )),
            None => out.push(format!("references driver {v} but no driver is loaded")),
        }
    }
    let is_nvidia = spec
        .kind
        .as_deref()
        .and_then(|k| k.split_once('/'))
        .is_some_and(|(vendor, _)| vendor == "nvidia.com" || vendor.ends_with(".nvidia.com"));
    let gpus = gpus.filter(|_| is_nvidia);
    if let Some(gpus) = gpus {
        for device in &spec.devices {
            let name = device.name.as_str();
            if name == "all" || name.starts_with("MIG-") {
                continue;
            }
            if name.starts_with("GPU-") {
                if !gpus.iter().any(|g| g.uuid.as_deref() == Some(name)) {
                    out.push(format!("device {name}: no GPU with this UUID is present"));
                }
                continue;
            }
            let parent = name.split(':').next().unwrap_or(name);
            if let Ok(index) = parent.parse::<u32>()
                && !gpus.iter().any(|g| g.index == index)
            {
                out.push(format!(
                    "device {name}: no GPU with index {index} is present"
                ));
            }
        }
    }
    let mut checked = BTreeSet::new();
    for edits in spec.edits() {
        for node in &edits.device_nodes {
            let path = node.host_path.as_deref().unwrap_or(&node.path);
            if !checked.insert(path.to_owned()) {
                continue;
            }
            if let (Some(gpus), Some(minor)) = (gpus, dev_minor(path)) {
                if !gpus.iter().any(|g| g.index == minor) {
                    out.push(format!(
                        "device node {path}: no GPU with minor {minor} is present"
                    ));
                }
            } else if !host.exists(path) {
                out.push(format!("device node {path} does not exist"));
            }
        }
        for mount in &edits.mounts {
            if checked.insert(mount.host_path.clone()) && !host.exists(&mount.host_path) {
                out.push(format!("mount {} does not exist", mount.host_path));
            }
        }
        for hook in &edits.hooks {
            if checked.insert(hook.path.clone()) && !host.exists(&hook.path) {
                out.push(format!("hook {} does not exist", hook.path));
            }
        }
    }
    out
}

fn cap(mut problems: Vec<String>) -> Vec<String> {
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS;
        problems.truncate(MAX_PROBLEMS);
        problems.push(format!("and {more} more"));
    }
    problems
}

pub fn probe(cx: &Context<'_>, so_far: &Observed) -> Outcome<CdiObserved> {
    let mut files = Vec::new();
    for dir in SPEC_DIRS {
        match cx.host.read_dir(dir) {
            Ok(entries) => files.extend(
                entries
                    .into_iter()
                    .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml") || n.ends_with(".json"))
                    .map(|n| format!("{dir}/{n}")),
            ),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Outcome::error(e.to_string()),
        }
    }
    let driver = so_far
        .driver
        .version
        .as_deref()
        .and_then(|v| DriverVersion::parse(v).ok());
    // Device matching needs a trustworthy GPU list; an unreadable one
    // would make every spec look stale.
    let gpus = match cx.status_of(names::GPUS) {
        Some(ProbeStatus::Ok | ProbeStatus::Absent) => Some(so_far.gpus.as_slice()),
        _ => None,
    };
    let mut specs = Vec::new();
    let mut owners: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for path in files {
        let text = match cx.host.read_to_string(&path) {
            Ok(t) => t,
            // Listed a moment ago and gone now (regenerated): skip it.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Outcome::error(e.to_string()),
        };
        let json = path.ends_with(".json");
        let parsed = match cx.options.cache {
            Some(cache) => cache.cdi_spec(&path, text, json),
            None => parse_cdi_spec(&text, json),
        };
        let spec = match parsed {
            Ok(s) => s,
            Err(e) => return Outcome::error(format!("{path}: {e}")),
        };
        let versions = driver_versions(&spec);
        let problems = problems(cx.host, &spec, &versions, driver.as_ref(), gpus);
        let kind = spec.kind.clone().unwrap_or_default();
        for device in &spec.devices {
            owners
                .entry((kind.clone(), device.name.clone()))
                .or_default()
                .push(specs.len());
        }
        specs.push(CdiSpecObserved {
            path,
            kind: spec.kind,
            cdi_version: spec.cdi_version,
            devices: spec.devices.into_iter().map(|d| d.name).collect(),
            driver_versions: versions.iter().map(ToString::to_string).collect(),
            stale: false,
            problems,
        });
    }
    if specs.is_empty() {
        return Outcome::absent(format!("no CDI specs in {}", SPEC_DIRS.join(" or ")));
    }
    for ((kind, device), owners) in &owners {
        let unique: BTreeSet<usize> = owners.iter().copied().collect();
        if unique.len() < 2 {
            continue;
        }
        for &i in &unique {
            let others: Vec<&str> = unique
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| specs[j].path.as_str())
                .collect();
            let line = format!(
                "device {kind}={device} is also defined in {}",
                others.join(", ")
            );
            specs[i].problems.push(line);
        }
    }
    let mut stale = 0;
    for spec in &mut specs {
        spec.problems = cap(std::mem::take(&mut spec.problems));
        spec.stale = !spec.problems.is_empty();
        stale += usize::from(spec.stale);
    }
    let total = specs.len();
    let value = CdiObserved { specs };
    if stale > 0 {
        Outcome::ok_with(value, format!("{stale} of {total} CDI specs are stale"))
    } else {
        Outcome::ok(value)
    }
}

pub(crate) fn run(cx: &Context<'_>, observed: &mut Observed) -> (ProbeStatus, Option<String>) {
    let outcome = probe(cx, observed);
    finish(outcome, |v| observed.cdi = v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SPEC: &str = r#"---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
containerEdits:
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
    args:
    - nvidia-cdi-hook
    - update-ldcache
    - --host-driver-version=550.54.15
  mounts:
  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    options: [ro, nosuid, nodev, bind]
  - hostPath: /usr/lib/x86_64-linux-gnu/libnvidia-egl-wayland.so.1.1.13
    containerPath: /usr/lib/x86_64-linux-gnu/libnvidia-egl-wayland.so.1.1.13
  - hostPath: /lib/firmware/nvidia/550.54.14/gsp_ga10x.bin
    containerPath: /lib/firmware/nvidia/550.54.14/gsp_ga10x.bin
"#;

    #[test]
    fn parses_yaml_and_finds_versions() {
        let spec = parse_cdi_spec(SPEC, false).unwrap();
        assert_eq!(spec.kind.as_deref(), Some("nvidia.com/gpu"));
        assert_eq!(spec.cdi_version.as_deref(), Some("0.5.0"));
        assert_eq!(spec.devices.len(), 3);
        let versions: Vec<String> = driver_versions(&spec)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(versions, vec!["550.54.14", "550.54.15"]);
    }

    #[test]
    fn parses_json_and_separate_hook_arguments() {
        let json = r#"{"cdiVersion":"0.6.0","kind":"nvidia.com/gpu","devices":[{"name":"0","containerEdits":{}}],"containerEdits":{"hooks":[{"hookName":"createContainer","path":"/usr/bin/nvidia-cdi-hook","args":["nvidia-cdi-hook","--host-driver-version","570.124.06"]}]}}"#;
        let spec = parse_cdi_spec(json, true).unwrap();
        let versions: Vec<String> = driver_versions(&spec)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(versions, vec!["570.124.06"]);
    }

    #[test]
    fn refuses_junk() {
        assert_eq!(
            parse_cdi_spec("devices: []\n", false)
                .unwrap_err()
                .to_string(),
            "no kind found"
        );
        assert!(parse_cdi_spec("kind: [\n", false).is_err());
        assert!(parse_cdi_spec("{", true).is_err());
        assert!(parse_cdi_spec("kind: nvidia.com/gpu\ndevices: 3\n", false).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_cdi_spec(&s, false);
            let _ = parse_cdi_spec(&s, true);
        }

        #[test]
        fn never_panics_on_yaml_like_input(s in "(kind: |devices:\n- name: |  containerEdits:\n|mounts:\n|- hostPath: |[a-z0-9./\"-]{0,12}|\n){0,20}") {
            let _ = parse_cdi_spec(&s, false);
        }
    }
}
