//! NVML, optional: cross-checks the file answers and adds what only NVML
//! knows (memory, MIG and ECC modes). No library means `Absent`; a
//! driver/library version mismatch marks the driver `mismatch`.

use plumbline_api::{GpuObserved, Observed, ProbeStatus};
use plumbline_compat::DriverVersion;

use super::finish;
use super::userspace::{NVML_SONAME, ROOTS, locate};
use crate::nvml::{GpuLibraryError, NvmlSnapshot};
use crate::{Context, Outcome, join_messages};

const MIB: u64 = 1024 * 1024;

/// What NVML changes: the GPUs with NVML's fields added, and the mismatch
/// flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NvmlFindings {
    pub gpus: Vec<GpuObserved>,
    pub mismatch: bool,
}

/// Merges an NVML snapshot into the GPUs the files gave, returning the
/// GPUs and one note per disagreement. Pure, so it is tested without NVML.
pub fn merge(snapshot: &NvmlSnapshot, so_far: &Observed) -> (Vec<GpuObserved>, Vec<String>) {
    let mut gpus = so_far.gpus.clone();
    let mut notes = Vec::new();
    if let (Some(nvml), Some(module)) = (&snapshot.driver_version, &so_far.driver.version) {
        let same = match (DriverVersion::parse(nvml), DriverVersion::parse(module)) {
            (Ok(a), Ok(b)) => a == b,
            _ => nvml == module,
        };
        if !same {
            notes.push(format!(
                "NVML reports driver {nvml}, the kernel module is {module}"
            ));
        }
    }
    for device in &snapshot.devices {
        let found = gpus
            .iter_mut()
            .find(|g| match (device.minor, &device.uuid) {
                (Some(minor), _) => g.index == minor,
                (None, Some(uuid)) => g.uuid.as_deref() == Some(uuid.as_str()),
                (None, None) => false,
            });
        let label = device
            .uuid
            .clone()
            .unwrap_or_else(|| format!("NVML device {}", device.index));
        let Some(gpu) = found else {
            notes.push(format!(
                "NVML reports {label} that /proc/driver/nvidia/gpus does not list"
            ));
            continue;
        };
        if let (Some(u), Some(g)) = (&device.uuid, &gpu.uuid)
            && u != g
        {
            notes.push(format!(
                "GPU {}: NVML UUID {u}, driver files say {g}",
                gpu.index
            ));
        }
        if let Some(name) = &device.name
            && *name != gpu.product
        {
            notes.push(format!(
                "GPU {}: NVML name {name:?}, driver files say {:?}",
                gpu.index, gpu.product
            ));
        }
        match (&device.compute_capability, &gpu.compute_capability) {
            (Some(n), Some(c)) if n != c => notes.push(format!(
                "GPU {}: NVML compute capability {n}, compatibility data says {c}",
                gpu.index
            )),
            (Some(n), None) => gpu.compute_capability = Some(n.clone()),
            _ => {}
        }
        gpu.memory_mib = device.memory_total_bytes.map(|b| b / MIB);
        gpu.mig_enabled = device.mig_enabled;
        gpu.ecc_enabled = device.ecc_enabled;
    }
    if snapshot.devices.len() != gpus.len() {
        notes.push(format!(
            "NVML reports {} GPUs, /proc/driver/nvidia/gpus lists {}",
            snapshot.devices.len(),
            gpus.len()
        ));
    }
    notes.extend(snapshot.notes.iter().cloned());
    (gpus, notes)
}

pub fn probe(cx: &Context<'_>, so_far: &Observed) -> Outcome<NvmlFindings> {
    let unchanged = || NvmlFindings {
        gpus: so_far.gpus.clone(),
        mismatch: so_far.driver.mismatch,
    };
    if !cx.options.nvml {
        let mut o = Outcome::absent("NVML disabled");
        o.value = unchanged();
        return o;
    }
    let (shown, path) = match cx.options.nvml_library {
        Some(p) => (p.display().to_string(), p.to_path_buf()),
        None => {
            let roots: Vec<&str> = match so_far.driver.root.as_deref() {
                Some(r) => vec![r],
                None => ROOTS.to_vec(),
            };
            let mut found = None;
            for root in roots {
                match locate(cx.host, root, NVML_SONAME) {
                    Ok(Some(lib)) => {
                        found = Some(lib);
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => return Outcome::error(e.to_string()),
                }
            }
            let Some(lib) = found else {
                let mut o = Outcome::absent(format!("no {NVML_SONAME} on the host"));
                o.value = unchanged();
                return o;
            };
            match cx.host.resolve(&lib.link) {
                Ok(r) => (lib.link, r.real_path),
                Err(e) => return Outcome::error(e.to_string()),
            }
        }
    };
    let snapshot = match cx.options.gpu_library.query(&path) {
        Ok(s) => s,
        Err(e @ (GpuLibraryError::NotLoadable { .. } | GpuLibraryError::DriverNotLoaded)) => {
            let mut o = Outcome::absent(format!("{shown}: {e}"));
            o.value = unchanged();
            return o;
        }
        Err(GpuLibraryError::VersionMismatch) => {
            return Outcome {
                status: ProbeStatus::Ok,
                message: Some(format!(
                    "{shown}: NVML reports a driver/library version mismatch: a reboot is pending"
                )),
                value: NvmlFindings {
                    gpus: so_far.gpus.clone(),
                    mismatch: true,
                },
            };
        }
        Err(e) => {
            let mut o = Outcome::error(format!("{shown}: {e}"));
            o.value = unchanged();
            return o;
        }
    };
    let (gpus, notes) = merge(&snapshot, so_far);
    Outcome {
        status: ProbeStatus::Ok,
        message: join_messages(notes),
        value: NvmlFindings {
            gpus,
            mismatch: so_far.driver.mismatch,
        },
    }
}

pub(crate) fn run(cx: &Context<'_>, observed: &mut Observed) -> (ProbeStatus, Option<String>) {
    let outcome = probe(cx, observed);
    finish(outcome, |v| {
        observed.gpus = v.gpus;
        observed.driver.mismatch = v.mismatch;
    })
}
