//! GPUs, from `/proc/driver/nvidia/gpus/<pci-bus-id>/information` (no NVML
//! needed); architecture and compute capability from the compatibility
//! data by product name.

use plumbline_api::{GpuObserved, Observed, ProbeStatus};

use super::{ParseError, finish};
use crate::{Context, Outcome, host_join, join_messages};

pub const GPUS_DIR: &str = "/proc/driver/nvidia/gpus";

/// The fields of one `information` file that probes use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuInformation {
    pub model: String,
    pub uuid: Option<String>,
    pub bus_location: Option<String>,
    pub device_minor: u32,
    pub excluded: bool,
}

/// Parses an `information` file: `Key:   value` lines.
pub fn parse_gpu_information(text: &str) -> Result<GpuInformation, ParseError> {
    let mut model = None;
    let mut minor = None;
    let mut info = GpuInformation::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "Model" => model = Some(value.to_owned()),
            "GPU UUID" if !value.is_empty() => info.uuid = Some(value.to_owned()),
            "Bus Location" if !value.is_empty() => info.bus_location = Some(value.to_owned()),
            "Device Minor" => {
                minor = Some(value.parse::<u32>().map_err(|_| {
                    ParseError::invalid(
                        "GPU information",
                        format!("Device Minor {value:?} is not a number"),
                    )
                })?);
            }
            "GPU Excluded" => info.excluded = value.eq_ignore_ascii_case("yes"),
            _ => {}
        }
    }
    info.model = model
        .filter(|m| !m.is_empty())
        .ok_or(ParseError::Missing { field: "Model" })?;
    info.device_minor = minor.ok_or(ParseError::Missing {
        field: "Device Minor",
    })?;
    Ok(info)
}

pub fn probe(cx: &Context<'_>) -> Outcome<Vec<GpuObserved>> {
    let dirs = match cx.host.read_dir(GPUS_DIR) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => {
            return Outcome::absent(format!("{GPUS_DIR} does not exist (no driver loaded)"));
        }
        Err(e) => return Outcome::error(e.to_string()),
    };
    let mut gpus = Vec::new();
    let mut notes = Vec::new();
    for dir in dirs {
        let path = host_join(&host_join(GPUS_DIR, &dir), "information");
        let text = match cx.host.read_to_string(&path) {
            Ok(t) => t,
            Err(e) => return Outcome::error(e.to_string()),
        };
        let info = match parse_gpu_information(&text) {
            Ok(i) => i,
            Err(e) => return Outcome::error(format!("{path}: {e}")),
        };
        let known = cx.options.compat.gpu(&info.model);
        if known.is_none() {
            notes.push(format!("{} is not in the compatibility data", info.model));
        }
        gpus.push(GpuObserved {
            index: info.device_minor,
            pci_bus_id: info.bus_location.unwrap_or(dir),
            uuid: info.uuid,
            architecture: known.as_ref().map(|g| g.architecture.name().to_owned()),
            compute_capability: known.as_ref().map(|g| g.compute_capability.to_string()),
            product: info.model,
            excluded: info.excluded,
            ..GpuObserved::default()
        });
    }
    if gpus.is_empty() {
        return Outcome::absent(format!("no GPUs listed in {GPUS_DIR}"));
    }
    gpus.sort_by(|a, b| {
        a.index
            .cmp(&b.index)
            .then_with(|| a.pci_bus_id.cmp(&b.pci_bus_id))
    });
    notes.dedup();
    Outcome {
        status: ProbeStatus::Ok,
        message: join_messages(notes),
        value: gpus,
    }
}

pub(crate) fn run(cx: &Context<'_>, observed: &mut Observed) -> (ProbeStatus, Option<String>) {
    finish(probe(cx), |v| observed.gpus = v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H100: &str = "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 0\nGPU UUID: \t\t GPU-9a7a1b5e-0f3c-4c39-8f7e-1d2b3c4d5e6f\nVideo BIOS: \t\t 96.00.99.00.01\nBus Type: \t\t PCIe\nDMA Size: \t\t 52 bits\nDMA Mask: \t\t 0xfffffffffffff\nBus Location: \t\t 0000:18:00.0\nDevice Minor: \t\t 3\nGPU Excluded:\t\t No\n";

    #[test]
    fn parses_the_driver_format() {
        let info = parse_gpu_information(H100).unwrap();
        assert_eq!(info.model, "NVIDIA H100 80GB HBM3");
        assert_eq!(
            info.uuid.as_deref(),
            Some("GPU-9a7a1b5e-0f3c-4c39-8f7e-1d2b3c4d5e6f")
        );
        assert_eq!(info.bus_location.as_deref(), Some("0000:18:00.0"));
        assert_eq!(info.device_minor, 3);
        assert!(!info.excluded);
        let excluded = H100.replace("GPU Excluded:\t\t No", "GPU Excluded:\t\t Yes");
        assert!(parse_gpu_information(&excluded).unwrap().excluded);
    }

    #[test]
    fn refuses_missing_fields() {
        assert_eq!(
            parse_gpu_information("Model: NVIDIA A100\n")
                .unwrap_err()
                .to_string(),
            "no Device Minor found"
        );
        assert!(parse_gpu_information("Device Minor: x\nModel: A\n").is_err());
        assert!(parse_gpu_information("").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_gpu_information(&s);
        }
    }
}
