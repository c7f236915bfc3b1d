//! The registry: every probe, in the order it runs.
//!
//! Order matters: a probe may read what the probes before it put into
//! [`Observed`] (the userspace probe needs the module version, CDI staleness
//! needs the driver version and the GPUs, NVML cross-checks everything).

use plumbline_api::keys::probes as names;
use plumbline_api::{Observed, ProbeStatus};

use crate::{Context, Outcome};

pub mod cdi;
pub mod container_toolkit;
pub mod cuda_ceiling;
pub mod dpkg;
pub mod fabric_manager;
pub mod gpus;
pub mod kernel;
pub mod kernel_module;
pub mod nvml;
pub mod os;
pub mod runtimes;
pub mod toolkits;
pub mod userspace;

/// One entry of the registry. `run` computes the probe's value from the
/// context and the observation so far, stores it into its own part of the
/// observation, and returns the status and message.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// The name in `status.probes[].name` (from `plumbline_api::keys::probes`).
    pub name: &'static str,
    pub run: fn(&Context<'_>, &mut Observed) -> (ProbeStatus, Option<String>),
}

/// Every probe, in the order they run.
pub static REGISTRY: &[Probe] = &[
    Probe {
        name: names::KERNEL_MODULE,
        run: kernel_module::run,
    },
    Probe {
        name: names::USERSPACE,
        run: userspace::run,
    },
    Probe {
        name: names::CUDA_CEILING,
        run: cuda_ceiling::run,
    },
    Probe {
        name: names::GPUS,
        run: gpus::run,
    },
    Probe {
        name: names::TOOLKITS,
        run: toolkits::run,
    },
    Probe {
        name: names::CONTAINER_TOOLKIT,
        run: container_toolkit::run,
    },
    Probe {
        name: names::RUNTIMES,
        run: runtimes::run,
    },
    Probe {
        name: names::CDI,
        run: cdi::run,
    },
    Probe {
        name: names::KERNEL,
        run: kernel::run,
    },
    Probe {
        name: names::OS,
        run: os::run,
    },
    Probe {
        name: names::FABRIC_MANAGER,
        run: fabric_manager::run,
    },
    Probe {
        name: names::NVML,
        run: nvml::run,
    },
];

/// Why a parser refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no {field} found")]
    Missing { field: &'static str },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

impl ParseError {
    /// Stable short name, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::Missing { .. } => "missing",
            ParseError::Invalid { .. } => "invalid",
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl ToString) -> Self {
        ParseError::Invalid {
            what,
            reason: reason.to_string(),
        }
    }
}

/// Stores an outcome's value with `apply` and returns its status and message.
pub(crate) fn finish<T>(
    outcome: Outcome<T>,
    apply: impl FnOnce(T),
) -> (ProbeStatus, Option<String>) {
    apply(outcome.value);
    (outcome.status, outcome.message)
}
