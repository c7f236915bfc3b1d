//! The parts simulated hosts are built from: GPU products, operating
//! systems and CUDA toolkits, with the names and numbers real machines
//! report (see /work/shared/REFERENCE.md and the fixture hosts).

/// CPU architecture of a host; decides the library directory and the
/// `NVRM version` wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpuArch {
    X86_64,
    Aarch64,
}

impl CpuArch {
    /// As `uname -m` and the `NVRM version` line say it.
    pub fn uname(self) -> &'static str {
        match self {
            CpuArch::X86_64 => "x86_64",
            CpuArch::Aarch64 => "aarch64",
        }
    }

    /// As Kubernetes and dpkg say it.
    pub fn goarch(self) -> &'static str {
        match self {
            CpuArch::X86_64 => "amd64",
            CpuArch::Aarch64 => "arm64",
        }
    }

    /// Where the distribution puts the driver's libraries.
    pub fn lib_dir(self) -> &'static str {
        match self {
            CpuArch::X86_64 => "/usr/lib/x86_64-linux-gnu",
            CpuArch::Aarch64 => "/usr/lib/aarch64-linux-gnu",
        }
    }
}

/// Kernel module flavour of an installed driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    Open,
    Proprietary,
}

impl Flavour {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Open => "open",
            Flavour::Proprietary => "proprietary",
        }
    }
}

/// A GPU product as the driver names it, with what the node labels and
/// the compatibility data say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuModel {
    /// `Model:` in `/proc/driver/nvidia/gpus/*/information`.
    pub product: &'static str,
    /// GPU Feature Discovery's `nvidia.com/gpu.product` value.
    pub label: &'static str,
    pub family: &'static str,
    pub architecture: &'static str,
    pub memory_mib: u64,
    /// The only flavour this GPU runs with, if it has no choice.
    pub needs: Option<Flavour>,
}

pub const H100: GpuModel = GpuModel {
    product: "NVIDIA H100 80GB HBM3",
    label: "NVIDIA-H100-80GB-HBM3",
    family: "hopper",
    architecture: "Hopper",
    memory_mib: 81559,
    needs: None,
};

pub const A100: GpuModel = GpuModel {
    product: "NVIDIA A100-SXM4-80GB",
    label: "NVIDIA-A100-SXM4-80GB",
    family: "ampere",
    architecture: "Ampere",
    memory_mib: 81920,
    needs: None,
};

pub const L40S: GpuModel = GpuModel {
    product: "NVIDIA L40S",
    label: "NVIDIA-L40S",
    family: "ada-lovelace",
    architecture: "Ada Lovelace",
    memory_mib: 46068,
    needs: None,
};

pub const L4: GpuModel = GpuModel {
    product: "NVIDIA L4",
    label: "NVIDIA-L4",
    family: "ada-lovelace",
    architecture: "Ada Lovelace",
    memory_mib: 23034,
    needs: None,
};

pub const B200: GpuModel = GpuModel {
    product: "NVIDIA B200",
    label: "NVIDIA-B200",
    family: "blackwell",
    architecture: "Blackwell",
    memory_mib: 183359,
    needs: Some(Flavour::Open),
};

pub const V100: GpuModel = GpuModel {
    product: "Tesla V100-SXM2-32GB",
    label: "Tesla-V100-SXM2-32GB",
    family: "volta",
    architecture: "Volta",
    memory_mib: 32768,
    needs: Some(Flavour::Proprietary),
};

pub const GB200: GpuModel = GpuModel {
    product: "NVIDIA GB200",
    label: "NVIDIA-GB200",
    family: "blackwell",
    architecture: "Blackwell",
    memory_mib: 189471,
    needs: Some(Flavour::Open),
};

pub const A10: GpuModel = GpuModel {
    product: "NVIDIA A10",
    label: "NVIDIA-A10",
    family: "ampere",
    architecture: "Ampere",
    memory_mib: 23028,
    needs: None,
};

/// An operating system image: `/etc/os-release` and the kernel it boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsImage {
    pub id: &'static str,
    pub version_id: &'static str,
    pub pretty_name: &'static str,
    pub version: &'static str,
    pub codename: &'static str,
    pub id_like: Option<&'static str>,
}

pub const UBUNTU_2404: OsImage = OsImage {
    id: "ubuntu",
    version_id: "24.04",
    pretty_name: "Ubuntu 24.04.3 LTS",
    version: "24.04.3 LTS (Noble Numbat)",
    codename: "noble",
    id_like: Some("debian"),
};

pub const UBUNTU_2204: OsImage = OsImage {
    id: "ubuntu",
    version_id: "22.04",
    pretty_name: "Ubuntu 22.04.5 LTS",
    version: "22.04.5 LTS (Jammy Jellyfish)",
    codename: "jammy",
    id_like: Some("debian"),
};

pub const DEBIAN_12: OsImage = OsImage {
    id: "debian",
    version_id: "12",
    pretty_name: "Debian GNU/Linux 12 (bookworm)",
    version: "12 (bookworm)",
    codename: "bookworm",
    id_like: None,
};

/// A host CUDA toolkit: `major.minor`, the `cuda_cudart` version and the
/// SDK date `version.json` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Toolkit {
    pub version: &'static str,
    pub full: &'static str,
    pub sdk_date: &'static str,
}

pub const CUDA_11_8: Toolkit = Toolkit {
    version: "11.8",
    full: "11.8.89",
    sdk_date: "20221002",
};
pub const CUDA_12_2: Toolkit = Toolkit {
    version: "12.2",
    full: "12.2.140",
    sdk_date: "20230823",
};
pub const CUDA_12_4: Toolkit = Toolkit {
    version: "12.4",
    full: "12.4.131",
    sdk_date: "20240301",
};
pub const CUDA_12_8: Toolkit = Toolkit {
    version: "12.8",
    full: "12.8.90",
    sdk_date: "20250123",
};
pub const CUDA_12_9: Toolkit = Toolkit {
    version: "12.9",
    full: "12.9.79",
    sdk_date: "20250506",
};
pub const CUDA_13_0: Toolkit = Toolkit {
    version: "13.0",
    full: "13.0.96",
    sdk_date: "20250807",
};
pub const CUDA_13_2: Toolkit = Toolkit {
    version: "13.2",
    full: "13.2.51",
    sdk_date: "20260312",
};

/// PCI bus ids of the GPUs of an `n`-GPU machine of this CPU architecture,
/// in device-minor order (the layouts of the fixture hosts).
pub fn gpu_bus_ids(cpu: CpuArch, n: usize) -> Vec<String> {
    const HGX: [&str; 8] = [
        "0000:18:00.0",
        "0000:2a:00.0",
        "0000:3a:00.0",
        "0000:5d:00.0",
        "0000:9a:00.0",
        "0000:ab:00.0",
        "0000:ba:00.0",
        "0000:db:00.0",
    ];
    const GRACE: [&str; 4] = [
        "0008:01:00.0",
        "0009:01:00.0",
        "0018:01:00.0",
        "0019:01:00.0",
    ];
    match (cpu, n) {
        (CpuArch::Aarch64, _) => GRACE.iter().take(n).map(|s| s.to_string()).collect(),
        (_, 1) => vec!["0000:00:1e.0".to_string()],
        (_, 2) => vec!["0000:4f:00.0".to_string(), "0000:52:00.0".to_string()],
        (_, 4) => vec![
            "0000:17:00.0".to_string(),
            "0000:31:00.0".to_string(),
            "0000:b1:00.0".to_string(),
            "0000:ca:00.0".to_string(),
        ],
        _ => HGX.iter().take(n).map(|s| s.to_string()).collect(),
    }
}

/// PCI bus ids of `n` NVSwitches.
pub fn nvswitch_bus_ids(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("0000:{:02x}:00.0", 5 + i)).collect()
}
