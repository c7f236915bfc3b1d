//! What the figures were measured on, and how busy it was.
//!
//! A figure without its machine is not comparable with anything: the doc
//! opens with the CPU, core count, memory, kernel, compiler, the commit and
//! the load average at the start and the end of the run. Whatever cannot
//! be read is written as `unknown` rather than failing the run.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

const UNKNOWN: &str = "unknown";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    /// What `nproc` says: the CPUs this process may run on.
    pub cores: usize,
    pub memory_kib: u64,
    pub kernel: String,
    pub os: String,
    pub rustc: String,
    pub commit: String,
    /// The work tree had uncommitted changes when the run started.
    pub dirty: bool,
}

impl Machine {
    /// Reads `/proc`, `/etc/os-release`, `rustc --version` and git in `repo`.
    pub fn collect(repo: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
        let porcelain = output(
            Command::new("git")
                .args(["status", "--porcelain"])
                .current_dir(repo),
        );
        Machine {
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| UNKNOWN.to_string()),
            cores: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            memory_kib: mem_total_kib(&meminfo).unwrap_or(0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| UNKNOWN.to_string()),
            os: pretty_name(&os_release).unwrap_or_else(|| UNKNOWN.to_string()),
            rustc: output(Command::new(rustc).arg("--version"))
                .unwrap_or_else(|| UNKNOWN.to_string()),
            commit: output(
                Command::new("git")
                    .args(["rev-parse", "--short=12", "HEAD"])
                    .current_dir(repo),
            )
            .unwrap_or_else(|| UNKNOWN.to_string()),
            dirty: porcelain.is_some_and(|p| !p.is_empty()),
        }
    }
}

/// Trimmed stdout of a command that succeeded.
fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `model name` on x86; ARM kernels have no such line, so fall back to the
/// `Model`/`Hardware` lines, then to the implementer and part numbers.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    let field = |name: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
    };
    field("model name")
        .or_else(|| field("Model"))
        .or_else(|| field("Hardware"))
        .or_else(|| {
            let implementer = field("CPU implementer")?;
            let part = field("CPU part")?;
            Some(format!("implementer {implementer} part {part}"))
        })
}

/// `MemTotal` in KiB.
pub fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// `PRETTY_NAME` from os-release, quotes removed.
pub fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        let v = l.strip_prefix("PRETTY_NAME=")?;
        Some(v.trim().trim_matches('"').to_string())
    })
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> Option<[f64; 3]> {
    parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// See [`load_average`].
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    Some([it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_model_name() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(text).as_deref(), Some("AMD EPYC 7B13"));
    }

    #[test]
    fn arm_falls_back_to_part_numbers() {
        let text =
            "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n";
        assert_eq!(
            cpu_model(text).as_deref(),
            Some("implementer 0x41 part 0xd0c")
        );
        let pi = "processor\t: 0\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n";
        assert_eq!(
            cpu_model(pi).as_deref(),
            Some("Raspberry Pi 5 Model B Rev 1.0")
        );
        assert_eq!(cpu_model("processor\t: 0\n"), None);
    }

    #[test]
    fn memory_and_os_and_load() {
        assert_eq!(
            mem_total_kib("MemTotal:       24607756 kB\nMemFree: 1 kB\n"),
            Some(24_607_756)
        );
        assert_eq!(mem_total_kib("MemFree: 1 kB\n"), None);
        assert_eq!(
            pretty_name(
                "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n"
            )
            .as_deref(),
            Some("Debian GNU/Linux 13 (trixie)")
        );
        assert_eq!(
            parse_loadavg("2.95 1.28 0.51 3/411 12345\n"),
            Some([2.95, 1.28, 0.51])
        );
        assert_eq!(parse_loadavg("2.95 x"), None);
    }

    #[test]
    fn this_machine_is_described() {
        let m = Machine::collect(Path::new(env!("CARGO_MANIFEST_DIR")));
        assert!(m.cores >= 1);
        assert!(!m.rustc.is_empty());
    }
}
