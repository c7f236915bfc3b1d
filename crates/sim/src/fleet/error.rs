//! What can go wrong while putting a simulated fleet on disk.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FleetError {
    /// Stable short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            FleetError::Io { .. } => "io",
        }
    }
}
