//! Every row of the reference tables, asked through the public API of the
//! embedded data. A failure here means the data file and the reference
//! notes disagree.

use plumbline_compat::{
    Architecture, BranchLifecycle, CompatDb, ComputeCapability, CudaVersion, DriverVersion,
    GpuInfo, ModuleNeed, RunCheck,
};

fn db() -> &'static CompatDb {
    CompatDb::embedded()
}

fn driver(s: &str) -> DriverVersion {
    DriverVersion::parse(s).expect("test driver versions are valid")
}

fn cuda(s: &str) -> CudaVersion {
    CudaVersion::parse(s).expect("test CUDA versions are valid")
}

fn cc(s: &str) -> ComputeCapability {
    ComputeCapability::parse(s).expect("test compute capabilities are valid")
}

#[test]
fn table_1_branch_ceilings() {
    // (description, branch, ceiling, confirmed)
    let cases = [
        ("450: first CUDA 11 branch", 450, "11.0", true),
        ("455", 455, "11.1", true),
        ("460", 460, "11.2", true),
        ("465", 465, "11.3", true),
        ("470: last Kepler branch", 470, "11.4", true),
        ("495", 495, "11.5", true),
        ("510", 510, "11.6", true),
        ("515: first open-module branch", 515, "11.7", true),
        ("520", 520, "11.8", true),
        ("525: first CUDA 12 branch", 525, "12.0", true),
        ("530", 530, "12.1", true),
        ("535 LTSB", 535, "12.2", true),
        ("545", 545, "12.3", true),
        ("550", 550, "12.4", true),
        ("555", 555, "12.5", true),
        ("560: open module default", 560, "12.6", true),
        (
            "565: ceiling 12.7 though no 12.7 toolkit shipped",
            565,
            "12.7",
            true,
        ),
        ("570", 570, "12.8", true),
        ("575", 575, "12.9", true),
        ("580 LTSB: first CUDA 13 branch", 580, "13.0", true),
        ("590", 590, "13.1", true),
        ("595 PB", 595, "13.2", true),
        ("610 NFB", 610, "13.3", true),
        ("615: unconfirmed", 615, "13.4", false),
        ("616: unconfirmed", 616, "13.4", false),
    ];
    for (description, branch, ceiling, confirmed) in cases {
        let d = driver(&format!("{branch}.10.01"));
        assert_eq!(db().cuda_ceiling(&d), Some(cuda(ceiling)), "{description}");
        let two_part = driver(&format!("{branch}.120"));
        assert_eq!(
            db().cuda_ceiling(&two_part),
            Some(cuda(ceiling)),
            "{description} (two-part version)"
        );
        assert_eq!(
            db().ceiling_is_confirmed(branch),
            Some(confirmed),
            "{description}"
        );
    }
    let listed: Vec<u32> = cases.iter().map(|c| c.1).collect();
    let known: Vec<u32> = db().known_branches().collect();
    assert_eq!(
        known, listed,
        "the data lists exactly the reference's branches"
    );
}

#[test]
fn table_1_unknown_branches_are_never_guessed() {
    let cases = [
        ("gap between 535 and 545", "540.10.01"),
        ("gap between 580 and 590", "585.05"),
        ("gap between 595 and 610", "600.11.02"),
        ("newer than every listed branch", "620.10.01"),
        ("older than every listed branch", "440.100"),
        ("Kepler-era branch not in the data", "390.157"),
    ];
    for (description, version) in cases {
        let d = driver(version);
        assert_eq!(db().cuda_ceiling(&d), None, "{description}");
        assert_eq!(db().ceiling_is_confirmed(d.branch()), None, "{description}");
        assert_eq!(
            db().can_run(&d, cuda("11.0"), true),
            RunCheck::UnknownDriver,
            "{description}"
        );
    }
}

#[test]
fn table_1_min_branch_for_ceiling() {
    let cases = [
        ("oldest CUDA in the data", "11.0", Some(450)),
        ("CUDA 11.8", "11.8", Some(520)),
        ("CUDA 12.0", "12.0", Some(525)),
        ("CUDA 12.4", "12.4", Some(550)),
        ("CUDA 12.6", "12.6", Some(560)),
        ("CUDA 12.7 (ceiling only)", "12.7", Some(565)),
        ("CUDA 13.0", "13.0", Some(580)),
        ("CUDA 13.3", "13.3", Some(610)),
        ("CUDA 13.4: only unconfirmed branches", "13.4", Some(615)),
        ("nothing reaches CUDA 13.5", "13.5", None),
        (
            "older CUDA than any row: the oldest branch",
            "10.2",
            Some(450),
        ),
    ];
    for (description, version, want) in cases {
        assert_eq!(
            db().min_branch_for_ceiling(cuda(version)),
            want,
            "{description}"
        );
    }
}

#[test]
fn table_1_lifecycles() {
    let cases = [
        (
            "535 long-term support to 2026-06",
            535,
            Some(("LTSB", (2026, 6))),
        ),
        (
            "580 long-term support to 2028-06",
            580,
            Some(("LTSB", (2028, 6))),
        ),
        (
            "595 production branch to 2027-03",
            595,
            Some(("PB", (2027, 3))),
        ),
        (
            "610 new-feature branch to 2026-08",
            610,
            Some(("NFB", (2026, 8))),
        ),
        ("550 has no lifecycle in the data", 550, None),
        ("unknown branch", 540, None),
    ];
    for (description, branch, want) in cases {
        let want = want.map(|(kind, (y, m))| BranchLifecycle {
            kind: kind.to_owned(),
            end: jiff::civil::date(y, m, 1),
        });
        assert_eq!(db().branch_lifecycle(branch), want, "{description}");
    }
}

#[test]
fn table_1_branch_notes() {
    let info = db().branch_info(565).unwrap();
    assert_eq!(info.ceiling, cuda("12.7"));
    assert_eq!(
        info.note.as_deref(),
        Some("no CUDA 12.7 toolkit was ever released")
    );
    assert_eq!(db().branch_info(550).unwrap().note, None);
}

#[test]
fn table_2_toolkit_minimum_drivers() {
    // (description, toolkit, update, minimum driver)
    let cases = [
        ("13.3 GA", "13.3", 0, "610.43.02"),
        ("13.2 GA", "13.2", 0, "595.45.04"),
        ("13.2 Update 1", "13.2", 1, "595.58.03"),
        ("13.1 GA", "13.1", 0, "590.44.01"),
        ("13.1 Update 1", "13.1", 1, "590.48.01"),
        ("13.0 GA", "13.0", 0, "580.65.06"),
        ("13.0 Update 1", "13.0", 1, "580.82.07"),
        ("13.0 Update 2", "13.0", 2, "580.95.05"),
        ("12.9 GA", "12.9", 0, "575.51.03"),
        ("12.9 Update 1", "12.9", 1, "575.57.08"),
        ("12.8 GA: a two-part driver version", "12.8", 0, "570.26"),
        ("12.8 Update 1", "12.8", 1, "570.124.06"),
        ("12.6 GA", "12.6", 0, "560.28.03"),
        ("12.6 Update 3", "12.6", 3, "560.35.05"),
        ("12.5 GA", "12.5", 0, "555.42.02"),
        ("12.4 GA", "12.4", 0, "550.54.14"),
        ("12.4 Update 1", "12.4", 1, "550.54.15"),
        ("12.3", "12.3", 0, "545.23.06"),
        ("12.2 GA", "12.2", 0, "535.54.03"),
        ("12.1", "12.1", 0, "530.30.02"),
        ("12.0 GA", "12.0", 0, "525.60.13"),
        ("12.0 Update 1", "12.0", 1, "525.85.12"),
        ("11.8", "11.8", 0, "520.61.05"),
        ("11.4 GA", "11.4", 0, "470.42.01"),
        ("11.0", "11.0", 0, "450.36.06"),
    ];
    for (description, toolkit, update, min) in cases {
        let got = db().min_driver_for_toolkit_update(cuda(toolkit), update);
        assert_eq!(got, Some(driver(min)), "{description}");
        // Displayed exactly as NVIDIA writes it, zero padding included.
        assert_eq!(got.unwrap().to_string(), min, "{description}: display");
        if update == 0 {
            assert_eq!(
                db().min_driver_for_toolkit(cuda(toolkit)),
                Some(driver(min)),
                "{description}: GA shortcut"
            );
        }
        assert_eq!(
            db().toolkit_is_confirmed(cuda(toolkit), update),
            Some(true),
            "{description}"
        );
    }
    assert_eq!(db().known_toolkits().count(), cases.len());
}

#[test]
fn table_2_toolkits_and_updates_not_in_the_data() {
    let cases = [
        ("12.7 was never released", "12.7", 0),
        ("11.1 is not in the reference", "11.1", 0),
        ("13.4 is not in the reference", "13.4", 0),
        (
            "12.6 Update 1 is not listed: GA's minimum could be too low",
            "12.6",
            1,
        ),
        ("13.0 Update 3 does not exist", "13.0", 3),
    ];
    for (description, toolkit, update) in cases {
        assert_eq!(
            db().min_driver_for_toolkit_update(cuda(toolkit), update),
            None,
            "{description}"
        );
    }
    assert_eq!(db().min_driver_for_toolkit(cuda("12.7")), None);
}

#[test]
fn table_2_minor_version_compatibility_minimums() {
    let cases = [
        ("CUDA 11.x from branch 450", 11, Some(450)),
        ("CUDA 12.x from branch 525", 12, Some(525)),
        ("CUDA 13.x from branch 580", 13, Some(580)),
        ("CUDA 10 is not described", 10, None),
        ("CUDA 14 is not described", 14, None),
    ];
    for (description, major, want) in cases {
        assert_eq!(db().minor_compat_min_branch(major), want, "{description}");
    }
}

#[test]
fn can_run_per_driver_and_workload() {
    let too_old = |ceiling: &str, needs: Option<u32>| RunCheck::TooOld {
        ceiling: Some(cuda(ceiling)),
        needs_branch: needs,
    };
    // (description, driver, workload, minor-version compat allowed, expected)
    let cases = [
        ("same version", "550.54.15", "12.4", false, RunCheck::Native),
        (
            "older workload",
            "550.54.15",
            "12.2",
            false,
            RunCheck::Native,
        ),
        ("older major", "580.65.06", "11.8", false, RunCheck::Native),
        (
            "newer minor, compat allowed",
            "550.54.15",
            "12.8",
            true,
            RunCheck::MinorVersionCompat,
        ),
        (
            "newer minor, compat not allowed",
            "550.54.15",
            "12.8",
            false,
            too_old("12.4", Some(570)),
        ),
        (
            "525 is the first branch of 12.x compat",
            "525.60.13",
            "12.9",
            true,
            RunCheck::MinorVersionCompat,
        ),
        (
            "520's ceiling is 11.8: no 12.x compat",
            "520.61.05",
            "12.0",
            true,
            too_old("11.8", Some(525)),
        ),
        (
            "13.x compat from 580",
            "580.95.05",
            "13.3",
            true,
            RunCheck::MinorVersionCompat,
        ),
        (
            "575 cannot run 13.0 even with compat",
            "575.57.08",
            "13.0",
            true,
            too_old("12.9", Some(580)),
        ),
        (
            "11.x compat from 450",
            "450.80.02",
            "11.8",
            true,
            RunCheck::MinorVersionCompat,
        ),
        (
            "470 cannot run 12.4: compat would need 525",
            "470.256.02",
            "12.4",
            true,
            too_old("11.4", Some(525)),
        ),
        (
            "470 cannot run 12.4 natively: needs 550",
            "470.256.02",
            "12.4",
            false,
            too_old("11.4", Some(550)),
        ),
        (
            "nothing known runs CUDA 14.0",
            "610.43.02",
            "14.0",
            true,
            too_old("13.3", None),
        ),
        (
            "unknown branch",
            "620.01",
            "12.0",
            true,
            RunCheck::UnknownDriver,
        ),
    ];
    for (description, d, workload, compat, want) in cases {
        let got = db().can_run(&driver(d), cuda(workload), compat);
        assert_eq!(got, want, "{description}");
        assert_eq!(
            got.ok(),
            matches!(want, RunCheck::Native | RunCheck::MinorVersionCompat),
            "{description}"
        );
    }
}

#[test]
fn table_3_architecture_support_per_cuda_major() {
    // (description, CUDA major, compute capability, supported)
    let cases = [
        ("11: Kepler 3.5", 11, "3.5", Some(true)),
        ("11: Kepler 3.7", 11, "3.7", Some(true)),
        ("11: Maxwell", 11, "5.2", Some(true)),
        ("11: Volta", 11, "7.0", Some(true)),
        ("11: Ampere", 11, "8.0", Some(true)),
        ("11: Hopper 9.0 (from 11.8)", 11, "9.0", Some(true)),
        ("11: no Blackwell", 11, "10.0", Some(false)),
        ("11: Kepler 3.0 dropped before 11", 11, "3.0", Some(false)),
        ("12: Kepler dropped", 12, "3.7", Some(false)),
        ("12: Maxwell 5.0", 12, "5.0", Some(true)),
        ("12: Pascal", 12, "6.1", Some(true)),
        ("12: Volta", 12, "7.0", Some(true)),
        ("12: Turing", 12, "7.5", Some(true)),
        ("12: Ada", 12, "8.9", Some(true)),
        ("12: Hopper", 12, "9.0", Some(true)),
        ("12: Blackwell 10.0 (from 12.8)", 12, "10.0", Some(true)),
        ("12: Blackwell 10.3 (from 12.9)", 12, "10.3", Some(true)),
        ("12: Blackwell 12.0 (from 12.8)", 12, "12.0", Some(true)),
        ("12: Blackwell 12.1 (from 12.9)", 12, "12.1", Some(true)),
        ("13: Maxwell dropped", 13, "5.2", Some(false)),
        ("13: Pascal dropped", 13, "6.0", Some(false)),
        ("13: Volta dropped", 13, "7.0", Some(false)),
        ("13: Turing 7.5", 13, "7.5", Some(true)),
        ("13: Ampere", 13, "8.6", Some(true)),
        ("13: Hopper", 13, "9.0", Some(true)),
        ("13: Blackwell", 13, "10.0", Some(true)),
        ("13: GB10", 13, "12.1", Some(true)),
        ("10: not described", 10, "7.0", None),
        ("14: not described", 14, "9.0", None),
    ];
    for (description, major, capability, want) in cases {
        assert_eq!(
            db().cuda_major_supports(major, cc(capability)),
            want,
            "{description}"
        );
    }
}

#[test]
fn table_3_first_cuda_per_compute_capability() {
    // (description, compute capability, first CUDA, confirmed)
    let cases = [
        ("Hopper arrived in 11.8", "9.0", Some("11.8"), Some(true)),
        ("B200 arrived in 12.8", "10.0", Some("12.8"), Some(true)),
        (
            "RTX PRO 6000 arrived in 12.8",
            "12.0",
            Some("12.8"),
            Some(true),
        ),
        ("B300 arrived in 12.9", "10.3", Some("12.9"), Some(true)),
        ("GB10 arrived in 12.9", "12.1", Some("12.9"), Some(true)),
        (
            "Ampere 8.0: outside the reference",
            "8.0",
            Some("11.0"),
            Some(false),
        ),
        (
            "Volta: outside the reference",
            "7.0",
            Some("9.0"),
            Some(false),
        ),
        ("unknown compute capability", "9.1", None, None),
        ("Orin is not in the data", "8.7", None, None),
    ];
    for (description, capability, want, confirmed) in cases {
        assert_eq!(
            db().min_cuda_for_cc(cc(capability)),
            want.map(cuda),
            "{description}"
        );
        assert_eq!(
            db().cc_is_confirmed(cc(capability)),
            confirmed,
            "{description}"
        );
    }
}

#[test]
fn table_3_reference_gpus() {
    // The reference's GPU table, by product family.
    let cases = [
        ("V100", "Tesla V100-SXM2-16GB", "7.0", Architecture::Volta),
        ("T4", "Tesla T4", "7.5", Architecture::Turing),
        ("A100", "NVIDIA A100-SXM4-80GB", "8.0", Architecture::Ampere),
        ("A10", "NVIDIA A10", "8.6", Architecture::Ampere),
        ("A40", "NVIDIA A40", "8.6", Architecture::Ampere),
        ("A16", "NVIDIA A16", "8.6", Architecture::Ampere),
        ("A2", "NVIDIA A2", "8.6", Architecture::Ampere),
        ("L4", "NVIDIA L4", "8.9", Architecture::Ada),
        ("L40", "NVIDIA L40", "8.9", Architecture::Ada),
        ("L40S", "NVIDIA L40S", "8.9", Architecture::Ada),
        ("H100", "NVIDIA H100 80GB HBM3", "9.0", Architecture::Hopper),
        ("H200", "NVIDIA H200", "9.0", Architecture::Hopper),
        ("GH200", "NVIDIA GH200 480GB", "9.0", Architecture::Hopper),
        ("B200", "NVIDIA B200", "10.0", Architecture::Blackwell),
        ("GB200", "NVIDIA GB200", "10.0", Architecture::Blackwell),
        (
            "B300",
            "NVIDIA B300 SXM6 AC",
            "10.3",
            Architecture::Blackwell,
        ),
        ("GB300", "NVIDIA GB300", "10.3", Architecture::Blackwell),
        (
            "RTX PRO 6000 Blackwell",
            "NVIDIA RTX PRO 6000 Blackwell Server Edition",
            "12.0",
            Architecture::Blackwell,
        ),
        ("GB10", "NVIDIA GB10", "12.1", Architecture::Blackwell),
    ];
    for (family, product, capability, architecture) in cases {
        let info = db()
            .gpu(product)
            .unwrap_or_else(|| panic!("{product} unknown"));
        assert_eq!(info.product_family, family, "{product}");
        assert_eq!(info.compute_capability, cc(capability), "{product}");
        assert_eq!(info.architecture, architecture, "{product}");
        assert_eq!(db().gpu_is_confirmed(product), Some(true), "{product}");
    }
}

#[test]
fn last_branch_per_architecture() {
    let cases = [
        ("Kepler ended with 470", Architecture::Kepler, Some(470)),
        ("Maxwell ended with 580", Architecture::Maxwell, Some(580)),
        ("Pascal ended with 580", Architecture::Pascal, Some(580)),
        ("Volta ended with 580", Architecture::Volta, Some(580)),
        ("Turing still supported", Architecture::Turing, None),
        ("Ampere still supported", Architecture::Ampere, None),
        ("Ada still supported", Architecture::Ada, None),
        ("Hopper still supported", Architecture::Hopper, None),
        ("Blackwell still supported", Architecture::Blackwell, None),
    ];
    for (description, arch, want) in cases {
        assert_eq!(db().last_branch_for(arch), want, "{description}");
    }
}

#[test]
fn kernel_module_needs() {
    let gpu = |arch, cc_: &str, grace| GpuInfo {
        product_family: "test".to_owned(),
        architecture: arch,
        compute_capability: cc(cc_),
        grace,
    };
    let either = ModuleNeed::Either {
        prefer_open_from_branch: Some(560),
    };
    let cases = [
        (
            "Kepler: proprietary",
            gpu(Architecture::Kepler, "3.7", false),
            ModuleNeed::Proprietary,
        ),
        (
            "Maxwell: proprietary",
            gpu(Architecture::Maxwell, "5.2", false),
            ModuleNeed::Proprietary,
        ),
        (
            "Pascal: proprietary",
            gpu(Architecture::Pascal, "6.0", false),
            ModuleNeed::Proprietary,
        ),
        (
            "Volta: proprietary",
            gpu(Architecture::Volta, "7.0", false),
            ModuleNeed::Proprietary,
        ),
        (
            "Turing: either",
            gpu(Architecture::Turing, "7.5", false),
            either,
        ),
        (
            "Ampere: either",
            gpu(Architecture::Ampere, "8.0", false),
            either,
        ),
        ("Ada: either", gpu(Architecture::Ada, "8.9", false), either),
        (
            "Hopper without Grace: either",
            gpu(Architecture::Hopper, "9.0", false),
            either,
        ),
        (
            "Hopper with Grace: open",
            gpu(Architecture::Hopper, "9.0", true),
            ModuleNeed::Open,
        ),
        (
            "Blackwell: open",
            gpu(Architecture::Blackwell, "10.0", false),
            ModuleNeed::Open,
        ),
        (
            "Grace Blackwell: open",
            gpu(Architecture::Blackwell, "10.0", true),
            ModuleNeed::Open,
        ),
    ];
    for (description, info, want) in cases {
        assert_eq!(db().module_need(&info), want, "{description}");
    }
    assert_eq!(db().open_module_min_branch(), 515);
    assert_eq!(db().open_module_default_branch(), Some(560));
}

#[test]
fn module_need_from_product_names() {
    let cases = [
        (
            "GH200 is Grace-coupled",
            "NVIDIA GH200 480GB",
            ModuleNeed::Open,
        ),
        (
            "H100 alone may use either",
            "NVIDIA H100 PCIe",
            ModuleNeed::Either {
                prefer_open_from_branch: Some(560),
            },
        ),
        (
            "V100 needs proprietary",
            "Tesla V100-PCIE-32GB",
            ModuleNeed::Proprietary,
        ),
        ("GB10 needs open", "NVIDIA GB10", ModuleNeed::Open),
    ];
    for (description, product, want) in cases {
        let info = db().gpu(product).unwrap();
        assert_eq!(db().module_need(&info), want, "{description}");
    }
}

#[test]
fn fabric_manager_section() {
    assert_eq!(
        db().fabric_manager_packages(580),
        ["nvidia-fabricmanager-580", "cuda-drivers-fabricmanager-580"]
    );
    let cases = [
        ("HGX A100", "NVIDIA A100-SXM4-80GB", Some(true)),
        ("HGX H100", "NVIDIA H100 80GB HBM3", Some(true)),
        ("HGX H200", "NVIDIA H200", Some(true)),
        ("HGX B200", "NVIDIA B200", Some(true)),
        ("HGX B300", "NVIDIA B300 SXM6 AC", Some(true)),
        ("L40S boards have no NVSwitch", "NVIDIA L40S", Some(false)),
        ("unknown product", "NVIDIA Z9000", None),
    ];
    for (description, product, want) in cases {
        assert_eq!(
            db().gpu_has_nvswitch_systems(product),
            want,
            "{description}"
        );
    }
}
