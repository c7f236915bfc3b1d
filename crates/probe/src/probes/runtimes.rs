//! Container runtimes: how containerd, Docker and CRI-O are wired to the
//! NVIDIA runtime, from their config files.
//!
//! containerd reads one main file and follows its `imports` globs (the
//! toolkit from 1.18 writes a drop-in and adds the `imports` line); a
//! drop-in directory that is not imported is not read by containerd, so it
//! is not read here either. CRI-O reads its main file and then its drop-in
//! directories in lexical order, a later value replacing an earlier one.
//! An engine with no config file at all is not listed.

use std::collections::{BTreeSet, VecDeque};

use plumbline_api::{Observed, ProbeStatus, RuntimeName, RuntimeObserved};

use super::{ParseError, finish};
use crate::{Context, HostRoot, Outcome};

pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
pub const DOCKER_CONFIG: &str = "/etc/docker/daemon.json";
pub const CRIO_CONFIG: &str = "/etc/crio/crio.conf";
/// CRI-O drop-in directories, in the order they are read.
pub const CRIO_DROP_IN_DIRS: &[&str] = &["/etc/crio/crio.conf.d", "/etc/crio/conf.d"];
/// Name of the handler the toolkit registers.
pub const HANDLER: &str = "nvidia";
/// How deep containerd `imports` are followed.
const MAX_IMPORT_DEPTH: usize = 8;

/// What one config file says, before merging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineConfig {
    /// containerd's config `version` (1 when the key is absent).
    pub version: i64,
    /// containerd's `imports`, as written.
    pub imports: Vec<String>,
    pub nvidia_handler: bool,
    pub default_runtime: Option<String>,
    pub cdi_enabled: Option<bool>,
}

fn dig<'a>(table: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let mut value = table.get(*first)?;
    for key in rest {
        value = value.as_table()?.get(*key)?;
    }
    Some(value)
}

fn toml_table(text: &str, what: &'static str) -> Result<toml::Table, ParseError> {
    toml::from_str(text).map_err(|e| ParseError::invalid(what, e.message().trim()))
}

fn opt_string(
    v: Option<&toml::Value>,
    what: &'static str,
    key: &str,
) -> Result<Option<String>, ParseError> {
    match v {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ParseError::invalid(
            what,
            format!("{key} is a {}, not a string", other.type_str()),
        )),
    }
}

fn opt_bool(
    v: Option<&toml::Value>,
    what: &'static str,
    key: &str,
) -> Result<Option<bool>, ParseError> {
    match v {
        None => Ok(None),
        Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
        Some(other) => Err(ParseError::invalid(
            what,
            format!("{key} is a {}, not a boolean", other.type_str()),
        )),
    }
}

/// Parses a containerd config. `default_version` applies when the file has
/// no `version` key: 1 for the main file, the main file's for an import.
pub fn parse_containerd_config(
    text: &str,
    default_version: i64,
) -> Result<EngineConfig, ParseError> {
    const WHAT: &str = "containerd config";
    let table = toml_table(text, WHAT)?;
    let version = match table.get("version") {
        None => default_version,
        Some(toml::Value::Integer(v)) => *v,
        Some(other) => {
            return Err(ParseError::invalid(
                WHAT,
                format!("version is a {}, not an integer", other.type_str()),
            ));
        }
    };
    // The CRI plugin's table per config version (REFERENCE §5).
    let cri: &[&str] = match version {
        1 => &["plugins", "cri"],
        2 => &["plugins", "io.containerd.grpc.v1.cri"],
        3 => &["plugins", "io.containerd.cri.v1.runtime"],
        other => {
            return Err(ParseError::invalid(
                WHAT,
                format!("unsupported config version {other} (1, 2 and 3 are known)"),
            ));
        }
    };
    let at = |rest: &[&str]| {
        let path: Vec<&str> = cri.iter().chain(rest).copied().collect();
        dig(&table, &path)
    };
    let imports = match table.get("imports") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ParseError::invalid(WHAT, "imports holds a non-string"))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ParseError::invalid(
                WHAT,
                format!("imports is a {}, not an array", other.type_str()),
            ));
        }
    };
    Ok(EngineConfig {
        version,
        imports,
        nvidia_handler: at(&["containerd", "runtimes", HANDLER]).is_some_and(toml::Value::is_table),
        default_runtime: opt_string(
            at(&["containerd", "default_runtime_name"]),
            WHAT,
            "default_runtime_name",
        )?,
        cdi_enabled: opt_bool(at(&["enable_cdi"]), WHAT, "enable_cdi")?,
    })
}

/// Parses Docker's `daemon.json`.
pub fn parse_docker_config(text: &str) -> Result<EngineConfig, ParseError> {
    const WHAT: &str = "daemon.json";
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ParseError::invalid(WHAT, e))?;
    let object = value
        .as_object()
        .ok_or_else(|| ParseError::invalid(WHAT, "not a JSON object"))?;
    let default_runtime = match object.get("default-runtime") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ParseError::invalid(WHAT, "default-runtime is not a string")),
    };
    let cdi_enabled = match object.get("features").and_then(|f| f.get("cdi")) {
        None => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(_) => return Err(ParseError::invalid(WHAT, "features.cdi is not a boolean")),
    };
    Ok(EngineConfig {
        version: 1,
        imports: Vec::new(),
        nvidia_handler: object
            .get("runtimes")
            .and_then(|r| r.get(HANDLER))
            .is_some_and(serde_json::Value::is_object),
        default_runtime,
        cdi_enabled,
    })
}

/// Parses a CRI-O config file or drop-in.
pub fn parse_crio_config(text: &str) -> Result<EngineConfig, ParseError> {
    const WHAT: &str = "CRI-O config";
    let table = toml_table(text, WHAT)?;
    Ok(EngineConfig {
        version: 1,
        imports: Vec::new(),
        nvidia_handler: dig(&table, &["crio", "runtime", "runtimes", HANDLER])
            .is_some_and(toml::Value::is_table),
        default_runtime: opt_string(
            dig(&table, &["crio", "runtime", "default_runtime"]),
            WHAT,
            "crio.runtime.default_runtime",
        )?,
        cdi_enabled: None,
    })
}

fn merge(into: &mut RuntimeObserved, path: String, cfg: &EngineConfig) {
    into.config_paths.push(path);
    into.nvidia_handler |= cfg.nvidia_handler;
    if cfg.default_runtime.is_some() {
        into.default_runtime.clone_from(&cfg.default_runtime);
    }
    if let Some(cdi) = cfg.cdi_enabled {
        into.cdi_enabled = cdi;
    }
}

/// Reads a file; `Ok(None)` when it does not exist.
fn read_optional(host: &HostRoot, path: &str) -> Result<Option<String>, String> {
    match host.read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn containerd(host: &HostRoot) -> Result<Option<RuntimeObserved>, String> {
    let Some(text) = read_optional(host, CONTAINERD_CONFIG)? else {
        return Ok(None);
    };
    let main =
        parse_containerd_config(&text, 1).map_err(|e| format!("{CONTAINERD_CONFIG}: {e}"))?;
    let mut observed = RuntimeObserved {
        name: RuntimeName::Containerd,
        config_paths: Vec::new(),
        nvidia_handler: false,
        default_runtime: None,
        // containerd 2.x (config version 3) enables CDI unless told not to.
        cdi_enabled: main.version >= 3,
    };
    let mut seen = BTreeSet::from([CONTAINERD_CONFIG.to_owned()]);
    let mut queue: VecDeque<(String, Vec<String>, usize)> =
        VecDeque::from([("/etc/containerd".to_owned(), main.imports.clone(), 1)]);
    merge(&mut observed, CONTAINERD_CONFIG.to_owned(), &main);
    while let Some((dir, imports, depth)) = queue.pop_front() {
        for import in imports {
            // A relative import is relative to the importing file's directory.
            let pattern = if import.starts_with('/') {
                import.clone()
            } else {
                format!("{dir}/{import}")
            };
            let paths = host
                .glob(&pattern)
                .map_err(|e| format!("{CONTAINERD_CONFIG}: imports {import:?}: {e}"))?;
            for path in paths {
                if !seen.insert(path.clone()) {
                    continue;
                }
                let Some(text) = read_optional(host, &path)? else {
                    continue;
                };
                let cfg = parse_containerd_config(&text, main.version)
                    .map_err(|e| format!("{path}: {e}"))?;
                if !cfg.imports.is_empty() && depth < MAX_IMPORT_DEPTH {
                    let parent = path.rsplit_once('/').map_or("/", |(d, _)| d).to_owned();
                    queue.push_back((parent, cfg.imports.clone(), depth + 1));
                }
                merge(&mut observed, path, &cfg);
            }
        }
    }
    Ok(Some(observed))
}

fn docker(host: &HostRoot) -> Result<Option<RuntimeObserved>, String> {
    let Some(text) = read_optional(host, DOCKER_CONFIG)? else {
        return Ok(None);
    };
    let cfg = parse_docker_config(&text).map_err(|e| format!("{DOCKER_CONFIG}: {e}"))?;
    let mut observed = RuntimeObserved {
        name: RuntimeName::Docker,
        config_paths: Vec::new(),
        nvidia_handler: false,
        default_runtime: None,
        cdi_enabled: false,
    };
    merge(&mut observed, DOCKER_CONFIG.to_owned(), &cfg);
    Ok(Some(observed))
}

fn crio(host: &HostRoot) -> Result<Option<RuntimeObserved>, String> {
    let mut files = Vec::new();
    if host.exists(CRIO_CONFIG) {
        files.push(CRIO_CONFIG.to_owned());
    }
    for dir in CRIO_DROP_IN_DIRS {
        match host.read_dir(dir) {
            Ok(names) => files.extend(
                names
                    .into_iter()
                    .filter(|n| n.ends_with(".conf") || n.ends_with(".toml"))
                    .map(|n| format!("{dir}/{n}")),
            ),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    let mut observed = RuntimeObserved {
        name: RuntimeName::Crio,
        config_paths: Vec::new(),
        nvidia_handler: false,
        default_runtime: None,
        // CRI-O has no switch for CDI: it always reads the spec directories.
        cdi_enabled: true,
    };
    for path in files {
        let Some(text) = read_optional(host, &path)? else {
            continue;
        };
        let cfg = parse_crio_config(&text).map_err(|e| format!("{path}: {e}"))?;
        merge(&mut observed, path, &cfg);
    }
    Ok(Some(observed))
}

pub fn probe(cx: &Context<'_>) -> Outcome<Vec<RuntimeObserved>> {
    let mut runtimes = Vec::new();
    for engine in [containerd, docker, crio] {
        match engine(cx.host) {
            Ok(Some(r)) => runtimes.push(r),
            Ok(None) => {}
            Err(message) => return Outcome::error(message),
        }
    }
    if runtimes.is_empty() {
        return Outcome::absent(format!(
            "no container runtime config ({CONTAINERD_CONFIG}, {DOCKER_CONFIG}, {CRIO_CONFIG} or CRI-O drop-ins)"
        ));
    }
    Outcome::ok(runtimes)
}

pub(crate) fn run(cx: &Context<'_>, observed: &mut Observed) -> (ProbeStatus, Option<String>) {
    finish(probe(cx), |v| observed.runtimes = v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn containerd_versions() {
        let v1 = "[plugins.cri.containerd.runtimes.nvidia]\nruntime_type = \"io.containerd.runc.v2\"\n[plugins.cri.containerd]\ndefault_runtime_name = \"nvidia\"\n";
        let cfg = parse_containerd_config(v1, 1).unwrap();
        assert_eq!(cfg.version, 1);
        assert!(cfg.nvidia_handler);
        assert_eq!(cfg.default_runtime.as_deref(), Some("nvidia"));
        let v2 = "version = 2\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n[plugins.\"io.containerd.grpc.v1.cri\"]\nenable_cdi = true\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia]\nruntime_type = \"io.containerd.runc.v2\"\n";
        let cfg = parse_containerd_config(v2, 1).unwrap();
        assert_eq!(cfg.imports, vec!["/etc/containerd/conf.d/*.toml"]);
        assert!(cfg.nvidia_handler);
        assert_eq!(cfg.cdi_enabled, Some(true));
        assert_eq!(cfg.default_runtime, None);
        // The v2 table in a v3 file is not where containerd 2.x looks.
        let v3_wrong = v2.replace("version = 2", "version = 3");
        assert!(
            !parse_containerd_config(&v3_wrong, 1)
                .unwrap()
                .nvidia_handler
        );
        let v3 = "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\".containerd]\ndefault_runtime_name = \"nvidia\"\n[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.nvidia]\nruntime_type = \"io.containerd.runc.v2\"\n";
        let cfg = parse_containerd_config(v3, 1).unwrap();
        assert!(cfg.nvidia_handler);
        assert_eq!(cfg.default_runtime.as_deref(), Some("nvidia"));
        assert!(parse_containerd_config("version = 4\n", 1).is_err());
        assert!(parse_containerd_config("version = \"2\"\n", 1).is_err());
        assert!(parse_containerd_config("imports = 3\n", 1).is_err());
        assert_eq!(parse_containerd_config("", 2).unwrap().version, 2);
    }

    #[test]
    fn docker_and_crio() {
        let d = r#"{"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}, "default-runtime": "nvidia", "features": {"cdi": true}}"#;
        let cfg = parse_docker_config(d).unwrap();
        assert!(cfg.nvidia_handler);
        assert_eq!(cfg.default_runtime.as_deref(), Some("nvidia"));
        assert_eq!(cfg.cdi_enabled, Some(true));
        assert!(parse_docker_config("[]").is_err());
        assert!(parse_docker_config("{\"runtimes\": {").is_err());
        let c = "[crio.runtime]\ndefault_runtime = \"nvidia\"\n[crio.runtime.runtimes.nvidia]\nruntime_path = \"/usr/bin/nvidia-container-runtime\"\nruntime_type = \"oci\"\n";
        let cfg = parse_crio_config(c).unwrap();
        assert!(cfg.nvidia_handler);
        assert_eq!(cfg.default_runtime.as_deref(), Some("nvidia"));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_containerd_config(&s, 1);
            let _ = parse_docker_config(&s);
            let _ = parse_crio_config(&s);
        }
    }
}
