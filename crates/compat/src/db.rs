//! The compatibility database: the data file, checked and indexed.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use jiff::civil::Date;
use toml::Spanned;

use crate::arch::{Architecture, GpuInfo, ModuleFlavour, ModuleNeed};
use crate::error::{CompatError, Position};
use crate::raw;
use crate::versions::{ComputeCapability, CudaVersion, DriverVersion, VersionError};

/// The data file compiled into this build.
pub const EMBEDDED_TOML: &str = include_str!("../data/compat.toml");

/// The name errors give the embedded file.
pub const EMBEDDED_ORIGIN: &str = "embedded compat.toml";

/// The data file schema this build reads.
pub const SCHEMA: u32 = 1;

/// The lifecycle kinds NVIDIA uses for data-center branches: long-term
/// support, production and new-feature branches.
pub const LIFECYCLE_KINDS: [&str; 3] = ["LTSB", "PB", "NFB"];

/// How long NVIDIA supports a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchLifecycle {
    /// `LTSB`, `PB` or `NFB`.
    pub kind: String,
    /// End of support. The data gives a month; this is its first day.
    pub end: Date,
}

/// One row of the branch table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchInfo {
    pub branch: u32,
    /// The newest CUDA the branch supports.
    pub ceiling: CudaVersion,
    pub confirmed: bool,
    pub lifecycle: Option<BranchLifecycle>,
    pub note: Option<String>,
}

/// Whether a driver can run an application built for a CUDA version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunCheck {
    /// The driver's ceiling is at least the application's CUDA version.
    Native,
    /// The ceiling is lower, but within the same CUDA major and from the
    /// branch where minor-version compatibility starts: it runs, perhaps
    /// without the newest features.
    MinorVersionCompat,
    /// It does not run. `needs_branch` is the oldest known branch that would
    /// run it (by minor-version compatibility if that was allowed).
    TooOld {
        ceiling: Option<CudaVersion>,
        needs_branch: Option<u32>,
    },
    /// The driver's branch is not in the data, so nothing can be said.
    UnknownDriver,
}

impl RunCheck {
    pub fn ok(&self) -> bool {
        matches!(self, RunCheck::Native | RunCheck::MinorVersionCompat)
    }
}

#[derive(Debug, Clone)]
struct ToolkitRow {
    min_driver: DriverVersion,
    confirmed: bool,
}

#[derive(Debug, Clone)]
struct MajorRow {
    minor_compat_min_branch: u32,
    min_cc: ComputeCapability,
    max_cc: ComputeCapability,
}

#[derive(Debug, Clone)]
struct CcRow {
    since_cuda: Option<CudaVersion>,
    confirmed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchModule {
    Open,
    Proprietary,
    Either,
}

#[derive(Debug, Clone, Copy)]
struct ArchRow {
    module: ArchModule,
    last_branch: Option<u32>,
}

#[derive(Debug, Clone)]
struct GpuRow {
    family: String,
    /// Each pattern as upper-case tokens.
    patterns: Vec<Vec<String>>,
    cc: ComputeCapability,
    architecture: Architecture,
    grace: bool,
    nvswitch: bool,
    confirmed: bool,
}

/// The compatibility knowledge, checked for internal consistency when it was
/// loaded. Every question about a branch, toolkit, GPU or architecture that
/// the data does not answer returns `None` rather than a guess.
#[derive(Debug, Clone)]
pub struct CompatDb {
    origin: String,
    data_version: String,
    description: Option<String>,
    branches: BTreeMap<u32, BranchInfo>,
    toolkits: BTreeMap<(CudaVersion, u32), ToolkitRow>,
    majors: BTreeMap<u32, MajorRow>,
    ccs: BTreeMap<ComputeCapability, CcRow>,
    archs: [ArchRow; Architecture::ALL.len()],
    open_min_branch: u32,
    open_default_from_branch: Option<u32>,
    grace_needs: Option<ModuleFlavour>,
    gpus: Vec<GpuRow>,
    fabric_manager_packages: Vec<String>,
}

impl CompatDb {
    /// The data compiled into this build, parsed on first use.
    pub fn embedded() -> &'static CompatDb {
        static EMBEDDED: OnceLock<CompatDb> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            CompatDb::from_toml_str(EMBEDDED_TOML, EMBEDDED_ORIGIN)
                .expect("the embedded compat.toml is valid: this crate's tests load it")
        })
    }

    /// Parses and checks a data file. `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<CompatDb, CompatError> {
        let cx = Cx { origin, text };
        let header: raw::Header = toml::from_str(text).map_err(|e| cx.syntax(&e))?;
        match header.schema {
            None => {
                return Err(CompatError::Syntax {
                    origin: origin.to_owned(),
                    position: None,
                    message: "missing top-level key `schema`".to_owned(),
                });
            }
            Some(schema) if *schema.get_ref() != i64::from(SCHEMA) => {
                return Err(CompatError::UnsupportedSchema {
                    origin: origin.to_owned(),
                    position: Some(cx.pos(&schema.span())),
                    found: *schema.get_ref(),
                    supported: SCHEMA,
                });
            }
            Some(_) => {}
        }
        let file: raw::File = toml::from_str(text).map_err(|e| cx.syntax(&e))?;
        cx.build(file)
    }

    /// Reads and checks a data file, e.g. a ConfigMap mounted into the pod.
    pub fn load(path: &Path) -> Result<CompatDb, CompatError> {
        let text = std::fs::read_to_string(path).map_err(|source| CompatError::Read {
            path: path.display().to_string(),
            source,
        })?;
        CompatDb::from_toml_str(&text, &path.display().to_string())
    }

    /// Where the data came from: a path, or [`EMBEDDED_ORIGIN`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The file's `dataVersion`, to report which knowledge a verdict used.
    pub fn data_version(&self) -> &str {
        &self.data_version
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    // -- driver branches ---------------------------------------------------

    /// The newest CUDA a driver supports, by its branch. A branch the data
    /// does not list gives `None`, even one newer than every listed branch.
    pub fn cuda_ceiling(&self, driver: &DriverVersion) -> Option<CudaVersion> {
        self.branches.get(&driver.branch()).map(|b| b.ceiling)
    }

    /// Whether the branch's ceiling has a primary source; `None` for an
    /// unknown branch.
    pub fn ceiling_is_confirmed(&self, branch: u32) -> Option<bool> {
        self.branches.get(&branch).map(|b| b.confirmed)
    }

    /// Everything known about a branch.
    pub fn branch_info(&self, branch: u32) -> Option<&BranchInfo> {
        self.branches.get(&branch)
    }

    /// The oldest known branch whose ceiling reaches `cuda`.
    pub fn min_branch_for_ceiling(&self, cuda: CudaVersion) -> Option<u32> {
        self.branches
            .values()
            .find(|b| b.ceiling >= cuda)
            .map(|b| b.branch)
    }

    pub fn branch_lifecycle(&self, branch: u32) -> Option<BranchLifecycle> {
        self.branches.get(&branch)?.lifecycle.clone()
    }

    /// Listed branches, oldest first.
    pub fn known_branches(&self) -> impl Iterator<Item = u32> + '_ {
        self.branches.keys().copied()
    }

    // -- toolkits ------------------------------------------------------------

    /// The minimum driver for a toolkit's GA release. `None` for a toolkit
    /// the data does not list (12.7 was never released).
    pub fn min_driver_for_toolkit(&self, cuda: CudaVersion) -> Option<DriverVersion> {
        self.min_driver_for_toolkit_update(cuda, 0)
    }

    /// The minimum driver for update `update` of a toolkit (0 = GA). An
    /// update the data does not list gives `None`: an earlier update's
    /// minimum could be too low.
    pub fn min_driver_for_toolkit_update(
        &self,
        cuda: CudaVersion,
        update: u32,
    ) -> Option<DriverVersion> {
        self.toolkits
            .get(&(cuda, update))
            .map(|t| t.min_driver.clone())
    }

    /// Whether a toolkit release's row has a primary source.
    pub fn toolkit_is_confirmed(&self, cuda: CudaVersion, update: u32) -> Option<bool> {
        self.toolkits.get(&(cuda, update)).map(|t| t.confirmed)
    }

    /// Listed toolkit releases as (version, update, minimum driver), oldest
    /// first.
    pub fn known_toolkits(&self) -> impl Iterator<Item = (CudaVersion, u32, &DriverVersion)> + '_ {
        self.toolkits
            .iter()
            .map(|((cuda, update), row)| (*cuda, *update, &row.min_driver))
    }

    // -- running applications ----------------------------------------------

    /// The branch from which any application of this CUDA major runs by
    /// minor-version compatibility.
    pub fn minor_compat_min_branch(&self, cuda_major: u32) -> Option<u32> {
        self.majors
            .get(&cuda_major)
            .map(|m| m.minor_compat_min_branch)
    }

    /// Whether `driver` runs an application built for `workload`.
    /// `minor_version_compat` says whether the application may rely on
    /// minor-version compatibility (it may not if it JIT-compiles PTX from a
    /// newer toolchain or calls newer driver APIs).
    pub fn can_run(
        &self,
        driver: &DriverVersion,
        workload: CudaVersion,
        minor_version_compat: bool,
    ) -> RunCheck {
        let Some(ceiling) = self.cuda_ceiling(driver) else {
            return RunCheck::UnknownDriver;
        };
        if ceiling >= workload {
            return RunCheck::Native;
        }
        let compat_from = if minor_version_compat {
            self.minor_compat_min_branch(workload.major)
        } else {
            None
        };
        if let Some(from) = compat_from
            && ceiling.major == workload.major
            && driver.branch() >= from
        {
            return RunCheck::MinorVersionCompat;
        }
        let native = self.min_branch_for_ceiling(workload);
        let needs_branch = match (compat_from, native) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        RunCheck::TooOld {
            ceiling: Some(ceiling),
            needs_branch,
        }
    }

    // -- GPUs and architectures -----------------------------------------------

    /// Identifies a GPU from its product name as the driver reports it
    /// ("NVIDIA H100 80GB HBM3", "Tesla V100-SXM2-16GB"). `None` when no
    /// pattern in the data matches.
    pub fn gpu(&self, product: &str) -> Option<GpuInfo> {
        self.gpu_row(product).map(|row| GpuInfo {
            product_family: row.family.clone(),
            architecture: row.architecture,
            compute_capability: row.cc,
            grace: row.grace,
        })
    }

    /// Whether the product's row has a primary source.
    pub fn gpu_is_confirmed(&self, product: &str) -> Option<bool> {
        self.gpu_row(product).map(|row| row.confirmed)
    }

    /// Whether HGX boards of this product carry NVSwitches (and so need
    /// Fabric Manager when the switches are present).
    pub fn gpu_has_nvswitch_systems(&self, product: &str) -> Option<bool> {
        self.gpu_row(product).map(|row| row.nvswitch)
    }

    fn gpu_row(&self, product: &str) -> Option<&GpuRow> {
        let tokens = tokenize(product);
        let mut best: Option<(&GpuRow, (usize, usize))> = None;
        for row in &self.gpus {
            for pattern in &row.patterns {
                if pattern.is_empty() || pattern.len() > tokens.len() {
                    continue;
                }
                if !tokens
                    .windows(pattern.len())
                    .any(|w| w == pattern.as_slice())
                {
                    continue;
                }
                let score = (pattern.len(), pattern.iter().map(String::len).sum());
                if best.is_none_or(|(_, s)| score > s) {
                    best = Some((row, score));
                }
            }
        }
        best.map(|(row, _)| row)
    }

    /// Whether the toolchain of CUDA major `cuda_major` targets `cc` at all
    /// (in some release of that major; see [`CompatDb::min_cuda_for_cc`]).
    /// `None` for a major the data does not describe.
    pub fn cuda_major_supports(&self, cuda_major: u32, cc: ComputeCapability) -> Option<bool> {
        let major = self.majors.get(&cuda_major)?;
        let in_range = major.min_cc <= cc && cc <= major.max_cc;
        let arrived = self
            .ccs
            .get(&cc)
            .and_then(|row| row.since_cuda)
            .is_none_or(|since| since.major <= cuda_major);
        Some(in_range && arrived)
    }

    /// The first CUDA release whose toolchain targets `cc`; `None` for a
    /// compute capability the data does not list.
    pub fn min_cuda_for_cc(&self, cc: ComputeCapability) -> Option<CudaVersion> {
        self.ccs.get(&cc)?.since_cuda
    }

    /// Whether the compute capability's row (its architecture and
    /// `sinceCuda`) has a primary source.
    pub fn cc_is_confirmed(&self, cc: ComputeCapability) -> Option<bool> {
        self.ccs.get(&cc).map(|row| row.confirmed)
    }

    /// Which kernel module flavour the GPU can run with.
    pub fn module_need(&self, gpu: &GpuInfo) -> ModuleNeed {
        if gpu.grace
            && let Some(flavour) = self.grace_needs
        {
            return match flavour {
                ModuleFlavour::Open => ModuleNeed::Open,
                ModuleFlavour::Proprietary => ModuleNeed::Proprietary,
            };
        }
        match self.arch(gpu.architecture).module {
            ArchModule::Open => ModuleNeed::Open,
            ArchModule::Proprietary => ModuleNeed::Proprietary,
            ArchModule::Either => ModuleNeed::Either {
                prefer_open_from_branch: self.open_default_from_branch,
            },
        }
    }

    /// The branch the open kernel modules first shipped with.
    pub fn open_module_min_branch(&self) -> u32 {
        self.open_min_branch
    }

    /// The branch from which the open modules are the default.
    pub fn open_module_default_branch(&self) -> Option<u32> {
        self.open_default_from_branch
    }

    /// The last driver branch supporting `arch`; `None` while it is still
    /// supported.
    pub fn last_branch_for(&self, arch: Architecture) -> Option<u32> {
        self.arch(arch).last_branch
    }

    fn arch(&self, arch: Architecture) -> &ArchRow {
        // `archs` holds one row per variant, in declaration order.
        &self.archs[arch as usize]
    }

    /// The Fabric Manager package names for a driver branch.
    pub fn fabric_manager_packages(&self, branch: u32) -> Vec<String> {
        self.fabric_manager_packages
            .iter()
            .map(|template| template.replace("{branch}", &branch.to_string()))
            .collect()
    }
}

/// Cuts a product name or pattern into upper-case tokens at every character
/// that is not an ASCII letter or digit.
pub(crate) fn tokenize(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_uppercase)
        .collect()
}

/// `[[table]] ident, key "key"`: where in the file a value lives.
fn place(table: &str, ident: &str, key: &str) -> String {
    format!("[[{table}]] {ident}, key \"{key}\"")
}

/// `#3`: a row named by its 1-based position, for rows whose own name is the
/// broken value.
fn nth(i: usize) -> String {
    format!("#{}", i + 1)
}

/// The file being checked, for turning spans into positions.
struct Cx<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Cx<'_> {
    fn pos(&self, span: &Range<usize>) -> Position {
        Position::of_span(self.text, span)
    }

    fn syntax(&self, e: &toml::de::Error) -> CompatError {
        // toml's messages may run over several lines; a log line wants one.
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        CompatError::Syntax {
            origin: self.origin.to_owned(),
            position: e.span().map(|s| self.pos(&s)),
            message,
        }
    }

    fn invalid(
        &self,
        span: &Range<usize>,
        place: String,
        message: impl Into<String>,
    ) -> CompatError {
        CompatError::Invalid {
            origin: self.origin.to_owned(),
            position: Some(self.pos(span)),
            place,
            message: message.into(),
        }
    }

    fn duplicate(&self, span: &Range<usize>, place: String, first: &Range<usize>) -> CompatError {
        CompatError::Duplicate {
            origin: self.origin.to_owned(),
            position: Some(self.pos(span)),
            place,
            first_line: self.pos(first).line,
        }
    }

    fn version<T>(
        &self,
        value: &Spanned<String>,
        place: impl FnOnce() -> String,
        parse: impl FnOnce(&str) -> Result<T, VersionError>,
    ) -> Result<T, CompatError> {
        parse(value.get_ref()).map_err(|e| self.invalid(&value.span(), place(), e.to_string()))
    }

    fn build(&self, file: raw::File) -> Result<CompatDb, CompatError> {
        if file.data_version.get_ref().trim().is_empty() {
            return Err(self.invalid(
                &file.data_version.span(),
                "key \"dataVersion\"".to_owned(),
                "must not be empty",
            ));
        }
        let branches = self.branches(&file.branch)?;
        let toolkits = self.toolkits(&file.toolkit, &branches)?;
        let majors = self.majors(&file.cuda_major, &branches)?;
        let ccs = self.ccs(&file.compute_capability)?;
        let archs = self.archs(&file.architecture, &branches)?;
        let gpus = self.gpus(&file.gpu, &ccs)?;

        let km = &file.kernel_module;
        let open_min_branch = *km.open_min_branch.get_ref();
        let open_default_from_branch = km.open_default_from_branch.as_ref().map(|b| *b.get_ref());
        if let Some(from) = &km.open_default_from_branch
            && *from.get_ref() < open_min_branch
        {
            return Err(self.invalid(
                &from.span(),
                "[kernelModule], key \"openDefaultFromBranch\"".to_owned(),
                format!(
                    "branch {} is older than openMinBranch {open_min_branch}",
                    from.get_ref()
                ),
            ));
        }
        let grace_needs = match &km.grace_needs {
            None => None,
            Some(value) => Some(ModuleFlavour::parse(value.get_ref()).ok_or_else(|| {
                self.invalid(
                    &value.span(),
                    "[kernelModule], key \"graceNeeds\"".to_owned(),
                    format!(
                        "unknown module flavour {:?} (expected \"open\" or \"proprietary\")",
                        value.get_ref()
                    ),
                )
            })?),
        };

        let mut fabric_manager_packages = Vec::new();
        for package in file.fabric_manager.iter().flat_map(|f| &f.packages) {
            if !package.get_ref().contains("{branch}") {
                return Err(self.invalid(
                    &package.span(),
                    "[fabricManager], key \"packages\"".to_owned(),
                    format!("{:?} has no {{branch}} placeholder", package.get_ref()),
                ));
            }
            fabric_manager_packages.push(package.get_ref().clone());
        }

        Ok(CompatDb {
            origin: self.origin.to_owned(),
            data_version: file.data_version.into_inner(),
            description: file.description,
            branches,
            toolkits,
            majors,
            ccs,
            archs,
            open_min_branch,
            open_default_from_branch,
            grace_needs,
            gpus,
            fabric_manager_packages,
        })
    }

    fn branches(&self, rows: &[raw::Branch]) -> Result<BTreeMap<u32, BranchInfo>, CompatError> {
        let mut branches = BTreeMap::new();
        let mut spans: BTreeMap<u32, (Range<usize>, Range<usize>)> = BTreeMap::new();
        for row in rows {
            let branch = *row.branch.get_ref();
            let ident = branch.to_string();
            if branch == 0 {
                return Err(self.invalid(
                    &row.branch.span(),
                    place("branch", &ident, "branch"),
                    "a branch number is positive",
                ));
            }
            let ceiling = self.version(
                &row.cuda,
                || place("branch", &ident, "cuda"),
                CudaVersion::parse,
            )?;
            let lifecycle = match &row.lifecycle {
                None => None,
                Some(l) => Some(self.lifecycle(l, &ident)?),
            };
            match spans.entry(branch) {
                Entry::Occupied(first) => {
                    return Err(self.duplicate(
                        &row.branch.span(),
                        format!("[[branch]] {branch}"),
                        &first.get().0,
                    ));
                }
                Entry::Vacant(slot) => {
                    slot.insert((row.branch.span(), row.cuda.span()));
                }
            }
            branches.insert(
                branch,
                BranchInfo {
                    branch,
                    ceiling,
                    confirmed: row.confirmed,
                    lifecycle,
                    note: row.note.clone(),
                },
            );
        }
        // A newer branch never supports less CUDA than an older one; a row
        // that says so is a typo, and would make min_branch_for_ceiling lie.
        let mut previous: Option<&BranchInfo> = None;
        for info in branches.values() {
            if let Some(prev) = previous
                && info.ceiling < prev.ceiling
            {
                let span = spans.get(&info.branch).map(|s| s.1.clone()).unwrap_or(0..0);
                let prev_line = spans
                    .get(&prev.branch)
                    .map(|s| self.pos(&s.1).line)
                    .unwrap_or(0);
                return Err(self.invalid(
                    &span,
                    place("branch", &info.branch.to_string(), "cuda"),
                    format!(
                        "ceiling {} is lower than {} of older branch {} (line {prev_line})",
                        info.ceiling, prev.ceiling, prev.branch
                    ),
                ));
            }
            previous = Some(info);
        }
        Ok(branches)
    }

    fn lifecycle(&self, l: &raw::Lifecycle, ident: &str) -> Result<BranchLifecycle, CompatError> {
        let kind = l.kind.get_ref();
        if !LIFECYCLE_KINDS.contains(&kind.as_str()) {
            return Err(self.invalid(
                &l.kind.span(),
                place("branch", ident, "lifecycle.kind"),
                format!("unknown lifecycle kind {kind:?} (expected LTSB, PB or NFB)"),
            ));
        }
        let end = parse_month_or_day(l.until.get_ref()).ok_or_else(|| {
            self.invalid(
                &l.until.span(),
                place("branch", ident, "lifecycle.until"),
                format!(
                    "invalid date {:?} (expected YYYY-MM or YYYY-MM-DD)",
                    l.until.get_ref()
                ),
            )
        })?;
        Ok(BranchLifecycle {
            kind: kind.clone(),
            end,
        })
    }

    fn toolkits(
        &self,
        rows: &[raw::Toolkit],
        branches: &BTreeMap<u32, BranchInfo>,
    ) -> Result<BTreeMap<(CudaVersion, u32), ToolkitRow>, CompatError> {
        let mut toolkits: BTreeMap<(CudaVersion, u32), ToolkitRow> = BTreeMap::new();
        // Per release: where its `cuda` and its `minDriver` are.
        let mut spans: BTreeMap<(CudaVersion, u32), (Range<usize>, Range<usize>)> = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            let cuda = self.version(
                &row.cuda,
                || place("toolkit", &nth(i), "cuda"),
                CudaVersion::parse,
            )?;
            let ident = if row.update == 0 {
                format!("{cuda} GA")
            } else {
                format!("{cuda} update {}", row.update)
            };
            let min_driver = self.version(
                &row.min_driver,
                || place("toolkit", &ident, "minDriver"),
                DriverVersion::parse,
            )?;
            let Some(branch) = branches.get(&min_driver.branch()) else {
                return Err(self.invalid(
                    &row.min_driver.span(),
                    place("toolkit", &ident, "minDriver"),
                    format!(
                        "branch {} of driver {min_driver} is not in [[branch]]",
                        min_driver.branch()
                    ),
                ));
            };
            if branch.ceiling < cuda {
                return Err(self.invalid(
                    &row.min_driver.span(),
                    place("toolkit", &ident, "minDriver"),
                    format!(
                        "driver {min_driver} supports CUDA {} at most (branch {}), not {cuda}",
                        branch.ceiling, branch.branch
                    ),
                ));
            }
            let key = (cuda, row.update);
            if let Some((first, _)) = spans.get(&key) {
                return Err(self.duplicate(
                    &row.cuda.span(),
                    format!("[[toolkit]] {ident}"),
                    first,
                ));
            }
            spans.insert(key, (row.cuda.span(), row.min_driver.span()));
            toolkits.insert(
                key,
                ToolkitRow {
                    min_driver,
                    confirmed: row.confirmed,
                },
            );
        }
        // A later update never needs an older driver than an earlier one.
        let mut previous: Option<(&(CudaVersion, u32), &ToolkitRow)> = None;
        for (key, row) in &toolkits {
            if let Some((prev_key, prev)) = previous
                && prev_key.0 == key.0
                && row.min_driver < prev.min_driver
            {
                let span = spans.get(key).map(|s| s.1.clone()).unwrap_or(0..0);
                return Err(self.invalid(
                    &span,
                    place(
                        "toolkit",
                        &format!("{} update {}", key.0, key.1),
                        "minDriver",
                    ),
                    format!(
                        "{} is older than {} required by update {} of the same toolkit",
                        row.min_driver, prev.min_driver, prev_key.1
                    ),
                ));
            }
            previous = Some((key, row));
        }
        Ok(toolkits)
    }

    fn majors(
        &self,
        rows: &[raw::CudaMajor],
        branches: &BTreeMap<u32, BranchInfo>,
    ) -> Result<BTreeMap<u32, MajorRow>, CompatError> {
        let mut majors = BTreeMap::new();
        let mut spans: BTreeMap<u32, Range<usize>> = BTreeMap::new();
        for row in rows {
            let major = *row.major.get_ref();
            let ident = major.to_string();
            if let Some(first) = spans.get(&major) {
                return Err(self.duplicate(
                    &row.major.span(),
                    format!("[[cudaMajor]] {major}"),
                    first,
                ));
            }
            spans.insert(major, row.major.span());
            let from = *row.minor_compat_min_branch.get_ref();
            match branches.get(&from) {
                None => {
                    return Err(self.invalid(
                        &row.minor_compat_min_branch.span(),
                        place("cudaMajor", &ident, "minorCompatMinBranch"),
                        format!("branch {from} is not in [[branch]]"),
                    ));
                }
                Some(b) if b.ceiling.major != major => {
                    return Err(self.invalid(
                        &row.minor_compat_min_branch.span(),
                        place("cudaMajor", &ident, "minorCompatMinBranch"),
                        format!(
                            "branch {from} supports CUDA {}, which is not CUDA {major}",
                            b.ceiling
                        ),
                    ));
                }
                Some(_) => {}
            }
            let min_cc = self.version(
                &row.min_compute_capability,
                || place("cudaMajor", &ident, "minComputeCapability"),
                ComputeCapability::parse,
            )?;
            let max_cc = self.version(
                &row.max_compute_capability,
                || place("cudaMajor", &ident, "maxComputeCapability"),
                ComputeCapability::parse,
            )?;
            if max_cc < min_cc {
                return Err(self.invalid(
                    &row.max_compute_capability.span(),
                    place("cudaMajor", &ident, "maxComputeCapability"),
                    format!("{max_cc} is below minComputeCapability {min_cc}"),
                ));
            }
            majors.insert(
                major,
                MajorRow {
                    minor_compat_min_branch: from,
                    min_cc,
                    max_cc,
                },
            );
        }
        Ok(majors)
    }

    fn ccs(
        &self,
        rows: &[raw::ComputeCapability],
    ) -> Result<BTreeMap<ComputeCapability, CcRow>, CompatError> {
        let mut ccs = BTreeMap::new();
        let mut spans: BTreeMap<ComputeCapability, Range<usize>> = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            let cc = self.version(
                &row.cc,
                || place("computeCapability", &nth(i), "cc"),
                ComputeCapability::parse,
            )?;
            let ident = cc.to_string();
            if let Some(first) = spans.get(&cc) {
                return Err(self.duplicate(
                    &row.cc.span(),
                    format!("[[computeCapability]] {cc}"),
                    first,
                ));
            }
            spans.insert(cc, row.cc.span());
            let arch = Architecture::parse(row.architecture.get_ref()).ok_or_else(|| {
                self.invalid(
                    &row.architecture.span(),
                    place("computeCapability", &ident, "architecture"),
                    format!("unknown architecture {:?}", row.architecture.get_ref()),
                )
            })?;
            let expected = Architecture::from_compute_capability(cc);
            if expected != Some(arch) {
                let why = match expected {
                    Some(e) => format!("compute capability {cc} is {e}, not {arch}"),
                    None => format!("compute capability {cc} belongs to no known architecture"),
                };
                return Err(self.invalid(
                    &row.architecture.span(),
                    place("computeCapability", &ident, "architecture"),
                    why,
                ));
            }
            let since_cuda = match &row.since_cuda {
                None => None,
                Some(value) => Some(self.version(
                    value,
                    || place("computeCapability", &ident, "sinceCuda"),
                    CudaVersion::parse,
                )?),
            };
            ccs.insert(
                cc,
                CcRow {
                    since_cuda,
                    confirmed: row.confirmed,
                },
            );
        }
        Ok(ccs)
    }

    fn archs(
        &self,
        rows: &[raw::Architecture],
        branches: &BTreeMap<u32, BranchInfo>,
    ) -> Result<[ArchRow; Architecture::ALL.len()], CompatError> {
        let mut found: [Option<(ArchRow, Range<usize>)>; Architecture::ALL.len()] =
            Default::default();
        for (i, row) in rows.iter().enumerate() {
            let arch = Architecture::parse(row.name.get_ref()).ok_or_else(|| {
                self.invalid(
                    &row.name.span(),
                    place("architecture", &nth(i), "name"),
                    format!("unknown architecture {:?}", row.name.get_ref()),
                )
            })?;
            let ident = arch.name();
            if let Some((_, first)) = &found[arch as usize] {
                return Err(self.duplicate(
                    &row.name.span(),
                    format!("[[architecture]] {ident}"),
                    first,
                ));
            }
            let module = match row.module.get_ref().to_ascii_lowercase().as_str() {
                "open" => ArchModule::Open,
                "proprietary" => ArchModule::Proprietary,
                "either" => ArchModule::Either,
                other => {
                    return Err(self.invalid(
                        &row.module.span(),
                        place("architecture", ident, "module"),
                        format!(
                            "unknown module need {other:?} (expected \"open\", \"proprietary\" or \"either\")"
                        ),
                    ));
                }
            };
            let last_branch = match &row.last_branch {
                None => None,
                Some(b) if !branches.contains_key(b.get_ref()) => {
                    return Err(self.invalid(
                        &b.span(),
                        place("architecture", ident, "lastBranch"),
                        format!("branch {} is not in [[branch]]", b.get_ref()),
                    ));
                }
                Some(b) => Some(*b.get_ref()),
            };
            found[arch as usize] = Some((
                ArchRow {
                    module,
                    last_branch,
                },
                row.name.span(),
            ));
        }
        let mut archs = [ArchRow {
            module: ArchModule::Either,
            last_branch: None,
        }; Architecture::ALL.len()];
        for arch in Architecture::ALL {
            match &found[arch as usize] {
                Some((row, _)) => archs[arch as usize] = *row,
                None => {
                    // Every architecture must be described: module_need has
                    // to answer for any GPU, and a default would be a guess.
                    return Err(CompatError::Invalid {
                        origin: self.origin.to_owned(),
                        position: None,
                        place: "[[architecture]]".to_owned(),
                        message: format!("no row for {}", arch.name()),
                    });
                }
            }
        }
        Ok(archs)
    }

    fn gpus(
        &self,
        rows: &[raw::Gpu],
        ccs: &BTreeMap<ComputeCapability, CcRow>,
    ) -> Result<Vec<GpuRow>, CompatError> {
        let mut gpus = Vec::with_capacity(rows.len());
        let mut families: BTreeMap<String, Range<usize>> = BTreeMap::new();
        let mut patterns: BTreeMap<Vec<String>, Range<usize>> = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            let family = row.family.get_ref().trim();
            if family.is_empty() {
                return Err(self.invalid(
                    &row.family.span(),
                    place("gpu", &nth(i), "family"),
                    "must not be empty",
                ));
            }
            let ident = format!("{family:?}");
            if let Some(first) = families.get(family) {
                return Err(self.duplicate(&row.family.span(), format!("[[gpu]] {ident}"), first));
            }
            families.insert(family.to_owned(), row.family.span());
            if row.patterns.get_ref().is_empty() {
                return Err(self.invalid(
                    &row.patterns.span(),
                    place("gpu", &ident, "match"),
                    "needs at least one pattern",
                ));
            }
            let mut row_patterns = Vec::new();
            for pattern in row.patterns.get_ref() {
                let tokens = tokenize(pattern.get_ref());
                if tokens.is_empty() {
                    return Err(self.invalid(
                        &pattern.span(),
                        place("gpu", &ident, "match"),
                        format!("pattern {:?} has no letters or digits", pattern.get_ref()),
                    ));
                }
                if let Some(first) = patterns.get(&tokens) {
                    return Err(self.duplicate(
                        &pattern.span(),
                        format!("[[gpu]] pattern {:?}", pattern.get_ref()),
                        first,
                    ));
                }
                patterns.insert(tokens.clone(), pattern.span());
                row_patterns.push(tokens);
            }
            let cc = self.version(
                &row.cc,
                || place("gpu", &ident, "cc"),
                ComputeCapability::parse,
            )?;
            if !ccs.contains_key(&cc) {
                return Err(self.invalid(
                    &row.cc.span(),
                    place("gpu", &ident, "cc"),
                    format!("compute capability {cc} is not in [[computeCapability]]"),
                ));
            }
            let Some(architecture) = Architecture::from_compute_capability(cc) else {
                return Err(self.invalid(
                    &row.cc.span(),
                    place("gpu", &ident, "cc"),
                    format!("compute capability {cc} belongs to no known architecture"),
                ));
            };
            gpus.push(GpuRow {
                family: family.to_owned(),
                patterns: row_patterns,
                cc,
                architecture,
                grace: row.grace,
                nvswitch: row.nvswitch,
                confirmed: row.confirmed,
            });
        }
        Ok(gpus)
    }
}

/// `2026-06` (the first of the month) or `2026-06-30`.
fn parse_month_or_day(s: &str) -> Option<Date> {
    let parts: Vec<&str> = s.split('-').collect();
    let number = |p: &str| -> Option<i16> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    match parts.as_slice() {
        [y, m] if y.len() == 4 && m.len() == 2 => {
            let month = i8::try_from(number(m)?).ok()?;
            Date::new(number(y)?, month, 1).ok()
        }
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            let month = i8::try_from(number(m)?).ok()?;
            let day = i8::try_from(number(d)?).ok()?;
            Date::new(number(y)?, month, day).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_splits_on_everything_but_letters_and_digits() {
        assert_eq!(
            tokenize("Tesla V100-SXM2-16GB"),
            ["TESLA", "V100", "SXM2", "16GB"]
        );
        assert_eq!(
            tokenize("  NVIDIA  RTX PRO 6000 Blackwell (rev. 2) "),
            ["NVIDIA", "RTX", "PRO", "6000", "BLACKWELL", "REV", "2"]
        );
        assert!(tokenize("").is_empty());
        assert!(tokenize("--//").is_empty());
    }

    #[test]
    fn month_or_day_dates() {
        assert_eq!(
            parse_month_or_day("2026-06"),
            Some(jiff::civil::date(2026, 6, 1))
        );
        assert_eq!(
            parse_month_or_day("2028-06-30"),
            Some(jiff::civil::date(2028, 6, 30))
        );
        for bad in [
            "",
            "2026",
            "2026-13",
            "2026-6",
            "26-06",
            "2026-06-31",
            "2026-+6",
            "2026-06-01-01",
        ] {
            assert_eq!(parse_month_or_day(bad), None, "{bad:?}");
        }
    }
}
