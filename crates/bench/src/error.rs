//! Errors of the figure format and the report.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("figure {id} has no samples (or a sample that is not a number)")]
    NoSamples { id: String },
    #[error("encoding figure {id}: {source}")]
    Encode {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {} line {line}: {source}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

impl BenchError {
    /// Stable short name.
    pub fn kind(&self) -> &'static str {
        match self {
            BenchError::NoSamples { .. } => "no_samples",
            BenchError::Encode { .. } => "encode",
            BenchError::Write { .. } => "write",
            BenchError::Read { .. } => "read",
            BenchError::Parse { .. } => "parse",
        }
    }
}
