//! The agent's settings, their defaults, and the checks that stop a
//! misconfigured agent at start with a message saying what to change.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::SharedMetrics;
use crate::probe::HostProbe;

/// Default `--host-root`: where the DaemonSet mounts the host's `/`.
pub const DEFAULT_HOST_ROOT: &str = "/host";
/// Default `--metrics-addr`.
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9400";
/// Default `--probe-interval`.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(60);
/// Default `--heartbeat-interval`.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(300);
/// Default interval for re-reading the kernel module version files, which
/// procfs and sysfs do not report through inotify.
pub const DEFAULT_KERNEL_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default quiet time after a file change before probing, so a burst of
/// writes (a package upgrade, `nvidia-ctk runtime configure`) is one probe.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(200);
/// Default limit on one API request, so a server that accepts connections
/// but never answers cannot stall publishing forever.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything `run` needs besides the client. Plain data, no CLI parsing:
/// the `plumbline agent` command fills it from flags and environment
/// variables, and `plumbline sim` fills thousands of them in one process.
#[derive(Clone)]
pub struct AgentConfig {
    /// Name of the Node this agent runs on (`--node-name`, `NODE_NAME`).
    pub node_name: String,
    /// Where the host's `/` is mounted (`--host-root`, `HOST_ROOT`).
    pub host_root: PathBuf,
    /// Probe at least this often (`--probe-interval`).
    pub probe_interval: Duration,
    /// Confirm an unchanged status this often (`--heartbeat-interval`).
    pub heartbeat_interval: Duration,
    /// Also ask NVML (`--nvml`); off by default so the agent needs no
    /// device access.
    pub nvml: bool,
    /// The NVML library to load with `nvml` (`--nvml-library`), as a path in
    /// the agent's own filesystem (the `nvidia` runtime injects it); `None`
    /// loads the host's, found by the userspace probe.
    pub nvml_library: Option<PathBuf>,
    /// Serve `/metrics`, `/healthz` and `/readyz` here (`--metrics-addr`,
    /// `METRICS_ADDR`); `None` serves nothing (the simulator's choice).
    pub metrics_addr: Option<SocketAddr>,
    /// Watch the host's config and spec directories with inotify
    /// (`--watch`). Off, changes are seen at the next timer or poll.
    pub watch_files: bool,
    /// Re-read the kernel module version files this often; `None` disables
    /// the poll.
    pub kernel_poll_interval: Option<Duration>,
    /// Quiet time after a change before probing.
    pub debounce: Duration,
    /// Limit on one API request.
    pub api_timeout: Duration,
    /// First retry delay after an API error; doubles up to `backoff_max`.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Written to `status.agentVersion`.
    pub agent_version: String,
    /// Metrics families registered by the caller in a shared registry.
    /// `None`: the agent makes its own (served at `metrics_addr` if set).
    pub metrics: Option<SharedMetrics>,
    /// Replaces the host probes (the simulator's synthetic hosts); `None`
    /// probes the tree under `host_root`.
    pub probe: Option<Arc<dyn HostProbe>>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            node_name: String::new(),
            host_root: PathBuf::from(DEFAULT_HOST_ROOT),
            probe_interval: DEFAULT_PROBE_INTERVAL,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            nvml: false,
            nvml_library: None,
            metrics_addr: DEFAULT_METRICS_ADDR.parse().ok(),
            watch_files: true,
            kernel_poll_interval: Some(DEFAULT_KERNEL_POLL_INTERVAL),
            debounce: DEFAULT_DEBOUNCE,
            api_timeout: DEFAULT_API_TIMEOUT,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            metrics: None,
            probe: None,
        }
    }
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("node_name", &self.node_name)
            .field("host_root", &self.host_root)
            .field("probe_interval", &self.probe_interval)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("nvml", &self.nvml)
            .field("nvml_library", &self.nvml_library)
            .field("metrics_addr", &self.metrics_addr)
            .field("watch_files", &self.watch_files)
            .field("kernel_poll_interval", &self.kernel_poll_interval)
            .field("debounce", &self.debounce)
            .field("api_timeout", &self.api_timeout)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("agent_version", &self.agent_version)
            .field("shared_metrics", &self.metrics.is_some())
            .field("custom_probe", &self.probe.is_some())
            .finish()
    }
}

/// A setting that stops the agent at start. Each message names the setting
/// and says how to fix it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "node name is not set: pass --node-name or set NODE_NAME (in the DaemonSet, from the downward API: env NODE_NAME valueFrom fieldRef spec.nodeName)"
    )]
    MissingNodeName,
    #[error(
        "node name {name:?} is not a valid Kubernetes object name ({reason}): pass the Node's name exactly as `kubectl get nodes` shows it in --node-name or NODE_NAME"
    )]
    InvalidNodeName { name: String, reason: &'static str },
    #[error(
        "host root {path} does not exist: mount the host's / read-only there (hostPath volume, path /) or point --host-root / HOST_ROOT at where it is mounted"
    )]
    HostRootMissing { path: String },
    #[error(
        "host root {path} is not a directory: point --host-root / HOST_ROOT at the directory where the host's / is mounted"
    )]
    HostRootNotDirectory { path: String },
    #[error(
        "NVML library {path} does not exist: run the agent under the nvidia runtime class (agent.nvml.enabled=true in the chart), point --nvml-library at the library, or drop --nvml"
    )]
    NvmlLibraryMissing { path: String },
    #[error(
        "{setting} is {value:?}, {problem}: pass a value such as {example} (units: ms, s, m, h)"
    )]
    BadDuration {
        setting: &'static str,
        value: Duration,
        problem: &'static str,
        example: &'static str,
    },
}

impl ConfigError {
    /// Stable short name for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigError::MissingNodeName => "missing_node_name",
            ConfigError::InvalidNodeName { .. } => "invalid_node_name",
            ConfigError::HostRootMissing { .. } => "host_root_missing",
            ConfigError::HostRootNotDirectory { .. } => "host_root_not_directory",
            ConfigError::NvmlLibraryMissing { .. } => "nvml_library_missing",
            ConfigError::BadDuration { .. } => "bad_duration",
        }
    }
}

/// Checks every setting; the first problem found is returned. The host root
/// is checked only when the agent probes the real tree (no custom probe).
pub fn validate_config(config: &AgentConfig) -> Result<(), ConfigError> {
    if config.node_name.trim().is_empty() {
        return Err(ConfigError::MissingNodeName);
    }
    if let Err(reason) = check_object_name(&config.node_name) {
        return Err(ConfigError::InvalidNodeName {
            name: config.node_name.clone(),
            reason,
        });
    }
    if config.probe.is_none() {
        let path = config.host_root.display().to_string();
        match std::fs::metadata(&config.host_root) {
            Err(_) => return Err(ConfigError::HostRootMissing { path }),
            Ok(meta) if !meta.is_dir() => {
                return Err(ConfigError::HostRootNotDirectory { path });
            }
            Ok(_) => {}
        }
    }
    if config.nvml
        && let Some(lib) = &config.nvml_library
        && !lib.exists()
    {
        return Err(ConfigError::NvmlLibraryMissing {
            path: lib.display().to_string(),
        });
    }
    check_duration(
        "--probe-interval",
        config.probe_interval,
        Duration::from_secs(1),
        Duration::from_secs(24 * 3600),
        "60s",
    )?;
    check_duration(
        "--heartbeat-interval",
        config.heartbeat_interval,
        Duration::from_secs(1),
        Duration::from_secs(24 * 3600),
        "5m",
    )?;
    if let Some(poll) = config.kernel_poll_interval {
        check_duration(
            "--kernel-poll-interval",
            poll,
            Duration::from_millis(100),
            Duration::from_secs(3600),
            "1s",
        )?;
    }
    check_duration(
        "--debounce",
        config.debounce,
        Duration::ZERO,
        Duration::from_millis(1500),
        "200ms",
    )?;
    check_duration(
        "--api-timeout",
        config.api_timeout,
        Duration::from_millis(100),
        Duration::from_secs(300),
        "10s",
    )?;
    Ok(())
}

fn check_duration(
    setting: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
    example: &'static str,
) -> Result<(), ConfigError> {
    let problem = if value < min {
        if min.is_zero() {
            "negative"
        } else {
            "too short"
        }
    } else if value > max {
        "too long"
    } else {
        return Ok(());
    };
    Err(ConfigError::BadDuration {
        setting,
        value,
        problem,
        example,
    })
}

/// Node names are DNS subdomains (RFC 1123): at most 253 characters of
/// lower-case alphanumerics, `-` and `.`, starting and ending alphanumeric.
fn check_object_name(name: &str) -> Result<(), &'static str> {
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err("only lower-case letters, digits, '-' and '.' are allowed");
    }
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !alnum(name.bytes().next()) || !alnum(name.bytes().last()) {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> AgentConfig {
        AgentConfig {
            node_name: "gpu-node-1".into(),
            host_root: std::env::temp_dir(),
            ..AgentConfig::default()
        }
    }

    #[test]
    fn table() {
        struct Case {
            what: &'static str,
            edit: fn(&mut AgentConfig),
            kind: Option<&'static str>,
            message_has: &'static str,
        }
        let cases = [
            Case {
                what: "a complete configuration passes",
                edit: |_| {},
                kind: None,
                message_has: "",
            },
            Case {
                what: "an empty node name says which flag and env var to set",
                edit: |c| c.node_name = String::new(),
                kind: Some("missing_node_name"),
                message_has: "NODE_NAME",
            },
            Case {
                what: "an upper-case node name is rejected",
                edit: |c| c.node_name = "GPU-1".into(),
                kind: Some("invalid_node_name"),
                message_has: "--node-name",
            },
            Case {
                what: "a node name ending in a dot is rejected",
                edit: |c| c.node_name = "gpu.".into(),
                kind: Some("invalid_node_name"),
                message_has: "start and end",
            },
            Case {
                what: "a missing host root says how to mount it",
                edit: |c| c.host_root = "/nonexistent/plumbline/host".into(),
                kind: Some("host_root_missing"),
                message_has: "HOST_ROOT",
            },
            Case {
                what: "a missing host root is fine with a custom probe",
                edit: |c| {
                    c.host_root = "/nonexistent/plumbline/host".into();
                    c.probe = Some(Arc::new(crate::probe::StaticProbe::default()));
                },
                kind: None,
                message_has: "",
            },
            Case {
                what: "a zero probe interval names the flag",
                edit: |c| c.probe_interval = Duration::ZERO,
                kind: Some("bad_duration"),
                message_has: "--probe-interval",
            },
            Case {
                what: "a debounce that would break the 2 s promise is rejected",
                edit: |c| c.debounce = Duration::from_secs(5),
                kind: Some("bad_duration"),
                message_has: "--debounce",
            },
            Case {
                what: "a missing NVML library says how to get one",
                edit: |c| {
                    c.nvml = true;
                    c.nvml_library = Some("/nonexistent/libnvidia-ml.so.1".into());
                },
                kind: Some("nvml_library_missing"),
                message_has: "--nvml-library",
            },
            Case {
                what: "a disabled kernel poll is allowed",
                edit: |c| c.kernel_poll_interval = None,
                kind: None,
                message_has: "",
            },
        ];
        for case in cases {
            let mut config = valid();
            (case.edit)(&mut config);
            let result = validate_config(&config);
            match (case.kind, result) {
                (None, Ok(())) => {}
                (Some(kind), Err(e)) => {
                    assert_eq!(e.kind(), kind, "{}", case.what);
                    assert!(
                        e.to_string().contains(case.message_has),
                        "{}: {e}",
                        case.what
                    );
                }
                (want, got) => panic!("{}: wanted {want:?}, got {got:?}", case.what),
            }
        }
    }

    #[test]
    fn host_root_that_is_a_file_is_rejected() {
        let file = tempfile::NamedTempFile::new().expect("temp file can be created");
        let config = AgentConfig {
            host_root: file.path().to_path_buf(),
            ..valid()
        };
        assert_eq!(
            validate_config(&config).map_err(|e| e.kind()),
            Err("host_root_not_directory")
        );
    }
}
