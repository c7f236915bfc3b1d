//! GPU generations and what a GPU needs from the kernel module.

use std::fmt;

use crate::versions::ComputeCapability;

/// A GPU architecture, ordered oldest to newest so that "Turing or newer"
/// is a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Architecture {
    Kepler,
    Maxwell,
    Pascal,
    Volta,
    Turing,
    Ampere,
    Ada,
    Hopper,
    Blackwell,
}

impl Architecture {
    /// Every architecture, oldest first.
    pub const ALL: [Architecture; 9] = [
        Architecture::Kepler,
        Architecture::Maxwell,
        Architecture::Pascal,
        Architecture::Volta,
        Architecture::Turing,
        Architecture::Ampere,
        Architecture::Ada,
        Architecture::Hopper,
        Architecture::Blackwell,
    ];

    /// NVIDIA's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::Kepler => "Kepler",
            Architecture::Maxwell => "Maxwell",
            Architecture::Pascal => "Pascal",
            Architecture::Volta => "Volta",
            Architecture::Turing => "Turing",
            Architecture::Ampere => "Ampere",
            Architecture::Ada => "Ada Lovelace",
            Architecture::Hopper => "Hopper",
            Architecture::Blackwell => "Blackwell",
        }
    }

    /// Accepts [`Architecture::name`] in any case, and `Ada` for Ada
    /// Lovelace.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("ada") {
            return Some(Architecture::Ada);
        }
        Architecture::ALL
            .into_iter()
            .find(|arch| arch.name().eq_ignore_ascii_case(s))
    }

    /// The architecture a compute capability belongs to. This mapping is
    /// NVIDIA's numbering scheme itself, not compatibility knowledge, so it
    /// lives in code; the data file is checked against it.
    pub fn from_compute_capability(cc: ComputeCapability) -> Option<Self> {
        match (cc.major, cc.minor) {
            (3, _) => Some(Architecture::Kepler),
            (5, _) => Some(Architecture::Maxwell),
            (6, _) => Some(Architecture::Pascal),
            (7, minor) if minor < 5 => Some(Architecture::Volta),
            (7, _) => Some(Architecture::Turing),
            (8, 9) => Some(Architecture::Ada),
            (8, _) => Some(Architecture::Ampere),
            (9, _) => Some(Architecture::Hopper),
            (10..=12, _) => Some(Architecture::Blackwell),
            _ => None,
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The two kernel module flavours NVIDIA ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleFlavour {
    Open,
    Proprietary,
}

impl ModuleFlavour {
    pub fn as_str(&self) -> &'static str {
        match self {
            ModuleFlavour::Open => "open",
            ModuleFlavour::Proprietary => "proprietary",
        }
    }

    /// Accepts [`ModuleFlavour::as_str`], in any case.
    pub fn parse(s: &str) -> Option<Self> {
        [ModuleFlavour::Open, ModuleFlavour::Proprietary]
            .into_iter()
            .find(|flavour| flavour.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for ModuleFlavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kernel module flavour a GPU can run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleNeed {
    /// Only the open flavour is supported (Blackwell, Grace-coupled GPUs).
    Open,
    /// Only the proprietary flavour works (Volta and older).
    Proprietary,
    /// Both work; from `prefer_open_from_branch` on, NVIDIA's default and
    /// recommendation is the open one.
    Either {
        prefer_open_from_branch: Option<u32>,
    },
}

impl ModuleNeed {
    /// Whether a module of `flavour` can drive the GPU at all.
    pub fn allows(&self, flavour: ModuleFlavour) -> bool {
        match self {
            ModuleNeed::Open => flavour == ModuleFlavour::Open,
            ModuleNeed::Proprietary => flavour == ModuleFlavour::Proprietary,
            ModuleNeed::Either { .. } => true,
        }
    }

    /// The flavour to install with a driver of `branch`.
    pub fn preferred(&self, branch: u32) -> ModuleFlavour {
        match self {
            ModuleNeed::Open => ModuleFlavour::Open,
            ModuleNeed::Proprietary => ModuleFlavour::Proprietary,
            ModuleNeed::Either {
                prefer_open_from_branch: Some(from),
            } if branch >= *from => ModuleFlavour::Open,
            ModuleNeed::Either { .. } => ModuleFlavour::Proprietary,
        }
    }
}

/// What the compatibility data knows about one GPU product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// The product family, e.g. `H100` for every H100 variant.
    pub product_family: String,
    pub architecture: Architecture,
    pub compute_capability: ComputeCapability,
    /// Coupled to a Grace CPU (GH200, GB200, GB300, GB10).
    pub grace: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_every_name_in_any_case_and_short_ada() {
        for arch in Architecture::ALL {
            assert_eq!(Architecture::parse(arch.name()), Some(arch));
            assert_eq!(Architecture::parse(&arch.name().to_uppercase()), Some(arch));
            assert_eq!(arch.to_string(), arch.name());
        }
        assert_eq!(Architecture::parse("ada"), Some(Architecture::Ada));
        assert_eq!(Architecture::parse("Lovelace"), None);
        assert_eq!(Architecture::parse("Fermi"), None);
        assert_eq!(Architecture::parse(""), None);
    }

    #[test]
    fn order_is_oldest_to_newest() {
        let mut sorted = Architecture::ALL;
        sorted.sort();
        assert_eq!(sorted, Architecture::ALL);
        assert!(Architecture::Turing < Architecture::Ampere);
        assert!(Architecture::Hopper < Architecture::Blackwell);
    }

    #[test]
    fn compute_capability_mapping() {
        let cases = [
            ("3.5", Some(Architecture::Kepler)),
            ("3.7", Some(Architecture::Kepler)),
            ("5.0", Some(Architecture::Maxwell)),
            ("5.2", Some(Architecture::Maxwell)),
            ("6.0", Some(Architecture::Pascal)),
            ("6.1", Some(Architecture::Pascal)),
            ("7.0", Some(Architecture::Volta)),
            ("7.2", Some(Architecture::Volta)),
            ("7.5", Some(Architecture::Turing)),
            ("8.0", Some(Architecture::Ampere)),
            ("8.6", Some(Architecture::Ampere)),
            ("8.7", Some(Architecture::Ampere)),
            ("8.9", Some(Architecture::Ada)),
            ("9.0", Some(Architecture::Hopper)),
            ("10.0", Some(Architecture::Blackwell)),
            ("10.3", Some(Architecture::Blackwell)),
            ("12.0", Some(Architecture::Blackwell)),
            ("12.1", Some(Architecture::Blackwell)),
            ("2.0", None),
            ("4.0", None),
            ("13.0", None),
        ];
        for (cc, want) in cases {
            let cc = ComputeCapability::parse(cc).unwrap();
            assert_eq!(Architecture::from_compute_capability(cc), want, "{cc}");
        }
    }

    #[test]
    fn module_need_allows_and_prefers() {
        let either = ModuleNeed::Either {
            prefer_open_from_branch: Some(560),
        };
        assert!(either.allows(ModuleFlavour::Open));
        assert!(either.allows(ModuleFlavour::Proprietary));
        assert_eq!(either.preferred(550), ModuleFlavour::Proprietary);
        assert_eq!(either.preferred(560), ModuleFlavour::Open);
        assert!(!ModuleNeed::Open.allows(ModuleFlavour::Proprietary));
        assert!(!ModuleNeed::Proprietary.allows(ModuleFlavour::Open));
        assert_eq!(ModuleNeed::Open.preferred(470), ModuleFlavour::Open);
        assert_eq!(ModuleFlavour::parse("OPEN"), Some(ModuleFlavour::Open));
        assert_eq!(ModuleFlavour::Proprietary.to_string(), "proprietary");
        assert_eq!(ModuleFlavour::parse("closed"), None);
    }
}
