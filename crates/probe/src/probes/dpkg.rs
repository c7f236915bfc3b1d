//! The dpkg status database (`/var/lib/dpkg/status`), shared by the
//! Container Toolkit and Fabric Manager probes. Not a probe itself.
//!
//! The rpm database is binary (Berkeley DB or SQLite) and is not read: on
//! rpm hosts package versions are unknown and the probes say so.

use super::ParseError;

pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";
pub const RPM_DB_DIR: &str = "/var/lib/rpm";

/// One package stanza; only the fields probes use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgEntry<'a> {
    pub package: &'a str,
    pub status: &'a str,
    pub version: &'a str,
}

impl DpkgEntry<'_> {
    /// Whether the package is unpacked and configured: the third word of
    /// `Status:` (`install ok installed`, `hold ok installed`).
    pub fn installed(&self) -> bool {
        self.status.split_whitespace().nth(2) == Some("installed")
    }

    /// The upstream part of the version: `1.17.8-1` → `1.17.8`,
    /// `1:580.95.05-1ubuntu1` → `580.95.05`.
    pub fn upstream_version(&self) -> &str {
        upstream_version(self.version)
    }
}

/// Strips a Debian epoch (`1:`) and revision (`-1`).
pub fn upstream_version(version: &str) -> &str {
    let v = version.split_once(':').map_or(version, |(_, rest)| rest);
    v.rsplit_once('-').map_or(v, |(upstream, _)| upstream)
}

/// Parses a dpkg status file. Every line is `Field: value`, a continuation
/// starting with a space or tab, or a blank line between stanzas; anything
/// else (a line cut off mid-field, binary junk) is an error.
pub fn parse_dpkg_status(text: &str) -> Result<Vec<DpkgEntry<'_>>, ParseError> {
    let mut entries = Vec::new();
    let mut current = DpkgEntry {
        package: "",
        status: "",
        version: "",
    };
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            flush(&mut current, &mut entries);
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((field, value)) = line.split_once(':') else {
            return Err(ParseError::invalid(
                "dpkg status",
                format!("line {} is not `Field: value`: {:?}", n + 1, truncate(line)),
            ));
        };
        let value = value.trim();
        match field {
            "Package" => current.package = value,
            "Status" => current.status = value,
            "Version" => current.version = value,
            _ => {}
        }
    }
    flush(&mut current, &mut entries);
    Ok(entries)
}

fn flush<'a>(current: &mut DpkgEntry<'a>, entries: &mut Vec<DpkgEntry<'a>>) {
    if !current.package.is_empty() {
        entries.push(current.clone());
    }
    *current = DpkgEntry {
        package: "",
        status: "",
        version: "",
    };
}

/// At most 60 characters of a line, for messages.
pub(crate) fn truncate(line: &str) -> &str {
    match line.char_indices().nth(60) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STATUS: &str = "Package: adduser\nStatus: install ok installed\nVersion: 3.137ubuntu1\nDescription: add users\n and groups\n\nPackage: nvidia-container-toolkit\nStatus: install ok installed\nVersion: 1.17.8-1\n\nPackage: nvidia-fabricmanager-580\nStatus: deinstall ok config-files\nVersion: 580.95.05-1\n";

    #[test]
    fn parses_stanzas_and_versions() {
        let entries = parse_dpkg_status(STATUS).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].package, "nvidia-container-toolkit");
        assert!(entries[1].installed());
        assert_eq!(entries[1].upstream_version(), "1.17.8");
        assert!(!entries[2].installed());
        assert_eq!(upstream_version("1:580.95.05-1ubuntu1"), "580.95.05");
        assert_eq!(upstream_version("580.95.05"), "580.95.05");
    }

    #[test]
    fn refuses_a_cut_off_line() {
        let err = parse_dpkg_status("Package: a\nVersi").unwrap_err();
        assert_eq!(err.kind(), "invalid");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_dpkg_status(&s);
        }

        #[test]
        fn upstream_is_a_substring(s in "\\PC*") {
            prop_assert!(s.contains(upstream_version(&s)));
        }
    }
}
