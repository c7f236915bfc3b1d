//! What the pieces of an NVIDIA GPU stack promise each other.
//!
//! A node is only as good as the weakest agreement in its stack. The driver
//! branch sets the newest CUDA an application may be built for. A toolkit
//! release needs at least some driver. A CUDA major's compiler targets only
//! some GPU generations. Some GPUs work only with the open kernel module and
//! others only with the proprietary one. Old generations lose driver support
//! at a given branch. Probes report what a host has; policy asks this crate
//! whether those facts fit together.
//!
//! The knowledge comes from NVIDIA's release notes and CUDA compatibility
//! guide, gathered in the project's reference notes. It lives in a data file
//! (`data/compat.toml`), not in code. The file is compiled in, so every
//! binary works on its own. It can also be replaced at run time by a file,
//! usually a ConfigMap mounted into the pod ([`CompatDb::load`]). A fleet
//! can then learn about a new driver branch without a new Plumbline release.
//! The file carries a schema number and a `dataVersion`, so that a verdict
//! can say which knowledge it used. A row that had no primary source is
//! marked `confirmed = false`. It is still used, and callers can tell it
//! apart.
//!
//! An unknown driver branch is never guessed. It would be easy to assume
//! that a branch newer than every listed one supports at least the newest
//! listed CUDA, or to fill a gap between two listed branches. But this
//! answer decides whether a node is tainted or cordoned, and NVIDIA's
//! numbering has surprises: 565 supports a CUDA release that never shipped,
//! and branch numbers skip. So a question about a branch the data does not
//! list gets `None` or [`RunCheck::UnknownDriver`]. Policy turns that into
//! "unknown", which an operator fixes by updating the data file. Policy never
//! acts on a made-up fact.
//!
//! Loading checks the file as a whole. A version that does not parse, a
//! branch listed twice, a toolkit whose minimum driver cannot support it, or
//! a newer branch with a lower ceiling is refused. The error names the file,
//! the line and column, and the table and key.

mod arch;
mod db;
mod error;
mod raw;
mod versions;

pub use arch::{Architecture, GpuInfo, ModuleFlavour, ModuleNeed};
pub use db::{
    BranchInfo, BranchLifecycle, CompatDb, EMBEDDED_ORIGIN, EMBEDDED_TOML, LIFECYCLE_KINDS,
    RunCheck, SCHEMA,
};
pub use error::{CompatError, Position};
pub use versions::{ComputeCapability, CudaVersion, DriverVersion, ToolkitVersion, VersionError};
