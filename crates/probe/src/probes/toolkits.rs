//! Host CUDA toolkits: every `/usr/local/cuda-*`, and which one
//! `/usr/local/cuda` resolves to (through `/etc/alternatives`).

use std::collections::BTreeSet;

use plumbline_api::{Observed, ProbeStatus, ToolkitObserved};
use plumbline_compat::{CudaVersion, ToolkitVersion};

use super::{ParseError, finish};
use crate::{Context, Outcome, join_messages};

pub const PREFIX_DIR: &str = "/usr/local";
pub const DEFAULT_LINK: &str = "/usr/local/cuda";

/// What a toolkit's version file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolkitVersionInfo {
    pub cuda: CudaVersion,
    pub full: Option<ToolkitVersion>,
}

/// A `cuda.version` third part this long is a date (`12.6.20241114`), not
/// a patch level.
fn is_date_part(part: &str) -> bool {
    part.len() >= 6
}

/// Parses `version.json`. `version` is `cuda.version`'s major.minor; the
/// full version is `cuda_cudart.version`, else `cuda.version` when its
/// third part is not a date.
pub fn parse_version_json(text: &str) -> Result<ToolkitVersionInfo, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ParseError::invalid("version.json", e))?;
    let get = |key: &str| {
        value
            .get(key)
            .and_then(|v| v.get("version"))
            .and_then(|v| v.as_str())
    };
    let sdk = get("cuda");
    let cudart = get("cuda_cudart");
    let cudart = cudart
        .map(|v| ToolkitVersion::parse(v).map_err(|e| ParseError::invalid("version.json", e)))
        .transpose()?;
    let (cuda, full) = match sdk {
        Some(sdk) => {
            let cuda =
                CudaVersion::parse(sdk).map_err(|e| ParseError::invalid("version.json", e))?;
            let full = match cudart {
                Some(c) => Some(c),
                None => match sdk.split('.').nth(2) {
                    Some(third) if !is_date_part(third) => ToolkitVersion::parse(sdk).ok(),
                    _ => None,
                },
            };
            (cuda, full)
        }
        None => match cudart {
            Some(c) => (c.cuda(), Some(c)),
            None => {
                return Err(ParseError::Missing {
                    field: "cuda.version",
                });
            }
        },
    };
    Ok(ToolkitVersionInfo { cuda, full })
}

/// Parses an old `version.txt`: `CUDA Version 10.2.89`.
pub fn parse_version_txt(text: &str) -> Result<ToolkitVersionInfo, ParseError> {
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("CUDA Version"))
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or(ParseError::Missing {
            field: "`CUDA Version` line",
        })?;
    let full = ToolkitVersion::parse(token).map_err(|e| ParseError::invalid("version.txt", e))?;
    Ok(ToolkitVersionInfo {
        cuda: full.cuda(),
        full: Some(full),
    })
}

pub fn probe(cx: &Context<'_>) -> Outcome<Vec<ToolkitObserved>> {
    let names = match cx.host.read_dir(PREFIX_DIR) {
        Ok(n) => n,
        Err(e) if e.is_not_found() => {
            return Outcome::absent(format!("{PREFIX_DIR} does not exist"));
        }
        Err(e) => return Outcome::error(e.to_string()),
    };
    let mut notes = Vec::new();
    let default = match cx.host.resolve(DEFAULT_LINK) {
        Ok(r) => Some(r.host_path),
        Err(e) if e.is_not_found() => {
            if cx.host.resolve_no_follow(DEFAULT_LINK).is_ok() {
                notes.push(format!("{DEFAULT_LINK} is a dangling symlink"));
            }
            None
        }
        Err(e) => return Outcome::error(e.to_string()),
    };
    // Each toolkit once, by where its links lead: `/usr/local/cuda-12`
    // usually points at `/usr/local/cuda-12.6`.
    let mut dirs = BTreeSet::new();
    for name in names.iter().filter(|n| n.starts_with("cuda-")) {
        let path = format!("{PREFIX_DIR}/{name}");
        match cx.host.resolve(&path) {
            Ok(r) if r.is_dir() => {
                dirs.insert(r.host_path);
            }
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Outcome::error(e.to_string()),
        }
    }
    if let Some(d) = &default {
        dirs.insert(d.clone());
    }
    let mut toolkits: Vec<(ToolkitVersionInfo, ToolkitObserved)> = Vec::new();
    for dir in dirs {
        let json = format!("{dir}/version.json");
        let info = match cx.host.read_to_string(&json) {
            Ok(text) => parse_version_json(&text).map_err(|e| format!("{json}: {e}")),
            Err(e) if e.is_not_found() => {
                let txt = format!("{dir}/version.txt");
                match cx.host.read_to_string(&txt) {
                    Ok(text) => parse_version_txt(&text).map_err(|e| format!("{txt}: {e}")),
                    Err(e) if e.is_not_found() => {
                        notes.push(format!("{dir} has no version.json or version.txt"));
                        continue;
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let info = match info {
            Ok(i) => i,
            Err(message) => return Outcome::error(message),
        };
        let observed = ToolkitObserved {
            version: info.cuda.to_string(),
            full_version: info.full.as_ref().map(ToString::to_string),
            default: default.as_deref() == Some(dir.as_str()),
            path: dir,
        };
        toolkits.push((info, observed));
    }
    if toolkits.is_empty() {
        return match join_messages(notes) {
            Some(n) => Outcome::absent(format!("no CUDA toolkit under {PREFIX_DIR}: {n}")),
            None => Outcome::absent(format!("no CUDA toolkit under {PREFIX_DIR}")),
        };
    }
    toolkits
        .sort_by(|(a, ao), (b, bo)| (a.cuda, &a.full, &ao.path).cmp(&(b.cuda, &b.full, &bo.path)));
    Outcome {
        status: ProbeStatus::Ok,
        message: join_messages(notes),
        value: toolkits.into_iter().map(|(_, o)| o).collect(),
    }
}

pub(crate) fn run(cx: &Context<'_>, observed: &mut Observed) -> (ProbeStatus, Option<String>) {
    finish(probe(cx), |v| observed.toolkits = v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn version_json_prefers_cudart_and_skips_dates() {
        let info = parse_version_json(
            r#"{"cuda": {"name": "CUDA SDK", "version": "12.6.20241114"}, "cuda_cudart": {"name": "CUDA Runtime (cudart)", "version": "12.6.77"}}"#,
        )
        .unwrap();
        assert_eq!(info.cuda.to_string(), "12.6");
        assert_eq!(info.full.unwrap().to_string(), "12.6.77");
        let info = parse_version_json(r#"{"cuda": {"version": "12.6.20241114"}}"#).unwrap();
        assert_eq!(info.cuda.to_string(), "12.6");
        assert_eq!(info.full, None);
        let info = parse_version_json(r#"{"cuda": {"version": "11.4.4"}}"#).unwrap();
        assert_eq!(info.full.unwrap().to_string(), "11.4.4");
        let info = parse_version_json(r#"{"cuda_cudart": {"version": "12.8.90"}}"#).unwrap();
        assert_eq!(info.cuda.to_string(), "12.8");
        assert!(parse_version_json("{}").is_err());
        assert!(parse_version_json(r#"{"cuda": {"version": "twelve"}}"#).is_err());
        assert!(parse_version_json(r#"{"cuda": {"version": "12.6"#).is_err());
    }

    #[test]
    fn version_txt() {
        let info = parse_version_txt("CUDA Version 10.2.89\n").unwrap();
        assert_eq!(info.cuda.to_string(), "10.2");
        assert_eq!(info.full.unwrap().to_string(), "10.2.89");
        assert!(parse_version_txt("CUDA Version\n").is_err());
        assert!(parse_version_txt("").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_version_json(&s);
            let _ = parse_version_txt(&s);
        }
    }
}
