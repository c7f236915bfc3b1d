//! The NVML probe through the real `nvml-wrapper` code path, against a
//! small fake `libnvidia-ml` compiled from C at test time.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use plumbline_api::ProbeStatus;
use plumbline_probe::{GpuLibrary, GpuLibraryError, HostRoot, NvmlLibrary, Options, probe_host};

const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/nvml-fake/fake_nvml.c");
const LIB_DIR: &str = "usr/lib/x86_64-linux-gnu";

/// Compiles the fake with `mode` as its default into `dir`.
fn build_fake(dir: &Path, mode: &str) -> PathBuf {
    let out = dir.join(format!("libfake-nvml-{mode}.so"));
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(format!("-DFAKE_NVML_DEFAULT_MODE=\"{mode}\""))
        .arg(SOURCE)
        .status()
        .expect("gcc runs (it is on every build machine)");
    assert!(status.success(), "gcc failed to build the fake NVML");
    out
}

/// A host with two H100s, driver 580.95.05 and the fake as its NVML.
fn host_with_fake(mode: &str) -> (tempfile::TempDir, HostRoot) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("host");
    let write = |path: &str, text: &str| {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, text).expect("write");
    };
    write(
        "proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build\n",
    );
    for (i, uuid) in [
        "GPU-00000000-1111-2222-3333-444444444444",
        "GPU-55555555-6666-7777-8888-999999999999",
    ]
    .iter()
    .enumerate()
    {
        write(
            &format!("proc/driver/nvidia/gpus/0000:1{i}:00.0/information"),
            &format!(
                "Model: \t\t NVIDIA H100 80GB HBM3\nGPU UUID: \t\t {uuid}\nBus Location: \t\t 0000:1{i}:00.0\nDevice Minor: \t\t {i}\n"
            ),
        );
    }
    let lib = build_fake(dir.path(), mode);
    std::fs::create_dir_all(root.join(LIB_DIR)).expect("lib dir");
    std::fs::copy(&lib, root.join(LIB_DIR).join("libnvidia-ml.so.580.95.05")).expect("copy");
    symlink(
        "libnvidia-ml.so.580.95.05",
        root.join(LIB_DIR).join("libnvidia-ml.so.1"),
    )
    .expect("link");
    let host = HostRoot::new(&root).expect("host root");
    (dir, host)
}

fn nvml_result(results: &[plumbline_api::ProbeResult]) -> &plumbline_api::ProbeResult {
    results
        .iter()
        .find(|r| r.name == "nvml")
        .expect("nvml probe ran")
}

#[test]
fn the_fake_answers_through_nvml_wrapper() {
    let (_dir, host) = host_with_fake("ok");
    let (observed, results) = probe_host(&host, &Options::default());
    let nvml = nvml_result(&results);
    assert_eq!(nvml.status, ProbeStatus::Ok, "{nvml:?}");
    assert_eq!(nvml.message, None);
    assert_eq!(observed.gpus.len(), 2);
    let g0 = &observed.gpus[0];
    assert_eq!(g0.memory_mib, Some(81559));
    assert_eq!(g0.mig_enabled, Some(false));
    assert_eq!(g0.ecc_enabled, Some(true));
    assert_eq!(g0.compute_capability.as_deref(), Some("9.0"));
    assert_eq!(observed.gpus[1].mig_enabled, Some(true));
    assert!(!observed.driver.mismatch);
}

#[test]
fn a_version_mismatch_marks_the_driver() {
    let (_dir, host) = host_with_fake("mismatch");
    let (observed, results) = probe_host(&host, &Options::default());
    let nvml = nvml_result(&results);
    assert_eq!(nvml.status, ProbeStatus::Ok);
    assert_eq!(
        nvml.message.as_deref(),
        Some(
            "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1: NVML reports a driver/library version mismatch: a reboot is pending"
        )
    );
    assert!(observed.driver.mismatch);
    assert_eq!(observed.gpus[0].memory_mib, None);
}

#[test]
fn disagreements_are_reported_and_driver_not_loaded_is_absent() {
    let (_dir, host) = host_with_fake("disagree");
    let (observed, results) = probe_host(&host, &Options::default());
    let nvml = nvml_result(&results);
    assert_eq!(nvml.status, ProbeStatus::Ok);
    assert_eq!(
        nvml.message.as_deref(),
        Some(
            "NVML reports driver 580.82.07, the kernel module is 580.95.05; GPU 1: NVML compute capability 8.0, compatibility data says 9.0"
        )
    );
    assert_eq!(observed.gpus[1].compute_capability.as_deref(), Some("9.0"));

    let (_dir, host) = host_with_fake("nodriver");
    let (_, results) = probe_host(&host, &Options::default());
    let nvml = nvml_result(&results);
    assert_eq!(nvml.status, ProbeStatus::Absent);
    assert_eq!(
        nvml.message.as_deref(),
        Some("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1: NVML says no driver is loaded")
    );
}

#[test]
fn no_library_or_an_unloadable_one_is_absent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = HostRoot::new(dir.path()).expect("host root");
    let (_, results) = probe_host(&host, &Options::default());
    let nvml = nvml_result(&results);
    assert_eq!(nvml.status, ProbeStatus::Absent);
    assert_eq!(
        nvml.message.as_deref(),
        Some("no libnvidia-ml.so.1 on the host")
    );

    // An empty file where the library should be: dlopen refuses it.
    let lib = dir.path().join(LIB_DIR);
    std::fs::create_dir_all(&lib).expect("lib dir");
    std::fs::write(lib.join("libnvidia-ml.so.550.120"), "").expect("write");
    symlink("libnvidia-ml.so.550.120", lib.join("libnvidia-ml.so.1")).expect("link");
    let (_, results) = probe_host(&host, &Options::default());
    let nvml = nvml_result(&results);
    assert_eq!(nvml.status, ProbeStatus::Absent);
    assert!(
        nvml.message.as_deref().is_some_and(|m| m
            .starts_with("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1: cannot load the library")),
        "{nvml:?}"
    );
    let err = NvmlLibrary
        .query(&dir.path().join("nowhere.so"))
        .expect_err("no library");
    assert_eq!(err.kind(), "not_loadable");
    assert!(matches!(err, GpuLibraryError::NotLoadable { .. }));
}
