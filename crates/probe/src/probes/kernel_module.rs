//! Kernel module: whether an NVIDIA module is loaded, its version and its
//! flavour (open or proprietary), from `/proc/driver/nvidia/version`,
//! cross-checked with `/sys/module/nvidia/version`.

use plumbline_api::{DriverObserved, KernelModule, Observed, ProbeStatus};
use plumbline_compat::DriverVersion;

use super::{ParseError, finish};
use crate::{Context, Outcome};

pub const PROC_VERSION: &str = "/proc/driver/nvidia/version";
pub const SYS_VERSION: &str = "/sys/module/nvidia/version";

/// What the first line of `/proc/driver/nvidia/version` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvrmVersion {
    pub version: DriverVersion,
    pub flavour: KernelModule,
    /// `x86_64` or `aarch64`, when the line names it.
    pub arch: Option<String>,
}

/// Parses the `NVRM version:` line. The version is the first token after
/// "Module" that starts with a digit; "Open Kernel Module" is the open
/// flavour, "Kernel Module" alone the proprietary one.
pub fn parse_nvrm_version(text: &str) -> Result<NvrmVersion, ParseError> {
    let line = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("NVRM version:"))
        .ok_or(ParseError::Missing {
            field: "`NVRM version:` line",
        })?;
    let (before, after) = line.split_once("Kernel Module").ok_or_else(|| {
        ParseError::invalid("NVRM version line", "it does not say \"Kernel Module\"")
    })?;
    let flavour = if before.trim_end().ends_with("Open") {
        KernelModule::Open
    } else {
        KernelModule::Proprietary
    };
    let mut arch = before
        .split_whitespace()
        .find(|t| matches!(*t, "x86_64" | "aarch64" | "ppc64le"))
        .map(str::to_owned);
    let mut tokens = after.split_whitespace().peekable();
    let mut version = None;
    while let Some(token) = tokens.next() {
        if token == "for" {
            if let Some(a) = tokens.next() {
                arch = Some(a.to_owned());
            }
            continue;
        }
        if token.starts_with(|c: char| c.is_ascii_digit()) {
            version = Some(token);
            break;
        }
    }
    let version = version.ok_or(ParseError::Missing {
        field: "version after \"Kernel Module\"",
    })?;
    let version =
        DriverVersion::parse(version).map_err(|e| ParseError::invalid("NVRM version line", e))?;
    Ok(NvrmVersion {
        version,
        flavour,
        arch,
    })
}

/// Parses `/sys/module/nvidia/version`: the bare version.
pub fn parse_sys_version(text: &str) -> Result<DriverVersion, ParseError> {
    DriverVersion::parse(text.trim()).map_err(|e| ParseError::invalid("module version", e))
}

pub fn probe(cx: &Context<'_>) -> Outcome<DriverObserved> {
    let text = match cx.host.read_to_string(PROC_VERSION) {
        Ok(text) => text,
        Err(e) if e.is_not_found() => {
            if cx.host.exists(SYS_VERSION) {
                return Outcome::error(format!(
                    "{SYS_VERSION} exists but {PROC_VERSION} does not: the module is half loaded"
                ));
            }
            return Outcome::absent(format!(
                "no NVIDIA kernel module is loaded ({PROC_VERSION} does not exist)"
            ));
        }
        Err(e) => return Outcome::error(e.to_string()),
    };
    let nvrm = match parse_nvrm_version(&text) {
        Ok(v) => v,
        Err(e) => return Outcome::error(format!("{PROC_VERSION}: {e}")),
    };
    match cx.host.read_to_string(SYS_VERSION) {
        Ok(sys) => match parse_sys_version(&sys) {
            Ok(sys) if sys == nvrm.version => {}
            Ok(sys) => {
                return Outcome::error(format!(
                    "kernel module versions disagree: {PROC_VERSION} says {}, {SYS_VERSION} says {sys}",
                    nvrm.version
                ));
            }
            Err(e) => return Outcome::error(format!("{SYS_VERSION}: {e}")),
        },
        // Older kernels and some containers have no sysfs copy; the proc
        // file alone is enough.
        Err(e) if e.is_not_found() => {}
        Err(e) => return Outcome::error(e.to_string()),
    }
    Outcome::ok(DriverObserved {
        loaded: true,
        branch: Some(nvrm.version.branch()),
        version: Some(nvrm.version.to_string()),
        kernel_module: nvrm.flavour,
        ..DriverObserved::default()
    })
}

pub(crate) fn run(cx: &Context<'_>, observed: &mut Observed) -> (ProbeStatus, Option<String>) {
    finish(probe(cx), |v| observed.driver = v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_lines() {
        let cases = [
            (
                "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\nGCC version:  gcc version 12.3.0\n",
                "550.54.15",
                KernelModule::Proprietary,
                Some("x86_64"),
            ),
            (
                "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  565.57.01  Release Build  (dvs-builder@U16-A24-9-2)  Thu Oct 10 12:15:00 UTC 2024\n",
                "565.57.01",
                KernelModule::Open,
                Some("x86_64"),
            ),
            (
                "NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  580.65.06  Release Build\n",
                "580.65.06",
                KernelModule::Open,
                Some("aarch64"),
            ),
            (
                "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.120  Fri Sep 13 10:10:01 UTC 2024\n",
                "550.120",
                KernelModule::Proprietary,
                Some("x86_64"),
            ),
        ];
        for (text, version, flavour, arch) in cases {
            let got = parse_nvrm_version(text).unwrap();
            assert_eq!(got.version.to_string(), version);
            assert_eq!(got.flavour, flavour, "{text}");
            assert_eq!(got.arch.as_deref(), arch);
        }
    }

    #[test]
    fn truncated_and_junk_are_refused() {
        assert_eq!(
            parse_nvrm_version("NVRM version: NVIDIA UNIX x86_64 Kern")
                .unwrap_err()
                .to_string(),
            "invalid NVRM version line: it does not say \"Kernel Module\""
        );
        assert_eq!(
            parse_nvrm_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  ")
                .unwrap_err()
                .kind(),
            "missing"
        );
        assert!(parse_nvrm_version("").is_err());
        assert!(
            parse_nvrm_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module 5x0.1").is_err()
        );
        assert_eq!(
            parse_sys_version("580.95.05\n").unwrap().to_string(),
            "580.95.05"
        );
        assert!(parse_sys_version("garbage").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_nvrm_version(&s);
            let _ = parse_sys_version(&s);
        }

        #[test]
        fn finds_any_version(a in 100u32..999, b in 0u32..300, c in proptest::option::of(0u32..99), open in any::<bool>()) {
            let v = match c { Some(c) => format!("{a}.{b}.{c:02}"), None => format!("{a}.{b}") };
            let kind = if open { "Open Kernel Module for x86_64" } else { "x86_64 Kernel Module" };
            let text = format!("NVRM version: NVIDIA UNIX {kind}  {v}  Release Build\n");
            let got = parse_nvrm_version(&text).unwrap();
            prop_assert_eq!(got.version.to_string(), v);
            prop_assert_eq!(got.flavour == KernelModule::Open, open);
        }
    }
}
