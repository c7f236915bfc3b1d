//! NVML behind a trait, so the probe can be tested without a GPU and the
//! real library is touched only when a probe pass asks for it.
//!
//! [`NvmlLibrary`] goes through the `nvml-wrapper` crate, which loads the
//! library with `dlopen` at call time (never at start-up), from the path the
//! probe found in the host tree. A missing or unloadable library is not an
//! error: NVML is optional and everything it adds is a cross-check.

use std::path::Path;

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

/// One device as NVML reports it. `None` where NVML does not support the
/// query on this device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NvmlDevice {
    /// NVML's enumeration index (not necessarily the minor number).
    pub index: u32,
    /// `/dev/nvidiaN` minor number, which the probes use as the GPU index.
    pub minor: Option<u32>,
    pub uuid: Option<String>,
    pub name: Option<String>,
    /// `major.minor`.
    pub compute_capability: Option<String>,
    pub memory_total_bytes: Option<u64>,
    pub mig_enabled: Option<bool>,
    pub ecc_enabled: Option<bool>,
}

/// Everything one NVML session reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NvmlSnapshot {
    pub driver_version: Option<String>,
    /// `1000·major + 10·minor`, as NVML encodes it.
    pub cuda_driver_version: Option<i32>,
    pub devices: Vec<NvmlDevice>,
    /// Queries that failed for a reason other than "not supported".
    pub notes: Vec<String>,
}

/// Why NVML gave no snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuLibraryError {
    /// The library could not be loaded or lacks NVML's entry points.
    #[error("cannot load the library: {reason}")]
    NotLoadable { reason: String },
    /// `NVML_ERROR_DRIVER_NOT_LOADED`.
    #[error("NVML says no driver is loaded")]
    DriverNotLoaded,
    /// `NVML_ERROR_LIB_RM_VERSION_MISMATCH`: the library and the loaded
    /// kernel module differ; a reboot is pending.
    #[error("driver/library version mismatch")]
    VersionMismatch,
    #[error("{call}: {reason}")]
    Call { call: &'static str, reason: String },
}

impl GpuLibraryError {
    /// Stable short name, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            GpuLibraryError::NotLoadable { .. } => "not_loadable",
            GpuLibraryError::DriverNotLoaded => "driver_not_loaded",
            GpuLibraryError::VersionMismatch => "version_mismatch",
            GpuLibraryError::Call { .. } => "call",
        }
    }
}

/// A way to ask NVML about the GPUs.
pub trait GpuLibrary: Send + Sync {
    /// Loads the library at `library` (a path on this machine), queries it
    /// and unloads it.
    fn query(&self, library: &Path) -> Result<NvmlSnapshot, GpuLibraryError>;
}

/// The real NVML, through `nvml-wrapper`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NvmlLibrary;

fn init_error(e: NvmlError) -> GpuLibraryError {
    match e {
        NvmlError::LibloadingError(e) => GpuLibraryError::NotLoadable {
            reason: e.to_string(),
        },
        NvmlError::FailedToLoadSymbol(s) => GpuLibraryError::NotLoadable {
            reason: format!("missing symbol: {s}"),
        },
        NvmlError::LibRmVersionMismatch => GpuLibraryError::VersionMismatch,
        NvmlError::DriverNotLoaded => GpuLibraryError::DriverNotLoaded,
        other => GpuLibraryError::Call {
            call: "nvmlInit_v2",
            reason: other.to_string(),
        },
    }
}

/// `Some(value)`, `None` when unsupported, and a note for other failures.
fn optional<T>(
    result: Result<T, NvmlError>,
    what: &str,
    index: u32,
    notes: &mut Vec<String>,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(NvmlError::NotSupported) => None,
        Err(e) => {
            notes.push(format!("device {index}: {what}: {e}"));
            None
        }
    }
}

impl GpuLibrary for NvmlLibrary {
    fn query(&self, library: &Path) -> Result<NvmlSnapshot, GpuLibraryError> {
        let nvml = Nvml::builder()
            .lib_path(library.as_os_str())
            .init()
            .map_err(init_error)?;
        let mut snapshot = NvmlSnapshot::default();
        let mut notes = Vec::new();
        snapshot.driver_version =
            optional(nvml.sys_driver_version(), "driver version", 0, &mut notes);
        snapshot.cuda_driver_version = optional(
            nvml.sys_cuda_driver_version(),
            "CUDA driver version",
            0,
            &mut notes,
        );
        let count = nvml.device_count().map_err(|e| GpuLibraryError::Call {
            call: "nvmlDeviceGetCount_v2",
            reason: e.to_string(),
        })?;
        for index in 0..count {
            let device = match nvml.device_by_index(index) {
                Ok(d) => d,
                Err(e) => {
                    notes.push(format!("device {index}: {e}"));
                    continue;
                }
            };
            snapshot.devices.push(NvmlDevice {
                index,
                minor: optional(device.minor_number(), "minor number", index, &mut notes),
                uuid: optional(device.uuid(), "UUID", index, &mut notes),
                name: optional(device.name(), "name", index, &mut notes),
                compute_capability: optional(
                    device.cuda_compute_capability(),
                    "compute capability",
                    index,
                    &mut notes,
                )
                .map(|cc| format!("{}.{}", cc.major, cc.minor)),
                memory_total_bytes: optional(device.memory_info(), "memory", index, &mut notes)
                    .map(|m| m.total),
                mig_enabled: optional(device.mig_mode(), "MIG mode", index, &mut notes)
                    .map(|m| m.current == 1),
                ecc_enabled: optional(device.is_ecc_enabled(), "ECC mode", index, &mut notes)
                    .map(|e| e.currently_enabled),
            });
        }
        snapshot.notes = notes;
        Ok(snapshot)
    }
}
