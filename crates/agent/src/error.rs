//! Errors: the ones that stop the agent ([`AgentError`], only at start) and
//! the ones it retries forever ([`ApiError`]).

use std::time::Duration;

use crate::config::ConfigError;

/// Why `run` returned early. After start-up the agent does not give up: API
/// trouble is retried and probe trouble is published as data.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("opening host root {path}: {message}: mount the host's / there or set --host-root")]
    HostRoot { path: String, message: String },
    #[error(
        "serving metrics on {addr}: {source}: pick a free address with --metrics-addr / METRICS_ADDR"
    )]
    MetricsBind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl AgentError {
    /// Stable short name for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            AgentError::Config(e) => e.kind(),
            AgentError::HostRoot { .. } => "host_root",
            AgentError::MetricsBind { .. } => "metrics_bind",
        }
    }
}

/// One failed API step. Every one is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "node {node} not found: the baseline is owned by its Node, so it is created only once the Node exists; check --node-name / NODE_NAME matches `kubectl get nodes`"
    )]
    NodeNotFound { node: String },
    #[error("node {node} has no uid yet")]
    NodeWithoutUid { node: String },
    #[error("{op} {target}: {source}")]
    Kube {
        op: &'static str,
        target: String,
        #[source]
        source: kube::Error,
    },
    #[error("{op} {target}: no answer within {timeout:?}")]
    Timeout {
        op: &'static str,
        target: String,
        timeout: Duration,
    },
    #[error("encoding status for {target}: {source}")]
    Encode {
        target: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ApiError {
    /// Stable short name for the `kind` label of `api_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::NodeNotFound { .. } => "node_not_found",
            ApiError::NodeWithoutUid { .. } => "node_without_uid",
            ApiError::Timeout { .. } => "timeout",
            ApiError::Encode { .. } => "encode",
            ApiError::Kube { source, .. } => match source {
                kube::Error::Api(status) => match status.code {
                    404 => "not_found",
                    409 => "conflict",
                    410 => "gone",
                    429 => "throttled",
                    401 | 403 => "forbidden",
                    500..=599 => "server_error",
                    400..=499 => "client_error",
                    _ => "api_other",
                },
                kube::Error::HyperError(_) | kube::Error::Service(_) => "transport",
                kube::Error::SerdeError(_) => "decode",
                kube::Error::Auth(_) => "auth",
                _ => "other",
            },
        }
    }

    /// The HTTP status the server answered with, if it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Kube {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }
}
