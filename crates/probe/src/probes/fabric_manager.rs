//! Fabric Manager: needed when NVSwitches are present; installed version
//! from dpkg status; whether it equals the driver version.

use plumbline_api::{FabricManagerObserved, Observed, ProbeStatus};
use plumbline_compat::DriverVersion;

use super::dpkg::{DPKG_STATUS, DpkgEntry, parse_dpkg_status, upstream_version};
use super::finish;
use crate::{Context, Outcome, join_messages};

pub const NVSWITCH_PROC_DIR: &str = "/proc/driver/nvidia-nvswitch/devices";
pub const DEV_DIR: &str = "/dev";
/// Package name prefixes, for when the driver branch is unknown.
pub const PACKAGE_PREFIXES: &[&str] = &["nvidia-fabricmanager-", "cuda-drivers-fabricmanager-"];
pub const DAEMON: &str = "/usr/bin/nv-fabricmanager";

/// Whether a `/dev` entry is an NVSwitch (`nvidia-nvswitch0`; the control
/// node `nvidia-nvswitchctl` exists whenever the module is loaded).
pub fn is_nvswitch_node(name: &str) -> bool {
    name.strip_prefix("nvidia-nvswitch")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The installed Fabric Manager package among dpkg entries: one of
/// `packages` when the branch is known, else any with a known prefix.
pub fn find_package<'a>(entries: &[DpkgEntry<'a>], packages: &[String]) -> Option<DpkgEntry<'a>> {
    entries
        .iter()
        .filter(|e| e.installed())
        .find(|e| {
            if packages.is_empty() {
                PACKAGE_PREFIXES.iter().any(|p| e.package.starts_with(p))
            } else {
                packages.iter().any(|p| p == e.package)
            }
        })
        .cloned()
}

fn switch_count(cx: &Context<'_>) -> Result<usize, String> {
    let mut count = match cx.host.read_dir(NVSWITCH_PROC_DIR) {
        Ok(entries) => entries.len(),
        Err(e) if e.is_not_found() => 0,
        Err(e) => return Err(e.to_string()),
    };
    if count == 0 {
        count = match cx.host.read_dir(DEV_DIR) {
            Ok(entries) => entries.iter().filter(|n| is_nvswitch_node(n)).count(),
            Err(e) if e.is_not_found() => 0,
            Err(e) => return Err(e.to_string()),
        };
    }
    Ok(count)
}

pub fn probe(cx: &Context<'_>, so_far: &Observed) -> Outcome<FabricManagerObserved> {
    let switches = match switch_count(cx) {
        Ok(n) => n,
        Err(e) => return Outcome::error(e),
    };
    let driver = so_far
        .driver
        .version
        .as_deref()
        .and_then(|v| DriverVersion::parse(v).ok());
    let packages = driver
        .as_ref()
        .map(|d| cx.options.compat.fabric_manager_packages(d.branch()))
        .unwrap_or_default();
    let mut value = FabricManagerObserved {
        required: switches > 0,
        ..FabricManagerObserved::default()
    };
    let limit = cx.options.limits.max_package_db_size;
    match cx.host.read_to_string_with_limit(DPKG_STATUS, limit) {
        Ok(text) => match parse_dpkg_status(&text) {
            Ok(entries) => {
                if let Some(entry) = find_package(&entries, &packages) {
                    value.installed = true;
                    value.version = Some(upstream_version(entry.version).to_owned());
                }
            }
            Err(e) => return Outcome::error(format!("{DPKG_STATUS}: {e}")),
        },
        Err(e) if e.is_not_found() => {}
        Err(e) => return Outcome::error(e.to_string()),
    }
    let mut notes = Vec::new();
    if !value.installed && cx.host.exists(DAEMON) {
        value.installed = true;
        notes.push(format!(
            "{DAEMON} exists but its package is not in {DPKG_STATUS}: version unknown"
        ));
    }
    if !value.required && !value.installed {
        return Outcome::absent("no NVSwitches and no Fabric Manager");
    }
    value.matches_driver = match (&value.version, &driver) {
        (Some(fm), Some(d)) => Some(DriverVersion::parse(fm).is_ok_and(|fm| fm == *d)),
        _ => None,
    };
    if value.required {
        notes.insert(0, format!("{switches} NVSwitches present"));
        if !value.installed {
            notes.push("Fabric Manager is required but not installed".to_owned());
        }
    }
    if let (Some(false), Some(fm), Some(d)) = (value.matches_driver, &value.version, &driver) {
        notes.push(format!("Fabric Manager {fm} does not match driver {d}"));
    }
    Outcome {
        status: ProbeStatus::Ok,
        message: join_messages(notes),
        value,
    }
}

pub(crate) fn run(cx: &Context<'_>, observed: &mut Observed) -> (ProbeStatus, Option<String>) {
    let outcome = probe(cx, observed);
    finish(outcome, |v| observed.fabric_manager = v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nvswitch_nodes() {
        assert!(is_nvswitch_node("nvidia-nvswitch0"));
        assert!(is_nvswitch_node("nvidia-nvswitch11"));
        assert!(!is_nvswitch_node("nvidia-nvswitchctl"));
        assert!(!is_nvswitch_node("nvidia-nvswitch"));
        assert!(!is_nvswitch_node("nvidia0"));
    }

    #[test]
    fn finds_the_branch_package() {
        let status = "Package: nvidia-fabricmanager-570\nStatus: install ok installed\nVersion: 570.1.1-1\n\nPackage: nvidia-fabricmanager-580\nStatus: install ok installed\nVersion: 580.95.05-1\n";
        let entries = parse_dpkg_status(status).unwrap();
        let found = find_package(&entries, &["nvidia-fabricmanager-580".to_owned()]).unwrap();
        assert_eq!(found.upstream_version(), "580.95.05");
        let any = find_package(&entries, &[]).unwrap();
        assert_eq!(any.package, "nvidia-fabricmanager-570");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = is_nvswitch_node(&s);
        }
    }
}
