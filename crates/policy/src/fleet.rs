//! What one node's evaluation needs to know about the rest of its pool.

use std::collections::BTreeMap;

use plumbline_api::keys::probes;
use plumbline_api::{NodeGpuBaselineStatus, Observed, ProbeResult, ProbeStatus, UniformityKey};

/// Counts of each uniformity key's values across the nodes a policy
/// selects, built by the controller from every selected node's baseline
/// (the node being evaluated included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetView {
    counts: BTreeMap<UniformityKey, BTreeMap<String, u32>>,
}

/// The reference value of one uniformity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference<'a> {
    /// No node reported a value.
    NoData,
    /// One value is held by more nodes than any other.
    Majority {
        value: &'a str,
        count: u32,
        total: u32,
    },
    /// Two or more values share the top count. Nobody is judged on the key;
    /// the policy status reports the tie.
    Tie { values: Vec<&'a str>, count: u32 },
}

/// The probe whose data a uniformity key comes from.
pub fn uniformity_probe(key: UniformityKey) -> &'static str {
    match key {
        UniformityKey::DriverVersion | UniformityKey::KernelModule => probes::KERNEL_MODULE,
        UniformityKey::ContainerToolkitVersion => probes::CONTAINER_TOOLKIT,
        UniformityKey::ToolkitVersions => probes::TOOLKITS,
        UniformityKey::KernelRelease => probes::KERNEL,
    }
}

/// A node's value for a uniformity key; `None` when the node has none (no
/// driver, no Container Toolkit...), which other rules report.
pub fn uniformity_value(key: UniformityKey, observed: &Observed) -> Option<String> {
    match key {
        UniformityKey::DriverVersion => observed
            .driver
            .loaded
            .then(|| observed.driver.version.clone())
            .flatten(),
        UniformityKey::KernelModule => match observed.driver.kernel_module {
            plumbline_api::KernelModule::Unknown => None,
            module => Some(module.as_str().to_string()),
        },
        UniformityKey::ContainerToolkitVersion => observed
            .container_toolkit
            .installed
            .then(|| observed.container_toolkit.version.clone())
            .flatten(),
        UniformityKey::ToolkitVersions => {
            let mut versions: Vec<&str> = observed
                .toolkits
                .iter()
                .map(|t| t.version.as_str())
                .collect();
            versions.sort_unstable();
            versions.dedup();
            Some(if versions.is_empty() {
                "none".to_string()
            } else {
                versions.join(",")
            })
        }
        UniformityKey::KernelRelease => observed.kernel.release.clone(),
    }
}

impl FleetView {
    pub fn new() -> FleetView {
        FleetView::default()
    }

    /// A view of the given baselines for the given keys.
    pub fn from_statuses<'a>(
        keys: &[UniformityKey],
        statuses: impl IntoIterator<Item = &'a NodeGpuBaselineStatus>,
    ) -> FleetView {
        let mut view = FleetView::new();
        for status in statuses {
            if let Some(observed) = &status.observed {
                view.add(keys, observed, &status.probes);
            }
        }
        view
    }

    /// Counts one node. A key whose probe failed on the node is skipped: the
    /// value left behind is a default, not an observation.
    pub fn add(
        &mut self,
        keys: &[UniformityKey],
        observed: &Observed,
        probe_results: &[ProbeResult],
    ) {
        for &key in keys {
            let probe = uniformity_probe(key);
            let failed = probe_results
                .iter()
                .any(|p| p.name == probe && p.status == ProbeStatus::Error);
            if failed {
                continue;
            }
            if let Some(value) = uniformity_value(key, observed) {
                *self
                    .counts
                    .entry(key)
                    .or_default()
                    .entry(value)
                    .or_default() += 1;
            }
        }
    }

    /// The reference value for a key: the value most nodes have.
    pub fn reference(&self, key: UniformityKey) -> Reference<'_> {
        let Some(values) = self.counts.get(&key) else {
            return Reference::NoData;
        };
        let Some(top) = values.values().copied().max() else {
            return Reference::NoData;
        };
        let leaders: Vec<&str> = values
            .iter()
            .filter(|(_, c)| **c == top)
            .map(|(v, _)| v.as_str())
            .collect();
        match leaders.as_slice() {
            [] => Reference::NoData,
            [value] => Reference::Majority {
                value,
                count: top,
                total: values.values().sum(),
            },
            _ => Reference::Tie {
                values: leaders,
                count: top,
            },
        }
    }

    /// Every key whose top values tie, with the tied values.
    pub fn ties(&self) -> Vec<(UniformityKey, Vec<String>)> {
        self.counts
            .keys()
            .filter_map(|&key| match self.reference(key) {
                Reference::Tie { values, .. } => {
                    Some((key, values.into_iter().map(str::to_string).collect()))
                }
                _ => None,
            })
            .collect()
    }

    /// Value → node count for a key.
    pub fn histogram(&self, key: UniformityKey) -> Option<&BTreeMap<String, u32>> {
        self.counts.get(&key)
    }
}
