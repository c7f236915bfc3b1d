//! The `format` values the API server checks on strings.
//!
//! The server validates only the formats its registry knows and silently
//! ignores the rest, so an unknown format compiles to `None` here rather than
//! to an error. The checks follow the registry's own (lenient) definitions,
//! not the RFCs: `date-time`, for instance, accepts a missing seconds
//! fraction and a lowercase `t`, because that is what a real server accepts.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

/// A string format the server validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    DateTime,
    Date,
    Duration,
    Byte,
    Uuid,
    Uuid3,
    Uuid4,
    Uuid5,
    Ipv4,
    Ipv6,
    Cidr,
    Mac,
    Hostname,
    HexColor,
    Password,
}

impl Format {
    /// The registry normalizes names by dropping dashes and underscores, so
    /// `date-time` and `datetime` are the same format.
    pub(super) fn from_name(name: &str) -> Option<Self> {
        let normalized: String = name
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        Some(match normalized.as_str() {
            "datetime" => Format::DateTime,
            "date" => Format::Date,
            "duration" => Format::Duration,
            "byte" => Format::Byte,
            "uuid" => Format::Uuid,
            "uuid3" => Format::Uuid3,
            "uuid4" => Format::Uuid4,
            "uuid5" => Format::Uuid5,
            "ipv4" => Format::Ipv4,
            "ipv6" => Format::Ipv6,
            "cidr" => Format::Cidr,
            "mac" => Format::Mac,
            "hostname" => Format::Hostname,
            "hexcolor" => Format::HexColor,
            "password" => Format::Password,
            _ => return None,
        })
    }

    pub(super) fn is_valid(self, s: &str) -> bool {
        match self {
            Format::DateTime => is_date_time(s),
            Format::Date => is_date(s),
            Format::Duration => is_duration(s),
            Format::Byte => BASE64.is_match(s),
            Format::Uuid => UUID.is_match(s),
            Format::Uuid3 => UUID3.is_match(s),
            Format::Uuid4 => UUID4.is_match(s),
            Format::Uuid5 => UUID5.is_match(s),
            Format::Ipv4 => is_ipv4(s),
            Format::Ipv6 => s.contains(':') && parse_ip(s).is_some(),
            Format::Cidr => is_cidr(s),
            Format::Mac => is_mac(s),
            Format::Hostname => is_hostname(s),
            Format::HexColor => HEX_COLOR.is_match(s),
            Format::Password => true,
        }
    }
}

fn compiled(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in format patterns are valid regular expressions")
}

static TIME_OF_DAY: LazyLock<Regex> = LazyLock::new(|| {
    compiled(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$")
});
static BASE64: LazyLock<Regex> = LazyLock::new(|| {
    compiled(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$")
});
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    compiled(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
});
static UUID3: LazyLock<Regex> = LazyLock::new(|| {
    compiled(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
});
static UUID4: LazyLock<Regex> = LazyLock::new(|| {
    compiled(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static UUID5: LazyLock<Regex> = LazyLock::new(|| {
    compiled(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
    compiled(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9\-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
});
static HEX_COLOR: LazyLock<Regex> =
    LazyLock::new(|| compiled(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static GO_DURATION: LazyLock<Regex> =
    LazyLock::new(|| compiled(r"^[-+]?(0|([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+)$"));
static LOOSE_DURATION: LazyLock<Regex> = LazyLock::new(|| compiled(r"([0-9]+)\s*([A-Za-zµ]+)"));

/// A date and a time of day separated by `t` (any case); the time needs
/// seconds and a zone (`z` or `±hh:mm`).
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let Some(caps) = TIME_OF_DAY.captures(time) else {
        return false;
    };
    let field = |i: usize| caps.get(i).map_or("99", |m| m.as_str());
    field(1) <= "23" && field(2) <= "59" && field(3) <= "59"
}

/// `yyyy-mm-dd` with a day that exists in that month.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// Go duration syntax (`1h30m`), or failing that any `<n> <unit>` pair with a
/// unit the registry knows (`3 days`), as the registry's parser allows.
fn is_duration(s: &str) -> bool {
    if GO_DURATION.is_match(s) {
        return true;
    }
    const UNITS: &[&str] = &[
        "ns",
        "nano",
        "nanos",
        "nanosec",
        "nanosecs",
        "nanosecond",
        "nanoseconds",
        "us",
        "µs",
        "micro",
        "micros",
        "usec",
        "usecs",
        "microsecond",
        "microseconds",
        "ms",
        "milli",
        "millis",
        "msec",
        "msecs",
        "millisecond",
        "milliseconds",
        "s",
        "sec",
        "secs",
        "second",
        "seconds",
        "m",
        "min",
        "mins",
        "minute",
        "minutes",
        "h",
        "hr",
        "hour",
        "hours",
        "d",
        "day",
        "days",
        "w",
        "wk",
        "week",
        "weeks",
    ];
    LOOSE_DURATION.captures_iter(s).any(|caps| {
        caps.get(2)
            .is_some_and(|unit| UNITS.contains(&unit.as_str().to_lowercase().as_str()))
    })
}

/// IPv4 tolerating leading zeros in octets (the server's "sloppy" parser),
/// or an IPv4-mapped IPv6 address written with dots.
fn is_ipv4(s: &str) -> bool {
    s.contains('.') && parse_ip(s).is_some()
}

enum Ip {
    V4,
    V6,
}

fn parse_ip(s: &str) -> Option<Ip> {
    if parse_ipv4_sloppy(s).is_some() {
        return Some(Ip::V4);
    }
    s.parse::<Ipv6Addr>().ok().map(|_| Ip::V6)
}

fn parse_ipv4_sloppy(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, prefix)) = s.split_once('/') else {
        return false;
    };
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let Ok(prefix) = prefix.parse::<u32>() else {
        return false;
    };
    match parse_ip(addr) {
        Some(Ip::V4) => prefix <= 32,
        Some(Ip::V6) => prefix <= 128,
        None => false,
    }
}

/// EUI-48, EUI-64 and 20-octet InfiniBand addresses, colon- or
/// dash-separated pairs or dot-separated quads.
fn is_mac(s: &str) -> bool {
    let hex =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|c| c.is_ascii_hexdigit());
    for sep in [':', '-'] {
        let parts: Vec<&str> = s.split(sep).collect();
        if matches!(parts.len(), 6 | 8 | 20) && parts.iter().all(|p| hex(p, 2)) {
            return true;
        }
    }
    let quads: Vec<&str> = s.split('.').collect();
    matches!(quads.len(), 3 | 4 | 10) && quads.iter().all(|p| hex(p, 4))
}

fn is_hostname(s: &str) -> bool {
    HOSTNAME.is_match(s) && s.len() <= 255 && s.split('.').all(|label| label.len() <= 63)
}
