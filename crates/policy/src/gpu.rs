//! Facts derived from an observation with the compatibility data: what each
//! GPU is, and the CUDA ceiling of the loaded driver. Shared by evaluation
//! (rules) and planning (fact labels), so that both say the same thing.

use plumbline_api::{GpuObserved, Observed};
use plumbline_compat::{Architecture, CompatDb, ComputeCapability, CudaVersion, DriverVersion};

/// One GPU as far as it can be identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuIdentity {
    pub product: String,
    pub architecture: Option<Architecture>,
    pub compute_capability: Option<ComputeCapability>,
    /// Coupled to a Grace CPU. Only the compat data knows this; a product
    /// the data does not list is taken as not Grace-coupled.
    pub grace: bool,
}

impl GpuIdentity {
    /// Identifies a GPU. The node's own report (architecture, compute
    /// capability, from the driver) wins over the product table; a value
    /// that does not parse is ignored in favour of the table.
    pub fn of(gpu: &GpuObserved, compat: &CompatDb) -> GpuIdentity {
        let known = compat.gpu(&gpu.product);
        let cc = gpu
            .compute_capability
            .as_deref()
            .and_then(|s| ComputeCapability::parse(s).ok())
            .or_else(|| known.as_ref().map(|k| k.compute_capability));
        let architecture = gpu
            .architecture
            .as_deref()
            .and_then(Architecture::parse)
            .or_else(|| cc.and_then(Architecture::from_compute_capability))
            .or_else(|| known.as_ref().map(|k| k.architecture));
        GpuIdentity {
            product: gpu.product.clone(),
            architecture,
            compute_capability: cc,
            grace: known.is_some_and(|k| k.grace),
        }
    }

    /// The compat crate's view of the GPU, when its architecture is known.
    pub fn info(&self) -> Option<plumbline_compat::GpuInfo> {
        let architecture = self.architecture?;
        Some(plumbline_compat::GpuInfo {
            product_family: self.product.clone(),
            architecture,
            compute_capability: self
                .compute_capability
                .unwrap_or(ComputeCapability::new(0, 0)),
            grace: self.grace,
        })
    }
}

/// The GPUs the driver drives (excluded GPUs are left out: the driver does
/// not use them, so their needs do not constrain it).
pub fn identify_gpus(observed: &Observed, compat: &CompatDb) -> Vec<GpuIdentity> {
    observed
        .gpus
        .iter()
        .filter(|g| !g.excluded)
        .map(|g| GpuIdentity::of(g, compat))
        .collect()
}

/// The loaded driver's version, when a driver is loaded and its version
/// parses.
pub fn loaded_driver(observed: &Observed) -> Option<DriverVersion> {
    if !observed.driver.loaded {
        return None;
    }
    DriverVersion::parse(observed.driver.version.as_deref()?).ok()
}

/// The newest CUDA the loaded driver supports. The node's report (the
/// driver's own answer) wins; otherwise the compat data is asked by
/// branch. `None` when neither knows: Plumbline never guesses a ceiling.
pub fn effective_ceiling(
    observed: &Observed,
    driver: &DriverVersion,
    compat: &CompatDb,
    trust_node_report: bool,
) -> Option<CudaVersion> {
    let reported = trust_node_report
        .then_some(observed.driver.cuda_ceiling.as_deref())
        .flatten()
        .and_then(|s| CudaVersion::parse(s).ok());
    reported.or_else(|| compat.cuda_ceiling(driver))
}

/// The architecture label value: lower case, spaces as dashes
/// (`hopper`, `ada-lovelace`); `mixed` when the GPUs differ.
pub fn architecture_label(gpus: &[GpuIdentity]) -> Option<String> {
    let mut archs: Vec<Architecture> = gpus.iter().filter_map(|g| g.architecture).collect();
    archs.sort();
    archs.dedup();
    match archs.as_slice() {
        [] => None,
        [one] => Some(one.name().to_ascii_lowercase().replace(' ', "-")),
        _ => Some("mixed".to_string()),
    }
}
