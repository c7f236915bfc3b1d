//! Version numbers as NVIDIA writes them.
//!
//! Four different things share the dotted-number look and must not be mixed
//! up: a driver version (`550.54.15`, whose first part is the branch), a CUDA
//! version (`12.4`, what a driver supports or an application was built for),
//! a toolkit version (`12.6.77`, an installed toolkit release) and a compute
//! capability (`9.0`, what a GPU is). Each gets its own type so that a driver
//! can never be compared with a CUDA version by accident.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// Why a version string was refused. The message quotes the whole input and
/// names the part (counted from 1) that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("invalid {what} \"\": it is empty")]
    Empty { what: &'static str },
    #[error("invalid {what} {input:?}: expected {expected} dot-separated parts, found {found}")]
    PartCount {
        what: &'static str,
        input: String,
        expected: &'static str,
        found: usize,
    },
    #[error("invalid {what} {input:?}: part {index} {part:?} is not a number")]
    NotANumber {
        what: &'static str,
        input: String,
        index: usize,
        part: String,
    },
    #[error("invalid {what} {input:?}: part {index} {part:?} is out of range")]
    OutOfRange {
        what: &'static str,
        input: String,
        index: usize,
        part: String,
    },
}

impl VersionError {
    /// Stable short name, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            VersionError::Empty { .. } => "empty",
            VersionError::PartCount { .. } => "part_count",
            VersionError::NotANumber { .. } => "not_a_number",
            VersionError::OutOfRange { .. } => "out_of_range",
        }
    }
}

/// The longest part accepted, in characters. `u32::MAX` has ten digits; a
/// longer part is either out of range or padded with zeros nobody writes,
/// and refusing it keeps the recorded widths small.
const MAX_PART_LEN: usize = 10;

/// One numeric part: its value and how many digits it was written with.
fn parse_part(
    what: &'static str,
    input: &str,
    index: usize,
    part: &str,
) -> Result<(u32, u8), VersionError> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VersionError::NotANumber {
            what,
            input: input.to_owned(),
            index,
            part: part.to_owned(),
        });
    }
    let out_of_range = || VersionError::OutOfRange {
        what,
        input: input.to_owned(),
        index,
        part: part.to_owned(),
    };
    if part.len() > MAX_PART_LEN {
        return Err(out_of_range());
    }
    let value = part.parse::<u32>().map_err(|_| out_of_range())?;
    // MAX_PART_LEN keeps this well inside u8.
    let width = u8::try_from(part.len()).map_err(|_| out_of_range())?;
    Ok((value, width))
}

/// Splits `input` on dots and parses between `min` and `max` parts.
/// Returns the values and widths of up to `N` parts and how many there were.
fn parse_parts<const N: usize>(
    what: &'static str,
    input: &str,
    min: usize,
    expected: &'static str,
) -> Result<([u32; N], [u8; N], usize), VersionError> {
    if input.is_empty() {
        return Err(VersionError::Empty { what });
    }
    let found = input.split('.').count();
    if found < min || found > N {
        return Err(VersionError::PartCount {
            what,
            input: input.to_owned(),
            expected,
            found,
        });
    }
    let mut values = [0u32; N];
    let mut widths = [0u8; N];
    for (i, part) in input.split('.').enumerate() {
        let (value, width) = parse_part(what, input, i + 1, part)?;
        values[i] = value;
        widths[i] = width;
    }
    Ok((values, widths, found))
}

/// Writes `values` joined by dots, each zero-padded to its width.
fn write_parts(f: &mut fmt::Formatter<'_>, values: &[u32], widths: &[u8]) -> fmt::Result {
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            f.write_str(".")?;
        }
        let width = usize::from(widths.get(i).copied().unwrap_or(0));
        write!(f, "{value:0width$}")?;
    }
    Ok(())
}

/// Implements serde for a type through its `Display` and `FromStr`, so that
/// every version travels as the string people write.
macro_rules! serde_as_string {
    ($ty:ty, $expecting:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

// ---------------------------------------------------------------------------

/// A driver version: two or three numeric parts, `550.120` or `550.54.15`.
///
/// Comparison is numeric, part by part: `550.54.15 < 550.120` because
/// 54 < 120. When the first two parts agree, the two-part version sorts
/// before every three-part one (`550.120 < 550.120.0 < 550.120.1`): NVIDIA
/// never publishes both forms of one release, and a total order needs an
/// answer.
///
/// Zero padding is kept for display only: `580.65.06` prints as written, and
/// equals `580.65.6`. File names (`libcuda.so.580.65.06`) carry the padded
/// form, so printing it back unchanged matters.
#[derive(Debug, Clone)]
pub struct DriverVersion {
    values: [u32; 3],
    widths: [u8; 3],
    len: u8,
}

impl DriverVersion {
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let (values, widths, len) = parse_parts::<3>("driver version", s, 2, "2 or 3")?;
        Ok(DriverVersion {
            values,
            widths,
            // parse_parts never returns more than three parts.
            len: if len == 3 { 3 } else { 2 },
        })
    }

    /// The branch: the first part (`550` for `550.54.15`).
    pub fn branch(&self) -> u32 {
        self.values[0]
    }

    /// The numeric parts, two or three of them.
    pub fn parts(&self) -> &[u32] {
        &self.values[..usize::from(self.len)]
    }
}

impl PartialEq for DriverVersion {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for DriverVersion {}

impl Hash for DriverVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialOrd for DriverVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DriverVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        // Slice order is lexicographic with a proper prefix first, which is
        // exactly the documented two-part-before-three-part rule.
        self.parts().cmp(other.parts())
    }
}

impl fmt::Display for DriverVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_parts(f, self.parts(), &self.widths)
    }
}

impl FromStr for DriverVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DriverVersion::parse(s)
    }
}

serde_as_string!(DriverVersion, "a driver version such as \"550.54.15\"");

// ---------------------------------------------------------------------------

/// A CUDA version as `major.minor`: a driver's ceiling, or what an
/// application was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CudaVersion {
    pub major: u32,
    pub minor: u32,
}

impl CudaVersion {
    pub fn new(major: u32, minor: u32) -> Self {
        CudaVersion { major, minor }
    }

    /// Parses `12.4`. A third part (`12.4.1`, or the date in
    /// `12.6.20241114` that `version.json` carries) is checked and dropped.
    /// A bare major (`12`) is refused: it does not say which minor.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let (values, _, _) = parse_parts::<3>("CUDA version", s, 2, "2 or 3")?;
        Ok(CudaVersion::new(values[0], values[1]))
    }

    /// NVML's and the CUDA driver API's encoding, `1000·major + 10·minor`
    /// (12.8 → 12080). Saturates instead of overflowing on absurd input.
    pub fn code(&self) -> u32 {
        self.major
            .saturating_mul(1000)
            .saturating_add(self.minor.saturating_mul(10))
    }

    /// The node-label encoding, `100·major + minor` (13.0 → 1300,
    /// 12.8 → 1208), so that a nodeAffinity `Gt` can compare versions.
    pub fn label_code(&self) -> u32 {
        self.major.saturating_mul(100).saturating_add(self.minor)
    }

    /// Decodes [`CudaVersion::code`]. Refuses anything that is not a
    /// positive multiple of ten with a non-zero major.
    pub fn from_nvml_code(code: i32) -> Option<Self> {
        let code = u32::try_from(code).ok()?;
        if code % 10 != 0 || code < 1000 {
            return None;
        }
        Some(CudaVersion::new(code / 1000, (code % 1000) / 10))
    }
}

impl fmt::Display for CudaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for CudaVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CudaVersion::parse(s)
    }
}

serde_as_string!(CudaVersion, "a CUDA version such as \"12.4\"");

// ---------------------------------------------------------------------------

/// An installed toolkit release: `major.minor[.patch[.build]]`, such as
/// `12.6.77` (from `version.json`'s `cuda_cudart`) or `10.2.89` (from an old
/// `version.txt`). Ordered numerically, a shorter version before a longer
/// one with the same leading parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ToolkitVersion {
    // Field order makes the derived order numeric; unused parts are zero and
    // `len` breaks the tie between `12.6` and `12.6.0`.
    values: [u32; 4],
    len: u8,
}

impl ToolkitVersion {
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let (values, _, len) = parse_parts::<4>("toolkit version", s, 2, "2 to 4")?;
        let len = u8::try_from(len).map_err(|_| VersionError::PartCount {
            what: "toolkit version",
            input: s.to_owned(),
            expected: "2 to 4",
            found: len,
        })?;
        Ok(ToolkitVersion { values, len })
    }

    /// The CUDA version the toolkit builds for: its major.minor.
    pub fn cuda(&self) -> CudaVersion {
        CudaVersion::new(self.values[0], self.values[1])
    }

    pub fn parts(&self) -> &[u32] {
        &self.values[..usize::from(self.len)]
    }
}

impl fmt::Display for ToolkitVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_parts(f, self.parts(), &[])
    }
}

impl FromStr for ToolkitVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ToolkitVersion::parse(s)
    }
}

serde_as_string!(ToolkitVersion, "a toolkit version such as \"12.6.77\"");

// ---------------------------------------------------------------------------

/// What a GPU is, as `major.minor` (`9.0` for Hopper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComputeCapability {
    pub major: u32,
    pub minor: u32,
}

impl ComputeCapability {
    pub fn new(major: u32, minor: u32) -> Self {
        ComputeCapability { major, minor }
    }

    /// Parses exactly two parts, `9.0` or `12.1`.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let (values, _, _) = parse_parts::<2>("compute capability", s, 2, "2")?;
        Ok(ComputeCapability::new(values[0], values[1]))
    }
}

impl fmt::Display for ComputeCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ComputeCapability {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ComputeCapability::parse(s)
    }
}

serde_as_string!(ComputeCapability, "a compute capability such as \"9.0\"");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_keeps_zero_padding_for_display_but_not_for_equality() {
        let padded = DriverVersion::parse("580.65.06").unwrap();
        let bare = DriverVersion::parse("580.65.6").unwrap();
        assert_eq!(padded.to_string(), "580.65.06");
        assert_eq!(bare.to_string(), "580.65.6");
        assert_eq!(padded, bare);
        assert_eq!(padded.cmp(&bare), Ordering::Equal);
    }

    #[test]
    fn serde_goes_through_strings() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Row {
            driver: DriverVersion,
            cuda: CudaVersion,
        }
        let row: Row = toml::from_str("driver = \"550.54.15\"\ncuda = \"12.4\"\n").unwrap();
        assert_eq!(row.driver, DriverVersion::parse("550.54.15").unwrap());
        assert_eq!(row.cuda, CudaVersion::new(12, 4));
        let text = toml::to_string(&row).unwrap();
        assert_eq!(text, "driver = \"550.54.15\"\ncuda = \"12.4\"\n");
        let err = toml::from_str::<Row>("driver = \"550\"\ncuda = \"12.4\"\n").unwrap_err();
        assert!(
            err.message()
                .contains("expected 2 or 3 dot-separated parts"),
            "{err}"
        );
    }
}
