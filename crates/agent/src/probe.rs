//! Where observations come from: the real probes over a mounted host tree,
//! or a stand-in the simulator controls.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use plumbline_api::{Observed, ProbeResult};
use plumbline_probe::HostRoot;
use tokio::sync::Notify;

/// One probe pass: what the host's stack is, and how each probe went.
/// Runs on a blocking thread, so it may read files synchronously.
pub trait HostProbe: Send + Sync + 'static {
    fn probe(&self) -> (Observed, Vec<ProbeResult>);

    /// Signalled when the host changed, for probes that know (a simulated
    /// host does; a real one is watched with inotify instead).
    fn change_signal(&self) -> Option<Arc<Notify>> {
        None
    }
}

/// The real probes (`plumbline_probe::probe_host`) over a host tree.
#[derive(Debug, Clone)]
pub struct HostTreeProbe {
    host: HostRoot,
    nvml: bool,
    nvml_library: Option<PathBuf>,
}

impl HostTreeProbe {
    /// `nvml_library`: the `libnvidia-ml.so.1` to load, as a path in this
    /// container; `None` uses the one the userspace probe finds on the host.
    pub fn new(host: HostRoot, nvml: bool, nvml_library: Option<PathBuf>) -> HostTreeProbe {
        HostTreeProbe {
            host,
            nvml,
            nvml_library,
        }
    }
}

impl HostProbe for HostTreeProbe {
    fn probe(&self) -> (Observed, Vec<ProbeResult>) {
        let options = plumbline_probe::Options {
            nvml: self.nvml,
            nvml_library: self.nvml_library.as_deref(),
            ..plumbline_probe::Options::default()
        };
        plumbline_probe::probe_host(&self.host, &options)
    }
}

/// A host whose observation is set by hand: the simulator's fleet and the
/// agent's own tests. [`StaticProbe::set`] wakes the agent at once.
#[derive(Debug, Default)]
pub struct StaticProbe {
    state: Mutex<(Observed, Vec<ProbeResult>)>,
    changed: Arc<Notify>,
}

impl StaticProbe {
    pub fn new(observed: Observed, probes: Vec<ProbeResult>) -> StaticProbe {
        StaticProbe {
            state: Mutex::new((observed, probes)),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Replaces what the next probe pass returns and signals a change.
    pub fn set(&self, observed: Observed, probes: Vec<ProbeResult>) {
        if let Ok(mut state) = self.state.lock() {
            *state = (observed, probes);
        }
        self.changed.notify_one();
    }
}

impl HostProbe for StaticProbe {
    fn probe(&self) -> (Observed, Vec<ProbeResult>) {
        match self.state.lock() {
            Ok(state) => state.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn change_signal(&self) -> Option<Arc<Notify>> {
        Some(self.changed.clone())
    }
}
