//! The operating system, from `/etc/os-release` (or `/usr/lib/os-release`,
//! where systemd's spec says to look when the first is missing).

use plumbline_api::{Observed, OsObserved, ProbeStatus};

use super::{ParseError, finish};
use crate::{Context, Outcome};

pub const OS_RELEASE_PATHS: &[&str] = &["/etc/os-release", "/usr/lib/os-release"];

/// Unquotes an os-release value: `"Ubuntu 24.04.3 LTS"`, `'x'` or bare,
/// with backslash escapes inside double quotes.
fn unquote(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let Some(first) = raw.chars().next() else {
        return Ok(String::new());
    };
    if first != '"' && first != '\'' {
        return Ok(raw.to_owned());
    }
    let mut out = String::new();
    let mut chars = raw[1..].chars();
    while let Some(c) = chars.next() {
        if c == first {
            return if chars.as_str().trim().is_empty() {
                Ok(out)
            } else {
                Err(format!("text after the closing quote in {raw:?}"))
            };
        }
        if c == '\\' && first == '"' {
            match chars.next() {
                Some(e) => out.push(e),
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Err(format!("unterminated quote in {raw:?}"))
}

/// Parses os-release: `KEY=value` lines, comments and blank lines.
pub fn parse_os_release(text: &str) -> Result<OsObserved, ParseError> {
    let mut os = OsObserved::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ParseError::invalid(
                "os-release",
                format!("line {} is not KEY=value", n + 1),
            ));
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ParseError::invalid(
                "os-release",
                format!("line {} has an invalid key", n + 1),
            ));
        }
        let value = unquote(value).map_err(|reason| {
            ParseError::invalid("os-release", format!("line {}: {reason}", n + 1))
        })?;
        match key {
            "ID" => os.id = Some(value),
            "VERSION_ID" => os.version_id = Some(value),
            "PRETTY_NAME" => os.pretty_name = Some(value),
            _ => {}
        }
    }
    if os.id.is_none() && os.pretty_name.is_none() {
        return Err(ParseError::Missing {
            field: "ID or PRETTY_NAME",
        });
    }
    Ok(os)
}

pub fn probe(cx: &Context<'_>) -> Outcome<OsObserved> {
    for path in OS_RELEASE_PATHS {
        match cx.host.read_to_string(path) {
            Ok(text) => {
                return match parse_os_release(&text) {
                    Ok(os) => Outcome::ok(os),
                    Err(e) => Outcome::error(format!("{path}: {e}")),
                };
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Outcome::error(e.to_string()),
        }
    }
    Outcome::absent(format!("no {}", OS_RELEASE_PATHS.join(" or ")))
}

pub(crate) fn run(cx: &Context<'_>, observed: &mut Observed) -> (ProbeStatus, Option<String>) {
    finish(probe(cx), |v| observed.os = v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_quoted_values() {
        let text = "PRETTY_NAME=\"Ubuntu 24.04.3 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\n# comment\nID=ubuntu\nVERSION_CODENAME='noble'\nX=\"a \\\"q\\\"\"\n";
        let os = parse_os_release(text).unwrap();
        assert_eq!(os.id.as_deref(), Some("ubuntu"));
        assert_eq!(os.version_id.as_deref(), Some("24.04"));
        assert_eq!(os.pretty_name.as_deref(), Some("Ubuntu 24.04.3 LTS"));
        assert!(parse_os_release("ID=\"rhel\nVERSION_ID=9").is_err());
        assert!(parse_os_release("garbage\n").is_err());
        assert!(parse_os_release("").is_err());
        assert_eq!(unquote("\"a\\\\b\"").unwrap(), "a\\b");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_os_release(&s);
        }

        #[test]
        fn round_trips_plain_values(v in "[A-Za-z0-9 ._-]{1,30}") {
            let text = format!("ID=\"{v}\"\n");
            prop_assert_eq!(parse_os_release(&text).unwrap().id, Some(v));
        }
    }
}
