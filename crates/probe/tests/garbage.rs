//! Hostile and broken hosts: every probe that meets garbage says `Error`
//! with the host path and the reason, and the other probes still run.

use std::io;
use std::path::Path;
use std::sync::Arc;

use plumbline_api::{ProbeResult, ProbeStatus};
use plumbline_probe::{HostRoot, Options, ReadHook, probe_host};

fn write(root: &Path, path: &str, text: &str) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
    std::fs::write(full, text).expect("write");
}

fn options() -> Options<'static> {
    Options {
        nvml: false,
        ..Options::default()
    }
}

fn result<'a>(results: &'a [ProbeResult], name: &str) -> &'a ProbeResult {
    results.iter().find(|r| r.name == name).expect("probe ran")
}

fn good_host(root: &Path) {
    write(
        root,
        "proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build\n",
    );
    write(root, "sys/module/nvidia/version", "580.95.05\n");
    write(root, "proc/sys/kernel/osrelease", "6.8.0-85-generic\n");
    write(root, "etc/os-release", "ID=ubuntu\nVERSION_ID=\"24.04\"\n");
}

#[test]
fn a_50_mb_file_is_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().expect("temp dir");
    good_host(dir.path());
    // Sparse: 50 MB on paper, nothing on disk.
    let big = dir.path().join("etc/os-release");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(50 * 1024 * 1024))
        .expect("sparse file");
    let host = HostRoot::new(dir.path()).expect("root");
    let (observed, results) = probe_host(&host, &options());
    let os = result(&results, "os");
    assert_eq!(os.status, ProbeStatus::Error);
    assert_eq!(
        os.message.as_deref(),
        Some("reading /etc/os-release: 52428800 bytes is over the 4194304-byte limit")
    );
    assert_eq!(result(&results, "kernelModule").status, ProbeStatus::Ok);
    assert_eq!(observed.driver.version.as_deref(), Some("580.95.05"));
    assert_eq!(observed.kernel.release.as_deref(), Some("6.8.0-85-generic"));
}

#[test]
fn a_permission_error_names_the_path_and_the_others_run() {
    struct Deny;
    impl ReadHook for Deny {
        fn before_read(&self, host_path: &str) -> Option<io::Error> {
            (host_path == "/proc/driver/nvidia/version")
                .then(|| io::Error::from(io::ErrorKind::PermissionDenied))
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    good_host(dir.path());
    let host = HostRoot::new(dir.path())
        .expect("root")
        .with_hook(Arc::new(Deny));
    let (observed, results) = probe_host(&host, &options());
    let module = result(&results, "kernelModule");
    assert_eq!(module.status, ProbeStatus::Error);
    assert_eq!(
        module.message.as_deref(),
        Some("reading /proc/driver/nvidia/version: permission denied")
    );
    assert!(!observed.driver.loaded);
    assert_eq!(result(&results, "os").status, ProbeStatus::Ok);
    assert_eq!(observed.os.id.as_deref(), Some("ubuntu"));
    assert_eq!(results.len(), plumbline_probe::REGISTRY.len());
}

#[test]
fn proc_and_sys_disagreeing_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    good_host(dir.path());
    write(dir.path(), "sys/module/nvidia/version", "580.82.07\n");
    let host = HostRoot::new(dir.path()).expect("root");
    let (observed, results) = probe_host(&host, &options());
    let module = result(&results, "kernelModule");
    assert_eq!(module.status, ProbeStatus::Error);
    assert_eq!(
        module.message.as_deref(),
        Some(
            "kernel module versions disagree: /proc/driver/nvidia/version says 580.95.05, /sys/module/nvidia/version says 580.82.07"
        )
    );
    assert_eq!(observed.driver.version, None);
}

#[test]
fn an_unknown_branch_has_no_ceiling_and_says_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  999.1.2  Release Build\n",
    );
    let host = HostRoot::new(dir.path()).expect("root");
    let (observed, results) = probe_host(&host, &options());
    let ceiling = result(&results, "cudaCeiling");
    assert_eq!(ceiling.status, ProbeStatus::Ok);
    let data_version = plumbline_compat::CompatDb::embedded().data_version();
    assert_eq!(
        ceiling.message.as_deref(),
        Some(
            format!("branch 999 is not in the compatibility data (data version {data_version})")
                .as_str()
        )
    );
    assert_eq!(observed.driver.cuda_ceiling, None);
}

#[test]
fn a_symlink_out_of_the_root_stays_in_the_root() {
    let dir = tempfile::tempdir().expect("temp dir");
    good_host(dir.path());
    // /etc/os-release -> /usr/lib/os-release, absolute: must not read the
    // build machine's own file.
    std::fs::remove_file(dir.path().join("etc/os-release")).expect("rm");
    write(dir.path(), "usr/lib/os-release", "ID=fixtureos\n");
    std::os::unix::fs::symlink("/usr/lib/os-release", dir.path().join("etc/os-release"))
        .expect("link");
    let host = HostRoot::new(dir.path()).expect("root");
    let (observed, _) = probe_host(&host, &options());
    assert_eq!(observed.os.id.as_deref(), Some("fixtureos"));
}

#[test]
fn probing_the_build_machine_never_panics() {
    let host = HostRoot::new("/").expect("root");
    let (_, results) = probe_host(&host, &Options::default());
    assert_eq!(results.len(), plumbline_probe::REGISTRY.len());
}

#[test]
fn a_fifo_where_a_file_belongs_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().expect("temp dir");
    good_host(dir.path());
    let fifo = dir.path().join("etc/os-release");
    std::fs::remove_file(&fifo).expect("rm");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let host = HostRoot::new(dir.path()).expect("root");
    let (_, results) = probe_host(&host, &options());
    let os = result(&results, "os");
    assert_eq!(os.status, ProbeStatus::Error);
    assert_eq!(
        os.message.as_deref(),
        Some("reading /etc/os-release: not a regular file (a device, FIFO or socket)")
    );
}
