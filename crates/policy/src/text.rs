//! The small languages a policy is written in: version patterns, kernel
//! release globs, Go-style durations, and Kubernetes label values.

use jiff::SignedDuration;

/// A dotted version pattern such as `580.*`, `570.124.*` or `580.95.05`.
///
/// An inner `*` stands for exactly one dotted part; a trailing `*` stands
/// for one or more parts, so `580.*` matches `580.95` and `580.95.05` alike
/// (nobody who writes `580.*` means "only two-part 580 versions"). Without a
/// `*`, a pattern matches a version with the same number of parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionPattern {
    parts: Vec<Option<String>>,
}

/// How two dotted parts are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartMatch {
    /// Numerically, so that `580.65.06` and `580.65.6` are one version.
    Numeric,
    /// As written (`/etc/os-release` `VERSION_ID`s such as `22.04`).
    Exact,
}

impl VersionPattern {
    /// Parses a pattern; `None` when a part is empty or neither `*` nor
    /// (for [`PartMatch::Numeric`]) a number.
    pub fn parse(text: &str, how: PartMatch) -> Option<VersionPattern> {
        if text.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        for part in text.split('.') {
            if part == "*" {
                parts.push(None);
            } else if part.is_empty()
                || part.contains('*')
                || (how == PartMatch::Numeric && !part.bytes().all(|b| b.is_ascii_digit()))
            {
                return None;
            } else {
                parts.push(Some(part.to_string()));
            }
        }
        Some(VersionPattern { parts })
    }

    /// Whether the pattern has any `*`.
    pub fn has_wildcard(&self) -> bool {
        self.parts.iter().any(Option::is_none)
    }

    /// Number of dotted parts in the pattern.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether the pattern has no parts (never true for a parsed pattern).
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Whether `version` matches.
    pub fn matches(&self, version: &str, how: PartMatch) -> bool {
        let have: Vec<&str> = version.split('.').collect();
        let trailing_star = matches!(self.parts.last(), Some(None));
        let fixed = if trailing_star {
            self.parts.len() - 1
        } else {
            self.parts.len()
        };
        if trailing_star {
            if have.len() <= fixed {
                return false;
            }
        } else if have.len() != fixed {
            return false;
        }
        self.parts
            .iter()
            .take(fixed)
            .zip(have.iter())
            .all(|(want, got)| match want {
                None => !got.is_empty(),
                Some(want) => part_eq(want, got, how),
            })
    }
}

fn part_eq(want: &str, got: &str, how: PartMatch) -> bool {
    match how {
        PartMatch::Exact => want == got,
        PartMatch::Numeric => match (want.parse::<u64>(), got.parse::<u64>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
    }
}

impl std::fmt::Display for VersionPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(part.as_deref().unwrap_or("*"))?;
        }
        Ok(())
    }
}

/// Whether `text` matches a glob in which `*` stands for any run of
/// characters (possibly empty) and every other character for itself.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let pieces: Vec<&str> = glob.split('*').collect();
    if pieces.len() == 1 {
        return glob == text;
    }
    let (first, rest) = match pieces.split_first() {
        Some(split) => split,
        None => return false,
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let (last, middle) = match rest.split_last() {
        Some(split) => split,
        None => return false,
    };
    for piece in middle {
        match remaining.find(piece) {
            Some(at) => remaining = &remaining[at + piece.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// Parses a Go-style duration as Kubernetes writes them (`30s`, `5m`,
/// `1h30m`, `250ms`). Units: `ms`, `s`, `m`, `h`. `None` for anything else,
/// including an overflow.
pub fn parse_duration(text: &str) -> Option<SignedDuration> {
    if text.is_empty() {
        return None;
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut total_ms: i64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let number: i64 = text.get(start..i)?.parse().ok()?;
        let unit_ms: i64 = if text.get(i..)?.starts_with("ms") {
            i += 2;
            1
        } else {
            let unit = *bytes.get(i)?;
            i += 1;
            match unit {
                b's' => 1_000,
                b'm' => 60_000,
                b'h' => 3_600_000,
                _ => return None,
            }
        };
        total_ms = total_ms.checked_add(number.checked_mul(unit_ms)?)?;
    }
    Some(SignedDuration::from_millis(total_ms))
}

/// Whether `value` is a valid Kubernetes label value: at most 63
/// characters, alphanumerics with `-`, `_` and `.` inside, starting and
/// ending with an alphanumeric. The empty string is valid but never used.
pub fn is_label_value(value: &str) -> bool {
    if value.len() > 63 {
        return false;
    }
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (None, _) | (_, None) => true,
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary, with `…`
/// when something was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_patterns() {
        let cases = [
            (
                "580.*",
                "580.95.05",
                true,
                "trailing star takes three parts",
            ),
            ("580.*", "580.95", true, "trailing star takes two parts"),
            (
                "580.*",
                "580",
                false,
                "trailing star needs at least one part",
            ),
            ("580.*", "570.124.06", false, "other branch"),
            (
                "570.124.*",
                "570.124.06",
                true,
                "inner fixed, trailing star",
            ),
            ("570.124.*", "570.133.07", false, "second part differs"),
            (
                "580.95.05",
                "580.95.5",
                true,
                "numeric parts ignore padding",
            ),
            (
                "580.95.05",
                "580.95.05.1",
                false,
                "exact pattern, more parts",
            ),
            ("*.95.05", "580.95.05", true, "leading star is one part"),
            (
                "*.95.05",
                "580.1.95.05",
                false,
                "leading star is only one part",
            ),
            ("580.95", "580.95.05", false, "exact pattern, fewer parts"),
        ];
        for (pattern, version, want, why) in cases {
            let p = VersionPattern::parse(pattern, PartMatch::Numeric).unwrap();
            assert_eq!(p.matches(version, PartMatch::Numeric), want, "{why}");
            assert_eq!(p.to_string(), pattern);
        }
        for bad in ["", "580.", ".5", "58*", "580.x", "580..1"] {
            assert!(
                VersionPattern::parse(bad, PartMatch::Numeric).is_none(),
                "{bad}"
            );
        }
        let os = VersionPattern::parse("22.04", PartMatch::Exact).unwrap();
        assert!(os.matches("22.04", PartMatch::Exact));
        assert!(!os.matches("22.4", PartMatch::Exact));
    }

    #[test]
    fn globs() {
        assert!(glob_matches("6.8.0-*-generic", "6.8.0-45-generic"));
        assert!(!glob_matches("6.8.0-*-generic", "6.8.0-45-lowlatency"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("5.15.*", "5.15.0-1063-nvidia"));
        assert!(glob_matches("a*b*c", "abc"));
        assert!(!glob_matches("a*b*c", "acb"));
        assert!(!glob_matches("ab*ba", "aba"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(SignedDuration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(
            parse_duration("250ms"),
            Some(SignedDuration::from_millis(250))
        );
        assert_eq!(parse_duration("0s"), Some(SignedDuration::ZERO));
        for bad in ["", "5", "m", "5d", "1h 30m", "-5m", "99999999999999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn label_values_and_truncation() {
        assert!(is_label_value("580.95.05"));
        assert!(is_label_value("ada-lovelace"));
        assert!(!is_label_value("-x"));
        assert!(!is_label_value("a b"));
        assert!(!is_label_value(&"a".repeat(64)));
        assert_eq!(truncate("héllo wörld", 6), "hé…");
        assert_eq!(truncate("short", 10), "short");
    }
}
