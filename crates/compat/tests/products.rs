//! Product names as drivers really report them (nvidia-smi's `name`, NVML's
//! `name`, the `Model:` line of /proc/driver/nvidia/gpus/*/information).

use plumbline_compat::{Architecture, CompatDb, ComputeCapability};

#[test]
fn product_names_resolve_to_family_architecture_and_capability() {
    // (description, product name, family, compute capability, architecture, grace)
    let cases = [
        (
            "V100 SXM2",
            "Tesla V100-SXM2-16GB",
            "V100",
            "7.0",
            Architecture::Volta,
            false,
        ),
        (
            "V100 SXM2 32GB",
            "Tesla V100-SXM2-32GB",
            "V100",
            "7.0",
            Architecture::Volta,
            false,
        ),
        (
            "V100 PCIe",
            "Tesla V100-PCIE-32GB",
            "V100",
            "7.0",
            Architecture::Volta,
            false,
        ),
        (
            "V100S",
            "Tesla V100S-PCIE-32GB",
            "V100",
            "7.0",
            Architecture::Volta,
            false,
        ),
        ("T4", "Tesla T4", "T4", "7.5", Architecture::Turing, false),
        (
            "T4 with an NVIDIA prefix",
            "NVIDIA T4",
            "T4",
            "7.5",
            Architecture::Turing,
            false,
        ),
        (
            "A100 SXM4 80GB",
            "NVIDIA A100-SXM4-80GB",
            "A100",
            "8.0",
            Architecture::Ampere,
            false,
        ),
        (
            "A100 SXM4 40GB",
            "NVIDIA A100-SXM4-40GB",
            "A100",
            "8.0",
            Architecture::Ampere,
            false,
        ),
        (
            "A100 PCIe 80GB",
            "NVIDIA A100 80GB PCIe",
            "A100",
            "8.0",
            Architecture::Ampere,
            false,
        ),
        (
            "A100 PCIe 40GB",
            "NVIDIA A100-PCIE-40GB",
            "A100",
            "8.0",
            Architecture::Ampere,
            false,
        ),
        (
            "A100 MIG device",
            "NVIDIA A100-SXM4-40GB MIG 1g.5gb",
            "A100",
            "8.0",
            Architecture::Ampere,
            false,
        ),
        (
            "A10: not A100",
            "NVIDIA A10",
            "A10",
            "8.6",
            Architecture::Ampere,
            false,
        ),
        (
            "A10G (AWS)",
            "NVIDIA A10G",
            "A10G",
            "8.6",
            Architecture::Ampere,
            false,
        ),
        (
            "A40",
            "NVIDIA A40",
            "A40",
            "8.6",
            Architecture::Ampere,
            false,
        ),
        (
            "A16",
            "NVIDIA A16",
            "A16",
            "8.6",
            Architecture::Ampere,
            false,
        ),
        ("A2", "NVIDIA A2", "A2", "8.6", Architecture::Ampere, false),
        (
            "A30",
            "NVIDIA A30",
            "A30",
            "8.0",
            Architecture::Ampere,
            false,
        ),
        (
            "RTX A6000",
            "NVIDIA RTX A6000",
            "RTX A6000",
            "8.6",
            Architecture::Ampere,
            false,
        ),
        (
            "L4: not L40",
            "NVIDIA L4",
            "L4",
            "8.9",
            Architecture::Ada,
            false,
        ),
        (
            "L40: not L40S",
            "NVIDIA L40",
            "L40",
            "8.9",
            Architecture::Ada,
            false,
        ),
        (
            "L40S",
            "NVIDIA L40S",
            "L40S",
            "8.9",
            Architecture::Ada,
            false,
        ),
        (
            "RTX 6000 Ada",
            "NVIDIA RTX 6000 Ada Generation",
            "RTX 6000 Ada",
            "8.9",
            Architecture::Ada,
            false,
        ),
        (
            "Quadro RTX 6000 is Turing",
            "Quadro RTX 6000",
            "Quadro RTX 6000",
            "7.5",
            Architecture::Turing,
            false,
        ),
        (
            "H100 SXM",
            "NVIDIA H100 80GB HBM3",
            "H100",
            "9.0",
            Architecture::Hopper,
            false,
        ),
        (
            "H100 PCIe",
            "NVIDIA H100 PCIe",
            "H100",
            "9.0",
            Architecture::Hopper,
            false,
        ),
        (
            "H100 NVL",
            "NVIDIA H100 NVL",
            "H100",
            "9.0",
            Architecture::Hopper,
            false,
        ),
        (
            "H200: not GH200",
            "NVIDIA H200",
            "H200",
            "9.0",
            Architecture::Hopper,
            false,
        ),
        (
            "H200 NVL",
            "NVIDIA H200 NVL",
            "H200",
            "9.0",
            Architecture::Hopper,
            false,
        ),
        (
            "H800",
            "NVIDIA H800",
            "H800",
            "9.0",
            Architecture::Hopper,
            false,
        ),
        (
            "GH200: not H200",
            "NVIDIA GH200 480GB",
            "GH200",
            "9.0",
            Architecture::Hopper,
            true,
        ),
        (
            "GH200 144G",
            "NVIDIA GH200 144G HBM3e",
            "GH200",
            "9.0",
            Architecture::Hopper,
            true,
        ),
        (
            "B200: not GB200",
            "NVIDIA B200",
            "B200",
            "10.0",
            Architecture::Blackwell,
            false,
        ),
        (
            "GB200: not B200",
            "NVIDIA GB200",
            "GB200",
            "10.0",
            Architecture::Blackwell,
            true,
        ),
        (
            "B300",
            "NVIDIA B300 SXM6 AC",
            "B300",
            "10.3",
            Architecture::Blackwell,
            false,
        ),
        (
            "GB300",
            "NVIDIA GB300",
            "GB300",
            "10.3",
            Architecture::Blackwell,
            true,
        ),
        (
            "RTX PRO 6000 Server Edition",
            "NVIDIA RTX PRO 6000 Blackwell Server Edition",
            "RTX PRO 6000 Blackwell",
            "12.0",
            Architecture::Blackwell,
            false,
        ),
        (
            "RTX PRO 6000 Workstation",
            "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
            "RTX PRO 6000 Blackwell",
            "12.0",
            Architecture::Blackwell,
            false,
        ),
        (
            "GB10 (DGX Spark)",
            "NVIDIA GB10",
            "GB10",
            "12.1",
            Architecture::Blackwell,
            true,
        ),
        (
            "K80",
            "Tesla K80",
            "K80",
            "3.7",
            Architecture::Kepler,
            false,
        ),
        (
            "M60",
            "Tesla M60",
            "M60",
            "5.2",
            Architecture::Maxwell,
            false,
        ),
        (
            "P100",
            "Tesla P100-PCIE-16GB",
            "P100",
            "6.0",
            Architecture::Pascal,
            false,
        ),
        (
            "P40",
            "Tesla P40",
            "P40",
            "6.1",
            Architecture::Pascal,
            false,
        ),
        (
            "P4: not P40",
            "Tesla P4",
            "P4",
            "6.1",
            Architecture::Pascal,
            false,
        ),
        (
            "lower case",
            "nvidia h100 80gb hbm3",
            "H100",
            "9.0",
            Architecture::Hopper,
            false,
        ),
        (
            "padded with spaces",
            "  NVIDIA   L40S  ",
            "L40S",
            "8.9",
            Architecture::Ada,
            false,
        ),
    ];
    let db = CompatDb::embedded();
    for (description, product, family, cc, architecture, grace) in cases {
        let info = db
            .gpu(product)
            .unwrap_or_else(|| panic!("{description}: {product:?} not recognised"));
        assert_eq!(info.product_family, family, "{description}");
        assert_eq!(
            info.compute_capability,
            ComputeCapability::parse(cc).unwrap(),
            "{description}"
        );
        assert_eq!(info.architecture, architecture, "{description}");
        assert_eq!(info.grace, grace, "{description}");
    }
}

#[test]
fn unknown_product_names_are_not_guessed() {
    let cases = [
        ("empty", ""),
        ("vendor only", "NVIDIA"),
        ("brand only", "Tesla"),
        ("consumer card", "NVIDIA GeForce RTX 4090"),
        ("workstation card not in the data", "NVIDIA RTX A2000"),
        ("a number that contains A10", "NVIDIA A1000"),
        ("a number that contains H100", "NVIDIA H1000"),
        ("a suffix glued to B200", "NVIDIA B200X"),
        ("L4 glued to a suffix", "NVIDIA L4X"),
        ("another vendor", "Matrox G200eW3"),
        ("an error string", "[N/A]"),
        ("punctuation only", "--- / ---"),
    ];
    let db = CompatDb::embedded();
    for (description, product) in cases {
        assert_eq!(db.gpu(product), None, "{description}: {product:?}");
        assert_eq!(db.gpu_is_confirmed(product), None, "{description}");
    }
}

#[test]
fn rows_outside_the_reference_are_marked_unconfirmed() {
    let db = CompatDb::embedded();
    let cases = [
        ("A10G is not in the reference's table", "NVIDIA A10G", false),
        ("K80 is not in the reference's table", "Tesla K80", false),
        ("H100 is", "NVIDIA H100 PCIe", true),
    ];
    for (description, product, want) in cases {
        assert_eq!(db.gpu_is_confirmed(product), Some(want), "{description}");
    }
}
