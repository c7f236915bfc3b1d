//! NVIDIA Container Toolkit: installed version (dpkg status), its
//! `config.toml` and the runtime mode.
//!
//! The version is read from the dpkg database only. The rpm database is
//! binary and the binaries' version strings are not read (running them is
//! out of the question, and their layout is not a contract), so on rpm
//! hosts and GPU Operator installs the toolkit is reported installed with
//! an unknown version.

use plumbline_api::{ContainerToolkitObserved, Observed, ProbeStatus};

use super::dpkg::{DPKG_STATUS, RPM_DB_DIR, parse_dpkg_status};
use super::{ParseError, finish};
use crate::{Context, Outcome, join_messages};

pub const PACKAGE: &str = "nvidia-container-toolkit";

/// Config locations, in order: the package's, then the GPU Operator's.
pub const CONFIG_PATHS: &[&str] = &[
    "/etc/nvidia-container-runtime/config.toml",
    "/usr/local/nvidia/toolkit/.config/nvidia-container-runtime/config.toml",
];

/// Binaries whose presence means the toolkit is installed.
pub const BINARIES: &[&str] = &[
    "/usr/bin/nvidia-ctk",
    "/usr/bin/nvidia-container-runtime",
    "/usr/local/nvidia/toolkit/nvidia-ctk",
    "/usr/local/nvidia/toolkit/nvidia-container-runtime",
];

/// The runtime mode in a `config.toml`; `auto` when the key is absent.
pub fn parse_ctk_config(text: &str) -> Result<String, ParseError> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| ParseError::invalid("config.toml", e.message()))?;
    let mode = table
        .get("nvidia-container-runtime")
        .and_then(|t| t.get("mode"));
    match mode {
        None => Ok("auto".to_owned()),
        Some(toml::Value::String(m)) => Ok(m.clone()),
        Some(other) => Err(ParseError::invalid(
            "config.toml",
            format!(
                "nvidia-container-runtime.mode is a {}, not a string",
                other.type_str()
            ),
        )),
    }
}

/// The installed package version from dpkg status text, if installed.
pub fn installed_version(status: &str, package: &str) -> Result<Option<String>, ParseError> {
    Ok(parse_dpkg_status(status)?
        .into_iter()
        .find(|e| e.package == package && e.installed())
        .map(|e| e.upstream_version().to_owned()))
}

pub fn probe(cx: &Context<'_>) -> Outcome<ContainerToolkitObserved> {
    let mut notes = Vec::new();
    let mut value = ContainerToolkitObserved::default();
    let limit = cx.options.limits.max_package_db_size;
    match cx.host.read_to_string_with_limit(DPKG_STATUS, limit) {
        Ok(text) => match installed_version(&text, PACKAGE) {
            Ok(v) => value.version = v,
            Err(e) => return Outcome::error(format!("{DPKG_STATUS}: {e}")),
        },
        Err(e) if e.is_not_found() => {}
        Err(e) => return Outcome::error(e.to_string()),
    }
    value.installed = value.version.is_some() || BINARIES.iter().any(|b| cx.host.exists(b));
    for path in CONFIG_PATHS {
        match cx.host.read_to_string(path) {
            Ok(text) => match parse_ctk_config(&text) {
                Ok(mode) => {
                    value.mode = Some(mode);
                    value.config_path = Some((*path).to_owned());
                    break;
                }
                Err(e) => return Outcome::error(format!("{path}: {e}")),
            },
            Err(e) if e.is_not_found() => {}
            Err(e) => return Outcome::error(e.to_string()),
        }
    }
    if !value.installed && value.config_path.is_none() {
        return Outcome::absent(format!("no {PACKAGE} package, binary or config.toml"));
    }
    if value.installed && value.version.is_none() {
        if cx.host.is_dir(RPM_DB_DIR) {
            notes.push(format!(
                "installed, version unknown: the rpm database ({RPM_DB_DIR}) is not read"
            ));
        } else {
            notes.push(format!(
                "installed, version unknown: no {PACKAGE} entry in {DPKG_STATUS}"
            ));
        }
    }
    if !value.installed {
        notes.push("a config.toml exists but the toolkit is not installed".to_owned());
    }
    Outcome {
        status: ProbeStatus::Ok,
        message: join_messages(notes),
        value,
    }
}

pub(crate) fn run(cx: &Context<'_>, observed: &mut Observed) -> (ProbeStatus, Option<String>) {
    finish(probe(cx), |v| observed.container_toolkit = v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mode_defaults_to_auto() {
        assert_eq!(parse_ctk_config("").unwrap(), "auto");
        assert_eq!(
            parse_ctk_config("[nvidia-container-runtime]\nlog-level = \"info\"\n").unwrap(),
            "auto"
        );
        assert_eq!(
            parse_ctk_config("[nvidia-container-runtime]\nmode = \"cdi\"\n").unwrap(),
            "cdi"
        );
        assert!(parse_ctk_config("[nvidia-container-runtime]\nmode = 3\n").is_err());
        assert!(parse_ctk_config("[nvidia-container-runtime\n").is_err());
    }

    #[test]
    fn version_from_dpkg() {
        let status =
            "Package: nvidia-container-toolkit\nStatus: install ok installed\nVersion: 1.17.8-1\n";
        assert_eq!(
            installed_version(status, PACKAGE).unwrap().as_deref(),
            Some("1.17.8")
        );
        let removed = status.replace("install ok installed", "deinstall ok config-files");
        assert_eq!(installed_version(&removed, PACKAGE).unwrap(), None);
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_ctk_config(&s);
            let _ = installed_version(&s, PACKAGE);
        }
    }
}
