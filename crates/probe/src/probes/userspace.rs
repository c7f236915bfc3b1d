//! Userspace driver: the versions `libnvidia-ml.so.1` and `libcuda.so.1`
//! resolve to, on the host (`/`) or in a driver container's root
//! (`/run/nvidia/driver`), and whether they differ from the loaded module
//! (a pending reboot).

use plumbline_api::{Observed, ProbeStatus};
use plumbline_compat::DriverVersion;

use super::{ParseError, finish};
use crate::{Context, HostError, HostRoot, Outcome, join_messages};

/// Library directories searched, in order, under each root.
pub const LIBRARY_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib/x86_64-linux-gnu/nvidia/current",
    "/usr/lib/aarch64-linux-gnu/nvidia/current",
];

/// Roots searched, in order: the host itself, then the driver container's
/// root that the GPU Operator mounts on the host.
pub const ROOTS: &[&str] = &["/", "/run/nvidia/driver"];

pub const NVML_SONAME: &str = "libnvidia-ml.so.1";
pub const CUDA_SONAME: &str = "libcuda.so.1";

/// One library found: the soname link and the file it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundLibrary {
    /// Host path of the soname link, e.g. `/usr/lib/x86_64-linux-gnu/libcuda.so.1`.
    pub link: String,
    /// Canonical host path it resolves to.
    pub target: String,
}

/// The host path of `dir` under `root`.
pub fn under_root(root: &str, dir: &str) -> String {
    if root == "/" {
        dir.to_owned()
    } else {
        format!("{}{dir}", root.trim_end_matches('/'))
    }
}

/// Finds `soname` in the library directories of `root`.
pub fn locate(
    host: &HostRoot,
    root: &str,
    soname: &str,
) -> Result<Option<FoundLibrary>, HostError> {
    for dir in LIBRARY_DIRS {
        let link = format!("{}/{soname}", under_root(root, dir));
        match host.resolve(&link) {
            Ok(r) if !r.is_dir() => {
                return Ok(Some(FoundLibrary {
                    link,
                    target: r.host_path,
                }));
            }
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.kind() == "not_a_directory" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The driver version in a library file name: `libnvidia-ml.so.550.120`
/// with stem `libnvidia-ml.so` gives `550.120`.
pub fn parse_library_version(file_name: &str, stem: &str) -> Result<DriverVersion, ParseError> {
    let rest = file_name
        .strip_prefix(stem)
        .and_then(|r| r.strip_prefix('.'))
        .ok_or_else(|| {
            ParseError::invalid(
                "library name",
                format!("{file_name:?} does not start with {stem}."),
            )
        })?;
    DriverVersion::parse(rest).map_err(|e| ParseError::invalid("library name", e))
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// What one root holds.
#[derive(Debug, Clone)]
struct RootLibraries {
    root: &'static str,
    nvml: Option<(FoundLibrary, DriverVersion)>,
    cuda: Option<(FoundLibrary, DriverVersion)>,
}

/// The userspace facts: version, root, mismatch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Userspace {
    pub version: Option<String>,
    pub root: Option<String>,
    pub mismatch: bool,
}

pub fn probe(cx: &Context<'_>, so_far: &Observed) -> Outcome<Userspace> {
    let mut found = Vec::new();
    for root in ROOTS {
        let mut libs = RootLibraries {
            root,
            nvml: None,
            cuda: None,
        };
        for (soname, stem) in [
            (NVML_SONAME, "libnvidia-ml.so"),
            (CUDA_SONAME, "libcuda.so"),
        ] {
            let lib = match locate(cx.host, root, soname) {
                Ok(Some(lib)) => lib,
                Ok(None) => continue,
                Err(e) => return Outcome::error(e.to_string()),
            };
            let version = match parse_library_version(file_name(&lib.target), stem) {
                Ok(v) => v,
                Err(_) => {
                    return Outcome::error(format!(
                        "cannot tell the driver version of {}: it resolves to {}, which has no version in its name",
                        lib.link, lib.target
                    ));
                }
            };
            if soname == NVML_SONAME {
                libs.nvml = Some((lib, version));
            } else {
                libs.cuda = Some((lib, version));
            }
        }
        if libs.nvml.is_some() || libs.cuda.is_some() {
            found.push(libs);
        }
    }
    let module = so_far
        .driver
        .version
        .as_deref()
        .and_then(|v| DriverVersion::parse(v).ok());
    let matches_module = |libs: &RootLibraries| {
        module.as_ref().is_some_and(|m| {
            [&libs.nvml, &libs.cuda]
                .into_iter()
                .flatten()
                .all(|(_, v)| v == m)
        })
    };
    // A host may hold both its own libraries and a driver container's;
    // the set that matches the loaded module is the one in use.
    let Some(chosen) = found
        .iter()
        .find(|l| matches_module(l))
        .or_else(|| found.first())
    else {
        return Outcome::absent(format!(
            "no {NVML_SONAME} or {CUDA_SONAME} in the library directories of {}",
            ROOTS.join(" or ")
        ));
    };
    let mut notes = Vec::new();
    let mut mismatch = false;
    let version = match (&chosen.nvml, &chosen.cuda) {
        (Some((nl, nv)), Some((cl, cv))) => {
            if nv != cv {
                mismatch = true;
                notes.push(format!(
                    "{} resolves to {} but {} resolves to {}",
                    nl.link, nl.target, cl.link, cl.target
                ));
            }
            nv.clone()
        }
        (Some((_, v)), None) => {
            notes.push(format!("no {CUDA_SONAME} found"));
            v.clone()
        }
        (None, Some((_, v))) => {
            notes.push(format!("no {NVML_SONAME} found"));
            v.clone()
        }
        (None, None) => return Outcome::error("internal: empty library set"),
    };
    match &module {
        Some(m) if *m != version => {
            mismatch = true;
            notes.push(format!(
                "userspace libraries are {version} but the loaded kernel module is {m}: a reboot is pending"
            ));
        }
        Some(_) => {}
        None if !so_far.driver.loaded => notes.push("no kernel module is loaded".to_owned()),
        None => {}
    }
    for other in found.iter().filter(|l| l.root != chosen.root) {
        notes.push(format!("another driver is installed under {}", other.root));
    }
    Outcome {
        status: ProbeStatus::Ok,
        message: join_messages(notes),
        value: Userspace {
            version: Some(version.to_string()),
            root: Some(chosen.root.to_owned()),
            mismatch,
        },
    }
}

pub(crate) fn run(cx: &Context<'_>, observed: &mut Observed) -> (ProbeStatus, Option<String>) {
    let outcome = probe(cx, observed);
    finish(outcome, |v| {
        observed.driver.userspace_version = v.version;
        observed.driver.root = v.root;
        observed.driver.mismatch = v.mismatch;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn versions_from_file_names() {
        assert_eq!(
            parse_library_version("libnvidia-ml.so.550.120", "libnvidia-ml.so")
                .unwrap()
                .to_string(),
            "550.120"
        );
        assert_eq!(
            parse_library_version("libcuda.so.580.65.06", "libcuda.so")
                .unwrap()
                .to_string(),
            "580.65.06"
        );
        assert!(parse_library_version("libcuda.so.1", "libcuda.so").is_err());
        assert!(parse_library_version("libcuda.so", "libcuda.so").is_err());
        assert!(parse_library_version("libnvidia-ml.so.1", "libcuda.so").is_err());
        assert_eq!(
            under_root("/run/nvidia/driver", "/usr/lib64"),
            "/run/nvidia/driver/usr/lib64"
        );
        assert_eq!(under_root("/", "/usr/lib64"), "/usr/lib64");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_library_version(&s, "libcuda.so");
        }
    }
}
