//! Reading a host's NVIDIA stack from its files.
//!
//! Everything Plumbline decides rests on what this crate reports, so it
//! reports only what a host's files say, and says plainly when it could not
//! tell. It reads files, never runs commands, needs no privileges, and works
//! the same on a real node (the agent mounts the host at `/host`), on a
//! provisioning machine (`plumbline check`), and on a fixture tree in a test.
//!
//! ```text
//!   HostRoot ─────────────► registry (static, in order) ──────────► Observed
//!   (root dir; symlinks      kernelModule  userspace  cudaCeiling    (status.observed)
//!    re-rooted, read          gpus  toolkits  containerToolkit
//!    limits, errors name      runtimes  cdi  kernel  os                  +
//!    the host path)           fabricManager  nvml
//!        │                        │  each probe: (HostRoot,      Vec<ProbeResult>
//!        └── read / resolve ◄─────┘  context so far) → value     (status.probes)
//!                                    + Ok | Absent | Error
//! ```
//!
//! Every host path goes through a [`HostRoot`]. It resolves symlinks one
//! component at a time and re-roots absolute targets, so
//! `/usr/local/cuda -> /etc/alternatives/cuda` stays inside the mounted tree
//! instead of escaping to the probing machine's own `/etc`. It also caps
//! every read, so a 50 MB file is an error rather than an allocation.
//! Within one pass it remembers which directories are real directories and
//! which paths are missing, so each is looked at once; an agent can also
//! keep a [`ParseCache`] between passes, which reuses a parsed CDI spec only
//! while the file's bytes are unchanged.
//!
//! The probes run in registry order ([`REGISTRY`]). Some need what an
//! earlier one found: the userspace probe compares library versions with the
//! loaded module, the CUDA ceiling needs the driver version, and CDI
//! staleness needs the driver and the GPUs. So each probe gets a [`Context`]
//! with the [`Observed`] built so far and the results before it. A probe is a
//! pure function of that context and the host's files. It returns a value
//! and a status: `Ok` (found and understood), `Absent` (not on this host,
//! which is not a fault) or `Error` (there but unreadable or not
//! understood; the message names the host path and the reason). A probe
//! that fails leaves its part of [`Observed`] at the default; the others
//! still run.
//!
//! Each parser is a separate `parse_*(&str)` function, free of I/O, so that
//! property tests can throw arbitrary input at it. NVML is optional and sits
//! behind [`GpuLibrary`]. The real implementation loads the host's
//! `libnvidia-ml.so.1` lazily; a host without it gets `Absent`, not an
//! error.

use std::time::Instant;

use plumbline_api::{Observed, ProbeResult, ProbeStatus};
use plumbline_compat::CompatDb;

mod host;
pub mod nvml;
pub mod probes;

pub use host::{
    DEFAULT_MAX_FILE_SIZE, HostError, HostRoot, MAX_SYMLINKS, ReadHook, Resolved, host_join,
};
pub use nvml::{GpuLibrary, GpuLibraryError, NvmlDevice, NvmlLibrary, NvmlSnapshot};
pub use probes::{Probe, REGISTRY};

/// Largest package database (`/var/lib/dpkg/status`) read by default. A
/// workstation's status file with the CUDA toolkit installed runs to a few
/// megabytes, more than any other file probes read.
pub const DEFAULT_MAX_PACKAGE_DB_SIZE: u64 = 32 * 1024 * 1024;

/// How much a probe pass may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest file read, except the package database.
    pub max_file_size: u64,
    /// Largest package database read.
    pub max_package_db_size: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_package_db_size: DEFAULT_MAX_PACKAGE_DB_SIZE,
        }
    }
}

/// How a probe pass runs.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// The compatibility data (default: the embedded data).
    pub compat: &'a CompatDb,
    /// Whether the NVML probe runs at all.
    pub nvml: bool,
    /// The NVML library to load, as a path on this machine. `None` means the
    /// `libnvidia-ml.so.1` the userspace probe found in the host tree.
    pub nvml_library: Option<&'a std::path::Path>,
    /// How NVML is reached; [`NvmlLibrary`] in production.
    pub gpu_library: &'a dyn GpuLibrary,
    pub limits: ReadLimits,
    /// Parsed files kept between passes (the agent keeps one; a single
    /// `plumbline check` does not need it). `None` parses everything.
    pub cache: Option<&'a ParseCache>,
}

impl std::fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("compat", &self.compat.origin())
            .field("nvml", &self.nvml)
            .field("nvml_library", &self.nvml_library)
            .field("limits", &self.limits)
            .finish()
    }
}

static NVML_LIBRARY: NvmlLibrary = NvmlLibrary;

impl Default for Options<'static> {
    fn default() -> Self {
        Options {
            compat: CompatDb::embedded(),
            nvml: true,
            nvml_library: None,
            gpu_library: &NVML_LIBRARY,
            limits: ReadLimits::default(),
            cache: None,
        }
    }
}

impl<'a> Options<'a> {
    /// Defaults with the given compatibility data.
    pub fn with_compat(compat: &'a CompatDb) -> Options<'a> {
        Options {
            compat,
            ..Options::default()
        }
    }
}

/// Most files a [`ParseCache`] remembers; a host has a handful of CDI specs.
const PARSE_CACHE_ENTRIES: usize = 64;

/// Parsed CDI specs from earlier passes, by host path. A spec is reused only
/// when the file's bytes are exactly those parsed before, so the cache can
/// never answer for a changed file; it saves only the YAML parse, which is
/// most of a pass's CPU time.
#[derive(Debug, Default)]
pub struct ParseCache {
    cdi: std::sync::Mutex<std::collections::HashMap<String, (String, probes::cdi::CdiSpec)>>,
}

impl ParseCache {
    pub fn new() -> ParseCache {
        ParseCache::default()
    }

    /// The spec parsed from `text`, from the cache when `path` held exactly
    /// `text` last time.
    pub(crate) fn cdi_spec(
        &self,
        path: &str,
        text: String,
        json: bool,
    ) -> Result<probes::cdi::CdiSpec, probes::ParseError> {
        if let Ok(cache) = self.cdi.lock()
            && let Some((cached_text, spec)) = cache.get(path)
            && *cached_text == text
        {
            return Ok(spec.clone());
        }
        let spec = probes::cdi::parse_cdi_spec(&text, json)?;
        if let Ok(mut cache) = self.cdi.lock() {
            if cache.len() >= PARSE_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(path.to_owned(), (text, spec.clone()));
        }
        Ok(spec)
    }
}

/// What a probe sees: the host, the options, and everything found before it.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub host: &'a HostRoot,
    pub options: &'a Options<'a>,
    /// Results of the probes that ran before this one, in registry order.
    pub results: &'a [ProbeResult],
}

impl Context<'_> {
    /// The status of an earlier probe, `None` if it has not run.
    pub fn status_of(&self, name: &str) -> Option<ProbeStatus> {
        self.results
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.status)
    }
}

/// What one probe found: its value, status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    pub status: ProbeStatus,
    pub message: Option<String>,
    pub value: T,
}

impl<T: Default> Outcome<T> {
    pub fn ok(value: T) -> Self {
        Outcome {
            status: ProbeStatus::Ok,
            message: None,
            value,
        }
    }

    pub fn ok_with(value: T, message: impl Into<String>) -> Self {
        Outcome {
            status: ProbeStatus::Ok,
            message: Some(message.into()),
            value,
        }
    }

    /// Not on this host; the value is the default.
    pub fn absent(message: impl Into<String>) -> Self {
        Outcome {
            status: ProbeStatus::Absent,
            message: Some(message.into()),
            value: T::default(),
        }
    }

    /// Could not read or understand the host; the value is the default.
    pub fn error(message: impl Into<String>) -> Self {
        Outcome {
            status: ProbeStatus::Error,
            message: Some(message.into()),
            value: T::default(),
        }
    }
}

/// Joins several notes into one probe message.
pub(crate) fn join_messages(notes: Vec<String>) -> Option<String> {
    if notes.is_empty() {
        None
    } else {
        Some(notes.join("; "))
    }
}

/// Runs every probe in registry order and returns what they found.
pub fn probe_host(host: &HostRoot, options: &Options<'_>) -> (Observed, Vec<ProbeResult>) {
    let host = host
        .clone()
        .with_max_file_size(options.limits.max_file_size)
        .with_dir_memory();
    let mut observed = Observed::default();
    let mut results: Vec<ProbeResult> = Vec::with_capacity(REGISTRY.len());
    for probe in REGISTRY {
        let started = Instant::now();
        let cx = Context {
            host: &host,
            options,
            results: &results,
        };
        let (status, message) = (probe.run)(&cx, &mut observed);
        let duration_micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        results.push(ProbeResult {
            name: probe.name.to_owned(),
            status,
            message,
            duration_micros,
        });
    }
    (observed, results)
}
