//! The data file exactly as written, before any of it is believed.
//!
//! Every value that can be wrong keeps its span, so that a refusal can say
//! on which line the wrong value sits. Unknown keys are refused: in a file
//! people edit by hand, a misspelt `confirmed` must not quietly become
//! "confirmed".

use serde::Deserialize;
use toml::Spanned;

/// Read first, alone and tolerant of everything else, so that a file of a
/// newer schema is refused for its schema rather than for its new keys.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub schema: Option<Spanned<i64>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct File {
    #[allow(dead_code, reason = "checked through Header before this is read")]
    pub schema: i64,
    pub data_version: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub kernel_module: KernelModule,
    #[serde(default)]
    pub branch: Vec<Branch>,
    #[serde(default)]
    pub toolkit: Vec<Toolkit>,
    #[serde(default)]
    pub cuda_major: Vec<CudaMajor>,
    #[serde(default)]
    pub compute_capability: Vec<ComputeCapability>,
    #[serde(default)]
    pub architecture: Vec<Architecture>,
    #[serde(default)]
    pub gpu: Vec<Gpu>,
    #[serde(default)]
    pub fabric_manager: Option<FabricManager>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct KernelModule {
    pub open_min_branch: Spanned<u32>,
    #[serde(default)]
    pub open_default_from_branch: Option<Spanned<u32>>,
    #[serde(default)]
    pub grace_needs: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Branch {
    pub branch: Spanned<u32>,
    pub cuda: Spanned<String>,
    #[serde(default = "yes")]
    pub confirmed: bool,
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Lifecycle {
    pub kind: Spanned<String>,
    pub until: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Toolkit {
    pub cuda: Spanned<String>,
    #[serde(default)]
    pub update: u32,
    pub min_driver: Spanned<String>,
    #[serde(default = "yes")]
    pub confirmed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CudaMajor {
    pub major: Spanned<u32>,
    pub minor_compat_min_branch: Spanned<u32>,
    pub min_compute_capability: Spanned<String>,
    pub max_compute_capability: Spanned<String>,
    #[serde(default = "yes")]
    #[allow(
        dead_code,
        reason = "for the file's readers; no question depends on it"
    )]
    pub confirmed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ComputeCapability {
    pub cc: Spanned<String>,
    pub architecture: Spanned<String>,
    #[serde(default)]
    pub since_cuda: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub confirmed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Architecture {
    pub name: Spanned<String>,
    pub module: Spanned<String>,
    #[serde(default)]
    pub last_branch: Option<Spanned<u32>>,
    #[serde(default = "yes")]
    #[allow(
        dead_code,
        reason = "for the file's readers; no question depends on it"
    )]
    pub confirmed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Gpu {
    pub family: Spanned<String>,
    #[serde(rename = "match")]
    pub patterns: Spanned<Vec<Spanned<String>>>,
    pub cc: Spanned<String>,
    #[serde(default)]
    pub grace: bool,
    #[serde(default)]
    pub nvswitch: bool,
    #[serde(default = "yes")]
    pub confirmed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct FabricManager {
    pub packages: Vec<Spanned<String>>,
}
